"""Row LSTM at one pixel: row r-1's states are final, so (r, c) needs only
its own 1 x 3 input window, and the previous row's h at c-1..c+1 and c at c."""
from .position import PositionConv, cell


class RowLSTMCache:
    def __init__(self, layer, N, H, W, xp, dtype):
        self.k_is = PositionConv(layer.input_to_state)
        self.k_ss = PositionConv(_Unmasked(layer.state_to_state), bias=False)
        self.out = PositionConv(layer.output)
        n = layer.h0.shape[0]
        self.x = xp.zeros((N, 2 * n, H, W + 2), dtype=dtype)        # layer input, 1 column pad
        self.h = xp.zeros((N, n, H + 1, W + 2), dtype=dtype)        # row 0 here is h_{-1} = h0
        self.h[:, :, 0, 1:W + 1] = layer.h0.data[None, :, None]
        self.c = xp.zeros((N, n, H + 1, W), dtype=dtype)
        self.c[:, :, 0] = layer.c0.data[None, :, None]
        self.xp = xp

    def begin_row(self, r):
        pass

    def at(self, x, r, c):
        self.x[:, :, r, c + 1] = x
        pre = self.k_is.at(self.x, r, c) + self.k_ss.at(self.h, r, c)  # h rows r-1 (padded index r)
        h, cc = cell(pre, self.c[:, :, r, c], self.xp)
        self.h[:, :, r + 1, c + 1], self.c[:, :, r + 1, c] = h, cc
        return x + self.out.vec(h)


class _Unmasked:
    """Adapter: a bare state-to-state kernel seen as an unmasked, bias-free conv."""

    def __init__(self, weight):
        self.weight, self.bias = weight, None
