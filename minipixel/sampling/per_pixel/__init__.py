"""The per-pixel twins: each layer and model evaluated one pixel at a time, for the cached
sampler (sampling/cached.py), in raw arrays, no graph.

A pixel's outputs depend only on earlier pixels, which do not change once drawn, so
each twin keeps what it computed for earlier pixels (its grids, channels last) and
computes only the new pixel. One file per file of minipixel/layers/ (and one for
minipixel/models/base.py), named like its twin; each layer links to its twin with a
one-line ``pixel_steps()``. Every twin gives its layer's forward pass at each pixel
(reference_tests/test_per_pixel_twins.py).

    conv.py             PixelConv: a (masked) conv at one output position
    cell.py             the LSTM cell (eq. 3) on one pixel's arrays
    row_lstm.py         RowLSTMPixels
    diagonal_bilstm.py  DirectionPixels (one direction), DiagonalPixels (the layer)
    residual.py         PixelCNNPixels, and the (leaky) ReLU on arrays
    base.py             ModelPixels: the whole model, ``logits(r, col, k)``

Notation, in every file: N images drawn together, r a row, col a column, k a colour;
grids are (N, rows, columns, maps), padded as the twin's convolution pads.
"""
