"""Each fast piece (minipixel/fast/) equals its paper twin (minipixel/layers/), forward and
every gradient, in float64 at 1e-12, over drawn sizes, colours and directions.

The paper path writes eq. 3 and the layers from engine ops and lets the engine derive
every backward; the fast path fuses them with hand-written backwards. Twins are built
from the same seed, so they hold the same parameters; each is run forward, then
backward from the same random upstream gradient, and the outputs, the input's gradient
and every parameter's gradient must agree.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minipixel import Tensor, fast, layers
import minipixel.fast.layers as fast_layers_module
from minipixel.fast.scan import PositionMap as RowMap, Scan as ScanCore
from minipixel.models import build
from minipixel.ops import flip
from minipixel.sampling.cached import teacher_forced_logits

from conftest import random_array

TOL = dict(rtol=1e-12, atol=1e-12)
sizes = dict(h=st.integers(1, 4), colours=st.sampled_from([1, 3]), N=st.integers(1, 2),
             H=st.integers(1, 5), W=st.integers(1, 6), seed=st.integers(0, 10_000))


def run(fn, inputs, params, seed):
    """fn(*inputs) forward, then backward from a random upstream gradient: the outputs,
    the inputs' gradients and the parameters' gradients, as NumPy arrays."""
    for p in params:
        p.grad = None
    outs = fn(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    rng = np.random.default_rng(seed)
    total = sum((o * Tensor(rng.uniform(0.5, 1.5, size=o.shape).astype(o.dtype))).sum()
                for o in outs)
    total.backward()
    return ([o.numpy() for o in outs], [t.grad.copy() for t in inputs],
            [np.zeros(p.shape) if p.grad is None else p.grad.copy() for p in params])


def assert_twins(fast_fn, paper_fn, make_inputs, fast_params=(), paper_params=(), seed=0):
    got = run(fast_fn, make_inputs(), list(fast_params), seed)
    want = run(paper_fn, make_inputs(), list(paper_params), seed)
    for kind, g, w in zip(("output", "input gradient", "parameter gradient"), got, want):
        assert len(g) == len(w)
        for a, b in zip(g, w):
            np.testing.assert_allclose(a, b, err_msg=kind, **TOL)


def leaves(*arrays):
    return lambda: [Tensor(a.copy(), requires_grad=True) for a in arrays]


def twins(kind, h, colours, seed):
    """(fast, paper) layers of one kind with the same parameters."""
    paper_cls, fast_cls = {"row": (layers.RowLSTMLayer, fast.FastRowLSTMLayer),
                           "direction": (layers.DiagonalLSTM, fast.FastDiagonalLSTM),
                           "bilstm": (layers.DiagonalBiLSTMLayer,
                                      fast.FastDiagonalBiLSTMLayer)}[kind]
    return (fast_cls(h, colours, np.random.default_rng(seed), np.float64),
            paper_cls(h, colours, np.random.default_rng(seed), np.float64))


@pytest.mark.parametrize("kind", ["row", "bilstm"])
@given(**sizes)
def test_fast_layer_equals_paper_layer(kind, h, colours, N, H, W, seed):
    """Row LSTM and Diagonal BiLSTM layers: output (residual included), input and every
    parameter gradient (both directions' for the BiLSTM)."""
    fused, paper = twins(kind, h, colours, seed)
    x = random_array(np.random.default_rng(seed + 1), (N, 2 * h, H, W))
    assert_twins(fused, paper, leaves(x), fused.parameters(), paper.parameters(), seed)


@pytest.mark.parametrize("direction", ["left_to_right", "right_to_left"])
@given(**sizes)
def test_fast_diagonal_direction_equals_paper(direction, h, colours, N, H, W, seed):
    """One direction of the Diagonal BiLSTM (skew, scan over columns, unskew); the
    right-to-left one runs on the input flipped left-right and is flipped back."""
    fused, paper = twins("direction", h, colours, seed)
    x = random_array(np.random.default_rng(seed + 1), (N, 2 * h, H, W))
    if direction == "right_to_left":
        fused_fn, paper_fn = (lambda t: flip(fused(flip(t, 3)), 3)), \
            (lambda t: flip(paper(flip(t, 3)), 3))
    else:
        fused_fn, paper_fn = fused, paper
    assert_twins(fused_fn, paper_fn, leaves(x), fused.parameters(), paper.parameters(), seed)


class BottomPaddedDirection(layers.DiagonalLSTM):
    """The paper direction with its 2 x 1 state conv reading rows r and r + 1 (a known bug)."""
    state_padding = ((0, 1), (0, 0))


@given(**sizes)
def test_fast_scan_with_a_tap_below_equals_its_paper_twin(h, colours, N, H, W, seed):
    """The fast scan skips the rows left of the image (all equal) only when no tap reads
    the row below; with one that does (offset +1, the bottom padding bug) it computes
    every row, and still equals the paper layer written that way."""
    fused = fast.FastDiagonalLSTM(h, colours, np.random.default_rng(seed), np.float64)
    paper = BottomPaddedDirection(h, colours, np.random.default_rng(seed), np.float64)
    x = random_array(np.random.default_rng(seed + 1), (N, 2 * h, H, W))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(fast_layers_module, "DIAGONAL_OFFSETS", (0, 1))
        assert_twins(fused, paper, leaves(x), fused.parameters(), paper.parameters(), seed)


def test_scan_refuses_rows_it_did_not_compute():
    """A step whose taps would read rows above the previous step's rows (never computed)
    is refused when the scan is laid out, not read as zeros."""
    with pytest.raises(ValueError, match="above the previous step's rows"):
        ScanCore((-1, 0), ((1, 2), (0, 2)), 3, 1, 1, 4, 2, np.float64, np)
    ScanCore((-1, 0), ((0, 1), (1, 2)), 3, 1, 1, 4, 2, np.float64, np)      # row 0 was computed


@given(st.data())
def test_row_map_reads_the_rows_it_names_and_scatter_add_is_its_adjoint(data):
    """gather puts into each row of a step the previous step's row at offset o (zero
    outside 0..L-1, the previous step's last row below it), for any rows that may be
    read, several repeated rows included; scatter_add is its exact adjoint."""
    L, N = data.draw(st.integers(1, 6), label="L"), data.draw(st.integers(1, 3), label="N")
    ap = data.draw(st.integers(0, L - 1), label="ap")
    bp = data.draw(st.integers(ap, L - 1), label="bp")
    o = data.draw(st.sampled_from([-1, 0, 1]), label="o")
    a = data.draw(st.integers(0, L - 1), label="a")
    b = data.draw(st.integers(a, L - 1), label="b")
    if max(a + o, 0) <= min(b + o, ap - 1):                     # reads rows never computed
        with pytest.raises(ValueError, match="above the previous step's rows"):
            RowMap(a, b, ap, bp, o, L, N)
        return
    row_map = RowMap(a, b, ap, bp, o, L, N)
    rng = np.random.default_rng(L * 100 + N * 10 + a)
    src = rng.standard_normal((2, 3, (bp - ap + 1) * N))
    dst = np.full((2, 3, (b - a + 1) * N), np.nan)
    row_map.gather(dst, src)
    for r in range(a, b + 1):
        q = r + o
        want = 0.0 if not 0 <= q < L else src[:, :, (min(q, bp) - ap) * N:(min(q, bp) - ap + 1) * N]
        np.testing.assert_array_equal(dst[:, :, (r - a) * N:(r - a + 1) * N],
                                      np.broadcast_to(want, (2, 3, N)))
    d = rng.standard_normal(dst.shape)
    back = np.zeros_like(src)
    row_map.scatter_add(back, d)
    np.testing.assert_allclose((dst * d).sum(), (src * back).sum(), rtol=1e-12)


@pytest.mark.parametrize("kind", ["row", "bilstm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_layer_with_saturated_gates_equals_paper_silently(kind, dtype):
    """Gate inputs in the hundreds: the in-place cell's exp overflows to inf, which must
    give the gates' exact limits, equal to the paper path's, with no NumPy warning."""
    fused, paper = (layer.astype(dtype) for layer in twins(kind, 3, 3, seed=7))
    x = random_array(np.random.default_rng(8), (2, 6, 4, 5)) * 300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = run(fused, [Tensor(x.astype(dtype), requires_grad=True)], fused.parameters(), 9)
    want = run(paper, [Tensor(x.astype(dtype), requires_grad=True)], paper.parameters(), 9)
    tol = TOL if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            assert np.isfinite(a).all()
            np.testing.assert_allclose(a, b, **tol)


@given(N=st.integers(1, 2), K=st.integers(2, 6), rest=st.sampled_from([(), (3,), (2, 2, 3)]),
       scale=st.sampled_from([1.0, 30.0]), seed=st.integers(0, 10_000))
def test_fused_losses_equal_log_softmax_losses(N, K, rest, scale, seed):
    rng = np.random.default_rng(seed)
    z = random_array(rng, (N, K) + rest, low=-scale, high=scale)
    tgt = rng.integers(0, K, size=(N,) + rest)
    assert_twins(lambda t: fast.softmax_nll(t, tgt), lambda t: layers.softmax_nll(t, tgt),
                 leaves(z), seed=seed)
    bits = rng.integers(0, 2, size=(N, K) + rest)
    assert_twins(lambda t: fast.sigmoid_nll(t, bits), lambda t: layers.sigmoid_nll(t, bits),
                 leaves(z), seed=seed)


@given(name=st.sampled_from(["pixelcnn", "rowlstm", "diagonal"]),
       cl=st.sampled_from([(1, 2), (3, 4), (1, 5)]), layers_=st.integers(1, 2),
       H=st.integers(1, 4), W=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_fast_model_equals_paper_model(name, cl, layers_, H, W, seed):
    """Whole models: the NLL of a batch, the scaled input's and every parameter's gradient;
    and the cached per-pixel steps give the paper path's logits too."""
    colours, levels = cl
    fused = build(name, channels=colours, levels=levels, h=3, layers=layers_, out_hidden=4,
                  seed=seed, dtype=np.float64)
    paper = fused.variant(fast=False)
    assert paper.fast is False and fused.fast is True
    images = np.random.default_rng(seed).integers(0, levels, size=(2, colours, H, W))
    x = fused.scale(images).numpy()

    def nll(model):
        return lambda t: model.nll_from_logits(model.logits_from_scaled(t), images)
    assert_twins(nll(fused), nll(paper), leaves(x), fused.parameters(), paper.parameters(), seed)
    np.testing.assert_allclose(teacher_forced_logits(paper, images),
                               teacher_forced_logits(fused, images), **TOL)
