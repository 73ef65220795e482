"""Hand-written backwards of every layer, checked by finite differences in float64.

The hand-written ones are the fast path's (minipixel/fast/): the fused cell and
scan, the fast layers, the fused losses; the paper path's cell and losses are
checked too (their backwards come from the engine's ops, each checked in
test_ops_grad.py; the paper layers equal the fast ones, test_fast_equals_paper.py).

Element-wise ``gradcheck`` on small tensors (inputs and every parameter),
``gradcheck_directional`` for whole models. Parameters are checked by passing
the module's own Parameter objects to the checker: the function closes over the
module, the checker perturbs each parameter's data in place (and restores it),
so the module computes with the perturbed values. Weights are the modules'
random (non-zero) initialisation, sometimes scaled up so the LSTM gates leave
their linear range; masked-out weight entries must get exactly zero gradient,
which the element-wise check also verifies (numeric 0 vs analytic 0).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minipixel import Tensor, fast, gradcheck, gradcheck_directional, layers
from minipixel.fast import FastDiagonalBiLSTMLayer, FastDiagonalLSTM, FastRowLSTMLayer
from minipixel.layers import MaskedConv2d, PixelCNNBlock, channel_groups
from minipixel.ops import skew, unskew
from minipixel.models import DiagonalBiLSTM, PixelCNN, RowLSTM

from conftest import random_array

colours = st.sampled_from([1, 3])
seeds = st.integers(0, 10_000)


def leaf(rng, shape, low=-1.0, high=1.0):
    return Tensor(random_array(rng, shape, low=low, high=high), requires_grad=True)


def scale_params(module, factor):
    """Make the weights larger than their init so the nonlinearities are exercised."""
    for p in module.parameters():
        p.data = p.data * factor
    return module


def check_module(fn, module, *inputs):
    """gradcheck of fn(*inputs) w.r.t. the inputs and every parameter of module."""
    n = len(inputs)
    params = module.parameters()
    assert all(p.dtype == np.float64 for p in params)
    assert gradcheck(lambda *ts: fn(*ts[:n]), *inputs, *params)


# ---- masked convolution ----------------------------------------------------------------------

@given(kind=st.sampled_from(["A", "B"]), c=colours, n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       k=st.sampled_from([(1, 1), (1, 3), (3, 1), (3, 3), (5, 3)]), N=st.integers(1, 2),
       H=st.integers(1, 4), W=st.integers(1, 4), seed=seeds)
def test_masked_conv2d_grad(kind, c, n_in, n_out, k, N, H, W, seed):
    rng = np.random.default_rng(seed)
    conv = MaskedConv2d(kind, channel_groups(n_out, c), channel_groups(n_in, c), k, rng=rng,
                        dtype=np.float64)
    check_module(conv, conv, leaf(rng, (N, n_in, H, W)))


# ---- the LSTM cell and scan -----------------------------------------------------------------

@given(N=st.integers(1, 2), h=st.integers(1, 3), L=st.integers(1, 4), seed=seeds)
def test_lstm_cell_grad(N, h, L, seed):
    rng = np.random.default_rng(seed)
    pre, c_prev = leaf(rng, (N, 4 * h, L), -3, 3), leaf(rng, (N, h, L), -2, 2)

    def fn(p, c):
        hh, cc = layers.lstm_cell(p, c)
        return hh * 1.3 + cc * 0.7      # both outputs, weighted differently
    assert gradcheck(fn, pre, c_prev)


def row_lstm_inputs(rng, N, h, colours, H, W):
    """Leaves for fast.row_lstm: x and the parameters of a Row LSTM layer's hidden part,
    the state kernel large enough that the gates leave their linear range."""
    layer = FastRowLSTMLayer(h, colours, rng, np.float64)
    conv = layer.input_to_state
    params = [Tensor(p.data, requires_grad=True) for p in
              (conv.weight, conv.bias, layer.state_to_state, layer.h0, layer.c0)]
    params[2].data = params[2].data * 3.0
    return leaf(rng, (N, 2 * h, H, W), -2, 2), params, conv


@given(N=st.integers(1, 3), h=st.integers(1, 2), c=colours, H=st.integers(1, 3),
       W=st.integers(1, 4), seed=seeds)
def test_row_lstm_op_grad(N, h, c, H, W, seed):
    """The Row LSTM's op (input-to-state conv and scan over rows, several images side by
    side in one row of positions): input, weight (zero where masked), bias, state kernel,
    initial state."""
    x, (w, b, k_ss, h0, c0), conv = row_lstm_inputs(np.random.default_rng(seed), N, max(h, c),
                                                    c, H, W)
    mask, taps = conv.device_mask(), conv.taps
    assert gradcheck(lambda *a: fast.row_lstm(a[0], a[1], mask, taps, *a[2:]),
                     x, w, b, k_ss, h0, c0)


def test_row_lstm_op_grad_reaches_initial_state_through_every_row():
    """h0 and c0 enter at row 0 only; their gradient must come back through all rows."""
    x, (w, b, k_ss, h0, c0), conv = row_lstm_inputs(np.random.default_rng(11), 2, 2, 1, 6, 3)
    mask, taps = conv.device_mask(), conv.taps
    # only the last row's output is used
    assert gradcheck(lambda *a: fast.row_lstm(a[0], a[1], mask, taps, *a[2:])[:, :, -1],
                     x, w, b, k_ss, h0, c0)


# ---- skew ------------------------------------------------------------------------------------

@given(N=st.integers(1, 2), C=st.integers(1, 2), H=st.integers(1, 4), W=st.integers(1, 4),
       seed=seeds)
def test_skew_unskew_grad(N, C, H, W, seed):
    rng = np.random.default_rng(seed)
    assert gradcheck(skew, leaf(rng, (N, C, H, W)))
    assert gradcheck(lambda s: unskew(s, W), leaf(rng, (N, C, H, H + W - 1)))
    assert gradcheck(lambda x: unskew(skew(x) * 2.0, W), leaf(rng, (N, C, H, W)))


# ---- the layers ------------------------------------------------------------------------------

@given(h=st.integers(1, 3), c=colours, H=st.integers(1, 3), W=st.integers(1, 4),
       big=st.booleans(), seed=seeds)
def test_row_lstm_layer_grad(h, c, H, W, big, seed):
    rng = np.random.default_rng(seed)
    layer = scale_params(FastRowLSTMLayer(h, c, rng, np.float64), 3.0 if big else 1.0)
    check_module(layer, layer, leaf(rng, (1, 2 * h, H, W)))


@given(h=st.integers(1, 2), c=colours, H=st.integers(1, 3), W=st.integers(1, 4), seed=seeds)
def test_diagonal_lstm_grad(h, c, H, W, seed):
    rng = np.random.default_rng(seed)
    direction = scale_params(FastDiagonalLSTM(h, c, rng, np.float64), 2.0)
    check_module(direction, direction, leaf(rng, (1, 2 * h, H, W)))


@given(h=st.integers(1, 2), c=colours, H=st.integers(1, 3), W=st.integers(1, 4), seed=seeds)
def test_diagonal_bilstm_layer_grad(h, c, H, W, seed):
    rng = np.random.default_rng(seed)
    layer = scale_params(FastDiagonalBiLSTMLayer(h, c, rng, np.float64), 2.0)
    check_module(layer, layer, leaf(rng, (1, 2 * h, H, W)))


def test_diagonal_bilstm_layer_grad_rgb_h3_odd_size():
    rng = np.random.default_rng(7)
    layer = scale_params(FastDiagonalBiLSTMLayer(3, 3, rng, np.float64), 1.5)
    x = leaf(rng, (2, 6, 3, 5))
    check_module(layer, layer, x)


@given(h=st.integers(1, 3), c=colours, H=st.integers(1, 4), W=st.integers(1, 4), seed=seeds)
def test_pixelcnn_block_grad(h, c, H, W, seed):
    rng = np.random.default_rng(seed)
    block = scale_params(PixelCNNBlock(h, c, rng, np.float64), 2.0)
    check_module(block, block, leaf(rng, (1, 2 * h, H, W)))


# ---- losses ----------------------------------------------------------------------------------

LOSSES = pytest.mark.parametrize("losses", [fast.losses, layers.losses], ids=["fast", "paper"])


@LOSSES
@given(N=st.integers(1, 2), K=st.integers(2, 5), rest=st.sampled_from([(), (3,), (2, 2, 3)]),
       scale=st.sampled_from([1.0, 10.0]), seed=seeds)
def test_softmax_nll_grad(losses, N, K, rest, scale, seed):
    rng = np.random.default_rng(seed)
    tgt = rng.integers(0, K, size=(N,) + rest)
    assert gradcheck(lambda z: losses.softmax_nll(z, tgt), leaf(rng, (N, K) + rest, -scale, scale))


@LOSSES
@given(shape=st.sampled_from([(3,), (2, 3, 2, 2), (1, 1, 3, 4)]),
       scale=st.sampled_from([1.0, 10.0]), seed=seeds)
def test_sigmoid_nll_grad(losses, shape, scale, seed):
    rng = np.random.default_rng(seed)
    tgt = rng.integers(0, 2, size=shape)
    assert gradcheck(lambda z: losses.sigmoid_nll(z, tgt), leaf(rng, shape, -scale, scale))


# ---- whole models ----------------------------------------------------------------------------

MODEL_CASES = [
    # (class, channels, levels, h, layers, H, W)
    (PixelCNN, 1, 2, 2, 2, 3, 5),
    (RowLSTM, 1, 2, 2, 2, 5, 3),
    (DiagonalBiLSTM, 1, 2, 2, 2, 3, 4),
    (PixelCNN, 3, 4, 3, 2, 3, 4),
    (RowLSTM, 3, 4, 3, 2, 4, 3),
    (DiagonalBiLSTM, 3, 4, 3, 1, 3, 5),
    (RowLSTM, 3, 256, 3, 1, 2, 3),
]


def model_case_id(case):
    cls, C, levels, h, layers, H, W = case
    return f"{cls.__name__}-C{C}-L{levels}-h{h}x{layers}-{H}x{W}"


def build_case(case, seed=0):
    cls, C, levels, h, layers, H, W = case
    model = cls(channels=C, levels=levels, h=h, layers=layers, out_hidden=5, seed=seed,
                dtype=np.float64)
    rng = np.random.default_rng(seed + 100)
    images = rng.integers(0, levels, size=(2, C, H, W))
    return model, images


@pytest.mark.parametrize("case", MODEL_CASES, ids=model_case_id)
def test_model_grad_directional(case):
    """The NLL of a batch, through the whole model, w.r.t. the scaled input and every parameter."""
    model, images = build_case(case)
    x = Tensor(model.scale(images).data.copy(), requires_grad=True)
    params = model.parameters()

    def fn(x_, *ps):
        return model.nll_from_logits(model.logits_from_scaled(x_), images)
    assert gradcheck_directional(fn, x, *params, n_directions=4, seed=1)
    # and the logits themselves (every output element weighted)
    assert gradcheck_directional(lambda x_, *ps: model.logits_from_scaled(x_), x, *params,
                                 n_directions=2, seed=2)


@pytest.mark.parametrize("case", MODEL_CASES[:6], ids=model_case_id)
def test_model_grad_elementwise(case):
    """Element by element, the input and every parameter of a tiny model (400-1800 numbers),
    through the NLL of one image."""
    model, images = build_case(case, seed=3)
    x = Tensor(model.scale(images[:1]).data.copy(), requires_grad=True)
    def fn(x_, *ps):
        return model.nll_from_logits(model.logits_from_scaled(x_), images[:1])
    assert gradcheck(fn, x, *model.parameters())


def test_model_nll_grad_matches_loss():
    """loss() is the batch mean of nll(); its parameter gradients are the mean of each image's."""
    model, images = build_case(MODEL_CASES[3], seed=4)
    model.loss(images).backward()
    g_mean = [p.grad.copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    for i in range(len(images)):
        model.nll(images[i:i + 1]).sum().backward()
    for p, g in zip(model.parameters(), g_mean):
        np.testing.assert_allclose(p.grad / len(images), g, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("kind", ["rowlstm", "diagonal"])
def test_a_recurrent_layers_output_minus_its_input_is_its_output_conv_of_its_hidden_states(
        kind, fast):
    """y = x + output(hidden), eq. of paper section 3.4's residual: a dropped residual add
    was caught only by whole-model tests. Checked per layer, on the traced arrays."""
    from minipixel.crosscheck.reference import reference_arrays
    from minipixel.models import build
    model = build(kind, channels=3, levels=4, h=3, layers=2, out_hidden=5, seed=2,
                  dtype=np.float64, fast=fast)
    a = reference_arrays(model, seed=1, batch=2, H=4, W=5)
    for i in (1, 2):
        w = a[f"param/layers.{i - 1}.output.weight"] * a[f"mask/layers.{i - 1}.output.weight"]
        b = a[f"param/layers.{i - 1}.output.bias"]
        conv = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], a[f"hidden/{i}"]) + b[:, None, None]
        np.testing.assert_allclose(a[f"layer/{i}"] - a[f"layer/{i - 1}"], conv, rtol=0,
                                   atol=1e-12)
