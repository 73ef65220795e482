"""Diagonal BiLSTM layer (paper section 3.2).

Notation: N batch, 2h layer input/output maps, h hidden units, H x W image,
W' = H + W - 1 skewed width.

One direction (left to right), DiagonalLSTM:
    x (N, 2h, H, W)
      -> skew: row r shifted right by r                                (N, 2h, H, W')
      -> input-to-state K_is: 1 x 1 conv, mask B, on the skewed map    (N, 4h, H, W')
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
from .cell import initial_state, lstm_cell, lstm_cell_arrays
from .conv import MaskedConv2d, uniform_init
from .masks import channel_groups, gate_groups
from .residual import ResidualRecurrentLayer


class DiagonalLSTM(Module):
    """One direction of the Diagonal BiLSTM: (N, 2h, H, W) -> hidden states (N, h, H, W)."""

    state_padding = ((1, 0), (0, 0))         # K_ss 2 x 1: one zero row on top, none below
    cell_arrays = staticmethod(lstm_cell_arrays)

    def __init__(self, h, colours, rng, dtype=np.float32):
        super().__init__()
        g_io, g_gates = channel_groups(2 * h, colours), gate_groups(h, colours)
        self.input_to_state = MaskedConv2d("B", g_gates, g_io, 1, rng=rng, dtype=dtype)
        self.state_to_state = Parameter(uniform_init(rng, (4 * h, h, 2, 1), 2 * h, dtype))
        self.h0 = Parameter(uniform_init(rng, (h,), h, dtype))
        self.c0 = Parameter(uniform_init(rng, (h,), h, dtype))

    def forward(self, x):
        N, _, H, W = x.shape
        gates = self.input_to_state(skew(x))                             # K_is (*) skew(x)
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

    def __init__(self, h, colours, rng, dtype=np.float32):
        super().__init__()
        self.left_to_right = self.direction(h, colours, rng, dtype)
        self.right_to_left = self.direction(h, colours, rng, dtype)
        self.output = MaskedConv2d("B", channel_groups(2 * h, colours), channel_groups(h, colours),
                                   1, rng=rng, dtype=dtype)

    def hidden(self, x):
        """Both directions' hidden states, the right-to-left one shifted down: (N, h, H, W)."""
        l2r = self.left_to_right(x)
        r2l = flip(self.right_to_left(flip(x, 3)), 3)
        return l2r + shift_down(r2l)

    def pixel_steps(self, N, H, W):
        return DiagonalPixels(self, N, H, W)


def edge_states(direction, H):
    """States of one direction at (r, -1), r = 0..H-1, shape (H, h) each for h and c.

    (0, -1) is the initial state (h0, c0). (r, -1) for r >= 1 is skewed
    position (r, r - 1): the scan over skewed columns with zero input (gates =
    bias) gives it exactly, since left-of-image states see only each other."""
    xp = direction.h0.xp
    k = direction.state_to_state.data                    # (4h, h, 2, 1): rows r-1, r
    bias = direction.input_to_state.bias.data
    h0, c0 = direction.h0.data, direction.c0.data
    h = xp.broadcast_to(h0, (H, len(h0)))                # skewed column -1, every row
    c = xp.broadcast_to(c0, (H, len(c0)))
    hs, cs = [h0], [c0]
    for j in range(H - 1):                              # skewed column j: edge row j + 1
        above = xp.concatenate([xp.zeros_like(h[:1]), h[:-1]])   # zero padded at the top
        pre = bias + above @ k[:, :, 0, 0].T + h @ k[:, :, 1, 0].T
        h, c = direction.cell_arrays(pre, c)
        hs.append(h[j + 1])
        cs.append(c[j + 1])
    return xp.stack(hs), xp.stack(cs)


class DirectionPixels:
    """One direction (a DiagonalLSTM) one position at a time, in raw arrays.

    On the skewed map the state at (r, c) follows those at (r-1, c) and (r, c-1):

        pre(r, c)        = K_is x(r, c) + K_above h(r-1, c) + K_left h(r, c-1)     (N, 4h)
        h(r, c), c(r, c) = cell(pre(r, c), c(r, c-1))

    Grids h, c (N, H + 1, W + 1, h): index [r + 1, c + 1] holds (r, c); row 0 is
    the zero padding above, column 0 the states left of the image (`edge_states`:
    the skewed map is padding there). Row r-1's states are final once row r
    starts, so ``begin_row(r)`` takes K_above h(r-1, c) for the whole row."""

    def __init__(self, direction, N, H, W):
        xp, dtype, n = direction.h0.xp, direction.h0.dtype, len(direction.h0)
        self.xp, self.cell = xp, direction.cell_arrays
        self.k_is = direction.input_to_state.at_pixel()
        k = direction.state_to_state.data
        self.k_above, self.k_left = k[:, :, 0, 0].T, k[:, :, 1, 0].T       # (h, 4h)
        self.h = xp.zeros((N, H + 1, W + 1, n), dtype=dtype)
        self.c = xp.zeros((N, H + 1, W + 1, n), dtype=dtype)
        self.h[:, 1:, 0], self.c[:, 1:, 0] = edge_states(direction, H)

    def begin_row(self, r):
        """K_above h(r-1, c) for every column c of row r: (N, W, 4h)."""
        N, _, W1, n = self.h.shape
        above = self.h[:, r, 1:].reshape(N * (W1 - 1), n)                  # a 2-d product
        self.from_above = self.xp.dot(above, self.k_above).reshape(N, W1 - 1, -1)

    def at(self, x, r, c):
        """The state h (N, h) at (r, c) for the input x (N, 2h) there; (r, c-1) done."""
        pre = self.k_is.vec(x)
        pre += self.from_above[:, c]
        pre += self.xp.dot(self.h[:, r + 1, c], self.k_left)
        h, cc = self.cell(pre, self.c[:, r + 1, c])
        self.h[:, r + 1, c + 1], self.c[:, r + 1, c + 1] = h, cc
        return h


class DiagonalPixels:
    """The layer at one pixel at a time, for cached sampling, in raw arrays.

    Left-to-right pass: pixel by pixel (DirectionPixels). Right-to-left pass,
    shifted down: row r needs that pass's states of row r-1, which see only rows
    <= r-1, all final when row r starts; so ``begin_row(r)`` runs that direction
    along row r-1, right to left (DirectionPixels on the mirrored row), from its
    states of row r-2. The layer input x (N, H, W, 2h) is kept, channels last."""

    def __init__(self, layer, N, H, W):
        w = layer.output.weight                                        # (2h, h, 1, 1)
        xp, dtype, n = w.xp, w.dtype, w.shape[1]
        self.xp, self.W = xp, W
        self.l2r = DirectionPixels(layer.left_to_right, N, H, W)
        self.r2l = DirectionPixels(layer.right_to_left, N, H, W)      # on the mirrored image
        self.out = layer.output.at_pixel()
        self.x = xp.zeros((N, H, W, 2 * n), dtype=dtype)
        self.r2l_above = xp.zeros((N, W, n), dtype=dtype)              # shifted r2l, row r

    def begin_row(self, r):
        """The l2r pass's row-above products; the r2l pass's states of row r-1."""
        self.l2r.begin_row(r)
        if r > 0:
            self.r2l_above = self.right_to_left_row(r - 1)

    def right_to_left_row(self, q):
        """The right-to-left pass's states (N, W, h) along row q (rows < q done)."""
        W = self.W
        self.r2l.begin_row(q)
        states = self.xp.empty_like(self.r2l_above)
        for m in range(W):                                   # mirrored column m = W - 1 - c
            states[:, W - 1 - m] = self.r2l.at(self.x[:, q, W - 1 - m], q, m)
        return states

    def at(self, x, r, c, out):
        """Layer output at (r, c) into out (N, 2h), for its input x (N, 2h) there."""
        self.x[:, r, c] = x
        h = self.l2r.at(x, r, c)                       # cached by l2r; free to add to
        h += self.r2l_above[:, c]
        return self.xp.add(x, self.out.vec(h), out=out)
