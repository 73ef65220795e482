"""The fast twins of the recurrent layers: the same modules and parameters, each
recurrence run as one fused scan op (scan.py) instead of a loop of engine ops.

    FastRowLSTMLayer         RowLSTMLayer.hidden as lstm_scan over rows (D = 1)
    FastDiagonalLSTM         DiagonalLSTM: 1 x 1 conv, skew, + bias, lstm_scan over
                             skewed columns (D = 1), unskew
    FastDiagonalBiLSTMLayer  both directions in one lstm_scan (D = 2)

Notation: N batch, h hidden units, H x W image, W' = H + W - 1. Each equals its
paper twin in minipixel/layers/, forward and every gradient
(reference_tests/test_fast_equals_paper.py); the models use these by default.
"""
from ..layers.diagonal_bilstm import DiagonalBiLSTMLayer, DiagonalLSTM, shift_down
from ..layers.row_lstm import RowLSTMLayer
from ..ops import flip, skew, stack, transpose, unskew
from .cell import lstm_cell_arrays
from .scan import DIAGONAL_OFFSETS, ROW_OFFSETS, lstm_scan


def one_direction(t):
    """(...) -> (1, ...): the scan's direction axis, D = 1."""
    return t.reshape((1,) + t.shape)


class FastRowLSTMLayer(RowLSTMLayer):
    cell_arrays = staticmethod(lstm_cell_arrays)

    def hidden(self, x):
        gates = self.input_to_state(x)                                   # (N, 4h, H, W)
        hs = lstm_scan(one_direction(gates), one_direction(self.state_to_state),
                       one_direction(self.h0), one_direction(self.c0), ROW_OFFSETS)
        return hs.reshape(hs.shape[1:])                                  # (N, h, H, W)


class FastDiagonalLSTM(DiagonalLSTM):
    cell_arrays = staticmethod(lstm_cell_arrays)

    def columns(self, x):
        """Input-to-state gates of x (N, 2h, H, W), skewed, one step per column: (N, 4h, W', H).

        The 1 x 1 conv runs on the unskewed map (half the work) and its bias is added
        after the skew, at every skewed position: the same as the conv on skew(x)."""
        conv = self.input_to_state
        gates = skew(conv(x, bias=False)) + conv.bias.reshape(1, -1, 1, 1)   # (N, 4h, H, W')
        return transpose(gates, (0, 1, 3, 2))

    def forward(self, x):
        hs = lstm_scan(one_direction(self.columns(x)), one_direction(self.state_to_state),
                       one_direction(self.h0), one_direction(self.c0), DIAGONAL_OFFSETS)
        return unskew(transpose(hs.reshape(hs.shape[1:]), (0, 1, 3, 2)), x.shape[3])


class FastDiagonalBiLSTMLayer(DiagonalBiLSTMLayer):
    direction = FastDiagonalLSTM

    def hidden(self, x):
        """Both directions as one scan (D = 2), the right-to-left one on x flipped."""
        l2r, r2l = self.left_to_right, self.right_to_left
        hs = lstm_scan(stack([l2r.columns(x), r2l.columns(flip(x, 3))]),
                       stack([l2r.state_to_state, r2l.state_to_state]),
                       stack([l2r.h0, r2l.h0]), stack([l2r.c0, r2l.c0]), DIAGONAL_OFFSETS)
        N = x.shape[0]                        # (2, N, h, W', H) -> (2N, h, H, W): l2r, then r2l
        both = unskew(transpose(hs.reshape((2 * N,) + hs.shape[2:]), (0, 1, 3, 2)), x.shape[3])
        return both[:N] + shift_down(flip(both[N:], 3))
