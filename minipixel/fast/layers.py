"""The fast twins of the recurrent layers: the same modules and parameters, each
recurrence run as one fused op (row.py, diagonal.py) instead of a loop of engine ops.

    FastRowLSTMLayer         RowLSTMLayer.hidden as one op: input-to-state conv and the
                             scan over rows (row.py)
    FastDiagonalLSTM         DiagonalLSTM: skew, 1 x 1 conv per skewed column, scan over
                             skewed columns, unskew, as one op (diagonal.py)
    FastDiagonalBiLSTMLayer  both directions in one op (D = 2), l2r + shift_down(r2l)
                             included (diagonal_bilstm)

In the Multi-Scale model's conditional network (a layer built with condition_maps
= c > 0) each layer's bias V (*) cond (minipixel/layers/conditioning.py) rides in the
scan's one product per step: cond's c maps join x as more input rows, V joins K_is as
more weight columns (``with_condition``), and nothing else changes. The Diagonal
LSTM's K_is is 1 x 1, so V fits it exactly; the Row LSTM's K_is is 1 x 3 with mask B,
so V sits at its centre tap and the left tap's c columns are zero (c rows more per
kept tap in the product, against a conv of its own and a pass to add it).

Notation: N batch, h hidden units, c conditioning maps, H x W image, W' = H + W - 1. Each equals its
paper twin in minipixel/layers/, forward and every gradient
(reference_tests/test_fast_equals_paper.py); the models use these by default.
"""
from ..layers.diagonal_bilstm import DiagonalBiLSTMLayer, DiagonalLSTM
from ..layers.row_lstm import RowLSTMLayer
from ..ops import concat, pad, stack
from .diagonal import diagonal_bilstm, diagonal_lstm
from .row import row_lstm
from .scan import DIAGONAL_OFFSETS


def with_condition(x, weight, mask, cond, v):
    """The input-to-state product widened by the conditioning: x (N, C, H, W) and
    cond (N, c, H, W) as one input, K_is (G, C, KH, KW) and V (G, c, 1, 1) as one
    weight, V at K_is's centre tap (zero and masked out at the others)."""
    KH, KW = weight.shape[2:]
    centre = ((0, 0), (0, 0), (KH // 2, KH // 2), (KW // 2, KW // 2))
    v_mask = x.xp.zeros(v.shape[:2] + (KH, KW), dtype=mask.dtype)
    v_mask[:, :, KH // 2, KW // 2] = 1
    return (concat([x, cond], axis=1), concat([weight, pad(v, centre)], axis=1),
            x.xp.concatenate([mask, v_mask], axis=1))


class FastRowLSTMLayer(RowLSTMLayer):
    def hidden(self, x, cond=None):
        conv = self.input_to_state
        weight, mask = conv.weight, conv.device_mask()
        if cond is not None:                          # K_is (*) x + V (*) cond: one product
            x, weight, mask = with_condition(x, weight, mask, cond, self.condition.weight)
        return row_lstm(x, weight, mask, conv.taps, conv.bias,
                        self.state_to_state, self.h0, self.c0)           # (N, h, H, W)


# the right-to-left direction's states move down this many rows before they are added
# (shift_down in the paper path): row r then sees only rows above it
R2L_SHIFT = 1


def stacked_direction_args(x, directions, cond=None):
    """diagonal_lstm's arguments for D DiagonalLSTMs (the second, if any, run right to
    left): the input (x, or x and cond as one), their weights, masks and states stacked."""
    convs = [d.input_to_state for d in directions]
    weights, masks = [c.weight for c in convs], [c.device_mask() for c in convs]
    if cond is not None:                              # K_is (*) x + V (*) cond: one product
        widened = [with_condition(x, w, m, cond, d.condition.weight)
                   for w, m, d in zip(weights, masks, directions)]
        x = widened[0][0]
        weights, masks = [w for _, w, _ in widened], [m for _, _, m in widened]
    weight = concat(weights, axis=0) if len(weights) > 1 else weights[0]
    mask = x.xp.concatenate(masks, axis=0)
    return (x, weight, mask, stack([c.bias for c in convs]),
            stack([d.state_to_state for d in directions]),
            stack([d.h0 for d in directions]), stack([d.c0 for d in directions]),
            DIAGONAL_OFFSETS)


class FastDiagonalLSTM(DiagonalLSTM):
    def forward(self, x, cond=None):
        return diagonal_lstm(*stacked_direction_args(x, (self,), cond))[0]


class FastDiagonalBiLSTMLayer(DiagonalBiLSTMLayer):
    direction = FastDiagonalLSTM

    def hidden(self, x, cond=None):
        """Both directions as one scan (D = 2), combined in the same op: l2r plus the
        right-to-left one's states shifted down one row (shift_down in the paper path)."""
        args = stacked_direction_args(x, (self.left_to_right, self.right_to_left), cond)
        return diagonal_bilstm(*args, shift=R2L_SHIFT)
