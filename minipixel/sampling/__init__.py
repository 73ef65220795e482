"""Drawing images from a trained model, one sub-pixel at a time (paper section 2).

    sample(model, n, H, W, seed, cached=False, given=None, given_mask=None)

Raster order, colours inside a pixel: for each row r, column c, colour k, the
model's logits at (k, r, c) give a distribution (Bernoulli via sigmoid for
binary models, a `levels`-way softmax otherwise) and the value is drawn from
it. All randomness is drawn up front: one uniform u[i, k, r, c] per sub-pixel
from ``np.random.default_rng(seed)``, turned into a value by the inverse CDF
(``draw_from_logits``). A sampler only has to compute the logits, so two
samplers that compute the same logits (naive or cached) give the same images.

Completions: where ``given_mask`` is True the value is taken from ``given``
and never drawn (its uniform is still drawn and simply unused, so the other
pixels see the same randomness whatever is given).

Samplers: ``naive.fill_naive`` runs one forward pass per sub-pixel (H*W*C
passes); ``cached.fill_cached`` evaluates the model one pixel at a time from
cached values of earlier pixels (each layer's per-pixel step sits beside its
forward). Both take (model, images, u, given_mask, progress), and a conditional
network's conditioning map ``cond``.

A Multi-Scale model (minipixel/models/multiscale.py) is sampled in two stages, the
small image and then the large one given it (sampling/multiscale.py, whose docstring
says how the seed's uniforms split between the stages); ``sample`` returns the large
images, whose pixels (k r, k c) are the small ones (``model.subsample`` gives them
back), and ``upscale`` draws large images given small ones.
"""
import numpy as np

from ..backend import to_numpy
from ..validate import is_whole
from . import cached
from .cached import fill_cached
from .multiscale import (conditional_logits_cached, fill_two_stage, is_multiscale,
                         two_stage_uniforms, upscale)
from .naive import draw_from_logits, fill_naive

__all__ = ["sample", "upscale", "draw_from_logits", "fill_naive", "fill_cached",
           "teacher_forced_logits", "uniforms"]


def uniforms(seed, n, C, H, W):
    """The up-front draws: float64 uniforms in [0, 1) of shape (n, C, H, W)."""
    return np.random.default_rng(seed).random((n, C, H, W))


def teacher_forced_logits(model, images):
    """Logits of every sub-pixel of `images` computed the cached way (a multi-scale
    model's: the conditional network's, given the images' own small images):
    (N, C, H, W, values) NumPy, equal to the forward pass (tested)."""
    if is_multiscale(model):
        return conditional_logits_cached(model, images)
    return cached.teacher_forced_logits(model, images)


def _whole(name, value, least):
    """A Python int >= least from value, or a ValueError naming what was expected."""
    want = "a positive whole number" if least == 1 else f"a whole number >= {least}"
    if not is_whole(value, low=None):
        raise ValueError(f"sample: {name} must be {want}, got {value!r} "
                         f"({type(value).__name__})")
    if value < least:
        raise ValueError(f"sample: {name} must be {want}, got {value}")
    return int(value)


def _given_values(given, shape, levels):
    """`given` as an integer NumPy array of `shape` in 0..levels-1, or a ValueError."""
    what = f"sample: given must be integer images {shape} with values in 0..{levels - 1}"
    try:
        arr = np.asarray(to_numpy(given))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}; got {type(given).__name__} ({e})") from None
    if arr.dtype.kind not in "iufb":
        raise ValueError(f"{what}; got values of dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{what}; got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{what}; got NaN or infinite values")
        if (arr != np.round(arr)).any():
            bad = arr[arr != np.round(arr)].flat[0]
            raise ValueError(f"{what}; got non-integer values such as {bad}")
    if arr.size and (arr.min() < 0 or arr.max() > levels - 1):
        raise ValueError(f"{what}; got values {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)


def _given_mask(given_mask, shape):
    """`given_mask` as a boolean array broadcast to `shape`, or a ValueError."""
    arr = np.asarray(to_numpy(given_mask))
    if arr.dtype != bool:
        if arr.dtype.kind not in "iu" or not np.isin(arr, (0, 1)).all():
            raise ValueError(f"sample: given_mask must be boolean (or 0/1), broadcastable to "
                             f"{shape}; got dtype {arr.dtype}")
    try:
        return np.broadcast_to(arr.astype(bool), shape).copy()
    except ValueError:
        raise ValueError(f"sample: given_mask of shape {arr.shape} does not broadcast to "
                         f"{shape}") from None


def sample(model, n, H, W, seed=0, cached=False, given=None, given_mask=None, progress=None):
    """Draw `n` images of H x W from `model`: uint8 NumPy array (n, C, H, W) in 0..levels-1.

    given, given_mask: for completions. ``given`` holds values (n, C, H, W),
    ``given_mask`` is boolean, broadcastable to (n, C, H, W) (e.g. (H, W) for
    "these pixels in every image and colour"); pixels where it is True are
    copied from ``given`` and not sampled. ``progress(done, total)`` is called
    after each sampled sub-pixel position (a multi-scale model: both stages on one
    count). A multi-scale model is sampled in two stages (the module docstring), its
    given pixels given to both. Runs under no_grad on the model's device; the result
    is always on the CPU. Every argument is checked before any work (ValueError saying
    what was expected)."""
    C, levels = model.channels, model.levels
    n, H, W = _whole("n", n, 1), _whole("H", H, 1), _whole("W", W, 1)
    seed = _whole("seed", seed, 0)
    shape = (n, C, H, W)
    images = np.zeros(shape, np.uint8 if levels <= 256 else np.int64)
    if given_mask is None:
        if given is not None:
            raise ValueError("sample: `given` needs a `given_mask` saying which pixels to keep")
        mask = np.zeros(shape, bool)
    else:
        if given is None:
            raise ValueError("sample: `given_mask` needs the `given` images")
        mask = _given_mask(given_mask, shape)
        given = _given_values(given, shape, levels)
        images[mask] = given[mask]
    was_training = model.training
    model.eval()
    try:
        if is_multiscale(model):
            return fill_two_stage(model, images, two_stage_uniforms(seed, model, shape), mask,
                                  cached=cached, progress=progress)
        fill = fill_cached if cached else fill_naive
        return fill(model, images, uniforms(seed, n, C, H, W), mask, progress=progress)
    finally:
        model.train(was_training)
