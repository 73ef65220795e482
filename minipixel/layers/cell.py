"""The LSTM cell of both PixelRNN layers (paper eq. 3), from engine ops.

    [o, f, i, g] = [sigmoid, sigmoid, sigmoid, tanh](K_ss (*) h_{i-1} + K_is (*) x_i)
    c_i = f . c_{i-1} + i . g
    h_i = o . tanh(c_i)

Gate order: the paper lists the gates as [o, f, i, g]; the code (here, its twins, the
reference files) stores them in PyTorch's order, i, f, g, o: the same four gates, only
the blocks of ``pre`` are laid out differently (channels 0:h are i, h:2h f, 2h:3h g,
3h:4h o).

Shapes: ``pre`` (N, 4h, ...) holds the pre-activations K_is (*) x_i + K_ss (*) h_{i-1}
as those four blocks of h channels; ``c_prev`` (N, h, ...); any trailing axes are
positions updated in parallel. The engine derives the backward. Its twins, each
tested equal to it: the fused in-place cell the scans run (minipixel/fast/cell.py) and
the per-pixel cell of the cached sampler (minipixel/sampling/per_pixel/cell.py).
"""
from ..ops import sigmoid, tanh
from ..tensor import Tensor, check_same


def lstm_cell(pre, c_prev):
    """pre (N, 4h, ...), c_prev (N, h, ...) -> h, c (N, h, ...)."""
    check_same(pre, c_prev, op="lstm_cell")
    n = c_prev.shape[1]
    if pre.shape[1] != 4 * n:
        raise ValueError(f"lstm_cell: pre needs 4h = {4 * n} channels, got {pre.shape[1]}")
    i = sigmoid(pre[:, 0 * n:1 * n])          # input gate
    f = sigmoid(pre[:, 1 * n:2 * n])          # forget gate
    g = tanh(pre[:, 2 * n:3 * n])             # content gate: tanh (sigmoid here is a known bug)
    o = sigmoid(pre[:, 3 * n:4 * n])          # output gate
    c = f * c_prev + i * g
    h = o * tanh(c)
    return h, c


def initial_state(v, shape):
    """A learned initial state v (h,) broadcast to shape (N, h, A, B): v[k] everywhere."""
    N, n, A, B = shape
    return v.reshape(1, n, 1, 1) + Tensor(v.xp.zeros(shape, dtype=v.dtype))
