"""The building blocks of the paper's models, each with its causal structure.

    masks.py            mask A / B and the R, G, B channel groups
    conv.py             Conv2d, MaskedConv2d
    lstm_cell.py        the LSTM cell (i, f, g, o), forward and backward by hand
    lstm_scan.py        the recurrence shared by both LSTM layers
    row_lstm.py         Row LSTM layer
    skew.py             skew / unskew
    diagonal_bilstm.py  Diagonal BiLSTM layer
    residual.py         PixelCNN residual block
    losses.py           softmax and Bernoulli NLL, bits/dim
"""
from .conv import Conv2d, MaskedConv2d
from .diagonal_bilstm import DiagonalBiLSTMLayer, DiagonalLSTM, shift_down
from .losses import bits_per_dim, sigmoid_nll, softmax_nll
from .lstm_cell import lstm_cell
from .lstm_scan import lstm_scan
from .masks import channel_groups, conv_mask, gate_groups
from .residual import PixelCNNBlock
from .row_lstm import RowLSTMLayer
from .skew import skew, unskew

__all__ = ["Conv2d", "MaskedConv2d", "DiagonalBiLSTMLayer", "DiagonalLSTM", "shift_down",
           "bits_per_dim", "sigmoid_nll", "softmax_nll", "lstm_cell", "lstm_scan",
           "channel_groups", "conv_mask", "gate_groups", "PixelCNNBlock", "RowLSTMLayer",
           "skew", "unskew"]
