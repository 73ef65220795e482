"""The per-pixel twin of minipixel/layers/cell.py: the LSTM cell (paper eq. 3) on raw
arrays, for the cached sampler's one pixel at a time.

    pre (N, 4h): the gates' pre-activations K_is (*) x + K_ss (*) h_prev, in PyTorch's
    order (i, f, g, o), the paper's [o, f, i, g] reordered; c_prev (N, h)

    i, f, o = sigmoid(pre_i), sigmoid(pre_f), sigmoid(pre_o)
    g = tanh(pre_g)
    c = f * c_prev + i * g
    h = o * tanh(c)

The four gates come from one tanh, since sigmoid(x) = (1 + tanh(x / 2)) / 2:
act = tanh(s * pre) * s + s_off with s = s_off = 1/2 for i, f, o and s = 1, s_off = 0
for g (one call instead of four on a pixel's small arrays, and no overflow).
"""
import functools

from ...backend import get_array_module


@functools.lru_cache(maxsize=None)
def gate_scales(xp, n, dtype):
    """s and s_off (1, 4h) for h = n hidden units, made once per array module, n and dtype."""
    s = xp.full((1, 4 * n), 0.5, dtype=dtype)
    s[:, 2 * n:3 * n] = 1.0
    s_off = s.copy()
    s_off[:, 2 * n:3 * n] = 0.0
    return s, s_off


def lstm_cell(pre, c_prev):
    """pre (N, 4h), c_prev (N, h)  ->  h_new, c_new (N, h)."""
    xp, n = get_array_module(pre), c_prev.shape[1]
    s, s_off = gate_scales(xp, n, pre.dtype)
    act = xp.tanh(pre * s) * s + s_off              # sigmoid on i, f, o; tanh on g
    i, f, g, o = act[:, 0 * n:1 * n], act[:, 1 * n:2 * n], act[:, 2 * n:3 * n], act[:, 3 * n:]
    c_new = f * c_prev + i * g
    h_new = o * xp.tanh(c_new)
    return h_new, c_new
