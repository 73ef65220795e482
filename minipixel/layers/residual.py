"""PixelCNN's residual block (paper section 3.5, figure 5).

    x (N, 2h, H, W)
      -> ReLU -> 1 x 1 conv, mask B -> h
      -> ReLU -> 3 x 3 conv, mask B -> h
      -> ReLU -> 1 x 1 conv, mask B -> 2h
      -> plus x

The paper's figure does not show where the ReLUs go; we put one before each
convolution (pre-activation), so the identity path stays linear.
"""
import numpy as np

from ..nn import Module
from ..ops import relu
from .conv import MaskedConv2d
from .masks import channel_groups


class PixelCNNBlock(Module):
    def __init__(self, h, colours, rng, dtype=np.float32, kernel=3):
        super().__init__()
        g2h, gh = channel_groups(2 * h, colours), channel_groups(h, colours)
        self.reduce = MaskedConv2d("B", gh, g2h, 1, rng=rng, dtype=dtype)
        self.conv = MaskedConv2d("B", gh, gh, kernel, rng=rng, dtype=dtype)
        self.expand = MaskedConv2d("B", g2h, gh, 1, rng=rng, dtype=dtype)
        self.act = relu     # swapped for a leaky ReLU by causality.probe_activation

    def forward(self, x):
        y = self.reduce(self.act(x))
        y = self.conv(self.act(y))
        return x + self.expand(self.act(y))
