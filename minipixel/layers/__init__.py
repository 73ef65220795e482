"""The building blocks of the paper's models, each written as the paper writes it.

Every layer here is built from engine ops (minipixel/ops) and the engine derives
its backward; each file opens with the equation it implements and its shapes.
The fused, faster twins are in minipixel/fast/ (tested equal). The notes on the
paper behind all of this: docs/paper.md.

    masks.py            mask A / B and the R, G, B channel groups
    conv.py             Conv2d, MaskedConv2d (and a conv at one pixel)
    cell.py             the LSTM cell (eq. 3): sigmoid on i, f, o; tanh on g and c
    row_lstm.py         Row LSTM layer: a loop over rows, K_ss a 1 x 3 conv
    diagonal_bilstm.py  Diagonal LSTM (skew, a loop over columns, K_ss a 2 x 1
                        conv, unskew) and the Diagonal BiLSTM layer
    residual.py         PixelCNN residual block
    losses.py           softmax and Bernoulli NLL from one log_softmax, bits/dim
skew and unskew are shape ops: minipixel/ops/shape.py.
"""
from .cell import lstm_cell
from .conv import Conv2d, MaskedConv2d
from .diagonal_bilstm import DiagonalBiLSTMLayer, DiagonalLSTM, shift_down
from .losses import bits_per_dim, sigmoid_nll, softmax_nll
from .masks import channel_groups, conv_mask, gate_groups
from .residual import PixelCNNBlock
from .row_lstm import RowLSTMLayer

__all__ = ["Conv2d", "MaskedConv2d", "DiagonalBiLSTMLayer", "DiagonalLSTM", "shift_down",
           "bits_per_dim", "sigmoid_nll", "softmax_nll", "lstm_cell",
           "channel_groups", "conv_mask", "gate_groups", "PixelCNNBlock", "RowLSTMLayer"]
