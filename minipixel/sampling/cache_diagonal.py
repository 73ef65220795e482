"""Diagonal BiLSTM at one pixel.

Left-to-right pass: the state at (r, c) needs the states at (r-1, c) and
(r, c-1) (the 2 x 1 kernel on the skewed map), so it advances pixel by pixel.
Left of the image (c = -1) the skewed map is padding: those states never see
the image, so they are computed once (`edge_states`).
Right-to-left pass, shifted down: row r needs that pass's states of row r-1,
which see only rows <= r-1, all final when row r starts: one scan per row,
over the rows drawn so far (`begin_row`).
"""
from ..ops import flip
from ..tensor import Tensor
from .position import PositionConv, cell


def edge_states(direction, H, xp):
    """States at (r, -1) for r = 0..H-1, shape (H, h) each for h and c.

    (0, -1) is the initial state (h0, c0). (r, -1) for r >= 1 is skewed
    position (r, r - 1): the scan over skewed columns with zero input (gates =
    bias) gives it exactly, since left-of-image states see only each other."""
    k = direction.state_to_state.data                    # (4h, h, 2, 1): rows r-1, r
    bias = direction.input_to_state.bias.data
    h0, c0 = direction.h0.data, direction.c0.data
    h = xp.broadcast_to(h0, (H, len(h0)))                # skewed column -1, every row
    c = xp.broadcast_to(c0, (H, len(c0)))
    hs, cs = [h0], [c0]
    for j in range(H - 1):                              # skewed column j: edge row j + 1
        above = xp.concatenate([xp.zeros_like(h[:1]), h[:-1]])   # zero padded at the top
        pre = bias + above @ k[:, :, 0, 0].T + h @ k[:, :, 1, 0].T
        h, c = cell(pre, c, xp)
        hs.append(h[j + 1])
        cs.append(c[j + 1])
    return xp.stack(hs), xp.stack(cs)


class DiagonalCache:
    def __init__(self, layer, N, H, W, xp, dtype):
        l2r = layer.left_to_right
        self.layer, self.xp, self.W = layer, xp, W
        self.k_is = PositionConv(l2r.input_to_state)
        k = l2r.state_to_state.data
        self.k_above, self.k_left = k[:, :, 0, 0].T, k[:, :, 1, 0].T       # (h, 4h)
        self.out = PositionConv(layer.output)
        n = l2r.h0.shape[0]
        self.x = xp.zeros((N, 2 * n, H, W), dtype=dtype)                  # layer input
        # l2r states; index [r + 1, c + 1] holds (r, c); row 0 = zero pad above,
        # column 0 = the edge states (r, -1).
        self.h = xp.zeros((N, H + 1, W + 1, n), dtype=dtype)
        self.c = xp.zeros((N, H + 1, W + 1, n), dtype=dtype)
        eh, ec = edge_states(l2r, H, xp)
        self.h[:, 1:, 0], self.c[:, 1:, 0] = eh, ec
        self.r2l_above = xp.zeros((N, n, W), dtype=dtype)                 # shifted r2l, row r

    def begin_row(self, r):
        """The right-to-left pass over rows 0..r-1 of the layer input; keep row r-1."""
        if r == 0:
            return
        r2l = self.layer.right_to_left
        states = flip(r2l(flip(Tensor(self.x[:, :, :r]), 3)), 3).data     # (N, h, r, W)
        self.r2l_above = states[:, :, r - 1]

    def at(self, x, r, c):
        self.x[:, :, r, c] = x
        pre = (self.k_is.vec(x) + self.h[:, r, c + 1] @ self.k_above
               + self.h[:, r + 1, c] @ self.k_left)
        h, cc = cell(pre, self.c[:, r + 1, c], self.xp)
        self.h[:, r + 1, c + 1], self.c[:, r + 1, c + 1] = h, cc
        return x + self.out.vec(h + self.r2l_above[:, :, c])
