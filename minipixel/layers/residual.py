"""Residual connections (paper section 3.3): PixelCNN's residual block (section 3.5,
figure 5) and the residual form shared by both recurrent layers.

    recurrent layer:  x + output(hidden(x)),  output a 1 x 1 mask-B conv h -> 2h

Notation: N batch, 2h block input/output maps, H x W image.

    x (N, 2h, H, W)
      -> ReLU -> 1 x 1 conv, mask B -> h
      -> ReLU -> 3 x 3 conv, mask B -> h    (+ V (*) cond, the Multi-Scale model's
                                              layer bias: conditioning.py)
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
from ..sampling.per_pixel.residual import PixelCNNPixels
from .conv import MaskedConv2d, condition_conv
from .masks import channel_groups


def rectify(x, slope):
    """ReLU (slope 0) or leaky ReLU of a Tensor."""
    return relu(x) if slope == 0 else leaky_relu(x, slope)


class ResidualRecurrentLayer(Module):
    """Base of RowLSTMLayer and DiagonalBiLSTMLayer: subclasses give `hidden(x)`
    (N, 2h, H, W) -> (N, h, H, W) and an `output` conv h -> 2h."""

    def forward(self, x, trace=None, cond=None):
        """x + output(hidden(x)); with a dict `trace`, trace["hidden"] = hidden(x).
        cond: the conditioning map (N, c, H, W) of a conditional network, or None."""
        hidden = self.hidden(x) if cond is None else self.hidden(x, cond)
        if trace is not None:
            trace["hidden"] = hidden
        return x + self.output(hidden)


class PixelCNNBlock(Module):
    def __init__(self, h, colours, rng, dtype=np.float32, kernel=3, relu_slope=0.0,
                 condition_maps=0):
        super().__init__()
        g2h, gh = channel_groups(2 * h, colours), channel_groups(h, colours)
        self.reduce = MaskedConv2d("B", gh, g2h, 1, rng=rng, dtype=dtype)
        self.conv = MaskedConv2d("B", gh, gh, kernel, rng=rng, dtype=dtype)
        self.expand = MaskedConv2d("B", g2h, gh, 1, rng=rng, dtype=dtype)
        self.relu_slope = relu_slope
        if condition_maps:
            self.condition = condition_conv(condition_maps, h, rng, dtype)

    def forward(self, x, trace=None, cond=None):
        act = lambda a: rectify(a, self.relu_slope)  # noqa: E731
        y = self.reduce(act(x))
        y = self.conv(act(y))
        if cond is not None:
            y = y + self.condition(cond)                                 # + V (*) cond
        return x + self.expand(act(y))

    def pixel_steps(self, N, H, W, cond=None):
        """cond: the conditioning map channels last (N, H, W, c) of a conditional network."""
        return PixelCNNPixels(self, N, H, W, cond)  # the per-pixel twin
