"""Residual connections (paper section 3.3): PixelCNN's residual block (section 3.5,
figure 5) and the residual form shared by both recurrent layers.

    recurrent layer:  x + output(hidden(x)),  output a 1 x 1 mask-B conv h -> 2h

Notation: N batch, 2h block input/output maps, H x W image.

    x (N, 2h, H, W)
      -> ReLU -> 1 x 1 conv, mask B -> h
      -> ReLU -> 3 x 3 conv, mask B -> h
      -> ReLU -> 1 x 1 conv, mask B -> 2h
      -> plus x                                                   (N, 2h, H, W)

The paper's figure does not show where the ReLUs go; we put one before each
convolution (pre-activation), so the identity path stays linear.
``relu_slope`` > 0 makes them leaky (the causality probe's exact-coverage
models, where no path may hide behind a dead unit); 0 is the paper's ReLU.
"""
import numpy as np

from ..nn import Module
from ..ops import leaky_relu, relu
from .conv import MaskedConv2d
from .masks import channel_groups


def rectify(x, slope):
    """ReLU (slope 0) or leaky ReLU of a Tensor."""
    return relu(x) if slope == 0 else leaky_relu(x, slope)


def rectify_array(a, slope, xp, out=None):
    """The same on a raw array (the per-pixel steps), into `out` if given (may be a)."""
    if slope == 0:
        return xp.maximum(a, 0, out=out)
    return xp.multiply(a, xp.where(a > 0, 1, slope).astype(a.dtype), out=out)


class ResidualRecurrentLayer(Module):
    """Base of RowLSTMLayer and DiagonalBiLSTMLayer: subclasses give `hidden(x)`
    (N, 2h, H, W) -> (N, h, H, W) and an `output` conv h -> 2h."""

    def forward(self, x, trace=None):
        """x + output(hidden(x)); with a dict `trace`, trace["hidden"] = hidden(x)."""
        hidden = self.hidden(x)
        if trace is not None:
            trace["hidden"] = hidden
        return x + self.output(hidden)


class PixelCNNBlock(Module):
    def __init__(self, h, colours, rng, dtype=np.float32, kernel=3, relu_slope=0.0):
        super().__init__()
        g2h, gh = channel_groups(2 * h, colours), channel_groups(h, colours)
        self.reduce = MaskedConv2d("B", gh, g2h, 1, rng=rng, dtype=dtype)
        self.conv = MaskedConv2d("B", gh, gh, kernel, rng=rng, dtype=dtype)
        self.expand = MaskedConv2d("B", g2h, gh, 1, rng=rng, dtype=dtype)
        self.relu_slope = relu_slope

    def forward(self, x, trace=None):
        act = lambda a: rectify(a, self.relu_slope)  # noqa: E731
        y = self.reduce(act(x))
        y = self.conv(act(y))
        return x + self.expand(act(y))

    def pixel_steps(self, N, H, W):
        return PixelCNNPixels(self, N, H, W)


class PixelCNNPixels:
    """The block at one pixel at a time, for cached sampling, in raw arrays.

    Its 3 x 3 conv reads the grid y = relu(reduce(relu x)) (N, H + 2p, W + 2p, h),
    channels last, at pixels drawn so far; each step writes y at (r, c), then
    reads the window there."""

    def __init__(self, block, N, H, W):
        p = block.conv.padding[0]
        h = block.conv.weight.shape[1]
        self.xp, self.p, self.slope = block.conv.weight.xp, p, block.relu_slope
        self.y = self.xp.zeros((N, H + 2 * p, W + 2 * p, h), dtype=block.conv.weight.dtype)
        self.reduce, self.expand = block.reduce.at_pixel(), block.expand.at_pixel()
        self.conv = block.conv.at_pixel(self.y)

    def begin_row(self, r):
        self.conv.begin_row(r)

    def at(self, x, r, c, out):
        """Block output at (r, c) into out (N, 2h), for its input x (N, 2h) there."""
        xp, p, slope = self.xp, self.p, self.slope
        rectify_array(self.reduce.vec(rectify_array(x, slope, xp)), slope, xp,
                      out=self.y[:, r + p, c + p])
        y = self.conv.at(r, c)
        return xp.add(x, self.expand.vec(rectify_array(y, slope, xp, out=y)), out=out)
