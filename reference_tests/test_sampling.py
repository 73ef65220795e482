"""The naive sampler: seeded, exact in distribution, keeps given pixels."""
import itertools

import numpy as np
import pytest

from minipixel.models import build
from minipixel.sampling import draw_from_logits, sample, uniforms


def tiny(name="diagonal", C=1, levels=2, seed=0):
    h = 2 if C == 1 else 3                            # RGB models need h >= 3
    return build(name, channels=C, levels=levels, h=h, layers=1, out_hidden=4, seed=seed,
                 dtype=np.float64)


@pytest.mark.parametrize("name", ["pixelcnn", "rowlstm", "diagonal"])
def test_sampling_is_seeded(name):
    model = tiny(name, seed=1)
    a = sample(model, 3, 4, 5, seed=7)
    b = sample(model, 3, 4, 5, seed=7)
    c = sample(model, 3, 4, 5, seed=8)
    assert a.shape == (3, 1, 4, 5) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(np.unique(a)) <= {0, 1}


def test_rgb_softmax_samples_are_in_range_and_seeded():
    model = tiny("pixelcnn", C=3, levels=5, seed=2)
    a = sample(model, 2, 3, 3, seed=0)
    assert a.shape == (2, 3, 3, 3) and a.max() <= 4
    np.testing.assert_array_equal(a, sample(model, 2, 3, 3, seed=0))


def test_draw_from_logits_inverse_cdf():
    # Bernoulli: value 1 iff u >= P(0) = sigmoid(-z)
    z = np.array([0.0, 0.0, 50.0, -50.0])
    u = np.array([0.49, 0.51, 0.0, 0.999])
    np.testing.assert_array_equal(draw_from_logits(z, u), [0, 1, 1, 0])
    # softmax: the smallest v with cdf[v] > u
    logits = np.log(np.array([[0.2, 0.3, 0.5]] * 4))
    np.testing.assert_array_equal(draw_from_logits(logits, np.array([0.1, 0.2, 0.45, 0.9999])),
                                  [0, 1, 1, 2])


def test_draw_frequencies_match_the_softmax():
    rng = np.random.default_rng(0)
    z = rng.normal(size=6)
    p = np.exp(z) / np.exp(z).sum()
    v = draw_from_logits(np.tile(z, (40000, 1)), rng.random(40000))
    freq = np.bincount(v, minlength=6) / 40000
    np.testing.assert_allclose(freq, p, atol=0.01)


@pytest.mark.parametrize("name", ["rowlstm", "diagonal"])
def test_samples_follow_the_model_distribution(name):
    """On 2 x 2 binary images the sampler's frequencies match exp(-nll) of all 16 images."""
    model = tiny(name, seed=4)
    allimgs = np.array(list(itertools.product([0, 1], repeat=4)), np.uint8).reshape(16, 1, 2, 2)
    p = np.exp(-model.nll(allimgs).numpy())
    assert abs(p.sum() - 1) < 1e-9              # a normalised (causal) model
    n = 20000
    draws = sample(model, n, 2, 2, seed=3).reshape(n, 4)
    codes = draws @ (2 ** np.arange(3, -1, -1))
    freq = np.bincount(codes, minlength=16) / n
    tol = 4 * np.sqrt(p * (1 - p) / n) + 1e-3      # 4 standard errors
    assert np.all(np.abs(freq - p) <= tol), (freq, p)


def test_completions_keep_given_pixels_and_use_the_same_draws():
    model = tiny("diagonal", seed=5)
    given = np.random.default_rng(1).integers(0, 2, size=(4, 1, 6, 6)).astype(np.uint8)
    top = np.zeros((6, 6), bool)
    top[:3] = True
    out = sample(model, 4, 6, 6, seed=9, given=given, given_mask=top)
    np.testing.assert_array_equal(out[:, :, :3], given[:, :, :3])
    again = sample(model, 4, 6, 6, seed=9, given=given, given_mask=top)
    np.testing.assert_array_equal(out, again)
    # A full mask returns the given images untouched; an empty one is plain sampling.
    np.testing.assert_array_equal(sample(model, 4, 6, 6, seed=9, given=given,
                                         given_mask=np.ones((6, 6), bool)), given)
    np.testing.assert_array_equal(sample(model, 4, 6, 6, seed=9, given=given,
                                         given_mask=np.zeros((6, 6), bool)),
                                  sample(model, 4, 6, 6, seed=9))


def test_uniforms_are_drawn_up_front_from_the_seed():
    u = uniforms(3, 2, 1, 4, 4)
    np.testing.assert_array_equal(u, np.random.default_rng(3).random((2, 1, 4, 4)))


def test_progress_and_argument_errors():
    model = tiny()
    calls = []
    sample(model, 1, 2, 3, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (6, 6) and len(calls) == 6
    with pytest.raises(ValueError, match="given_mask"):
        sample(model, 1, 2, 2, given=np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        sample(model, 1, 2, 2, given=np.zeros((1, 1, 3, 2), np.uint8),
               given_mask=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="broadcast"):
        sample(model, 1, 2, 2, given=np.zeros((1, 1, 2, 2), np.uint8),
               given_mask=np.ones((3,), bool))
    with pytest.raises(ValueError, match="positive"):
        sample(model, 0, 2, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be a positive whole number"), (dict(n=2.0), "n must be"),
    (dict(n="4"), "n must be"), (dict(H=0), "H must be"), (dict(W=-1), "W must be"),
    (dict(W=True), "W must be"), (dict(seed=-1), "seed must be a whole number >= 0"),
    (dict(seed=1.5), "seed must be")])
def test_sample_refuses_bad_sizes_and_seeds(kwargs, match):
    args = dict(n=1, H=2, W=2, seed=0)
    with pytest.raises(ValueError, match=match):
        sample(tiny(), **{**args, **kwargs})


@pytest.mark.parametrize("given, match", [
    (np.full((1, 1, 2, 2), 2), r"values in 0\.\.1; got values 2\.\.2"),
    (np.full((1, 1, 2, 2), -1), "values -1"),
    (np.full((1, 1, 2, 2), np.nan), "NaN"),
    (np.full((1, 1, 2, 2), 0.7), "non-integer values such as 0.7"),
    (np.full((1, 1, 2, 2), "a"), "dtype <U1"),
    ("images", "integer images"),
    (np.zeros((1, 1, 3, 2)), "shape")])
def test_sample_refuses_bad_given_images_before_any_work(given, match):
    calls = []
    mask = np.zeros((2, 2), bool)
    mask[0] = True
    with pytest.raises(ValueError, match=match):
        sample(tiny(), 1, 2, 2, given=given, given_mask=mask,
               progress=lambda *a: calls.append(a))
    assert calls == []                                  # refused before drawing anything


def test_sample_accepts_whole_float_given_values_and_refuses_bad_masks():
    given = np.ones((1, 1, 2, 2))                       # 1.0 is the value 1
    out = sample(tiny(), 1, 2, 2, given=given, given_mask=np.ones((2, 2), bool))
    np.testing.assert_array_equal(out, 1)
    with pytest.raises(ValueError, match="given_mask must be boolean"):
        sample(tiny(), 1, 2, 2, given=given, given_mask=np.full((2, 2), 0.5))
