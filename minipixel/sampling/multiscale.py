"""Sampling the Multi-Scale PixelRNN in two stages (paper section 3.6; the model:
minipixel/models/multiscale.py). ``sample(model, ...)`` comes here for a multi-scale
model, so its callers need no special case.

    stage 1  the small image s (n, C, ceil(H/k), ceil(W/k)) from the small network,
             with the chosen sampler (naive or cached), as any single-scale model
    stage 2  the large image x (n, C, H, W) from the conditional network given s:
             its pixels (k r, k c), all colours (``model.given(H, W)``), are copied
             from s and never drawn; the conditioning map cond =
             ``model.conditioning(s, H, W)`` is computed once per image, before the
             first pixel, and read by every naive pass (cropped as the pass crops the
             image) or by each layer's per-pixel twin (its bias V (*) cond, once)

Randomness, all drawn up front from one generator ``np.random.default_rng(seed)``:
first the small image's uniforms (n, C, ceil(H/k), ceil(W/k)), then the large image's
(n, C, H, W). The first are exactly the draws of ``sample(model.small, n, ceil(H/k),
ceil(W/k), seed)``, so the small image of a two-stage sample is the small network's own
sample with the same seed. The large image's uniforms at the given pixels are drawn
and unused, as for completions.

Completions: pixels of the large image given by the caller are given to both stages
(those at (k r, k c) to the small network as well). Upscaling a small image (the small
image given, the rest drawn) is the completion with ``given_mask = model.given(H, W)``:
``upscale``.
"""
import numpy as np

from ..tensor import no_grad
from .cached import fill_cached, teacher_forced_logits
from .naive import fill_naive

__all__ = ["is_multiscale", "two_stage_uniforms", "fill_two_stage", "conditional_logits_cached",
           "upscale"]


def is_multiscale(model):
    """Whether `model` samples in two stages (a small network and a conditional one)."""
    return hasattr(model, "small") and hasattr(model, "conditioning")


def two_stage_uniforms(seed, model, shape):
    """The up-front draws for (n, C, H, W): (small image's, large image's) float64 uniforms."""
    n, C, H, W = shape
    rng = np.random.default_rng(seed)
    return rng.random((n, C) + tuple(model.small_size(H, W))), rng.random(shape)


def conditioning_map(model, small, H, W):
    """The conditioning map (n, c, H, W) as a raw array on the model's device: the one
    computation of the upsampler for these small images."""
    with no_grad():
        return model.conditioning(small, H, W).data


def fill_two_stage(model, images, u, given_mask, cached=False, progress=None):
    """Fill `images` (n, C, H, W) in place where ``given_mask`` is False, small image
    first (see the module docstring); u: ``two_stage_uniforms``. Returns `images`."""
    u_small, u_large = u
    fill = fill_cached if cached else fill_naive
    k = model.factor
    n, C, H, W = images.shape
    small = np.ascontiguousarray(images[:, :, ::k, ::k])
    small_mask = np.ascontiguousarray(given_mask[:, :, ::k, ::k])
    first, second = split_progress(progress, small.shape[2] * small.shape[3], H * W)
    if not small_mask.all():                                  # all given: nothing to draw
        fill(model.small, small, u_small, small_mask, progress=first)
    images[:, :, ::k, ::k] = small
    cond = conditioning_map(model, small, H, W)
    return fill(model.large, images, u_large, given_mask | model.given(H, W),
                progress=second, cond=cond)


def split_progress(progress, first, second):
    """progress(done, total) for the two stages as one bar of first + second pixels."""
    if progress is None:
        return None, None
    total = first + second

    def stage(offset, size):
        return lambda done, of: progress(offset + (size * done) // max(of, 1), total)
    return stage(0, first), stage(first, second)


def conditional_logits_cached(model, images):
    """The conditional network's logits of every sub-pixel of `images` (N, C, H, W) given
    their own small images, computed the cached way: (N, C, H, W, values) NumPy, equal
    to ``model(images)`` (tested)."""
    images = np.asarray(images)
    H, W = images.shape[2:]
    cond = conditioning_map(model, model.subsample(images), H, W)
    return teacher_forced_logits(model.large, images, cond)


def upscale(model, small, H, W, seed=0, cached=False, progress=None):
    """Large images (n, C, H, W) drawn given small images (n, C, ceil(H/k), ceil(W/k)):
    the completion whose given pixels are the small images' (the seed's uniforms as for
    ``sample``, the small stage's unused)."""
    from . import sample
    small = np.asarray(small)
    if small.ndim != 4 or tuple(small.shape[2:]) != tuple(model.small_size(H, W)):
        raise ValueError(f"upscale: small images (n, {model.channels}, "
                         f"{', '.join(map(str, model.small_size(H, W)))}) expected for "
                         f"{H} x {W}, got shape {small.shape}")
    given = np.zeros(small.shape[:2] + (H, W), small.dtype)
    given[:, :, ::model.factor, ::model.factor] = small
    return sample(model, len(small), H, W, seed=seed, cached=cached, given=given,
                  given_mask=model.given(H, W), progress=progress)
