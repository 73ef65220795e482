"""Diagonal BiLSTM layer (paper section 3.2).

Notation: N batch, 2h layer input/output maps, h hidden units, H x W image,
W' = H + W - 1 skewed width.

One direction (left to right):
    x (N, 2h, H, W)
      -> input-to-state K_is: 1 x 1 conv, mask B                      (N, 4h, H, W)
      -> skew, and add K_is's bias (= a 1 x 1 conv on the skewed map) (N, 4h, H, W')
      -> recurrence over the W' skewed columns; state-to-state K_ss:
         2 x 1 unmasked conv over the previous column, padded at the
         top only: state (r, c) sees states (r, c-1) and (r-1, c)      (N, h, H, W')
      -> unskew                                                        (N, h, H, W)
The right-to-left direction flips x left-right, runs the same scan with its
own weights and flips back; its output is then shifted down one row (row 0
becomes zeros), since unshifted it would see the current row to the right.
The two are added, brought back to 2h maps by a 1 x 1 mask B conv, and the
layer input is added (residual).
"""
import numpy as np

from ..nn import Module, Parameter
from ..ops import conv2d, flip, pad, stack, transpose
from .conv import MaskedConv2d, uniform_init
from .lstm_scan import lstm_scan
from .masks import channel_groups, gate_groups
from .skew import skew, unskew

DIAGONAL_OFFSETS = (-1, 0)     # K_ss taps: rows r-1 and r of the previous skewed column


class DiagonalLSTM(Module):
    """One direction of the Diagonal BiLSTM: (N, 2h, H, W) -> hidden states (N, h, H, W)."""

    offsets = DIAGONAL_OFFSETS

    def __init__(self, h, colours, rng, dtype=np.float32):
        super().__init__()
        g_io, g_gates = channel_groups(2 * h, colours), gate_groups(h, colours)
        self.input_to_state = MaskedConv2d("B", g_gates, g_io, 1, rng=rng, dtype=dtype)
        self.state_to_state = Parameter(uniform_init(rng, (4 * h, h, 2, 1), 2 * h, dtype))
        self.h0 = Parameter(uniform_init(rng, (h,), h, dtype))
        self.c0 = Parameter(uniform_init(rng, (h,), h, dtype))

    def columns(self, x):
        """Input-to-state gates of x (N, 2h, H, W), skewed, one step per column: (N, 4h, W', H)."""
        conv = self.input_to_state
        gates = conv2d(x, conv.weight, None, mask=conv.device_mask(), taps=conv.taps)  # (N, 4h, H, W)
        gates = skew(gates) + conv.bias.reshape(1, -1, 1, 1)        # (N, 4h, H, W')
        return transpose(gates, (0, 1, 3, 2))                        # (N, 4h, W', H)

    def forward(self, x):
        hs = lstm_scan(self.columns(x), self.state_to_state, self.h0, self.c0, self.offsets)
        return unskew(transpose(hs, (0, 1, 3, 2)), x.shape[3])       # (N, h, H, W)


def shift_down(x):
    """(N, C, H, W): row r takes row r-1's values; row 0 becomes zeros."""
    return pad(x[:, :, :-1], ((0, 0), (0, 0), (1, 0), (0, 0)))


class DiagonalBiLSTMLayer(Module):
    def __init__(self, h, colours, rng, dtype=np.float32):
        super().__init__()
        self.left_to_right = DiagonalLSTM(h, colours, rng, dtype)
        self.right_to_left = DiagonalLSTM(h, colours, rng, dtype)
        self.output = MaskedConv2d("B", channel_groups(2 * h, colours), channel_groups(h, colours),
                                   1, rng=rng, dtype=dtype)

    def hidden(self, x):
        """Both directions' hidden states, added: (N, h, H, W).

        The two directions run as one scan (a leading direction axis): the
        right-to-left one on the image flipped left-right."""
        l2r, r2l = self.left_to_right, self.right_to_left
        hs = lstm_scan(stack([l2r.columns(x), r2l.columns(flip(x, 3))]),
                       stack([l2r.state_to_state, r2l.state_to_state]),
                       stack([l2r.h0, r2l.h0]), stack([l2r.c0, r2l.c0]), l2r.offsets)
        hs = unskew(transpose(hs.reshape((-1,) + hs.shape[2:]), (0, 1, 3, 2)), x.shape[3])
        N = x.shape[0]
        return hs[:N] + shift_down(flip(hs[N:], 3))

    def forward(self, x):
        return x + self.output(self.hidden(x))
