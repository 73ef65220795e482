"""conv_transpose2d (the multi-scale model's upsampler): forward against the definition
written out as a loop, the adjoint identity with a strided cross-correlation, and every
gradient against finite differences in float64, over drawn shapes, strides, paddings
and channel counts, on every backend."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minipixel import Tensor, gradcheck, ops
from minipixel.backend import to_device, to_numpy


def conv_transpose_loop(x, w, b, stride, padding):
    """full[n, o, y s + i, x s + j] += x[n, c, y, x] w[c, o, i, j], then crop: one term at a time."""
    N, C, H, W = x.shape
    _, OC, KH, KW = w.shape
    full = np.zeros((N, OC, (H - 1) * stride + KH, (W - 1) * stride + KW))
    for n in range(N):
        for c in range(C):
            for y in range(H):
                for xx in range(W):
                    full[n, :, y * stride:y * stride + KH, xx * stride:xx * stride + KW] += \
                        x[n, c, y, xx] * w[c]
    if b is not None:
        full += b[None, :, None, None]
    p = padding
    return full[:, :, p:full.shape[2] - p, p:full.shape[3] - p]


def strided_conv_loop(u, w, stride, padding):
    """The cross-correlation whose adjoint conv_transpose2d is: u (N, OC, OH, OW) padded
    by `padding` -> (N, C, H, W), out[n, c, y, x] = sum_{o,i,j} w[c, o, i, j]
    upad[n, o, y s + i, x s + j]."""
    N, OC, OH, OW = u.shape
    C, _, KH, KW = w.shape
    p = padding
    upad = np.zeros((N, OC, OH + 2 * p, OW + 2 * p))
    upad[:, :, p:p + OH, p:p + OW] = u
    H, W = (upad.shape[2] - KH) // stride + 1, (upad.shape[3] - KW) // stride + 1
    out = np.zeros((N, C, H, W))
    for y in range(H):
        for xx in range(W):
            patch = upad[:, :, y * stride:y * stride + KH, xx * stride:xx * stride + KW]
            out[:, :, y, xx] = np.einsum("nokl,cokl->nc", patch, w)
    return out


@st.composite
def cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    N, C, OC = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    KH, KW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    full = min((H - 1) * stride + KH, (W - 1) * stride + KW)
    padding = draw(st.integers(0, (full - 1) // 2))
    x = rng.uniform(-1, 1, size=(N, C, H, W))
    w = rng.uniform(-1, 1, size=(C, OC, KH, KW))
    b = rng.uniform(-1, 1, size=OC) if draw(st.booleans()) else None
    return x, w, b, stride, padding


def run(device, x, w, b, stride, padding):
    t = [Tensor(to_device(a, device), requires_grad=True) for a in (x, w) + ((b,) if b is not None else ())]
    return ops.conv_transpose2d(*t[:2], t[2] if b is not None else None, stride, padding), t


@given(cases())
def test_forward_equals_the_definition_written_as_a_loop(device, case):
    out, _ = run(device, *case)
    np.testing.assert_allclose(to_numpy(out.data), conv_transpose_loop(*case), rtol=1e-12, atol=1e-12)


@given(cases(), st.integers(0, 2**32 - 1))
def test_it_is_the_adjoint_of_the_strided_cross_correlation(device, case, seed):
    x, w, _, stride, padding = case
    out, _ = run(device, x, w, None, stride, padding)
    y = np.random.default_rng(seed).uniform(-1, 1, size=out.shape)
    conv_y = strided_conv_loop(y, w, stride, padding)
    assert conv_y.shape == x.shape
    lhs = float(np.sum(to_numpy(out.data) * y))                  # <conv_transpose(x), y>
    rhs = float(np.sum(x * conv_y))                              # <x, conv(y)>
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


@given(cases(), st.integers(0, 2**32 - 1))
def test_stride_one_is_the_adjoint_of_conv2d(device, case, seed):
    x, w, _, _, padding = case
    out, _ = run(device, x, w, None, 1, padding)
    y = np.random.default_rng(seed).uniform(-1, 1, size=out.shape)
    conv_y = ops.conv2d(Tensor(to_device(y, device)), Tensor(to_device(w, device)), padding=padding)
    lhs = float(np.sum(to_numpy(out.data) * y))
    rhs = float(np.sum(x * to_numpy(conv_y.data)))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


@given(cases())
def test_gradients_equal_finite_differences(device, case):
    x, w, b, stride, padding = case
    _, t = run(device, *case)
    fn = (lambda x, w: ops.conv_transpose2d(x, w, None, stride, padding)) if b is None else \
        (lambda x, w, b: ops.conv_transpose2d(x, w, b, stride, padding))
    gradcheck(fn, *t)


def test_a_wrong_backward_fails_the_gradient_check(monkeypatch):
    """The check above can fail: the weight's gradient off by 0.05% in one element."""
    from minipixel.ops import conv_transpose as module
    real = module.record

    def skewed(data, parents, backward, op):
        def wrong(g):
            grads = list(backward(g))
            grads[1] = grads[1].copy()
            grads[1].flat[0] *= 1.0005
            return tuple(grads)
        return real(data, parents, wrong, op)
    monkeypatch.setattr(module, "record", skewed)
    rng = np.random.default_rng(0)
    x = Tensor(rng.uniform(-1, 1, (1, 2, 3, 3)), requires_grad=True)
    w = Tensor(rng.uniform(-1, 1, (2, 2, 2, 2)), requires_grad=True)
    with pytest.raises(AssertionError):
        gradcheck(lambda x, w: ops.conv_transpose2d(x, w, None, 2, 0), x, w)


@pytest.mark.parametrize("args, expected", [
    (((1, 2, 3, 3), (3, 2, 2, 2)), "equal C"),
    (((1, 2, 3, 3), (2, 2, 2, 2), "stride=0"), "stride >= 1"),
])
def test_bad_shapes_and_strides_get_one_line(args, expected):
    shapes = args[:2]
    x, w = (Tensor(np.zeros(s)) for s in shapes)
    stride = 0 if len(args) > 2 else 1
    with pytest.raises(ValueError, match=expected) as err:
        ops.conv_transpose2d(x, w, None, stride, 0)
    assert "\n" not in str(err.value)
