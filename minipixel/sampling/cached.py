"""The exact cached sampler (the idea of Fast PixelCNN++, Ramachandran et al. 2017).

A pixel's logits depend only on what came before it, and what came before
does not change once drawn. So instead of a full forward pass per sub-pixel,
the model is evaluated at the current pixel only, reading cached values of
earlier pixels: ``model.pixel_steps`` (models/base.py, ModelPixels), which
runs each layer's own per-pixel step, written beside that layer's forward.

For an RGB pixel this runs once per colour; features of colour group g never
read colours >= g of their own pixel, so after the last colour every cached
value at (r, c) is final. Same logits as the naive sampler (tested), so the
same images for the same uniforms.

A conditional network (the Multi-Scale model's, sampling/multiscale.py) takes its
conditioning map ``cond`` (n, c, H, W), computed once per image before the walk; each
layer's twin turns it into its bias V (*) cond once, at every pixel.
"""
import numpy as np

from ..backend import to_numpy
from ..tensor import no_grad
from .naive import draw_from_logits


def visit_subpixels(model, n, H, W, choose, cond=None):
    """Walk the sub-pixels in raster order, colours inside a pixel; `choose(z, r, c, k)`
    gets their logits z (n, values) as NumPy and returns the n values to write there.
    cond: a conditional network's conditioning map (raw array), or None."""
    with no_grad():
        steps = model.pixel_steps(n, H, W) if cond is None else model.pixel_steps(n, H, W, cond)
        for r in range(H):
            steps.begin_row(r)
            for c in range(W):
                for k in range(model.channels):
                    z = to_numpy(steps.logits(r, c, k))
                    steps.set_value(r, c, k, choose(z, r, c, k))


def fill_cached(model, images, u, given_mask, progress=None, cond=None):
    """Fill `images` (n, C, H, W) in place where ``given_mask`` is False (see sampling.sample);
    cond: a conditional network's conditioning map (n, c, H, W), or None."""
    n, C, H, W = images.shape

    def choose(z, r, c, k):
        drawn = draw_from_logits(z[:, 0] if z.shape[1] == 1 else z, u[:, k, r, c])
        images[:, k, r, c] = np.where(given_mask[:, k, r, c], images[:, k, r, c], drawn)
        if progress is not None and k == C - 1:
            progress(r * W + c + 1, H * W)
        return images[:, k, r, c]
    visit_subpixels(model, n, H, W, choose, cond)
    return images


def teacher_forced_logits(model, images, cond=None):
    """Logits of every sub-pixel computed the cached way, given the whole image:
    (N, C, H, W, values) NumPy. Equal to the full forward pass (tested); cond: a
    conditional network's conditioning map, or None."""
    images = to_numpy(images)
    n, C, H, W = images.shape
    out = np.zeros((n, C, H, W, model.logits_per_subpixel))

    def choose(z, r, c, k):
        out[:, k, r, c] = z
        return images[:, k, r, c]
    visit_subpixels(model, n, H, W, choose, cond)
    return out
