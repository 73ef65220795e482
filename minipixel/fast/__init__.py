"""The fast path: fused twins of the paper path's pieces, each tested equal to its twin.

The paper path (minipixel/layers/) writes each layer from engine ops as the
paper does and lets the engine derive every backward. This package holds the
same computations fused for speed, with hand-written backwards:

    cell.py     the LSTM cell, all four gates from one tanh (one exp in place)
    row.py      the Row LSTM's input-to-state conv and scan over rows as one op
    scan_core.py the Diagonal LSTM's scan in place on row blocks, computing only
                the rows some output needs, one product per step of the stacked
                weight [K_is | bias | K_ss]
    diagonal.py the Diagonal LSTM's directions as one op: skew, scan, unskew
    layers.py   FastRowLSTMLayer, FastDiagonalLSTM, FastDiagonalBiLSTMLayer
                (both directions in one scan)
    losses.py   softmax and Bernoulli NLL with their gradients by hand (the
                softmax's exponentials kept from the forward)

Models use it by default (``fast=True``); ``fast=False`` (or the CLI's
``--paper-path``) runs the paper path. Forward and every gradient of each
piece equal its paper twin in float64 at 1e-12
(reference_tests/test_fast_equals_paper.py).
"""
from .cell import lstm_cell
from .layers import FastDiagonalBiLSTMLayer, FastDiagonalLSTM, FastRowLSTMLayer
from .losses import sigmoid_nll, softmax_nll
from .row import row_lstm
from .scan import DIAGONAL_OFFSETS, ROW_OFFSETS

__all__ = ["lstm_cell", "row_lstm", "ROW_OFFSETS", "DIAGONAL_OFFSETS", "FastRowLSTMLayer",
           "FastDiagonalLSTM", "FastDiagonalBiLSTMLayer", "sigmoid_nll", "softmax_nll"]
