"""The naive sampler: one full forward pass per sub-pixel, under no_grad.

Each pass sees only rows 0..r of the image being drawn (row r is the current
one). The models are causal, so the logits of row r do not depend on the
rows below it; cropping them away gives the same numbers and saves about
half of the work. (Masked convs zero-pad; padding below row r meets only
zero weights. The Diagonal BiLSTM's scans and the right-to-left shift look
only at rows above or on the current one.)

A conditional network (the Multi-Scale model's, sampling/multiscale.py) takes its
conditioning map ``cond`` (n, c, H, W), computed once per image from the full small
image, and each pass crops it as it crops the image: cond enters every layer
pointwise (a 1 x 1 conv added to the gates) and the layers are causal, so rows 0..r
of the map give rows 0..r's logits exactly.
"""
import numpy as np

from ..backend import get_array_module, to_numpy
from ..tensor import Tensor, no_grad

__all__ = ["fill_naive", "draw_from_logits"]


def draw_from_logits(logits, u):
    """Values by the inverse CDF: logits (n,) Bernoulli or (n, K) softmax, u (n,) in [0, 1).

    Bernoulli: P(0) = sigmoid(-z), value = 1 if u >= P(0) else 0.
    Softmax: with e = exp(z - max z) and the running sums S_v = e_0 + ... + e_v
    (so cdf[v] = S_v / S_{K-1}), value = the number of v with S_v <= u * S_{K-1}
    (the smallest v with cdf[v] > u), at most K - 1. Computed in float64."""
    z = np.asarray(to_numpy(logits), np.float64)
    u = np.asarray(u, np.float64)
    if z.ndim == 1:
        p0 = 0.5 * (1.0 + np.tanh(-0.5 * z))     # sigmoid(-z), stable for any z
        return (u >= p0).astype(np.int64)
    running = np.exp(z - z.max(axis=1, keepdims=True)).cumsum(axis=1)          # S (n, K)
    return np.minimum((running <= u[:, None] * running[:, -1:]).sum(axis=1), z.shape[1] - 1)


def fill_naive(model, images, u, given_mask, progress=None, cond=None):
    """Fill `images` (n, C, H, W) in place where ``given_mask`` is False; returns it.
    cond: a conditional network's conditioning map (n, c, H, W), or None."""
    n, C, H, W = images.shape
    todo_positions = [(r, c) for r in range(H) for c in range(W)
                      if not given_mask[:, :, r, c].all()]
    with no_grad():
        for done, (r, c) in enumerate(todo_positions, 1):
            for k in range(C):
                rows = np.flatnonzero(~given_mask[:, k, r, c])
                if rows.size == 0:
                    continue
                batch = images[rows, :, :r + 1] if rows.size < n else images[:, :, :r + 1]
                logits = _logits(model, batch, None if rows.size == n else rows, r, cond)
                z = logits[:, k, r, c] if logits.ndim == 4 else logits[:, :, k, r, c]
                images[rows, k, r, c] = draw_from_logits(z, u[rows, k, r, c])
            if progress is not None:
                progress(done, len(todo_positions))
    return images


def _logits(model, batch, rows, r, cond):
    """The logits of `batch` (the images `rows`, all if None, cropped to rows 0..r),
    given the conditioning map cropped the same way in a conditional network."""
    if cond is None:
        return model(batch).data
    if rows is not None:
        cond = cond[get_array_module(cond).asarray(rows)]
    return model.logits_from_scaled(model.scale(batch), cond=Tensor(cond[:, :, :r + 1])).data
