"""Row LSTM layer (paper section 3.1).

Notation: N batch, 2h layer input/output maps, h hidden units, H x W image.

    x (N, 2h, H, W)
      -> input-to-state K_is: 1 x 3 conv, mask B, all rows at once   (N, 4h, H, W)
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
from .cell import initial_state, lstm_cell, lstm_cell_arrays
from .conv import MaskedConv2d, PixelConv, uniform_init
from .masks import channel_groups, gate_groups
from .residual import ResidualRecurrentLayer


class RowLSTMLayer(ResidualRecurrentLayer):
    cell_arrays = staticmethod(lstm_cell_arrays)     # the per-pixel step's cell

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
        N, _, H, W = x.shape
        gates = self.input_to_state(x)                                   # K_is (*) x
        h = initial_state(self.h0, (N, len(self.h0), 1, W))
        c = initial_state(self.c0, (N, len(self.c0), 1, W))
        rows = []
        for r in range(H):
            pre = gates[:, :, r:r + 1] + conv2d(h, self.state_to_state, padding=(0, 1))
            h, c = lstm_cell(pre, c)
            rows.append(h)
        return concat(rows, axis=2)

    def pixel_steps(self, N, H, W):
        return RowLSTMPixels(self, N, H, W)


class RowLSTMPixels:
    """The layer at one pixel at a time, for cached sampling, in raw arrays.

    Row r-1's states are final once row r starts, so ``begin_row(r)`` computes
    K_ss (*) h_{r-1} at every column of row r at once; (r, c) adds its own
    1 x 3 input window (mask B: columns c - 1 and c) and runs the cell.

    Grids, channels last: x (N, H, W + 2, 2h) the layer input, one zero column
    each side; h (N, H + 1, W + 2, h) the states, row r + 1 holding row r's
    (row 0: h_{-1} = h0), zero padded at both ends as K_ss pads; c (N, H + 1, W, h)
    likewise."""

    def __init__(self, layer, N, H, W):
        xp, dtype, n = layer.h0.xp, layer.h0.dtype, len(layer.h0)
        self.xp, self.cell = xp, layer.cell_arrays
        self.x = xp.zeros((N, H, W + 2, 2 * n), dtype=dtype)
        self.h = xp.zeros((N, H + 1, W + 2, n), dtype=dtype)
        self.h[:, 0, 1:W + 1] = layer.h0.data
        self.c = xp.zeros((N, H + 1, W, n), dtype=dtype)
        self.c[:, 0] = layer.c0.data
        self.k_is, self.out = layer.input_to_state.at_pixel(self.x), layer.output.at_pixel()
        self.k_ss = PixelConv(layer.state_to_state.data, None, None, (1, 3), self.h)

    def begin_row(self, r):
        """K_ss (*) h_{r-1} for the whole row r: (N, W, 4h) (grid row r holds h_{r-1})."""
        self.from_above = self.k_ss.row(r)
        self.k_is.begin_row(r)

    def at(self, x, r, c, out):
        """Layer output at (r, c) into out (N, 2h), for its input x (N, 2h) there."""
        self.x[:, r, c + 1] = x
        pre = self.k_is.at(r, c)
        pre += self.from_above[:, c]
        h, cc = self.cell(pre, self.c[:, r, c])
        self.h[:, r + 1, c + 1], self.c[:, r + 1, c] = h, cc
        return self.xp.add(x, self.out.vec(h), out=out)
