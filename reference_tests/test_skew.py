"""skew / unskew (paper-notes section 3) and the right-to-left pass's shift_down.

    skew:   S[r, r + c] = X[r, c], zeros elsewhere;  (H, W) -> (H, H + W - 1)
    unskew: X[r, c] = S[r, r + c]
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minipixel import Tensor
from minipixel.backend import to_device
from minipixel.layers import shift_down, skew, unskew

from conftest import random_array
from pixel_reference import ref_skew, ref_unskew

shapes = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 7), st.integers(1, 7))


def to_dev(a, device):
    return to_device(a, device)


@given(shape=shapes, seed=st.integers(0, 1000))
def test_skew_matches_definition(device, shape, seed):
    N, C, H, W = shape
    x = random_array(np.random.default_rng(seed), shape)
    s = skew(Tensor(to_dev(x, device))).numpy()
    assert s.shape == (N, C, H, H + W - 1)
    placed = np.zeros(s.shape, dtype=bool)
    for r in range(H):
        for c in range(W):
            np.testing.assert_array_equal(s[:, :, r, r + c], x[:, :, r, c])
            placed[:, :, r, r + c] = True
    assert np.all(s[~placed] == 0)                       # exact zeros elsewhere
    np.testing.assert_array_equal(s, ref_skew(x))


@given(shape=shapes, seed=st.integers(0, 1000))
def test_unskew_inverts_skew(device, shape, seed):
    x = random_array(np.random.default_rng(seed), shape)
    back = unskew(skew(Tensor(to_dev(x, device))), shape[3]).numpy()
    np.testing.assert_array_equal(back, x)


@given(shape=shapes, seed=st.integers(0, 1000))
def test_unskew_reads_the_diagonals(device, shape, seed):
    N, C, H, W = shape
    s = random_array(np.random.default_rng(seed), (N, C, H, H + W - 1))
    x = unskew(Tensor(to_dev(s, device)), W).numpy()
    np.testing.assert_array_equal(x, ref_unskew(s, W))
    # skew(unskew(s)) keeps the band and zeroes the rest
    band = ref_skew(np.ones((1, 1, H, W)))[0, 0] == 1
    np.testing.assert_array_equal(skew(Tensor(to_dev(x, device))).numpy(), np.where(band, s, 0))


def test_skew_small_example():
    x = np.arange(1, 7, dtype=np.float64).reshape(1, 1, 2, 3)   # [[1 2 3] [4 5 6]]
    s = skew(Tensor(x)).numpy()[0, 0]
    np.testing.assert_array_equal(s, [[1, 2, 3, 0], [0, 4, 5, 6]])
    # the columns of S are the image's anti-diagonals: column j holds X[r, j - r]
    np.testing.assert_array_equal(s[:, 1], [2, 4])


def test_unskew_rejects_wrong_width():
    with pytest.raises(ValueError, match="columns"):
        unskew(Tensor(np.zeros((1, 1, 3, 5))), 4)          # needs 3 + 4 - 1 = 6


@given(shape=shapes, seed=st.integers(0, 1000))
def test_shift_down(shape, seed):
    x = random_array(np.random.default_rng(seed), shape)
    y = shift_down(Tensor(x)).numpy()
    assert y.shape == x.shape
    assert np.all(y[:, :, 0] == 0)
    np.testing.assert_array_equal(y[:, :, 1:], x[:, :, :-1])
