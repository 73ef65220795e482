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
passes). Cached samplers (paper notes section 6) register themselves in
``CACHED_SAMPLERS`` under the model's name (``register_cached_sampler``), or
live in a module ``minipixel.sampling.cached`` that registers them on import;
they take the same arguments as ``fill_naive``.
"""
import importlib

import numpy as np

from .naive import draw_from_logits, fill_naive

__all__ = ["sample", "draw_from_logits", "fill_naive", "CACHED_SAMPLERS",
           "register_cached_sampler", "uniforms"]

CACHED_SAMPLERS = {}


def register_cached_sampler(model_name):
    """Decorator: ``fill(model, images, u, given_mask, progress=None)`` for one model kind."""
    def register(fn):
        CACHED_SAMPLERS[model_name] = fn
        return fn
    return register


def _cached_sampler(model):
    if model.name not in CACHED_SAMPLERS:
        try:
            importlib.import_module(__name__ + ".cached")
        except ModuleNotFoundError as e:
            if e.name != __name__ + ".cached":
                raise
    fn = CACHED_SAMPLERS.get(model.name)
    if fn is None:
        have = sorted(CACHED_SAMPLERS) or "none yet"
        raise NotImplementedError(f"no cached sampler for model {model.name!r} (available: "
                                  f"{have}); use cached=False for the naive sampler")
    return fn


def uniforms(seed, n, C, H, W):
    """The up-front draws: float64 uniforms in [0, 1) of shape (n, C, H, W)."""
    return np.random.default_rng(seed).random((n, C, H, W))


def sample(model, n, H, W, seed=0, cached=False, given=None, given_mask=None, progress=None):
    """Draw `n` images of H x W from `model`: uint8 NumPy array (n, C, H, W) in 0..levels-1.

    given, given_mask: for completions. ``given`` holds values (n, C, H, W),
    ``given_mask`` is boolean, broadcastable to (n, C, H, W) (e.g. (H, W) for
    "these pixels in every image and colour"); pixels where it is True are
    copied from ``given`` and not sampled. ``progress(done, total)`` is called
    after each sampled sub-pixel position. Runs under no_grad on the model's
    device; the result is always on the CPU."""
    C, levels = model.channels, model.levels
    n, H, W = int(n), int(H), int(W)
    if n < 1 or H < 1 or W < 1:
        raise ValueError(f"sample: n, H, W must be positive, got n={n}, H={H}, W={W}")
    images = np.zeros((n, C, H, W), np.uint8 if levels <= 256 else np.int64)
    if given_mask is None:
        if given is not None:
            raise ValueError("sample: `given` needs a `given_mask` saying which pixels to keep")
        mask = np.zeros((n, C, H, W), bool)
    else:
        if given is None:
            raise ValueError("sample: `given_mask` needs the `given` images")
        from ..backend import to_numpy
        given = to_numpy(given)
        if given.shape != (n, C, H, W):
            raise ValueError(f"sample: given must have shape {(n, C, H, W)}, got {given.shape}")
        try:
            mask = np.broadcast_to(np.asarray(given_mask, bool), (n, C, H, W)).copy()
        except ValueError:
            raise ValueError(f"sample: given_mask of shape {np.shape(given_mask)} does not "
                             f"broadcast to {(n, C, H, W)}") from None
        kept = given[mask]
        if kept.size and (kept.min() < 0 or kept.max() > levels - 1):
            raise ValueError(f"sample: given values must lie in 0..{levels - 1}")
        images[mask] = kept
    u = uniforms(seed, n, C, H, W)
    fill = _cached_sampler(model) if cached else fill_naive
    was_training = model.training
    model.eval()
    try:
        return fill(model, images, u, mask, progress=progress)
    finally:
        model.train(was_training)
