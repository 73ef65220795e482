"""softmax_nll, sigmoid_nll and bits_per_dim against their definitions.

    softmax_nll = -(log_softmax(z) gathered at the target)          (along axis 1)
    sigmoid_nll = -[t log s + (1 - t) log(1 - s)],  s = sigmoid(z)

The references compute log s and log(1 - s) with np.logaddexp (log s = -log(1 + e^-z)),
which is the same formula without the rounding of 1 - s, so they stay exact for large |z|.
"""
import math

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

from minipixel import Tensor
from minipixel import fast, layers
from minipixel.backend import to_device, to_numpy
from minipixel.layers import bits_per_dim

from conftest import random_array


@pytest.fixture(params=["fast", "paper"])
def losses(request):
    """The fused losses (the default) and the paper path's log_softmax ones: both must pass."""
    return fast.losses if request.param == "fast" else layers.losses


def to_dev(a, device):
    return to_device(a, device)


def ref_softmax_nll(z, t):
    log_p = scipy.special.log_softmax(z, axis=1)
    return -np.take_along_axis(log_p, t[:, None], axis=1)[:, 0]


def ref_sigmoid_nll(z, t):
    log_s = -np.logaddexp(0.0, -z)
    log_1ms = -np.logaddexp(0.0, z)
    return -(t * log_s + (1 - t) * log_1ms)


@given(N=st.integers(1, 3), K=st.integers(2, 9), rest=st.sampled_from([(), (4,), (3, 2, 2)]),
       scale=st.sampled_from([1.0, 30.0, 1e3]), seed=st.integers(0, 1000))
def test_softmax_nll_definition(losses, device, N, K, rest, scale, seed):
    rng = np.random.default_rng(seed)
    z = random_array(rng, (N, K) + rest, low=-scale, high=scale)
    tgt = rng.integers(0, K, size=(N,) + rest)
    logits = Tensor(to_dev(z, device), requires_grad=True)
    nll = losses.softmax_nll(logits, to_dev(tgt, device))
    assert nll.shape == (N,) + rest
    np.testing.assert_allclose(nll.numpy(), ref_softmax_nll(z, tgt), rtol=1e-10, atol=1e-10)
    assert np.all(nll.numpy() >= 0)
    # gradient: softmax - onehot
    g = rng.uniform(0.5, 1.5, size=nll.shape)
    nll.backward(to_dev(g, device))
    onehot = np.moveaxis(np.eye(K)[tgt], -1, 1)
    want = (scipy.special.softmax(z, axis=1) - onehot) * g[:, None]
    np.testing.assert_allclose(to_numpy(logits.grad), want, rtol=1e-10, atol=1e-12)


def test_softmax_nll_large_logits(losses):
    z = np.array([[1000.0, -1000.0, 0.0], [-5e4, 5e4, 5e4]]).reshape(2, 3)
    nll = losses.softmax_nll(Tensor(z), np.array([1, 1])).numpy()
    assert np.all(np.isfinite(nll))
    np.testing.assert_allclose(nll, [2000.0, math.log(2)], rtol=1e-12)


@given(N=st.integers(1, 3), rest=st.sampled_from([(5,), (1, 3, 4), (3, 2, 2)]),
       seed=st.integers(0, 1000))
def test_sigmoid_nll_definition_moderate(losses, device, N, rest, seed):
    """The textbook formula, evaluated directly (|z| <= 12, where 1 - s is accurate)."""
    rng = np.random.default_rng(seed)
    z = random_array(rng, (N,) + rest, low=-12, high=12)
    tgt = rng.integers(0, 2, size=z.shape)
    s = 1 / (1 + np.exp(-z))
    direct = -(tgt * np.log(s) + (1 - tgt) * np.log(1 - s))
    logits = Tensor(to_dev(z, device), requires_grad=True)
    nll = losses.sigmoid_nll(logits, to_dev(tgt, device))
    assert nll.shape == z.shape
    np.testing.assert_allclose(nll.numpy(), direct, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(nll.numpy(), ref_sigmoid_nll(z, tgt), rtol=1e-12, atol=1e-15)
    nll.sum().backward()
    np.testing.assert_allclose(to_numpy(logits.grad), s - tgt, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("z", [30.0, 50.0, 700.0, 800.0, 1e4, 1e6])
def test_sigmoid_nll_large_logits(losses, z):
    zs = np.array([z, z, -z, -z])
    tgt = np.array([1, 0, 1, 0])
    logits = Tensor(zs, requires_grad=True)
    nll = losses.sigmoid_nll(logits, tgt)
    got = nll.numpy()
    assert np.all(np.isfinite(got)) and np.all(got >= 0)
    np.testing.assert_allclose(got, ref_sigmoid_nll(zs, tgt), rtol=1e-12, atol=0)
    # a confident wrong answer costs |z| (+ log(1 + e^-|z|)); a right one e^-|z| (may be 0)
    np.testing.assert_allclose(got[[1, 2]], z + np.log1p(np.exp(-z)), rtol=1e-14)
    np.testing.assert_allclose(got[[0, 3]], np.log1p(np.exp(-z)), rtol=1e-12, atol=1e-300)
    nll.sum().backward()
    grad = to_numpy(logits.grad)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [0, 1, -1, 0], atol=1e-12)


def test_loss_target_errors(losses):
    z = Tensor(np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="shape"):
        losses.softmax_nll(z, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="integer"):
        losses.softmax_nll(z, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        losses.sigmoid_nll(z, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="integer"):
        losses.sigmoid_nll(z, np.zeros((2, 4, 3)))


def test_bits_per_dim():
    # a uniform binary model on 28 x 28: 784 ln 2 nats = 1 bit per dimension
    assert bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0, rel=1e-14)
    # a uniform 256-way model: 8 bits per sub-pixel
    dims = 3 * 32 * 32
    assert bits_per_dim(dims * math.log(256), dims) == pytest.approx(8.0, rel=1e-14)


@pytest.mark.parametrize("shift", [1e3, -1e3, 3e5])
def test_fused_softmax_nll_is_unchanged_by_a_large_shift_of_the_logits(shift):
    """The fused loss subtracts each position's max logit before exp: adding a large
    constant (e^1000 overflows) leaves the loss and its gradient unchanged and finite."""
    from minipixel.fast.losses import softmax_nll
    from minipixel.tensor import Tensor
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 5, 3, 4))
    t = rng.integers(0, 5, size=(2, 3, 4))
    base, moved = Tensor(z, requires_grad=True), Tensor(z + shift, requires_grad=True)
    a, b = softmax_nll(base, t), softmax_nll(moved, t)
    a.sum().backward()
    b.sum().backward()
    assert np.isfinite(b.data).all() and np.isfinite(moved.grad).all()
    np.testing.assert_allclose(b.data, a.data, rtol=0, atol=1e-9 * (1 + abs(shift) * 1e-3))
    np.testing.assert_allclose(moved.grad, base.grad, rtol=0, atol=1e-12 * (1 + abs(shift)))
    # and it is the log-softmax written out on the unshifted logits
    ref = -(z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1,
                                                                                    keepdims=True)))
    np.testing.assert_allclose(a.data, np.take_along_axis(ref, t[:, None], 1)[:, 0], rtol=1e-12)
