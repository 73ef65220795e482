"""Convolution modules: plain Conv2d, MaskedConv2d (mask A / B, paper section 3.4) and
ConvTranspose2d (the multi-scale model's upsampling, section 3.6).

    Conv2d:          x (N, C, H, W) -> (N, OC, OH, OW), weight (OC, C, KH, KW), bias (OC,)
    MaskedConv2d:    the same with weight * mask (masks.py), size kept by padding KH//2, KW//2
    ConvTranspose2d: x (N, C, H, W) -> (N, OC, (H-1)s + KH, (W-1)s + KW), weight (C, OC, KH, KW)

``conv.at_pixel(grid)`` links to its per-pixel twin (minipixel/sampling/per_pixel/conv.py):
the same convolution at one output position, for the cached sampler.
"""
import numpy as np

from ..nn import Module, Parameter
from ..ops import conv2d, conv_transpose2d
from ..ops.conv import kept_taps
from ..sampling.per_pixel.conv import PixelConv
from .masks import conv_mask


def uniform_init(rng, shape, fan_in, dtype):
    """PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Conv2d(Module):
    """Unmasked cross-correlation, weight (OC, C, KH, KW), optional bias (OC,)."""

    def __init__(self, C, OC, kernel, padding=0, bias=True, rng=None, dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng(0)
        KH, KW = (kernel, kernel) if isinstance(kernel, int) else kernel
        fan_in = C * KH * KW
        self.weight = Parameter(uniform_init(rng, (OC, C, KH, KW), fan_in, dtype))
        self.bias = Parameter(uniform_init(rng, (OC,), fan_in, dtype)) if bias else None
        self.padding = padding

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.padding)

    def at_pixel(self, grid=None):
        """This conv at one output position reading `grid` (or a 1 x 1 conv's ``vec``)."""
        return PixelConv(self.weight.data, self.bias, None, self.weight.shape[2:], grid)


def condition_conv(maps, out, rng, dtype):
    """A conditional layer's 1 x 1 unmasked conv V (no bias): c conditioning maps ->
    `out` maps added to the layer's gates (the Multi-Scale model, conditioning.py)."""
    return Conv2d(maps, out, 1, bias=False, rng=rng, dtype=dtype)


class MaskedConv2d(Conv2d):
    """Conv2d whose weight is multiplied by a fixed causal mask in the forward.

    The raw weight is never changed; only the taps the mask keeps are computed.
    `out_groups` / `in_groups` give each channel's colour group (masks.py).
    """

    def __init__(self, kind, out_groups, in_groups, kernel, padding=None, bias=True,
                 rng=None, dtype=np.float32):
        KH, KW = (kernel, kernel) if isinstance(kernel, int) else kernel
        if padding is None:   # keep the size: pad KH//2 rows and KW//2 columns each side
            padding = (KH // 2, KW // 2)
        super().__init__(len(in_groups), len(out_groups), (KH, KW), padding, bias, rng, dtype)
        self.kind = kind
        self.mask = conv_mask(kind, out_groups, in_groups, KH, KW).astype(dtype)
        self.taps = kept_taps(self.mask, KH, KW)
        self._mask_on_device = {}

    def device_mask(self):
        """The mask as an array on the weight's device and in its dtype (cached)."""
        key = (self.weight.device, self.weight.dtype)
        if key not in self._mask_on_device:
            self._mask_on_device[key] = self.weight.xp.asarray(self.mask, dtype=self.weight.dtype)
        return self._mask_on_device[key]

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.padding, mask=self.device_mask(),
                      taps=self.taps)

    def at_pixel(self, grid=None):
        return PixelConv(self.weight.data * self.device_mask(), self.bias, self.taps,
                         self.weight.shape[2:], grid)


class ConvTranspose2d(Module):
    """Transposed convolution with stride s (no padding): each input pixel paints a
    KH x KW patch of the output, patches s apart. Weight (C, OC, KH, KW), bias (OC,)."""

    def __init__(self, C, OC, kernel, stride, rng, dtype=np.float32):
        super().__init__()
        KH, KW = (kernel, kernel) if isinstance(kernel, int) else kernel
        fan_in = C * KH * KW
        self.weight = Parameter(uniform_init(rng, (C, OC, KH, KW), fan_in, dtype))
        self.bias = Parameter(uniform_init(rng, (OC,), fan_in, dtype))
        self.stride = stride

    def forward(self, x):
        return conv_transpose2d(x, self.weight, self.bias, self.stride)
