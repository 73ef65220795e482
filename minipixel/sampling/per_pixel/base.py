"""The per-pixel twin of minipixel/models/base.py: a whole model at one pixel, for the
cached sampler (sampling/cached.py).

Tested equal to the model's forward pass, every model kind, grey and RGB
(reference_tests/test_cached_sampling.py, test_fast_equals_paper.py).
"""
from .residual import rectify


class ModelPixels:
    """A model evaluated pixel by pixel, in raw arrays; ``logits(r, col, k)`` -> (N, values).

    image (r, col) -> 7 x 7 mask A at (r, col) -> each layer's per-pixel twin at (r, col)
    (its ``pixel_steps``) -> skip and output 1 x 1 convs at (r, col),
    the last one for colour k's `values` logits only. Call ``begin_row(r)`` before
    the first pixel of row r, ``set_value`` after each drawn sub-pixel. Masks
    guarantee every cached value read is already final.

    Buffers: `image` (N, H + 2p, W + 2p, C) the scaled values drawn so far,
    channels last, zero padded as the 7 x 7 conv pads; `outs` (N, L * 2h) the L
    layers' outputs at the current pixel side by side, the skip conv's input
    (each layer writes its own block).

    cond: the conditioning map (N, c, H, W) of a conditional network (the Multi-Scale
    model's, computed once per image from its small image), or None. It is laid out
    channels last once here; each layer's twin computes its bias V (*) cond from it
    once and adds it where its forward does."""

    def __init__(self, model, N, H, W, cond=None):
        xp, dtype = model.first.weight.xp, model.dtype
        self.model, self.xp, self.slope = model, xp, model.relu_slope
        self.p = p = model.first.padding[0]
        self.image = xp.zeros((N, H + 2 * p, W + 2 * p, model.channels), dtype=dtype)
        self.first = model.first.at_pixel(self.image)
        if cond is not None:
            if tuple(cond.shape[:1] + cond.shape[2:]) != (N, H, W):
                raise ValueError(f"a conditioning map (N, c, H, W) = ({N}, c, {H}, {W}) "
                                 f"expected, got {tuple(cond.shape)}")
            cond = xp.ascontiguousarray(cond.transpose(0, 2, 3, 1))              # (N, H, W, c)
        self.layers = [layer.pixel_steps(N, H, W, cond) for layer in model.layers]
        width = model.first.weight.shape[0]                                    # 2h
        self.outs = xp.zeros((N, width * len(self.layers)), dtype=dtype)
        self.out_blocks = [self.outs[:, i * width:(i + 1) * width]
                           for i in range(len(self.layers))]
        self.skip, self.hidden = model.skip.at_pixel(), model.out_hidden.at_pixel()
        logits, V = model.out_logits.at_pixel(), model.logits_per_subpixel   # colour-major
        self.colour_logits = [logits.output_block(k * V, (k + 1) * V)
                              for k in range(model.channels)]
        self.input_scale = 2.0 / (model.levels - 1)      # the model's input scaling

    def set_value(self, r, col, k, values):
        """Write drawn integer values (N,) of colour k at (r, col), scaled to [-1, 1]."""
        self.image[:, r + self.p, col + self.p, k] = \
            self.xp.asarray(values) * self.input_scale - 1

    def begin_row(self, r):
        self.first.begin_row(r)
        for layer in self.layers:
            layer.begin_row(r)

    def logits(self, r, col, k):
        """Colour k's logits (N, values) at (r, col)."""
        xp, slope = self.xp, self.slope
        x = self.first.at(r, col)                                          # (N, 2h)
        for layer, out in zip(self.layers, self.out_blocks):
            x = layer.at(x, r, col, out)
        s = self.skip.vec(self.outs)
        hidden = self.hidden.vec(rectify(s, slope, xp, out=s))
        return self.colour_logits[k].vec(rectify(hidden, slope, xp, out=hidden))
