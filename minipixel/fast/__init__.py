"""The fast path: fused twins of the paper path's pieces, each tested equal to its twin.

The paper path (minipixel/layers/) writes each layer from engine ops as the
paper does and lets the engine derive every backward. This package holds the
same computations fused for speed, with hand-written backwards:

    scan.py     the scan both LSTM layers run (eq. 3 over a recurrence's steps, in
                place, one product per step of the stacked weight [K_is | bias | K_ss],
                each step computing only the positions some output needs), with its
                notation, its tap maps and its backward through time
    cell.py     the LSTM cell the scan runs in place, all four gates from one exp
    row.py      the Row LSTM's input-to-state conv and scan over rows as one op
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
from .layers import FastDiagonalBiLSTMLayer, FastDiagonalLSTM, FastRowLSTMLayer
from .losses import sigmoid_nll, softmax_nll
from .row import row_lstm
from .scan import DIAGONAL_OFFSETS, ROW_OFFSETS

__all__ = ["row_lstm", "ROW_OFFSETS", "DIAGONAL_OFFSETS", "FastRowLSTMLayer",
           "FastDiagonalLSTM", "FastDiagonalBiLSTMLayer", "sigmoid_nll", "softmax_nll"]
