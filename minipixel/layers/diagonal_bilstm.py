"""Diagonal BiLSTM layer (paper section 3.2).

Notation: N batch, 2h layer input/output maps, h hidden units, H x W image,
W' = H + W - 1 skewed width.

One direction (left to right), DiagonalLSTM:
    x (N, 2h, H, W)
      -> skew: row r shifted right by r                                (N, 2h, H, W')
      -> input-to-state K_is: 1 x 1 conv, mask B, on the skewed map    (N, 4h, H, W')
         (plus V (*) skew(cond) in the Multi-Scale model's conditional network:
         conditioning.py)
      -> for each skewed column j, left to right (eq. 3):
           pre_j = K_is (*) x [column j] + K_ss (*) h_{j-1}           (N, 4h, H, 1)
           h_j, c_j = lstm_cell(pre_j, c_{j-1})                          (N, h, H, 1)
         K_ss: 2 x 1 unmasked conv over the previous column, zero padded
         at the top only, so state (r, c) sees states (r-1, c) and (r, c-1)
         (padding at the bottom would see the row below: a leak)
      -> unskew                                                         (N, h, H, W)
The layer, DiagonalBiLSTMLayer: two directions. The right-to-left one runs on x
flipped left-right and is flipped back; its output is then shifted down one
row (row 0 becomes zeros), since unshifted it would see the current row to the
right. The two are added, brought back to 2h maps by a 1 x 1 mask B conv, and
the layer input is added (residual). The fast twin (both directions in one
fused scan op): minipixel/fast/layers.py.
"""
import numpy as np

from ..nn import Module, Parameter
from ..ops import concat, conv2d, flip, pad, skew, unskew
from ..sampling.per_pixel.diagonal_bilstm import DiagonalPixels
from .cell import initial_state, lstm_cell
from .conv import MaskedConv2d, condition_conv, uniform_init
from .masks import channel_groups, gate_groups
from .residual import ResidualRecurrentLayer


class DiagonalLSTM(Module):
    """One direction of the Diagonal BiLSTM: (N, 2h, H, W) -> hidden states (N, h, H, W)."""

    state_padding = ((1, 0), (0, 0))         # K_ss 2 x 1: one zero row on top, none below

    def __init__(self, h, colours, rng, dtype=np.float32, condition_maps=0):
        super().__init__()
        g_io, g_gates = channel_groups(2 * h, colours), gate_groups(h, colours)
        self.input_to_state = MaskedConv2d("B", g_gates, g_io, 1, rng=rng, dtype=dtype)
        self.state_to_state = Parameter(uniform_init(rng, (4 * h, h, 2, 1), 2 * h, dtype))
        self.h0 = Parameter(uniform_init(rng, (h,), h, dtype))
        self.c0 = Parameter(uniform_init(rng, (h,), h, dtype))
        if condition_maps:
            self.condition = condition_conv(condition_maps, 4 * h, rng, dtype)

    def forward(self, x, cond=None):
        N, _, H, W = x.shape
        gates = self.input_to_state(skew(x))                             # K_is (*) skew(x)
        if cond is not None:
            gates = gates + self.condition(skew(cond))                   # + V (*) skew(cond)
        h = initial_state(self.h0, (N, len(self.h0), H, 1))
        c = initial_state(self.c0, (N, len(self.c0), H, 1))
        columns = []
        for j in range(H + W - 1):
            pre = gates[:, :, :, j:j + 1] + conv2d(h, self.state_to_state,
                                                   padding=self.state_padding)
            h, c = lstm_cell(pre, c)
            columns.append(h)
        return unskew(concat(columns, axis=3), W)


def shift_down(x):
    """(N, C, H, W): row r takes row r-1's values; row 0 becomes zeros."""
    return pad(x[:, :, :-1], ((0, 0), (0, 0), (1, 0), (0, 0)))


class DiagonalBiLSTMLayer(ResidualRecurrentLayer):
    direction = DiagonalLSTM                 # the class of each direction

    def __init__(self, h, colours, rng, dtype=np.float32, condition_maps=0):
        super().__init__()
        self.left_to_right = self.direction(h, colours, rng, dtype, condition_maps)
        self.right_to_left = self.direction(h, colours, rng, dtype, condition_maps)
        self.output = MaskedConv2d("B", channel_groups(2 * h, colours), channel_groups(h, colours),
                                   1, rng=rng, dtype=dtype)

    def hidden(self, x, cond=None):
        """Both directions' hidden states, the right-to-left one shifted down: (N, h, H, W)
        (each direction reads cond, the conditioning map, in its own column order)."""
        l2r = self.left_to_right(x, cond)
        r2l = flip(self.right_to_left(flip(x, 3), None if cond is None else flip(cond, 3)), 3)
        return l2r + shift_down(r2l)

    def pixel_steps(self, N, H, W, cond=None):
        """cond: the conditioning map channels last (N, H, W, c) of a conditional network."""
        return DiagonalPixels(self, N, H, W, cond)  # the per-pixel twin
