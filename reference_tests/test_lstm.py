"""The LSTM cell, the scan and the two recurrent layers against slow NumPy references.

The references (pixel_reference.py) are written formula by formula from
paper-notes section 3 with the gate order (i, f, g, o):

    i, f, o = sigmoid(.), g = tanh(.),  c = f c_prev + i g,  h = o tanh(c)

and the state-to-state kernel as a cross-correlation over the previous row
(Row LSTM, 1 x 3, padded both ends) or the previous skewed column (Diagonal,
2 x 1, padded at the top only).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minipixel import Tensor, no_grad
from minipixel.backend import to_device
from minipixel.layers import (DiagonalBiLSTMLayer, DiagonalLSTM, PixelCNNBlock, RowLSTMLayer,
                              lstm_cell, lstm_scan)
from minipixel.ops import flip

from conftest import random_array
from pixel_reference import (ROW_OFFSETS, ref_bilstm_hidden, ref_bilstm_layer,
                             ref_conv_module, ref_diagonal_lstm, ref_lstm_cell, ref_lstm_scan,
                             ref_row_lstm_hidden, ref_row_lstm_layer, ref_shift_down)

TOL = dict(rtol=1e-10, atol=1e-12)
OFFSETS = {"row": ((-1, 0, 1), (1, 3)), "diagonal": ((-1, 0), (2, 1))}


def t(a, device="cpu", grad=False):
    return Tensor(to_device(a, device), requires_grad=grad)


# ---- the cell --------------------------------------------------------------------------------

def run_cell(pre, c_prev, device="cpu"):
    h, c = lstm_cell(t(pre, device), t(c_prev, device))
    return h.numpy(), c.numpy()


@given(N=st.integers(1, 3), h=st.integers(1, 5), L=st.integers(1, 6), scale=st.sampled_from([1, 4]),
       seed=st.integers(0, 1000))
def test_lstm_cell_matches_reference(device, N, h, L, scale, seed):
    rng = np.random.default_rng(seed)
    pre = random_array(rng, (N, 4 * h, L), low=-scale, high=scale)
    c_prev = random_array(rng, (N, h, L), low=-2, high=2)
    got_h, got_c = run_cell(pre, c_prev, device)
    want_h, want_c = ref_lstm_cell(pre, c_prev)
    np.testing.assert_allclose(got_c, want_c, **TOL)
    np.testing.assert_allclose(got_h, want_h, **TOL)


def test_lstm_cell_gate_roles():
    """Each gate block alone: saturate the others and read the formula off the output."""
    big = 40.0
    h = 1
    c_prev = np.array([[[0.7]]])
    # i = 1, f = 0, g = tanh(0.3), o = 1  ->  c = tanh(0.3), h = tanh(c)
    pre = np.array([[[big], [-big], [0.3], [big]]])
    hh, cc = run_cell(pre, c_prev)
    np.testing.assert_allclose(cc, np.tanh(0.3), rtol=1e-12)
    np.testing.assert_allclose(hh, np.tanh(np.tanh(0.3)), rtol=1e-12)
    # i = 0, f = 1: c keeps c_prev whatever g; o = sigmoid(0) = 1/2
    pre = np.array([[[-big], [big], [5.0], [0.0]]])
    hh, cc = run_cell(pre, c_prev)
    np.testing.assert_allclose(cc, 0.7, rtol=1e-12)
    np.testing.assert_allclose(hh, 0.5 * np.tanh(0.7), rtol=1e-12)
    # g is a tanh: a negative content pre-activation writes a negative value
    pre = np.array([[[big], [-big], [-2.0], [big]]])
    hh, cc = run_cell(pre, c_prev)
    np.testing.assert_allclose(cc, np.tanh(-2.0), rtol=1e-12)
    assert cc.item() < 0
    assert h == 1


def test_lstm_cell_rejects_wrong_gate_count():
    with pytest.raises(ValueError, match="4h"):
        lstm_cell(Tensor(np.zeros((1, 7, 3))), Tensor(np.zeros((1, 2, 3))))


# ---- the scan --------------------------------------------------------------------------------

@given(kind=st.sampled_from(["row", "diagonal"]), N=st.integers(1, 2), h=st.integers(1, 4),
       S=st.integers(1, 5), L=st.integers(1, 6), seed=st.integers(0, 1000))
def test_lstm_scan_matches_reference(device, kind, N, h, S, L, seed):
    offsets, (KH, KW) = OFFSETS[kind]
    rng = np.random.default_rng(seed)
    xg = random_array(rng, (N, 4 * h, S, L), low=-2, high=2)
    k_ss = random_array(rng, (4 * h, h, KH, KW), low=-1.5, high=1.5)
    h0, c0 = random_array(rng, (h,)), random_array(rng, (h,))
    got = lstm_scan(t(xg, device), t(k_ss, device), t(h0, device), t(c0, device), offsets)
    assert got.shape == (N, h, S, L)
    np.testing.assert_allclose(got.numpy(), ref_lstm_scan(xg, k_ss, h0, c0, offsets), **TOL)


def test_lstm_scan_uses_learned_initial_state():
    rng = np.random.default_rng(3)
    h, S, L = 2, 3, 4
    xg = random_array(rng, (1, 4 * h, S, L))
    k_ss = random_array(rng, (4 * h, h, 1, 3))
    h0, c0 = random_array(rng, (h,)), random_array(rng, (h,))
    a = lstm_scan(t(xg), t(k_ss), t(h0), t(c0), ROW_OFFSETS).numpy()
    b = lstm_scan(t(xg), t(k_ss), t(h0 + 0.5), t(c0), ROW_OFFSETS).numpy()
    d = lstm_scan(t(xg), t(k_ss), t(h0), t(c0 - 0.5), ROW_OFFSETS).numpy()
    assert np.all(a[:, :, 0] != b[:, :, 0]) and np.all(a[:, :, 0] != d[:, :, 0])
    np.testing.assert_allclose(b, ref_lstm_scan(xg, k_ss, h0 + 0.5, c0, ROW_OFFSETS), **TOL)


def test_lstm_scan_state_taps_direction():
    """With K_ss nonzero on one tap only, step 1 at position l reads h_0 at l + offset."""
    L = 5                                                # h = 1 hidden unit
    xg = np.zeros((1, 4, 2, L))
    xg[0, :, 0] = np.linspace(-1, 1, L)                  # step 0 differs per position
    for tap, offset in enumerate(ROW_OFFSETS):
        k = np.zeros((4, 1, 1, 3))
        k[:, 0, 0, tap] = 1.0
        out = lstm_scan(t(xg), t(k), t(np.zeros(1)), t(np.zeros(1)), ROW_OFFSETS).numpy()
        h_first = out[0, 0, 0]
        pre = np.zeros((1, 4, L))
        for l in range(L):
            src = l + offset
            pre[0, :, l] = h_first[src] if 0 <= src < L else 0.0
        # c_prev of step 1 is step 0's cell
        _, c_first = ref_lstm_cell(xg[:, :, 0], np.zeros((1, 1, L)))
        want, _ = ref_lstm_cell(pre, c_first)
        np.testing.assert_allclose(out[0, 0, 1], want[0, 0], **TOL)


def test_lstm_scan_rejects_bad_kernel():
    with pytest.raises(ValueError, match="state kernel"):
        lstm_scan(Tensor(np.zeros((1, 8, 2, 3))), Tensor(np.zeros((8, 2, 1, 2))),
                  Tensor(np.zeros(2)), Tensor(np.zeros(2)), ROW_OFFSETS)


# ---- the layers ------------------------------------------------------------------------------

layer_configs = dict(h=st.integers(1, 4), c=st.sampled_from([1, 3]), H=st.integers(1, 5),
                     W=st.integers(1, 6), seed=st.integers(0, 1000))


@given(**layer_configs)
def test_row_lstm_layer_matches_reference(device, h, c, H, W, seed):
    rng = np.random.default_rng(seed)
    layer = RowLSTMLayer(h, c, rng, np.float64).to(device)
    x = random_array(rng, (2, 2 * h, H, W))
    with no_grad():
        hidden = layer.hidden(t(x, device)).numpy()
        out = layer(t(x, device)).numpy()
    np.testing.assert_allclose(hidden, ref_row_lstm_hidden(layer, x), **TOL)
    np.testing.assert_allclose(out, ref_row_lstm_layer(layer, x), **TOL)


@given(**layer_configs)
def test_diagonal_lstm_matches_reference(device, h, c, H, W, seed):
    rng = np.random.default_rng(seed)
    direction = DiagonalLSTM(h, c, rng, np.float64).to(device)
    x = random_array(rng, (2, 2 * h, H, W))
    with no_grad():
        got = direction(t(x, device)).numpy()
    assert got.shape == (2, h, H, W)
    np.testing.assert_allclose(got, ref_diagonal_lstm(direction, x), **TOL)


@given(**layer_configs)
def test_diagonal_bilstm_layer_matches_reference(device, h, c, H, W, seed):
    """hidden = l2r(x) + shift_down(flip(r2l(flip(x)))), then 1x1 mask B and the residual."""
    rng = np.random.default_rng(seed)
    layer = DiagonalBiLSTMLayer(h, c, rng, np.float64).to(device)
    x = random_array(rng, (2, 2 * h, H, W))
    with no_grad():
        hidden = layer.hidden(t(x, device)).numpy()
        out = layer(t(x, device)).numpy()
        # the same from the library's own pieces, one direction at a time
        l2r = layer.left_to_right(t(x, device)).numpy()
        r2l = flip(layer.right_to_left(flip(t(x, device), 3)), 3).numpy()
    np.testing.assert_allclose(hidden, ref_bilstm_hidden(layer, x), **TOL)
    np.testing.assert_allclose(hidden, l2r + ref_shift_down(r2l), **TOL)
    np.testing.assert_allclose(out, ref_bilstm_layer(layer, x), **TOL)


def test_bilstm_row_zero_is_left_to_right_only():
    rng = np.random.default_rng(5)
    layer = DiagonalBiLSTMLayer(3, 3, rng, np.float64)
    x = random_array(rng, (1, 6, 4, 5))
    with no_grad():
        hidden = layer.hidden(t(x)).numpy()
        l2r = layer.left_to_right(t(x)).numpy()
    np.testing.assert_allclose(hidden[:, :, 0], l2r[:, :, 0], **TOL)
    assert np.all(np.abs(hidden[:, :, 1:] - l2r[:, :, 1:]) > 0)


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
