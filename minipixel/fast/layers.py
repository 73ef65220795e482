"""The fast twins of the recurrent layers: the same modules and parameters, each
recurrence run as one fused op (row.py, diagonal.py) instead of a loop of engine ops.

    FastRowLSTMLayer         RowLSTMLayer.hidden as one op: input-to-state conv and the
                             scan over rows (row.py)
    FastDiagonalLSTM         DiagonalLSTM: skew, 1 x 1 conv per skewed column, scan over
                             skewed columns, unskew, as one op (diagonal.py)
    FastDiagonalBiLSTMLayer  both directions in one op (D = 2), l2r + shift_down(r2l)
                             included (diagonal_bilstm)

Notation: N batch, h hidden units, H x W image, W' = H + W - 1. Each equals its
paper twin in minipixel/layers/, forward and every gradient
(reference_tests/test_fast_equals_paper.py); the models use these by default.
"""
from ..layers.diagonal_bilstm import DiagonalBiLSTMLayer, DiagonalLSTM
from ..layers.row_lstm import RowLSTMLayer
from ..ops import concat, stack
from .diagonal import diagonal_bilstm, diagonal_lstm
from .row import row_lstm
from .scan import DIAGONAL_OFFSETS


class FastRowLSTMLayer(RowLSTMLayer):
    def hidden(self, x):
        conv = self.input_to_state
        return row_lstm(x, conv.weight, conv.device_mask(), conv.taps, conv.bias,
                        self.state_to_state, self.h0, self.c0)           # (N, h, H, W)


# the right-to-left direction's states move down this many rows before they are added
# (shift_down in the paper path): row r then sees only rows above it
R2L_SHIFT = 1


def stacked_direction_args(x, directions):
    """diagonal_lstm's arguments after x for D DiagonalLSTMs (the second, if any, run
    right to left): their weights, masks and states stacked."""
    convs = [d.input_to_state for d in directions]
    weight = concat([c.weight for c in convs], axis=0) if len(convs) > 1 else convs[0].weight
    mask = x.xp.concatenate([c.device_mask() for c in convs], axis=0)
    return (weight, mask, stack([c.bias for c in convs]),
            stack([d.state_to_state for d in directions]),
            stack([d.h0 for d in directions]), stack([d.c0 for d in directions]),
            DIAGONAL_OFFSETS)


class FastDiagonalLSTM(DiagonalLSTM):
    def forward(self, x):
        return diagonal_lstm(x, *stacked_direction_args(x, (self,)))[0]


class FastDiagonalBiLSTMLayer(DiagonalBiLSTMLayer):
    direction = FastDiagonalLSTM

    def hidden(self, x):
        """Both directions as one scan (D = 2), combined in the same op: l2r plus the
        right-to-left one's states shifted down one row (shift_down in the paper path)."""
        args = stacked_direction_args(x, (self.left_to_right, self.right_to_left))
        return diagonal_bilstm(x, *args, shift=R2L_SHIFT)
