"""The naive sampler: one full forward pass per sub-pixel, under no_grad.

Each pass sees only rows 0..r of the image being drawn (row r is the current
one). The models are causal, so the logits of row r do not depend on the
rows below it; cropping them away gives the same numbers and saves about
half of the work. (Masked convs zero-pad; padding below row r meets only
zero weights. The Diagonal BiLSTM's scans and the right-to-left shift look
only at rows above or on the current one.)
"""
import numpy as np

from ..backend import to_numpy
from ..tensor import no_grad

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


def fill_naive(model, images, u, given_mask, progress=None):
    """Fill `images` (n, C, H, W) in place where ``given_mask`` is False; returns it."""
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
                logits = model(batch).data
                z = logits[:, k, r, c] if logits.ndim == 4 else logits[:, :, k, r, c]
                images[rows, k, r, c] = draw_from_logits(z, u[rows, k, r, c])
            if progress is not None:
                progress(done, len(todo_positions))
    return images
