"""The LSTM cell and the recurrent layers: eq. 3 against a scalar reference, and the
recurrences' wiring (learned initial state, which state taps each step reads).

The reference cell (pixel_reference.ref_lstm_cell) is written scalar by scalar
with the gate order (i, f, g, o):

    i, f, o = sigmoid(.), g = tanh(.),  c = f c_prev + i g,  h = o tanh(c)

Both the paper path's cell (minipixel/layers/cell.py) and the fused one
(minipixel/fast/cell.py) must match it. That the fast layers equal the paper
layers is test_fast_equals_paper.py.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minipixel import Tensor, fast, layers, no_grad
from minipixel.backend import to_device
from minipixel.layers import DiagonalBiLSTMLayer, DiagonalLSTM, PixelCNNBlock, RowLSTMLayer

from conftest import random_array
from pixel_reference import fused_cell, make_layer, per_pixel_cell, ref_conv_module, ref_lstm_cell

TOL = dict(rtol=1e-10, atol=1e-12)
CELLS = {"paper": layers.lstm_cell, "fused": fused_cell, "per-pixel": per_pixel_cell}


def t(a, device="cpu", grad=False):
    return Tensor(to_device(a, device), requires_grad=grad)


# ---- the cell --------------------------------------------------------------------------------

def run_cell(pre, c_prev, device="cpu", path="paper"):
    h, c = CELLS[path](t(pre, device), t(c_prev, device))
    return h.numpy(), c.numpy()


@pytest.mark.parametrize("path", sorted(CELLS))
@given(N=st.integers(1, 3), h=st.integers(1, 5), L=st.integers(1, 6), scale=st.sampled_from([1, 4]),
       seed=st.integers(0, 1000))
def test_lstm_cell_matches_reference(device, path, N, h, L, scale, seed):
    rng = np.random.default_rng(seed)
    pre = random_array(rng, (N, 4 * h, L), low=-scale, high=scale)
    c_prev = random_array(rng, (N, h, L), low=-2, high=2)
    got_h, got_c = run_cell(pre, c_prev, device, path)
    want_h, want_c = ref_lstm_cell(pre, c_prev)
    np.testing.assert_allclose(got_c, want_c, **TOL)
    np.testing.assert_allclose(got_h, want_h, **TOL)


@pytest.mark.parametrize("path", sorted(CELLS))
def test_lstm_cell_gate_roles(path):
    """Each gate block alone: saturate the others and read the formula off the output."""
    big = 40.0
    c_prev = np.array([[[0.7]]])                          # h = 1 hidden unit
    # i = 1, f = 0, g = tanh(0.3), o = 1  ->  c = tanh(0.3), h = tanh(c)
    hh, cc = run_cell(np.array([[[big], [-big], [0.3], [big]]]), c_prev, path=path)
    np.testing.assert_allclose(cc, np.tanh(0.3), rtol=1e-12)
    np.testing.assert_allclose(hh, np.tanh(np.tanh(0.3)), rtol=1e-12)
    # i = 0, f = 1: c keeps c_prev whatever g; o = sigmoid(0) = 1/2
    hh, cc = run_cell(np.array([[[-big], [big], [5.0], [0.0]]]), c_prev, path=path)
    np.testing.assert_allclose(cc, 0.7, rtol=1e-12)
    np.testing.assert_allclose(hh, 0.5 * np.tanh(0.7), rtol=1e-12)
    # g is a tanh: a negative content pre-activation writes a negative value
    hh, cc = run_cell(np.array([[[big], [-big], [-2.0], [big]]]), c_prev, path=path)
    np.testing.assert_allclose(cc, np.tanh(-2.0), rtol=1e-12)
    assert cc.item() < 0


def test_lstm_cell_rejects_wrong_gate_count():
    with pytest.raises(ValueError, match="4h"):
        layers.lstm_cell(Tensor(np.zeros((1, 7, 3))), Tensor(np.zeros((1, 2, 3))))


@given(N=st.integers(1, 3), h=st.integers(1, 5), L=st.integers(1, 6), scale=st.sampled_from([1, 4]),
       seed=st.integers(0, 1000))
def test_in_place_cell_backward_equals_the_engines_gradient_of_the_paper_cell(N, h, L, scale,
                                                                                seed):
    """fast/cell.py's lstm_cell_step_backward gives d pre and d c_prev of the paper cell as
    the engine derives them, from the same upstream gradients of h and c (float64)."""
    from minipixel.fast.cell import exp_gate_scale, lstm_cell_step, lstm_cell_step_backward
    rng = np.random.default_rng(seed)
    pre = random_array(rng, (N, 4 * h, L), low=-scale, high=scale)
    c_prev = random_array(rng, (N, h, L), low=-2, high=2)
    gh, gc = random_array(rng, (N, h, L)), random_array(rng, (N, h, L))
    p, c = t(pre, grad=True), t(c_prev, grad=True)
    hh, cc = layers.lstm_cell(p, c)
    ((hh * Tensor(gh)).sum() + (cc * Tensor(gc)).sum()).backward()
    act = pre * exp_gate_scale(np, h, pre.dtype)
    c_new, tanh_c, h_new, tmp = (np.empty_like(c_prev) for _ in range(4))
    lstm_cell_step(act, c_prev, c_new, tanh_c, h_new, tmp, np)
    d_act, dc = np.empty_like(pre), gc.copy()
    lstm_cell_step_backward(gh.copy(), dc, act, c_prev, tanh_c, d_act, np.empty_like(c_prev),
                            np.empty_like(pre), np)
    np.testing.assert_allclose(d_act, p.grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dc, c.grad, rtol=1e-12, atol=1e-12)


# ---- the recurrences' wiring -------------------------------------------------------------------

@pytest.mark.parametrize("fast_path", [True, False])
def test_row_lstm_uses_learned_initial_state(fast_path):
    """Row 0's states come from h0, c0: changing either changes every column of row 0,
    exactly as the cell applied to (K_is x + K_ss h0, c0) says."""
    rng = np.random.default_rng(3)
    layer = make_layer("row", 2, 1, rng, fast=fast_path)
    x = random_array(rng, (1, 4, 3, 4))
    with no_grad():
        a = layer.hidden(t(x)).numpy()
        pre = layer.input_to_state(t(x)).numpy()[:, :, 0] + row0_state_term(layer, 4)
        c0 = np.broadcast_to(layer.c0.numpy()[None, :, None], (1, 2, 4))
        np.testing.assert_allclose(a[:, :, 0], ref_lstm_cell(pre, c0)[0], **TOL)
        layer.h0.data += 0.5
        b = layer.hidden(t(x)).numpy()
    assert np.all(a[:, :, 0] != b[:, :, 0])


@pytest.mark.parametrize("fast_path", [True, False])
def test_row_lstm_state_taps_read_the_row_above(fast_path):
    """With K_ss non-zero on one tap only, row 1 at column c reads row 0's h at c - 1 + tap."""
    W = 5
    rng = np.random.default_rng(0)
    layer = make_layer("row", 1, 1, rng, fast=fast_path)
    x = random_array(rng, (1, 2, 2, W))
    for tap in range(3):
        k = np.zeros((4, 1, 1, 3))
        k[:, 0, 0, tap] = 1.0
        layer.state_to_state.data[...] = k
        with no_grad():
            out = layer.hidden(t(x)).numpy()
            gates = layer.input_to_state(t(x)).numpy()
        pre = gates[:, :, 1].copy()
        for c in range(W):
            src = c - 1 + tap
            pre[0, :, c] += out[0, 0, 0, src] if 0 <= src < W else 0.0
        c0 = np.broadcast_to(layer.c0.numpy()[None, :, None], (1, 1, W))
        _, c_first = ref_lstm_cell(gates[:, :, 0] + row0_state_term(layer, W), c0)
        want, _ = ref_lstm_cell(pre, c_first)
        np.testing.assert_allclose(out[0, 0, 1], want[0, 0], **TOL)


def row0_state_term(layer, W):
    """K_ss applied to the initial row h0 (zero padded at both ends): (1, 4h, W)."""
    k = layer.state_to_state.numpy()[:, :, 0]                 # (4h, h, 3)
    h0 = layer.h0.numpy()
    out = np.zeros((1, k.shape[0], W))
    for c in range(W):
        for tap in range(3):
            if 0 <= c - 1 + tap < W:
                out[0, :, c] += k[:, :, tap] @ h0
    return out


@pytest.mark.parametrize("fast_path", [True, False])
def test_bilstm_row_zero_is_left_to_right_only(fast_path):
    rng = np.random.default_rng(5)
    layer = make_layer("diagonal", 3, 3, rng, fast=fast_path)
    x = random_array(rng, (1, 6, 4, 5))
    with no_grad():
        hidden = layer.hidden(t(x)).numpy()
        l2r = layer.left_to_right(t(x)).numpy()
    np.testing.assert_allclose(hidden[:, :, 0], l2r[:, :, 0], **TOL)
    assert np.all(np.abs(hidden[:, :, 1:] - l2r[:, :, 1:]) > 0)


def test_layer_classes_are_the_paper_path():
    """The readable layers are the package's: the fast ones only override the recurrence."""
    assert issubclass(fast.FastRowLSTMLayer, RowLSTMLayer)
    assert issubclass(fast.FastDiagonalLSTM, DiagonalLSTM)
    assert issubclass(fast.FastDiagonalBiLSTMLayer, DiagonalBiLSTMLayer)
    assert DiagonalBiLSTMLayer.direction is DiagonalLSTM
    assert fast.FastDiagonalBiLSTMLayer.direction is fast.FastDiagonalLSTM


@given(h=st.integers(1, 4), c=st.sampled_from([1, 3]), H=st.integers(1, 5), W=st.integers(1, 5),
       seed=st.integers(0, 1000))
def test_pixelcnn_block_matches_reference(h, c, H, W, seed):
    """x + expand(relu(conv3x3(relu(reduce(relu(x)))))), every conv mask B."""
    rng = np.random.default_rng(seed)
    block = PixelCNNBlock(h, c, rng, np.float64)
    x = random_array(rng, (2, 2 * h, H, W))
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    y = ref_conv_module(block.reduce, relu(x))
    y = ref_conv_module(block.conv, relu(y))
    want = x + ref_conv_module(block.expand, relu(y))
    with no_grad():
        got = block(t(x)).numpy()
    np.testing.assert_allclose(got, want, **TOL)
