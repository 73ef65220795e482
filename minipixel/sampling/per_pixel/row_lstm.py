"""The per-pixel twin of minipixel/layers/row_lstm.py: the Row LSTM layer at one pixel.

Tested equal to the layer's forward pass at every pixel
(reference_tests/test_per_pixel_twins.py).
"""
from .cell import lstm_cell
from .conv import PixelConv, condition_bias


class RowLSTMPixels:
    """The layer at one pixel at a time, for cached sampling, in raw arrays.

    Row r-1's states are final once row r starts, so ``begin_row(r)`` computes
    K_ss (*) h_{r-1} at every column of row r at once; (r, col) adds its own
    1 x 3 input window (mask B: columns col - 1 and col) and runs the cell.

    In a conditional network (the Multi-Scale model) the layer's bias V (*) cond is
    computed once, at every pixel (``bias`` (N, H, W, 4h)), and ``begin_row(r)`` adds
    its row r to what every pixel of the row adds to its own K_is term.

    Grids, channels last: x_grid (N, H, W + 2, 2h) the layer input, one zero column
    each side; h_grid (N, H + 1, W + 2, h) the states, row r + 1 holding row r's
    (row 0: h_{-1} = h0), zero padded at both ends as K_ss pads; c_grid
    (N, H + 1, W, h) likewise. cond: the conditioning map (N, H, W, c), channels last,
    or None."""

    def __init__(self, layer, N, H, W, cond=None):
        xp, dtype, n = layer.h0.xp, layer.h0.dtype, len(layer.h0)
        self.xp = xp
        self.x_grid = xp.zeros((N, H, W + 2, 2 * n), dtype=dtype)
        self.h_grid = xp.zeros((N, H + 1, W + 2, n), dtype=dtype)
        self.h_grid[:, 0, 1:W + 1] = layer.h0.data
        self.c_grid = xp.zeros((N, H + 1, W, n), dtype=dtype)
        self.c_grid[:, 0] = layer.c0.data
        self.k_is = layer.input_to_state.at_pixel(self.x_grid)
        self.out = layer.output.at_pixel()
        self.k_ss = PixelConv(layer.state_to_state.data, None, None, (1, 3), self.h_grid)
        self.bias = condition_bias(layer, cond)                          # V (*) cond

    def begin_row(self, r):
        """K_ss (*) h_{r-1} (+ V (*) cond) for the whole row r: (N, W, 4h) (grid row r
        holds h_{r-1})."""
        self.from_above = self.k_ss.row(r)
        if self.bias is not None:
            self.from_above += self.bias[:, r]
        self.k_is.begin_row(r)

    def at(self, x, r, col, out):
        """Layer output at (r, col) into out (N, 2h), for its input x (N, 2h) there."""
        self.x_grid[:, r, col + 1] = x
        pre = self.k_is.at(r, col)
        pre += self.from_above[:, col]
        h_new, c_new = lstm_cell(pre, self.c_grid[:, r, col])
        self.h_grid[:, r + 1, col + 1], self.c_grid[:, r + 1, col] = h_new, c_new
        return self.xp.add(x, self.out.vec(h_new), out=out)
