"""Row LSTM layer (paper section 3.1).

Notation: N batch, 2h layer input/output maps, h hidden units, H x W image.

    x (N, 2h, H, W)
      -> input-to-state K_is: 1 x 3 conv, mask B, all rows at once   (N, 4h, H, W)
      -> recurrence over rows, state-to-state K_ss: 1 x 3 unmasked
         conv over the previous row's h, zero padded at both ends    (N, h, H, W)
      -> 1 x 1 conv, mask B, back to 2h maps, plus x (residual)      (N, 2h, H, W)

The state of row r sees row r-1 at columns c-1..c+1, so the layer's field is
the triangle above the pixel (plus, through K_is, the pixel to its left).
"""
import numpy as np

from ..nn import Module, Parameter
from .conv import MaskedConv2d, uniform_init
from .lstm_scan import lstm_scan
from .masks import channel_groups, gate_groups

ROW_OFFSETS = (-1, 0, 1)       # K_ss taps: columns c-1, c, c+1 of the previous row


class RowLSTMLayer(Module):
    def __init__(self, h, colours, rng, dtype=np.float32):
        super().__init__()
        g_io, g_gates = channel_groups(2 * h, colours), gate_groups(h, colours)
        self.input_to_state = MaskedConv2d("B", g_gates, g_io, (1, 3), rng=rng, dtype=dtype)
        self.state_to_state = Parameter(uniform_init(rng, (4 * h, h, 1, 3), 3 * h, dtype))
        self.h0 = Parameter(uniform_init(rng, (h,), h, dtype))
        self.c0 = Parameter(uniform_init(rng, (h,), h, dtype))
        self.output = MaskedConv2d("B", g_io, channel_groups(h, colours), 1, rng=rng, dtype=dtype)

    def hidden(self, x):
        """The LSTM's hidden states (N, h, H, W) for the layer input x (N, 2h, H, W)."""
        gates = self.input_to_state(x)                               # (N, 4h, H, W)
        return lstm_scan(gates, self.state_to_state, self.h0, self.c0, ROW_OFFSETS)

    def forward(self, x):
        return x + self.output(self.hidden(x))
