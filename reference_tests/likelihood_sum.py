"""The probabilities of every possible image, summed: a model's likelihood, proved normalised.

An autoregressive model's NLL is a sum of conditional terms, one per sub-pixel. If each
conditional is a distribution over the sub-pixel's values and sees only the sub-pixels
before it, the probabilities exp(-NLL(x)) of all levels ** (C * H * W) images sum to
exactly one. A model that counts a sub-pixel twice, drops one, or lets a term see the
value it predicts (or any later one) sums to something else, as generic weights go
(test_likelihood_sums_to_one.py shows one that leaks nothing at 2 columns wide, and sums
to one there). So on a tiny model, enumerating every image and summing is a black-box
check that the likelihood is normalised, however the model is wired. It is not a check
of the order: a model autoregressive in another order (PixelCNN with every kernel
flipped: reverse raster order) is normalised too; the causality tests see that.

    total_probability(nll_fn, channels, levels, H, W)      sum over all images of exp(-nll)
    log_total_probability(...)                             its log, computed stably
    enumerate_images(channels, levels, H, W, start, stop)  images start..stop-1 of the order

``nll_fn`` is any callable: integer images (N, channels, H, W) -> NLL in nats per image,
(N,), anything ``np.asarray`` reads as float64 (a NumPy array, a list). It is called on
batches of at most ``batch`` images, in the enumeration's order, and must not keep them
(each batch is a new array). It need not be a model: a multi-scale model's
NLL_small(s) + NLL_conditional(x | s), a hand-written distribution, or a deliberately
broken twin (``terms_variant``) all fit.

``model_nll_fn(model)`` and ``model_terms_fn(model)`` make such callables from a
minipixel model (run under no_grad, results on the host in float64); ``terms_variant``
turns a per-sub-pixel terms function into the NLL of a broken variant that double-counts
or drops one sub-pixel's term (the variants the test must catch).

Precision: each batch's terms go through scipy's logsumexp (the largest term factored
out) and the batches are combined the same way, so nothing underflows however peaked the
model. On the models of test_likelihood_sums_to_one.py (up to 2 ** 16 images, float64)
the totals are within 4.5e-16 of one; the tests allow 1e-10.
"""
import math

import numpy as np
from scipy.special import logsumexp

from minipixel import no_grad
from minipixel.backend import to_numpy

#: Enumerating more images than this is refused (a typo in H or W would otherwise run for hours).
MAX_IMAGES = 2 ** 22


def image_count(channels, levels, H, W):
    """How many images there are: levels ** (channels * H * W)."""
    return levels ** (channels * H * W)


def enumerate_images(channels, levels, H, W, start, stop, dtype=np.uint8):
    """Images start..stop-1 (N, channels, H, W) of the enumeration of all images.

    Image n holds the base-``levels`` digits of n, most significant first, laid out in
    C order over (channel, row, column): image 0 is all zeros, image 1 has a 1 in the
    last sub-pixel (channel C-1, row H-1, column W-1), the last image is all levels-1."""
    D, count = channels * H * W, image_count(channels, levels, H, W)
    if not 0 <= start <= stop <= count:
        raise ValueError(f"images {start}..{stop} are not in 0..{count}")
    n = np.arange(start, stop, dtype=np.int64)
    powers = levels ** np.arange(D - 1, -1, -1, dtype=np.int64)
    digits = (n[:, None] // powers[None, :]) % levels
    return digits.reshape(-1, channels, H, W).astype(dtype)


def log_total_probability(nll_fn, channels, levels, H, W, batch=4096, max_images=MAX_IMAGES):
    """log of the sum over every image x (N = levels ** (channels * H * W) of them) of
    exp(-nll_fn(x)), the NLLs taken in batches of ``batch`` images (see the module
    docstring for what nll_fn may be).

    Raises ValueError when there are more than ``max_images`` images, or when nll_fn
    returns the wrong shape or a NaN (an infinite NLL is a probability of zero: allowed)."""
    for name, value in (("channels", channels), ("levels", levels), ("H", H), ("W", W),
                        ("batch", batch)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    count = image_count(channels, levels, H, W)
    if count > max_images:
        raise ValueError(f"{levels} ** ({channels} * {H} * {W}) = {count} images is more than "
                         f"max_images={max_images}")
    dtype = np.uint8 if levels <= 256 else np.int64
    parts = []
    for start in range(0, count, batch):
        images = enumerate_images(channels, levels, H, W, start, min(start + batch, count), dtype)
        nll = np.asarray(nll_fn(images), dtype=np.float64)
        if nll.shape != (len(images),):
            raise ValueError(f"nll_fn must return one NLL per image, shape ({len(images)},); "
                             f"got shape {nll.shape}")
        if np.isnan(nll).any():
            first = start + int(np.flatnonzero(np.isnan(nll))[0])
            raise ValueError(f"nll_fn returned NaN (first for image {first} of the enumeration)")
        parts.append(logsumexp(-nll))
    return float(logsumexp(parts))


def total_probability(nll_fn, channels, levels, H, W, batch=4096, max_images=MAX_IMAGES):
    """The sum over every image x of exp(-nll_fn(x)): 1 for a normalised model.

    nll_fn: integer images (N, channels, H, W) -> nats per image (N,), float64-readable.
    Computed as exp(log_total_probability(...)) (stable: logsumexp over each batch, then
    over the batches)."""
    return math.exp(log_total_probability(nll_fn, channels, levels, H, W, batch, max_images))


# ---- callables from minipixel models -----------------------------------------------------------

def model_nll_fn(model):
    """images -> model.nll(images) (nats per image) as a float64 NumPy array, under no_grad."""
    def nll_fn(images):
        with no_grad():
            return to_numpy(model.nll(images).data).astype(np.float64)
    return nll_fn


def model_terms_fn(model):
    """images -> the per-sub-pixel NLL terms (N, C, H, W) in nats, float64 NumPy, under
    no_grad: the terms model.nll sums (the model's own losses on its own logits)."""
    def terms_fn(images):
        with no_grad():
            logits = model(images)
            loss = model.losses.sigmoid_nll if model.logits_per_subpixel == 1 else \
                model.losses.softmax_nll
            return to_numpy(loss(logits, images).data).astype(np.float64)
    return terms_fn


def terms_variant(terms_fn, kind="sum", subpixel=(0, 0, 0)):
    """An NLL function from a terms function (images -> (N, C, H, W) nats).

    kind "sum": the correct NLL, the sum of every term; "double": sub-pixel
    (channel, row, column) counted twice; "skip": its term dropped."""
    if kind not in ("sum", "double", "skip"):
        raise ValueError(f"kind must be 'sum', 'double' or 'skip', got {kind!r}")
    k, r, c = subpixel

    def nll_fn(images):
        terms = np.array(terms_fn(images), dtype=np.float64)        # a copy: changed below
        if kind == "double":
            terms[:, k, r, c] *= 2
        elif kind == "skip":
            terms[:, k, r, c] = 0
        return terms.sum(axis=(1, 2, 3))
    return nll_fn
