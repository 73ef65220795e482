"""Direct unit tests for pieces whose seeded bugs used to be caught only far away.

Each property has two independent tests, and the ones that guard a backward are
shown to fail on the seeded bug (a mutant of the op built here):

- conv2d's weight gradient with as many output as input channels, where a
  gradient transposed in (out, in) has the right shape;
- log_softmax's max shift (no overflow, exact shift invariance);
- the sigmoid's backward, z (1 - z);
- Adam's bias correction, m / (1 - b1^t) and s / (1 - b2^t).
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit

from minipixel import ops
from minipixel.gradcheck import gradcheck
from minipixel.nn import Adam, Parameter
from minipixel.tensor import Tensor, record


# ---- conv2d: the weight gradient with C == OC -------------------------------------------
@st.composite
def square_convs(draw):
    """x (N, C, H, W) and w (C, C, KH, KW): as many output as input channels."""
    C = draw(st.integers(2, 4))
    N = draw(st.integers(1, 2))
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad = draw(st.integers(0, 1))
    H, W = draw(st.integers(KH, 5)), draw(st.integers(KW, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    return rng.uniform(-1, 1, (N, C, H, W)), rng.uniform(-1, 1, (C, C, KH, KW)), pad


def conv_with_transposed_weight_grad(x, w, padding):
    """The seeded bug: conv2d whose backward hands back dW transposed in (out, in)."""
    out = ops.conv2d(x, w, padding=padding)
    if out._node is None:               # under no_grad (the checker's forward passes)
        return out
    right = out._node.backward

    def backward(g):
        dx, dw = right(g)[:2]
        return dx, dw.transpose(1, 0, 2, 3)
    return record(out.data, (x, w), backward, "conv2d (dW transposed)")


def weight_grad(conv, x, w, g, padding):
    tx, tw = Tensor(x), Tensor(w, requires_grad=True)
    conv(tx, tw, padding).backward(g)
    return tw.grad


def explicit_weight_grad(x, g, K, padding):
    """dW[o, i, a, b] = sum over n, r, c of g[n, o, r, c] * xpad[n, i, r + a, c + b]."""
    KH, KW = K
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    OH, OW = g.shape[2:]
    dw = np.zeros((g.shape[1], x.shape[1], KH, KW))
    for a in range(KH):
        for b in range(KW):
            dw[:, :, a, b] = np.einsum("norc,nirc->oi", g, xp[:, :, a:a + OH, b:b + OW])
    return dw


@given(case=square_convs())
def test_conv2d_weight_grad_with_equal_channels_matches_finite_differences(case):
    x, w, pad = case
    tw = Tensor(w, requires_grad=True)
    assert gradcheck(lambda w_: ops.conv2d(Tensor(x), w_, padding=pad), tw)
    mutant = gradcheck(lambda w_: conv_with_transposed_weight_grad(Tensor(x), w_, pad),
                       Tensor(w, requires_grad=True), raise_exception=False)
    assert not mutant, "the check must fail on a weight gradient transposed in (out, in)"


@given(case=square_convs())
def test_conv2d_weight_grad_with_equal_channels_matches_the_explicit_sum(case):
    x, w, pad = case
    out_shape = ops.conv2d(Tensor(x), Tensor(w), padding=pad).shape
    g = np.random.default_rng([2024, 11]).uniform(-1, 1, out_shape)   # not the stream of x
    expected = explicit_weight_grad(x, g, w.shape[2:], pad)
    np.testing.assert_allclose(weight_grad(lambda a, b, p: ops.conv2d(a, b, padding=p),
                                           x, w, g, pad), expected, rtol=1e-12, atol=1e-12)
    wrong = weight_grad(conv_with_transposed_weight_grad, x, w, g, pad)
    assert not np.allclose(wrong, expected, rtol=1e-6, atol=1e-9)


# ---- log_softmax: the max shift ----------------------------------------------------------
@given(shift=st.floats(-1e4, 1e4), seed=st.integers(0, 1000))
def test_log_softmax_is_exactly_shift_invariant_far_from_zero(shift, seed):
    """Without subtracting the max, exp(x + 1e4) overflows; with it, a shift cancels."""
    x = np.random.default_rng(seed).uniform(-5, 5, (3, 7))
    base = ops.log_softmax(Tensor(x), axis=1).data
    moved = ops.log_softmax(Tensor(x + shift), axis=1).data
    assert np.isfinite(moved).all()
    np.testing.assert_allclose(moved, base, atol=1e-12 * max(1.0, abs(shift)))


@given(scale=st.floats(100, 1e6), seed=st.integers(0, 1000))
def test_log_softmax_of_huge_logits_matches_logaddexp(scale, seed):
    """An independent reference: x - logaddexp.reduce(x), and the backward stays finite."""
    x = np.random.default_rng(seed).uniform(-1, 1, (4, 6)) * scale
    t = Tensor(x, requires_grad=True)
    z = ops.log_softmax(t, axis=1)
    expected = x - np.logaddexp.reduce(x, axis=1, keepdims=True)
    np.testing.assert_allclose(z.data, expected, rtol=1e-12, atol=1e-9)
    z.sum().backward()
    softmax = np.exp(expected)
    np.testing.assert_allclose(t.grad, 1 - x.shape[1] * softmax, rtol=1e-12, atol=1e-12)


# ---- sigmoid: the backward z (1 - z) ------------------------------------------------------
def sigmoid_missing_one_minus_z(x):
    """The seeded bug: the sigmoid with dz/dx = z."""
    z = expit(x.data)
    return record(z, (x,), lambda g: (g * z,), "sigmoid (dz = z)")


def sigmoid_grad(fn, x):
    t = Tensor(x, requires_grad=True)
    fn(t).sum().backward()
    return t.grad


@given(x=st.lists(st.floats(-40, 40), min_size=1, max_size=12))
def test_sigmoid_backward_is_expit_times_one_minus_expit(x):
    x = np.array(x)
    expected = expit(x) * expit(-x)
    np.testing.assert_allclose(sigmoid_grad(ops.sigmoid, x), expected, rtol=1e-12, atol=1e-15)
    if (x > -10).any():               # where z is not ~ 0, z differs from z (1 - z)
        assert not np.allclose(sigmoid_grad(sigmoid_missing_one_minus_z, x), expected,
                               rtol=1e-6, atol=1e-12)


@given(x=st.lists(st.floats(-30, 30), min_size=1, max_size=12))
def test_sigmoid_backward_is_even_and_matches_finite_differences(x):
    """Independent of any reference sigmoid: the derivative is even, sigma'(x) = sigma'(-x),
    and agrees with central differences."""
    x = np.array(x)
    np.testing.assert_allclose(sigmoid_grad(ops.sigmoid, x), sigmoid_grad(ops.sigmoid, -x),
                               rtol=1e-12, atol=1e-15)
    assert gradcheck(ops.sigmoid, Tensor(x, requires_grad=True))
    if ((np.abs(x) > 0.1) & (np.abs(x) < 20)).any():
        bug = sigmoid_grad(sigmoid_missing_one_minus_z, x)
        assert not np.allclose(bug, sigmoid_grad(sigmoid_missing_one_minus_z, -x), rtol=1e-6)


# ---- Adam: bias correction ----------------------------------------------------------------
def adam_steps(grads, lr, betas=(0.9, 0.999), eps=1e-8, start=0.0):
    p = Parameter(np.full(np.shape(grads[0]), start, dtype=np.float64))
    opt = Adam([p], lr=lr, betas=betas, eps=eps)
    trace = []
    for g in grads:
        p.grad = np.array(g, dtype=np.float64)
        opt.step()
        trace.append(p.data.copy())
    return trace


@given(g=st.lists(st.floats(1e-6, 1e6).map(lambda v: v) | st.floats(-1e6, -1e-6),
                  min_size=1, max_size=6),
       lr=st.floats(1e-4, 1e-1))
def test_adam_first_step_moves_every_weight_by_lr(g, lr):
    """With bias correction m_hat = g and s_hat = g^2 after one step, so each weight moves
    by lr * g / (|g| + eps), about lr whatever the gradient's size; without it the step
    would be (1 - b1) / sqrt(1 - b2), 3.16 times larger."""
    g = np.array(g)
    (after,) = adam_steps([g], lr)
    np.testing.assert_allclose(after, -lr * g / (np.abs(g) + 1e-8), rtol=1e-12)


def adam_scalar_reference(grads, lr, b1, b2, eps):
    """Kingma and Ba's algorithm 1, written out for one scalar in plain Python."""
    p, m, v, out = 0.0, 0.0, 0.0, []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p -= lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(p)
    return out


@given(g=st.lists(st.floats(-10, 10), min_size=2, max_size=8),
       b1=st.floats(0.5, 0.95), b2=st.floats(0.9, 0.9999), lr=st.floats(1e-3, 0.5))
def test_adam_steps_match_the_published_algorithm_written_out(g, b1, b2, lr):
    trace = adam_steps([[v] for v in g], lr, betas=(b1, b2), eps=1e-8)
    expected = adam_scalar_reference(g, lr, b1, b2, 1e-8)
    np.testing.assert_allclose([p[0] for p in trace], expected, rtol=1e-10, atol=1e-12)


def test_adam_without_bias_correction_fails_both_checks(monkeypatch):
    """The seeded bug (no bias correction) is caught by each of the two Adam tests' checks."""
    def update_without_correction(self, k, p, g):
        m, s = self.state["m"][k], self.state["s"][k]
        m *= self.b1
        m += (1 - self.b1) * g
        s *= self.b2
        s += (1 - self.b2) * g * g
        p.data -= self.lr * m / (p.xp.sqrt(s) + self.eps)
    monkeypatch.setattr(Adam, "update", update_without_correction)
    (after,) = adam_steps([np.array([0.5, -2.0])], 0.01)
    assert not np.allclose(after, [-0.01, 0.01], rtol=1e-3)
    trace = adam_steps([[0.3], [-1.0], [2.0]], 0.01)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose([p[0] for p in trace],
                                   adam_scalar_reference([0.3, -1.0, 2.0], 0.01, 0.9, 0.999, 1e-8),
                                   rtol=1e-6)
