"""The per-pixel twin of minipixel/layers/diagonal_bilstm.py: the Diagonal BiLSTM layer
at one pixel.

Tested equal to the layer's forward pass at every pixel
(reference_tests/test_per_pixel_twins.py).
"""
from .cell import lstm_cell
from .conv import condition_bias


def edge_states(direction, H):
    """States of one direction at (r, -1), r = 0..H-1, shape (H, h) each for h and c.

    (0, -1) is the initial state (h0, c0). (r, -1) for r >= 1 is skewed
    position (r, r - 1): the scan over skewed columns with zero input (gates =
    bias) gives it exactly, since left-of-image states see only each other."""
    xp = direction.h0.xp
    k_ss = direction.state_to_state.data                 # (4h, h, 2, 1): rows r-1, r
    bias = direction.input_to_state.bias.data
    h0, c0 = direction.h0.data, direction.c0.data
    h_col = xp.broadcast_to(h0, (H, len(h0)))            # skewed column -1, every row
    c_col = xp.broadcast_to(c0, (H, len(c0)))
    h_edge, c_edge = [h0], [c0]
    for j in range(H - 1):                              # skewed column j: edge row j + 1
        above = xp.concatenate([xp.zeros_like(h_col[:1]), h_col[:-1]])   # zero padded on top
        pre = bias + above @ k_ss[:, :, 0, 0].T + h_col @ k_ss[:, :, 1, 0].T
        h_col, c_col = lstm_cell(pre, c_col)
        h_edge.append(h_col[j + 1])
        c_edge.append(c_col[j + 1])
    return xp.stack(h_edge), xp.stack(c_edge)


class DirectionPixels:
    """One direction (a DiagonalLSTM) one position at a time, in raw arrays.

    On the skewed map the state at (r, col) follows those at (r-1, col) and (r, col-1):

        pre(r, col)          = K_is x(r, col) + K_above h(r-1, col) + K_left h(r, col-1)
        h(r, col), c(r, col) = cell(pre(r, col), c(r, col-1))

    Grids h_grid, c_grid (N, H + 1, W + 1, h): index [r + 1, col + 1] holds (r, col);
    row 0 is the zero padding above, column 0 the states left of the image
    (`edge_states`: the skewed map is padding there). Row r-1's states are final once
    row r starts, so ``begin_row(r)`` takes K_above h(r-1, col) for the whole row.

    In a conditional network (the Multi-Scale model) the direction's bias V (*) cond is
    computed once, at every pixel, from cond (N, H, W, c), channels last, in this
    direction's own column order (mirrored for the right-to-left one), and
    ``begin_row(r)`` adds its row r there too. The states left of the image stay as
    they are: the skewed map of cond is zero there, as the skewed input is."""

    def __init__(self, direction, N, H, W, cond=None):
        xp, dtype, n = direction.h0.xp, direction.h0.dtype, len(direction.h0)
        self.xp = xp
        self.k_is = direction.input_to_state.at_pixel()
        k_ss = direction.state_to_state.data
        self.k_above, self.k_left = k_ss[:, :, 0, 0].T, k_ss[:, :, 1, 0].T  # (h, 4h)
        self.h_grid = xp.zeros((N, H + 1, W + 1, n), dtype=dtype)
        self.c_grid = xp.zeros((N, H + 1, W + 1, n), dtype=dtype)
        self.h_grid[:, 1:, 0], self.c_grid[:, 1:, 0] = edge_states(direction, H)
        self.bias = condition_bias(direction, cond)                      # V (*) cond

    def begin_row(self, r):
        """K_above h(r-1, col) (+ V (*) cond) for every column col of row r: (N, W, 4h)."""
        N, _, W1, n = self.h_grid.shape
        above = self.h_grid[:, r, 1:].reshape(N * (W1 - 1), n)             # a 2-d product
        self.from_above = self.xp.dot(above, self.k_above).reshape(N, W1 - 1, -1)
        if self.bias is not None:
            self.from_above += self.bias[:, r]

    def at(self, x, r, col):
        """The state h (N, h) at (r, col) for the input x (N, 2h) there; (r, col-1) done."""
        pre = self.k_is.vec(x)
        pre += self.from_above[:, col]
        pre += self.xp.dot(self.h_grid[:, r + 1, col], self.k_left)
        h_new, c_new = lstm_cell(pre, self.c_grid[:, r + 1, col])
        self.h_grid[:, r + 1, col + 1], self.c_grid[:, r + 1, col + 1] = h_new, c_new
        return h_new


class DiagonalPixels:
    """The layer at one pixel at a time, for cached sampling, in raw arrays.

    Left-to-right pass: pixel by pixel (DirectionPixels). Right-to-left pass,
    shifted down: row r needs that pass's states of row r-1, which see only rows
    <= r-1, all final when row r starts; so ``begin_row(r)`` runs that direction
    along row r-1, right to left (DirectionPixels on the mirrored row), from its
    states of row r-2. The layer input x_grid (N, H, W, 2h) is kept, channels last.
    cond: the conditioning map (N, H, W, c), channels last, or None; the right-to-left
    pass reads it mirrored, as the layer's forward does."""

    def __init__(self, layer, N, H, W, cond=None):
        w = layer.output.weight                                        # (2h, h, 1, 1)
        xp, dtype, n = w.xp, w.dtype, w.shape[1]
        self.xp, self.W = xp, W
        self.l2r = DirectionPixels(layer.left_to_right, N, H, W, cond)
        self.r2l = DirectionPixels(layer.right_to_left, N, H, W,      # on the mirrored image
                                   None if cond is None else cond[:, :, ::-1])
        self.out = layer.output.at_pixel()
        self.x_grid = xp.zeros((N, H, W, 2 * n), dtype=dtype)
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
        for m in range(W):                                   # mirrored column m = W - 1 - col
            states[:, W - 1 - m] = self.r2l.at(self.x_grid[:, q, W - 1 - m], q, m)
        return states

    def at(self, x, r, col, out):
        """Layer output at (r, col) into out (N, 2h), for its input x (N, 2h) there."""
        self.x_grid[:, r, col] = x
        h = self.l2r.at(x, r, col)                     # cached by l2r; free to add to
        h += self.r2l_above[:, col]
        return self.xp.add(x, self.out.vec(h), out=out)
