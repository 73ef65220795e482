"""Which input sub-pixels each output logit depends on, from exact gradients.

Raster order with colours inside a pixel (paper eq. 1-2): output sub-pixel
(k, r, c) may depend on input sub-pixel (k', r', c') only if

    (r', c') comes before (r, c)    (an earlier row, or the same row further left)
    or (r', c') == (r, c) and k' < k   (an earlier colour of the same pixel)

Notation: C colours, H x W image; maps are boolean arrays of shape
(C, H, W, C, H, W): [output k, r, c, input k', r', c'].

``dependency_map`` computes, in one forward and one backward pass, the
gradient of every output sub-pixel's logits (summed with random positive
weights, so nothing cancels) with respect to every input sub-pixel: it puts
one copy of the image per output sub-pixel in the batch, and sample n's
backward weight selects only output n. A dependency is a non-zero gradient.
"""
import numpy as np

from .backend import to_numpy
from .tensor import Tensor

PROBE_SLOPE = 0.1       # the leaky ReLUs' slope in probe models


def context_map(C, H, W):
    """The allowed dependencies (C, H, W, C, H, W): earlier pixels, earlier colours."""
    pos = np.arange(H * W).reshape(H, W)
    earlier_pixel = pos[None, :, :, None, None, None] > pos[None, None, None, None, :, :]
    same_pixel = pos[None, :, :, None, None, None] == pos[None, None, None, None, :, :]
    k_out = np.arange(C)[:, None, None, None, None, None]
    k_in = np.arange(C)[None, None, None, :, None, None]
    return np.broadcast_to(earlier_pixel | (same_pixel & (k_in < k_out)), (C, H, W, C, H, W))


def probe_model(model, slope=PROBE_SLOPE):
    """The same model (same parameters) with leaky ReLUs, so no path is hidden by a dead unit.

    Dead ReLUs can make a gradient map at one input smaller than the wiring allows;
    with a leaky slope every path carries a non-zero gradient (exact coverage), and
    the causal structure is the same. `model` needs ``variant`` (models/base.py);
    a model built with this slope already is its own probe."""
    return model if model.relu_slope == slope else model.variant(relu_slope=slope)


def dependency_map(model, H, W, seed=0, leaky=True):
    """(C, H, W, C, H, W) boolean: does output logit (k, r, c) move with input (k', r', c')?

    `model` needs ``channels`` and ``logits_from_scaled(x)``: (N, C, H, W)
    logits, or (N, levels, C, H, W). Runs in the model's dtype and device;
    float64 models give the sharpest answer. leaky=True runs `probe_model(model)`."""
    C = model.channels
    n_out = C * H * W
    rng = np.random.default_rng(seed)
    xp = model.parameters()[0].xp
    dtype = model.dtype
    x = rng.uniform(-1, 1, size=(1, C, H, W)).repeat(n_out, axis=0)
    x = Tensor(xp.asarray(x, dtype=dtype), requires_grad=True)
    if leaky:
        model = probe_model(model)
    logits = model.logits_from_scaled(x)
    select = np.zeros((n_out, C, H, W))
    select.reshape(n_out, n_out)[np.arange(n_out), np.arange(n_out)] = 1.0
    if logits.ndim == 5:                            # (N, levels, C, H, W)
        weights = rng.uniform(0.5, 1.5, size=logits.shape) * select[:, None]
    else:
        weights = rng.uniform(0.5, 1.5, size=logits.shape) * select
    logits.backward(xp.asarray(weights, dtype=dtype))
    grad = to_numpy(x.grad).reshape(C, H, W, C, H, W)
    return grad != 0


def leaks(dep):
    """Positions ((k, r, c), (k', r', c')) where an output depends on its future."""
    C, H, W = dep.shape[:3]
    bad = dep & ~context_map(C, H, W)
    return [(tuple(map(int, i[:3])), tuple(map(int, i[3:]))) for i in np.argwhere(bad)]


def coverage(dep):
    """Fraction of each output's allowed context that it actually reaches (C, H, W)."""
    C, H, W = dep.shape[:3]
    ctx = context_map(C, H, W)
    allowed = ctx.reshape(C, H, W, -1).sum(-1)
    reached = (dep & ctx).reshape(C, H, W, -1).sum(-1)
    return np.where(allowed > 0, reached / np.maximum(allowed, 1), 1.0)
