"""The per-pixel twin of minipixel/layers/cell.py: the LSTM cell (paper eq. 3) on raw
arrays, for the cached sampler's one pixel at a time.

    pre (N, 4h): the gates' pre-activations K_is (*) x + K_ss (*) h_prev, in PyTorch's
    order (i, f, g, o), the paper's [o, f, i, g] reordered; c_prev (N, h)

    i, f, o = sigmoid(pre_i), sigmoid(pre_f), sigmoid(pre_o)
    g = tanh(pre_g)
    c = f * c_prev + i * g
    h = o * tanh(c)
"""
from ...backend import get_array_module


def sigmoid(a, xp):
    """1 / (1 + exp(-a)), computed as (1 + tanh(a / 2)) / 2, which cannot overflow."""
    return xp.tanh(a * 0.5) * 0.5 + 0.5


def lstm_cell(pre, c_prev):
    """pre (N, 4h), c_prev (N, h)  ->  h_new, c_new (N, h)."""
    xp, n = get_array_module(pre), c_prev.shape[1]
    gates = sigmoid(pre, xp)                      # i, f, o (g's block is replaced below)
    i, f, o = gates[:, 0 * n:1 * n], gates[:, 1 * n:2 * n], gates[:, 3 * n:4 * n]
    g = xp.tanh(pre[:, 2 * n:3 * n])              # content gate: tanh, not sigmoid
    c_new = f * c_prev + i * g
    h_new = o * xp.tanh(c_new)
    return h_new, c_new
