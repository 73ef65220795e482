"""conv2d (im2col with masked-tap skipping): forward, gradients, masks, errors.

The forward is compared with two independent oracles: a slow scalar Python
loop that is the definition of cross-correlation written out, and
scipy.signal.correlate over the padded input. Masks are random 0/1, random 0/1
with whole kernel taps zeroed for every (out, in) channel pair (so conv2d skips
those taps), or PixelCNN's causal masks A and B.
"""
import numpy as np
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st

from minipixel import Tensor, gradcheck, ops
from minipixel.backend import to_device, to_numpy
from minipixel.ops import conv as conv_module
from minipixel.ops.conv import kept_taps, normalize_padding


# ---- oracles -------------------------------------------------------------------------------

def pad_input(x, padding):
    PT, PB, PL, PR = normalize_padding(padding)
    N, C, H, W = x.shape
    xpad = np.zeros((N, C, H + PT + PB, W + PL + PR))
    xpad[:, :, PT:PT + H, PL:PL + W] = x
    return xpad


def conv_loop(x, w, b, padding, mask):
    """out[n,o,y,x] = b[o] + sum_{c,i,j} (w*mask)[o,c,i,j] * xpad[n,c,y+i,x+j], one term at a time."""
    wm = w if mask is None else w * mask
    xpad = pad_input(x, padding)
    N, C, Hp, Wp = xpad.shape
    OC, _, KH, KW = w.shape
    OH, OW = Hp - KH + 1, Wp - KW + 1
    out = np.zeros((N, OC, OH, OW))
    for n in range(N):
        for o in range(OC):
            for y in range(OH):
                for xx in range(OW):
                    acc = 0.0 if b is None else b[o]
                    for c in range(C):
                        for i in range(KH):
                            for j in range(KW):
                                acc += wm[o, c, i, j] * xpad[n, c, y + i, xx + j]
                    out[n, o, y, xx] = acc
    return out


def conv_scipy(x, w, b, padding, mask):
    """Per (n, o): correlate the padded (C, Hp, Wp) input with the (C, KH, KW) kernel, 'valid'."""
    wm = w if mask is None else w * mask
    xpad = pad_input(x, padding)
    out = np.stack([np.stack([scipy.signal.correlate(xpad[n], wm[o], mode="valid", method="direct")[0]
                              for o in range(w.shape[0])]) for n in range(x.shape[0])])
    return out if b is None else out + b[None, :, None, None]


def causal_mask(OC, C, K, include_centre):
    """PixelCNN's spatial mask: rows above the centre, and left of it in the centre row
    (mask A excludes the centre itself, mask B includes it), the same for every (o, c)."""
    m = np.ones((OC, C, K, K))
    c = K // 2
    m[:, :, c + 1:, :] = 0
    m[:, :, c, c + 1:] = 0
    if not include_centre:
        m[:, :, c, c] = 0
    return m


# ---- drawn cases ---------------------------------------------------------------------------

@st.composite
def conv_cases(draw, max_extra=3, max_k=4):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    N, C, OC = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    form = draw(st.sampled_from(["same", "int", "pair", "quad"]))
    if form == "same":                 # output size = input size, padding split any way
        PT, PL = draw(st.integers(0, KH - 1)), draw(st.integers(0, KW - 1))
        padding = ((PT, KH - 1 - PT), (PL, KW - 1 - PL))
    elif form == "int":
        padding = draw(st.integers(0, 2))
    elif form == "pair":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    else:
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    PT, PB, PL, PR = normalize_padding(padding)
    H = draw(st.integers(max(1, KH - PT - PB), max(1, KH - PT - PB) + max_extra))
    W = draw(st.integers(max(1, KW - PL - PR), max(1, KW - PL - PR) + max_extra))
    kind = draw(st.sampled_from(["none", "random", "taps dropped", "causal A", "causal B"]))
    wshape = (OC, C, KH, KW)
    if kind == "none":
        mask = None
    elif kind == "random":
        mask = (rng.random(wshape) < 0.6).astype(np.float64)
    elif kind == "taps dropped":       # whole (i, j) taps zero for every (o, c), others 0/1
        n_keep = rng.integers(1, KH * KW) if KH * KW > 1 else 1    # at least one tap dropped
        keep = np.zeros(KH * KW, dtype=bool)
        keep[rng.permutation(KH * KW)[:n_keep]] = True
        keep = keep.reshape(KH, KW)
        mask = ((rng.random(wshape) < 0.8) & keep).astype(np.float64)
        mask[0, 0][keep] = 1.0         # every kept tap is used by some (o, c)
    else:
        K = max(KH, KW) | 1            # causal masks: odd square kernels
        KH = KW = K
        if form == "same":
            padding, (PT, PB, PL, PR) = K // 2, (K // 2,) * 4
        wshape = (OC, C, K, K)
        H, W = max(H, K - PT - PB), max(W, K - PL - PR)
        mask = causal_mask(OC, C, K, include_centre=kind == "causal B")
    x = rng.uniform(-1, 1, size=(N, C, H, W))
    w = rng.uniform(-1, 1, size=wshape)
    b = rng.uniform(-1, 1, size=OC) if draw(st.booleans()) else None
    return x, w, b, padding, mask


def tensors(device, x, w, b, requires_grad=True):
    t = [Tensor(to_device(a, device), requires_grad=requires_grad) for a in (x, w)]
    return t + [None if b is None else Tensor(to_device(b, device), requires_grad=requires_grad)]


def conv_fn(padding, mask, has_bias):
    if has_bias:
        return lambda x, w, b: ops.conv2d(x, w, b, padding=padding, mask=mask)
    return lambda x, w: ops.conv2d(x, w, padding=padding, mask=mask)


# ---- forward -------------------------------------------------------------------------------

@given(case=conv_cases())
def test_forward_matches_loop_and_scipy(device, case):
    x, w, b, padding, mask = case
    out = ops.conv2d(*tensors(device, x, w, b, requires_grad=False), padding=padding,
                     mask=None if mask is None else to_device(mask, device))
    loop = conv_loop(x, w, b, padding, mask)
    assert out.shape == loop.shape
    np.testing.assert_allclose(out.numpy(), loop, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.numpy(), conv_scipy(x, w, b, padding, mask), rtol=1e-12, atol=1e-12)


def test_oracles_agree_with_a_hand_computed_case():
    """The two oracles themselves, on a case small enough to do by hand."""
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)          # [[1,2,3],[4,5,6],[7,8,9]]
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])             # x[y, x] - x[y+1, x+1]
    expected = np.full((1, 1, 2, 2), -4.0) + 0.5
    for oracle in (conv_loop, conv_scipy):
        np.testing.assert_array_equal(oracle(x, w, np.array([0.5]), 0, None), expected)
    # asymmetric padding: one zero column on the left only
    out = conv_loop(x, w, None, ((0, 0), (1, 0)), None)
    np.testing.assert_array_equal(out[0, 0], [[-4.0, -4.0, -4.0], [-7.0, -4.0, -4.0]])
    np.testing.assert_array_equal(out, conv_scipy(x, w, None, ((0, 0), (1, 0)), None))


@pytest.mark.parametrize("K", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("padding", [0, 1, (2, 0), ((1, 0), (0, 2)), ((0, 3), (2, 1))])
def test_odd_even_kernels_and_asymmetric_padding(device, K, padding):
    rng = np.random.default_rng(K)
    x, w, b = rng.uniform(-1, 1, (2, 3, 6, 5)), rng.uniform(-1, 1, (2, 3, K, K)), rng.uniform(-1, 1, 2)
    PT, PB, PL, PR = normalize_padding(padding)
    out = ops.conv2d(*tensors(device, x, w, b, False), padding=padding)
    assert out.shape == (2, 2, 6 + PT + PB - K + 1, 5 + PL + PR - K + 1)
    np.testing.assert_allclose(out.numpy(), conv_scipy(x, w, b, padding, None), rtol=1e-12, atol=1e-12)


def test_float32_forward_is_float32_and_close_to_float64(device):
    rng = np.random.default_rng(0)
    x, w, b = rng.uniform(-1, 1, (2, 4, 7, 7)), rng.uniform(-1, 1, (5, 4, 3, 3)), rng.uniform(-1, 1, 5)
    mask = causal_mask(5, 4, 3, True)
    t32 = [Tensor(to_device(a.astype(np.float32), device), requires_grad=True) for a in (x, w, b)]
    out = ops.conv2d(*t32, padding=1, mask=mask)
    assert out.dtype == np.float32
    out.sum().backward()
    assert all(t.grad.dtype == np.float32 for t in t32)
    np.testing.assert_allclose(out.numpy(), conv_scipy(x, w, b, 1, mask), rtol=1e-5, atol=1e-5)


# ---- gradients -----------------------------------------------------------------------------

@given(case=conv_cases(max_extra=2, max_k=3), which=st.sampled_from(["all", "x", "w"]))
def test_gradients(device, case, which):
    x, w, b, padding, mask = case
    tx, tw, tb = tensors(device, x, w, b)
    tx.requires_grad, tw.requires_grad = which in ("all", "x"), which in ("all", "w")
    args = (tx, tw) if tb is None else (tx, tw, tb)
    assert gradcheck(conv_fn(padding, mask, tb is not None), *args)


@pytest.mark.parametrize("K,C,OC", [(1, 2, 5), (1, 5, 2), (3, 2, 3)],
                         ids=["1x1 to more maps: bias in the product", "1x1 to fewer: added",
                              "3x3: bias in the product"])
@pytest.mark.parametrize("which", ["all", "x", "w"])
def test_bias_in_the_product_equals_the_bias_added(device, K, C, OC, which):
    """The bias folded into the product ([w | b] @ [col; 1]) or added to its result: equal
    to the conv without bias plus b, forward and every gradient, whichever of x and w
    need one (the bias's gradient comes from the weights' product only when w needs one)."""
    rng = np.random.default_rng(K * 100 + C * 10 + OC)
    x, w, b = rng.uniform(-1, 1, (2, C, 4, 5)), rng.uniform(-1, 1, (OC, C, K, K)), \
        rng.uniform(-1, 1, OC)
    g = rng.uniform(-1, 1, (2, OC, 4, 5))
    results = []
    for fused in (True, False):
        tx, tw, tb = tensors(device, x, w, b)
        tx.requires_grad, tw.requires_grad = which in ("all", "x"), which in ("all", "w")
        out = ops.conv2d(tx, tw, tb, padding=K // 2) if fused else \
            ops.conv2d(tx, tw, padding=K // 2) + tb.reshape(1, OC, 1, 1)
        out.backward(to_device(g, device))
        results.append([out.numpy()] + [to_numpy(t.grad) for t in (tx, tw, tb) if t.requires_grad])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    tx, tw, tb = tensors(device, x, w, b)
    tx.requires_grad, tw.requires_grad = which in ("all", "x"), which in ("all", "w")
    assert gradcheck(conv_fn(K // 2, None, True), tx, tw, tb)


@given(case=conv_cases(max_extra=2, max_k=3))
def test_masked_weight_gradient_is_zero_off_the_mask(device, case):
    """d/dw conv(x, w, mask) = mask * (d/dw' conv(x, w') at w' = w * mask): zero exactly where
    the mask is zero; dx is that of the unmasked conv with weights w * mask."""
    x, w, b, padding, mask = case
    if mask is None:
        mask = (np.random.default_rng(1).random(w.shape) < 0.5).astype(np.float64)
    tx, tw, tb = tensors(device, x, w, b)
    w_before = w.copy()
    ops.conv2d(tx, tw, tb, padding=padding, mask=mask).sum().backward()
    np.testing.assert_array_equal(tw.numpy(), w_before)        # w itself is never masked
    dw, dx = to_numpy(tw.grad), to_numpy(tx.grad)
    assert np.all(dw[mask == 0] == 0.0)
    ux, uw, ub = tensors(device, x, w * mask, b)
    ops.conv2d(ux, uw, ub, padding=padding).sum().backward()
    np.testing.assert_allclose(dw, to_numpy(uw.grad) * mask, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, to_numpy(ux.grad), rtol=1e-12, atol=1e-12)


def test_gradients_of_a_larger_masked_conv_directional(device):
    from minipixel import gradcheck_directional
    rng = np.random.default_rng(3)
    x, w, b = rng.uniform(-1, 1, (2, 4, 8, 8)), rng.uniform(-1, 1, (6, 4, 5, 5)), rng.uniform(-1, 1, 6)
    mask = causal_mask(6, 4, 5, include_centre=False)
    assert gradcheck_directional(conv_fn(((2, 2), (2, 2)), mask, True), *tensors(device, x, w, b),
                                 n_directions=4)


# ---- masks and kept taps -------------------------------------------------------------------

def test_kept_taps_of_causal_masks():
    taps_a = kept_taps(causal_mask(4, 3, 7, include_centre=False), 7, 7)
    assert len(taps_a) == 24
    assert taps_a == tuple((i, j) for i in range(3) for j in range(7)) + ((3, 0), (3, 1), (3, 2))
    taps_b = kept_taps(causal_mask(4, 3, 3, include_centre=True), 3, 3)
    assert taps_b == ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1))
    assert len(kept_taps(None, 3, 3)) == 9
    # a tap used by a single (o, c) pair is kept
    m = np.zeros((2, 2, 3, 3))
    m[1, 0, 2, 1] = 1.0
    assert kept_taps(m, 3, 3) == ((2, 1),)


@pytest.mark.parametrize("K,include_centre,expected", [(7, False, 24), (3, True, 5), (5, False, 12)])
def test_masked_conv_gathers_only_kept_taps(device, monkeypatch, K, include_centre, expected):
    """The tap-skipping path is really taken: im2col builds C * T rows, T the kept taps
    (and one row of ones for the bias), one column per output position."""
    seen = []
    real_im2col = conv_module.im2col

    def spy(xpad_t, taps, OH, OW, ones_row=False):
        col = real_im2col(xpad_t, taps, OH, OW, ones_row)
        seen.append((len(taps), col.shape))
        return col
    monkeypatch.setattr(conv_module, "im2col", spy)
    rng = np.random.default_rng(K)
    C, OC = 2, 3
    x, w, b = rng.uniform(-1, 1, (2, C, 9, 9)), rng.uniform(-1, 1, (OC, C, K, K)), rng.uniform(-1, 1, OC)
    mask = causal_mask(OC, C, K, include_centre)
    out = ops.conv2d(*tensors(device, x, w, b, False), padding=K // 2, mask=mask)
    taps = kept_taps(mask, K, K)
    assert seen == [(expected, (C * expected + 1, 2 * 9 * 9))]
    np.testing.assert_allclose(out.numpy(), conv_scipy(x, w, b, K // 2, mask), rtol=1e-12, atol=1e-12)
    # passing the taps explicitly gives the same result
    again = ops.conv2d(*tensors(device, x, w, b, False), padding=K // 2, mask=mask, taps=taps)
    np.testing.assert_array_equal(again.numpy(), out.numpy())


def test_all_zero_mask_leaves_only_the_bias(device):
    rng = np.random.default_rng(0)
    x, w, b = rng.uniform(-1, 1, (1, 2, 4, 4)), rng.uniform(-1, 1, (3, 2, 3, 3)), rng.uniform(-1, 1, 3)
    tx, tw, tb = tensors(device, x, w, b)
    out = ops.conv2d(tx, tw, tb, padding=1, mask=np.zeros(w.shape))
    np.testing.assert_array_equal(out.numpy(), np.broadcast_to(b[None, :, None, None], (1, 3, 4, 4)))
    out.sum().backward()
    assert not np.any(to_numpy(tw.grad)) and not np.any(to_numpy(tx.grad))
    np.testing.assert_array_equal(to_numpy(tb.grad), [16.0, 16.0, 16.0])


# ---- errors --------------------------------------------------------------------------------

def test_channel_mismatch_is_a_clear_error(device):
    x = Tensor(to_device(np.ones((2, 3, 5, 5)), device))
    w = Tensor(to_device(np.ones((4, 2, 3, 3)), device))
    with pytest.raises(ValueError, match=r"equal C.*\(2, 3, 5, 5\).*\(4, 2, 3, 3\)"):
        ops.conv2d(x, w)


def test_shape_errors(device):
    t = lambda *s: Tensor(to_device(np.ones(s), device))  # noqa: E731
    with pytest.raises(ValueError, match="N, C, H, W"):
        ops.conv2d(t(3, 5, 5), t(4, 3, 3, 3))
    with pytest.raises(ValueError, match="larger than padded input 2x6"):
        ops.conv2d(t(1, 1, 2, 6), t(1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\).*\(1,\)"):
        ops.conv2d(t(1, 3, 5, 5), t(4, 3, 3, 3), t(1))
    with pytest.raises(ValueError, match=r"mask must have the shape of w"):
        ops.conv2d(t(1, 3, 5, 5), t(4, 3, 3, 3), mask=np.ones((3, 3)))
    with pytest.raises(TypeError, match="mixed dtypes"):
        ops.conv2d(t(1, 3, 5, 5), Tensor(to_device(np.ones((4, 3, 3, 3), np.float32), device)))
