"""The cached sampler computes exactly the naive path's logits, so it draws the same images.

Each layer's per-pixel twin (minipixel/sampling/per_pixel/) is tested on its own in
test_per_pixel_twins.py; here the whole models, fast and paper path."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from minipixel.models import build
from minipixel.sampling import sample
from minipixel.sampling.cached import teacher_forced_logits

MODELS = ["pixelcnn", "rowlstm", "diagonal"]


def full_logits(model, images):
    """The ordinary forward pass, laid out as (N, C, H, W, values)."""
    z = model(images).data
    return z[..., None] if z.ndim == 4 else z.transpose(0, 2, 3, 4, 1)


def assert_cached_logits_equal_forward_pass(name, fast, C, levels, h, layers, H, W, n, slope,
                                            seed):
    model = build(name, channels=C, levels=levels, h=h, layers=layers, out_hidden=4,
                  seed=seed, dtype=np.float64, fast=fast, relu_slope=slope)
    images = np.random.default_rng(seed).integers(0, levels, size=(n, C, H, W))
    np.testing.assert_allclose(teacher_forced_logits(model, images), full_logits(model, images),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "paper"])
@pytest.mark.parametrize("name", MODELS)
@given(colour=st.booleans(), h=st.integers(1, 5), layers=st.integers(1, 3),
       H=st.integers(1, 6), W=st.integers(1, 7), n=st.integers(1, 3), leaky=st.booleans(),
       seed=st.integers(0, 2**16))
def test_cached_logits_equal_forward_pass(fast, name, colour, h, layers, H, W, n, leaky, seed):
    C, levels = (3, 5) if colour else (1, 2)
    h = max(h, 3) if colour else h                     # RGB models need h >= 3
    assert_cached_logits_equal_forward_pass(name, fast, C, levels, h, layers, H, W, n,
                                            0.1 if leaky else 0.0, seed)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "paper"])
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("C,levels,h,slope", [(3, 7, 4, 0.0), (3, 4, 5, 0.1), (1, 2, 2, 0.1)],
                         ids=["rgb-h4", "rgb-h5-leaky", "binary-leaky"])
def test_cached_logits_equal_forward_pass_batched_non_square(fast, name, C, levels, h, slope):
    """Always run, whatever hypothesis draws: a batch of 3, a 4 x 6 image, RGB groups
    of unequal sizes (2h = 8 or 10 maps), leaky ReLUs."""
    assert_cached_logits_equal_forward_pass(name, fast, C, levels, h, 2, 4, 6, 3, slope, seed=1)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("C,levels", [(1, 2), (3, 4)])
def test_cached_and_naive_draw_the_same_images(name, C, levels):
    model = build(name, channels=C, levels=levels, h=3, layers=2, out_hidden=6, seed=3,
                  dtype=np.float64)
    naive = sample(model, 3, 5, 6, seed=11, cached=False)
    cached = sample(model, 3, 5, 6, seed=11, cached=True)
    np.testing.assert_array_equal(cached, naive)
    assert len(np.unique(naive)) > 1          # something was actually drawn


@pytest.mark.parametrize("name", MODELS)
def test_cached_completion_keeps_given_pixels_and_matches_naive(name):
    model = build(name, channels=1, levels=2, h=3, layers=1, out_hidden=4, seed=5,
                  dtype=np.float64)
    given = np.random.default_rng(0).integers(0, 2, size=(2, 1, 6, 5))
    top = np.zeros((6, 5), bool)
    top[:3] = True
    naive = sample(model, 2, 6, 5, seed=2, given=given, given_mask=top)
    cached = sample(model, 2, 6, 5, seed=2, given=given, given_mask=top, cached=True)
    np.testing.assert_array_equal(cached, naive)
    np.testing.assert_array_equal(cached[:, :, :3], given[:, :, :3])


def test_a_wrong_cache_is_caught(monkeypatch):
    """Test the test: a cache that forgets the shift-down of the right-to-left
    pass (uses row r's states instead of row r-1's) must disagree."""
    from minipixel.sampling.per_pixel.diagonal_bilstm import DiagonalPixels

    def begin_row_unshifted(self, r):
        self.l2r.begin_row(r)
        self.r2l_above = self.right_to_left_row(r)
    monkeypatch.setattr(DiagonalPixels, "begin_row", begin_row_unshifted)
    model = build("diagonal", channels=1, levels=2, h=3, layers=2, out_hidden=4, dtype=np.float64)
    images = np.random.default_rng(1).integers(0, 2, size=(2, 1, 4, 5))
    assert not np.allclose(teacher_forced_logits(model, images), full_logits(model, images))


def test_a_pixel_conv_refuses_a_gap_in_its_last_row():
    """The own row's taps are read as one slice; a gap there would read a dropped tap."""
    from minipixel.sampling.per_pixel.conv import PixelConv
    w = np.ones((2, 1, 1, 3))
    with pytest.raises(ValueError, match="contiguous"):
        PixelConv(w, None, ((0, 0), (0, 2)), (1, 3), np.zeros((1, 2, 5, 1)))
