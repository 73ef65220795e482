"""Layers evaluated at one pixel, for the cached samplers.

Notation: N batch, C input channels, OC output channels, T kept taps.
A cached sampler keeps each layer's input as a zero-padded map and, when
pixel (r, c) is drawn, evaluates every layer at (r, c) alone: the masks
guarantee that the taps it reads are already final.
"""
from ..layers.conv import MaskedConv2d
from ..layers.lstm_cell import lstm_cell_forward
from ..ops.conv import kept_taps


class PositionConv:
    """conv(xpad)[:, :, r, c] for a Conv2d / MaskedConv2d module, in raw arrays.

    `xpad` is the input padded as the conv pads it, so the window of output
    (r, c) starts at xpad[:, :, r, c]. Masked-out taps are not read."""

    def __init__(self, conv, bias=True):
        w = conv.weight.data
        if isinstance(conv, MaskedConv2d):
            w = w * conv.device_mask()
            taps = conv.taps
        else:
            taps = kept_taps(None, *w.shape[2:])
        xp = conv.weight.xp
        self.ti = xp.asarray([i for i, _ in taps])
        self.tj = xp.asarray([j for _, j in taps])
        OC, C = w.shape[:2]
        self.w = w[:, :, self.ti, self.tj].reshape(OC, C * len(taps)).T     # (C*T, OC)
        self.b = conv.bias.data if bias and conv.bias is not None else 0

    def at(self, xpad, r, c):
        """(N, C, Hp, Wp) -> (N, OC)."""
        patch = xpad[:, :, r + self.ti, c + self.tj]                         # (N, C, T)
        return patch.reshape(len(patch), -1) @ self.w + self.b

    def vec(self, x):
        """A 1 x 1 conv applied to one pixel's features (N, C) -> (N, OC)."""
        return x @ self.w + self.b


def cell(pre, c_prev, xp):
    """The LSTM cell on (N, 4h), (N, h) -> h, c."""
    h, c, _ = lstm_cell_forward(pre, c_prev, xp)
    return h, c
