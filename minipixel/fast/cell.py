"""The LSTM cell (paper eq. 3), fused: forward and backward by hand on raw arrays.

The fast twin of minipixel/layers/cell.py (which writes eq. 3 from sigmoid and
tanh ops); equal to it, forward and backward (reference_tests/test_fast_equals_paper.py).

Notation
--------
h hidden units; gates lie on axis 1 of ``pre``, any other axes are positions
updated in parallel (batch, pixels, directions). ``pre`` (., 4h, ...) holds the
gate pre-activations K_is (*) x_i + K_ss (*) h_{i-1}, in PyTorch's gate order
(i, f, g, o):

    pre[:, 0h:1h]  input gate    i = sigmoid(.)
    pre[:, 1h:2h]  forget gate   f = sigmoid(.)
    pre[:, 2h:3h]  content gate  g = tanh(.)      (tanh, not sigmoid: a known bug)
    pre[:, 3h:4h]  output gate   o = sigmoid(.)

    c_i = f * c_{i-1} + i * g
    h_i = o * tanh(c_i)

All four activations come from one tanh, since sigmoid(x) = (1 + tanh(x/2)) / 2:
    act = s * tanh(s * pre) + s_off,   s = 1/2, s_off = 1/2 for i, f, o;  s = 1, s_off = 0 for g
    d act / d pre = s^2 * (1 - tanh(s * pre)^2) = s^2 - (act - s_off)^2
                  = act (1 - act) for i, f, o;  1 - g^2 for g
so the backward needs only `act`, not the pre-activations.
"""
import functools

from ..backend import get_array_module
from ..tensor import check_same, record


def gate_scale(xp, n, ndim, dtype):
    """s and s_off per gate channel, shaped to broadcast along axis 1 of an ndim-array."""
    s = xp.full(4 * n, 0.5, dtype=dtype)
    s[2 * n:3 * n] = 1.0
    off = s.copy()
    off[2 * n:3 * n] = 0.0
    shape = (4 * n,) + (1,) * (ndim - 2)
    return s.reshape(shape), off.reshape(shape)


def lstm_cell_forward(pre, c_prev, xp, scale=None):
    """pre (., 4h, ...), c_prev (., h, ...) -> h, c (., h, ...) and the cache for the backward.

    scale: gate_scale's (s, off) for these shapes, if the caller keeps them."""
    n = c_prev.shape[1]
    s, off = scale if scale is not None else gate_scale(xp, n, pre.ndim, pre.dtype)
    act = xp.tanh(pre * s) * s + off
    i, f, g, o = act[:, :n], act[:, n:2 * n], act[:, 2 * n:3 * n], act[:, 3 * n:]
    c = f * c_prev + i * g
    tc = xp.tanh(c)
    return o * tc, c, (s, off, act, c_prev, tc)


def lstm_cell_backward(dh, dc, cache, xp):
    """Gradients of h and c  ->  gradients of pre (., 4h, ...) and c_prev (., h, ...).

    The steps undo the forward's, last line first."""
    s, off, act, c_prev, tc = cache
    n = c_prev.shape[1]
    i, f, g, o = act[:, :n], act[:, n:2 * n], act[:, 2 * n:3 * n], act[:, 3 * n:]
    dact = xp.empty_like(act)
    # 1. h = o * tanh(c)
    dact[:, 3 * n:] = dh * tc                           # do
    dc = dc + dh * o * (1 - tc * tc)
    # 2. c = f * c_prev + i * g
    dact[:, :n] = dc * g                                # di
    dact[:, n:2 * n] = dc * c_prev                      # df
    dact[:, 2 * n:3 * n] = dc * i                       # dg
    # 3. act = s * tanh(s * pre) + s_off:  d act / d pre = s^2 - (act - s_off)^2
    centred = act - off
    return dact * (s * s - centred * centred), dc * f


def exp_gate_scale(xp, n, dtype):
    """k (4h, 1): -1 for i, f, o and -2 for g, the scaling of pre that lstm_cell_step takes."""
    k = xp.full((4 * n, 1), -1.0, dtype=dtype)
    k[2 * n:3 * n] = -2.0
    return k


def lstm_cell_step(act, c_prev, c, tc, h, tmp, xp):
    """The same forward in place, for the scan's inner loop: no allocation.

    act (D, 4h, M) holds z = k * pre on entry (k from exp_gate_scale: the scan folds
    it into its weights) and the gate activations (i, f, g, o) on exit; c, tc = tanh(c),
    h (D, h, M) are written into the given buffers; tmp (D, h, M) is scratch.

    The gates come from one exp rather than one tanh (NumPy's float32 exp costs
    about half its tanh): sigmoid(x) = 1 / (1 + exp(-x)) for i, f, o, and
    tanh(x) = 2 sigmoid(2x) - 1 for g. Where z is large, exp(z) overflows to inf and
    the gate to its exact limit 0 (the caller silences NumPy's overflow warning)."""
    n = c_prev.shape[1]
    xp.exp(act, out=act)
    act += 1
    xp.divide(1, act, out=act)                          # sigmoid(pre); sigmoid(2 pre) for g
    i, f, g, o = act[:, :n], act[:, n:2 * n], act[:, 2 * n:3 * n], act[:, 3 * n:]
    g *= 2
    g -= 1                                              # g = tanh(pre)
    xp.multiply(f, c_prev, out=c)                       # c = f * c_prev + i * g
    xp.multiply(i, g, out=tmp)
    c += tmp
    xp.tanh(c, out=tc)
    xp.multiply(o, tc, out=h)                           # h = o * tanh(c)


def lstm_cell_step_backward(dh, dc, act, c_prev, tc, dact, tmp, tmp_g, xp):
    """lstm_cell_step's backward in place: dh, dc (D, h, M)  ->  dact (D, 4h, M) = d pre,
    and dc overwritten with d c_prev. tmp (D, h, M), tmp_g (D, 4h, M) scratch.

    The steps of lstm_cell_backward, in the same order."""
    n = c_prev.shape[1]
    i, f, g, o = act[:, :n], act[:, n:2 * n], act[:, 2 * n:3 * n], act[:, 3 * n:]
    # 1. h = o * tanh(c)
    xp.multiply(dh, tc, out=dact[:, 3 * n:])            # do
    xp.multiply(tc, tc, out=tmp)
    xp.subtract(1, tmp, out=tmp)
    tmp *= o
    tmp *= dh
    dc += tmp                                           # dc += dh * o * (1 - tanh(c)^2)
    # 2. c = f * c_prev + i * g
    xp.multiply(dc, g, out=dact[:, :n])                 # di
    xp.multiply(dc, c_prev, out=dact[:, n:2 * n])       # df
    xp.multiply(dc, i, out=dact[:, 2 * n:3 * n])        # dg
    # 3. d act / d pre: sigmoid' = act (1 - act) for i, f, o; tanh' = 1 - g^2 for g
    xp.subtract(1, act, out=tmp_g)
    tmp_g *= act
    xp.multiply(g, g, out=tmp_g[:, 2 * n:3 * n])
    xp.subtract(1, tmp_g[:, 2 * n:3 * n], out=tmp_g[:, 2 * n:3 * n])
    dact *= tmp_g
    dc *= f                                             # d c_prev


def lstm_cell(pre, c_prev):
    """The cell as an engine op: Tensors pre (N, 4h, ...), c_prev (N, h, ...) -> (h, c).

    One fused op with a hand-written backward; h and c come out as two views of
    one recorded output (N, 2h, ...)."""
    check_same(pre, c_prev, op="lstm_cell")
    if pre.shape[1] != 4 * c_prev.shape[1]:
        raise ValueError(f"lstm_cell: pre needs 4h = {4 * c_prev.shape[1]} channels, "
                         f"got {pre.shape[1]}")
    xp, n = pre.xp, c_prev.shape[1]
    h, c, cache = lstm_cell_forward(pre.data, c_prev.data, xp)

    def backward(g):
        return lstm_cell_backward(g[:, :n], g[:, n:], cache, xp)
    hc = record(xp.concatenate([h, c], axis=1), (pre, c_prev), backward, "lstm_cell")
    return hc[:, :n], hc[:, n:]


@functools.lru_cache(maxsize=None)
def kept_gate_scale(xp, n, ndim, dtype):
    """gate_scale with a leading axis of 1, made once per (array module, h, ndim, dtype);
    read-only. With the batch axis present, one image's products need no broadcasting."""
    s, off = gate_scale(xp, n, ndim, dtype)
    return s[None], off[None]


def lstm_cell_arrays(pre, c_prev):
    """The fused cell on raw arrays, no graph (the cached samplers' per-pixel steps: one
    call per layer and sub-pixel, so the gate scales are kept, not remade)."""
    xp = get_array_module(pre)
    scale = kept_gate_scale(xp, c_prev.shape[1], pre.ndim, pre.dtype)
    h, c, _ = lstm_cell_forward(pre, c_prev, xp, scale)
    return h, c
