"""Exact cached samplers (paper notes section 6; Fast PixelCNN++'s idea).

A pixel's logits depend only on what came before it, and what came before
does not change once drawn. So instead of a full forward pass per sub-pixel,
each layer is evaluated at the current pixel only, reading cached values of
earlier pixels (sampling/cache_*.py):

    image (r, c) -> 7 x 7 mask A at (r, c) -> each layer at (r, c) -> skip and
    output 1 x 1 convs at (r, c) -> logits of pixel (r, c)

For an RGB pixel this runs once per colour; features of colour group g never
read colours >= g of their own pixel, so after the last colour every cached
value at (r, c) is final. Same logits as the naive sampler (tested), so the
same images for the same uniforms.
"""
import numpy as np

from ..backend import to_numpy
from ..tensor import no_grad
from . import register_cached_sampler
from .cache_diagonal import DiagonalCache
from .cache_pixelcnn import PixelCNNCache
from .cache_rowlstm import RowLSTMCache
from .naive import draw_from_logits
from .position import PositionConv

LAYER_CACHES = {"pixelcnn": PixelCNNCache, "rowlstm": RowLSTMCache, "diagonal": DiagonalCache}


class ModelCache:
    """A model evaluated pixel by pixel; `logits(r, c)` -> (N, C, values)."""

    def __init__(self, model, N, H, W):
        xp, dtype = model.parameters()[0].xp, model.dtype
        self.model, self.xp = model, xp
        self.first = PositionConv(model.first)
        p = model.first.padding[0]
        self.p = p
        self.image = xp.zeros((N, model.channels, H + 2 * p, W + 2 * p), dtype=dtype)  # scaled
        self.layers = [LAYER_CACHES[model.name](layer, N, H, W, xp, dtype)
                       for layer in model.layers]
        self.skip, self.hidden, self.logit = (PositionConv(m) for m in
                                              (model.skip, model.out_hidden, model.out_logits))
        self.scale = 2.0 / (model.levels - 1)

    def set_value(self, r, c, k, values):
        """Write drawn integer values (N,) of colour k at (r, c), scaled to [-1, 1]."""
        self.image[:, k, r + self.p, c + self.p] = self.xp.asarray(values) * self.scale - 1

    def begin_row(self, r):
        for layer in self.layers:
            layer.begin_row(r)

    def logits(self, r, c):
        relu = lambda a: self.xp.maximum(a, 0)
        x = self.first.at(self.image, r, c)                               # (N, 2h)
        outs = []
        for layer in self.layers:
            x = layer.at(x, r, c)
            outs.append(x)
        s = self.skip.vec(self.xp.concatenate(outs, axis=1))
        z = self.logit.vec(relu(self.hidden.vec(relu(s))))                # (N, C * values)
        return z.reshape(len(z), self.model.channels, self.model.values)


def visit_subpixels(model, n, H, W, choose):
    """Walk the sub-pixels in raster order, colours inside a pixel; `choose(z, r, c, k)`
    gets their logits z (n, values) as NumPy and returns the n values to write there."""
    with no_grad():
        cache = ModelCache(model, n, H, W)
        for r in range(H):
            cache.begin_row(r)
            for c in range(W):
                for k in range(model.channels):
                    z = to_numpy(cache.logits(r, c)[:, k])
                    cache.set_value(r, c, k, choose(z, r, c, k))


def fill_cached(model, images, u, given_mask, progress=None):
    """Fill `images` (n, C, H, W) in place where ``given_mask`` is False (see sampling.sample)."""
    n, C, H, W = images.shape

    def choose(z, r, c, k):
        drawn = draw_from_logits(z[:, 0] if z.shape[1] == 1 else z, u[:, k, r, c])
        images[:, k, r, c] = np.where(given_mask[:, k, r, c], images[:, k, r, c], drawn)
        if progress is not None and k == C - 1:
            progress(r * W + c + 1, H * W)
        return images[:, k, r, c]
    visit_subpixels(model, n, H, W, choose)
    return images


def teacher_forced_logits(model, images):
    """Logits of every sub-pixel computed the cached way, given the whole image:
    (N, C, H, W, values) NumPy. Equal to the full forward pass (tested)."""
    images = to_numpy(images)
    n, C, H, W = images.shape
    out = np.zeros((n, C, H, W, model.values))

    def choose(z, r, c, k):
        out[:, k, r, c] = z
        return images[:, k, r, c]
    visit_subpixels(model, n, H, W, choose)
    return out


for _name in LAYER_CACHES:
    register_cached_sampler(_name)(fill_cached)
