"""The Multi-Scale PixelRNN's conditioning (paper section 3.6): the small image, its
upsampled feature map, and the per-layer bias it adds to a layer's gates.

Notation: N batch, C colours, k the subsampling factor, H x W the large image,
s_H x s_W = ceil(H / k) x ceil(W / k) the small one, c conditioning maps, h hidden units.

    small image     images[:, :, ::k, ::k]: the pixel (k r, k c) of the large image
                    for each small pixel (r, c) (``subsample``), so every small pixel
                    is a pixel of the large image: ``given_pixels`` marks them
    upsampler       small image (N, C, s_H, s_W), scaled to [-1, 1]
                      -> 3 x 3 conv (padding 1) to c maps, ReLU
                      -> k x k transposed conv, stride k, to c maps, ReLU   (N, c, k s_H, k s_W)
                      -> cropped to H x W, then a 3 x 3 conv (padding 1)    (N, c, H, W)
    layer bias      for each layer, a 1 x 1 *unmasked* conv V (no bias of its own,
                    conv.condition_conv) of
                    the conditioning map, added to the layer's input-to-state map:
                      Row LSTM, Diagonal LSTM:  K_is (*) x + V (*) cond      (N, 4h, H, W)
                      PixelCNN block:           its 3 x 3 masked conv's output + V (*) cond

The conditioning sees the whole small image and no pixel of the large one: the
small image is given, and the large image reaches the layers only through their
masked paths. The paper fixes neither the subsampling nor the upsampler's depth
and kernels; these are our choices (docs/multiscale.md).
"""
import numpy as np

from ..nn import Module
from .conv import Conv2d, ConvTranspose2d
from .residual import rectify


def subsample(images, factor):
    """The small image: the pixel (k r, k c) of each k x k block, (N, C, ceil(H/k), ceil(W/k))."""
    return images[:, :, ::factor, ::factor]


def given_pixels(H, W, factor):
    """(H, W) bool, True at the pixels the small image fixes (rows and columns k r)."""
    given = np.zeros((H, W), dtype=bool)
    given[::factor, ::factor] = True
    return given


def small_size(H, W, factor):
    return -(-H // factor), -(-W // factor)


class Upsampler(Module):
    """Small image (scaled, N, C, s_H, s_W) -> conditioning map (N, c, H, W)."""

    def __init__(self, colours, maps, factor, rng, dtype=np.float32, relu_slope=0.0):
        super().__init__()
        self.factor, self.relu_slope = factor, relu_slope
        self.embed = Conv2d(colours, maps, 3, padding=1, rng=rng, dtype=dtype)
        self.up = ConvTranspose2d(maps, maps, factor, factor, rng=rng, dtype=dtype)
        self.refine = Conv2d(maps, maps, 3, padding=1, rng=rng, dtype=dtype)

    def forward(self, small, H, W, trace=None):
        """trace: a dict to record "upsampler/embed" and "upsampler/up" in."""
        trace = {} if trace is None else trace
        y = trace["upsampler/embed"] = rectify(self.embed(small), self.relu_slope)
        y = trace["upsampler/up"] = rectify(self.up(y), self.relu_slope)[:, :, :H, :W]
        return self.refine(y)
