"""Row LSTM layer (paper section 3.1).

Notation: N batch, 2h layer input/output maps, h hidden units, H x W image.

    x (N, 2h, H, W)
      -> input-to-state K_is: 1 x 3 conv, mask B, all rows at once   (N, 4h, H, W)
         (the Multi-Scale model's conditional network adds V (*) cond here, its
         layer bias from the small image: conditioning.py)
      -> for each row r, top to bottom (eq. 3):
           pre_r = K_is (*) x [row r] + K_ss (*) h_{r-1}              (N, 4h, 1, W)
           h_r, c_r = lstm_cell(pre_r, c_{r-1})                         (N, h, 1, W)
         K_ss: 1 x 3 unmasked conv over the previous row, zero padded
         at both ends; h_{-1}, c_{-1} are learned vectors (h,)
      -> 1 x 1 conv, mask B, back to 2h maps, plus x (residual)       (N, 2h, H, W)

The state of row r sees row r-1 at columns c-1..c+1, so the layer's field is
the triangle above the pixel (plus, through K_is, the pixel to its left).
The fast twin (one fused scan op): minipixel/fast/layers.py.
"""
import numpy as np

from ..nn import Parameter
from ..ops import concat, conv2d
from ..sampling.per_pixel.row_lstm import RowLSTMPixels
from .cell import initial_state, lstm_cell
from .conv import MaskedConv2d, condition_conv, uniform_init
from .masks import channel_groups, gate_groups
from .residual import ResidualRecurrentLayer


class RowLSTMLayer(ResidualRecurrentLayer):
    def __init__(self, h, colours, rng, dtype=np.float32, condition_maps=0):
        super().__init__()
        g_io, g_gates = channel_groups(2 * h, colours), gate_groups(h, colours)
        self.input_to_state = MaskedConv2d("B", g_gates, g_io, (1, 3), rng=rng, dtype=dtype)
        self.state_to_state = Parameter(uniform_init(rng, (4 * h, h, 1, 3), 3 * h, dtype))
        self.h0 = Parameter(uniform_init(rng, (h,), h, dtype))
        self.c0 = Parameter(uniform_init(rng, (h,), h, dtype))
        self.output = MaskedConv2d("B", g_io, channel_groups(h, colours), 1, rng=rng, dtype=dtype)
        if condition_maps:
            self.condition = condition_conv(condition_maps, 4 * h, rng, dtype)

    def hidden(self, x, cond=None):
        """The LSTM's hidden states (N, h, H, W) for the layer input x (N, 2h, H, W)
        (and the conditioning map cond (N, c, H, W) in a conditional network)."""
        N, _, H, W = x.shape
        gates = self.input_to_state(x)                                   # K_is (*) x
        if cond is not None:
            gates = gates + self.condition(cond)                         # + V (*) cond
        h = initial_state(self.h0, (N, len(self.h0), 1, W))
        c = initial_state(self.c0, (N, len(self.c0), 1, W))
        rows = []
        for r in range(H):
            pre = gates[:, :, r:r + 1] + conv2d(h, self.state_to_state, padding=(0, 1))
            h, c = lstm_cell(pre, c)
            rows.append(h)
        return concat(rows, axis=2)

    def pixel_steps(self, N, H, W, cond=None):
        """cond: the conditioning map channels last (N, H, W, c) of a conditional network."""
        return RowLSTMPixels(self, N, H, W, cond)  # the per-pixel twin
