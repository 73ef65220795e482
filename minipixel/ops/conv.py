"""2-D convolution (cross-correlation, as PyTorch's conv2d) through im2col.

Notation
--------
N  batch size                 C   input channels      OC  output channels
H  input height               W   input width
KH kernel height              KW  kernel width
PT, PB, PL, PR  zero padding at top, bottom, left, right
Hp = H + PT + PB              Wp = W + PL + PR
OH = Hp - KH + 1              OW = Wp - KW + 1        (stride 1)
T  kernel taps kept by the mask (T = KH * KW when there is no mask)

    out[n, o, y, x] = b[o] + sum_{c, (i, j) in taps} w[o, c, i, j] m[o, c, i, j]
                                                     * xpad[n, c, y + i, x + j]

im2col gathers, for each kept tap (i, j), the input's window at that tap
xpad[:, :, i:i + OH, j:j + OW] into one matrix col of shape (C * T, Q), Q = N * OH * OW
(one copy per tap, of rows of OW values); the convolution is then a single matrix
product (OC, C * T) @ (C * T, Q), whose result is the output, channel-major and
contiguous: no output is computed only to be thrown away, and the gradient needs no
padding. A 1 x 1 conv without padding uses the input itself as col.

The bias rides in the product where col is made anyway (or is smaller than the
output, a 1 x 1 conv to more maps than it reads): a row of ones at the end of col
against b as a last column of the weights, [w | b] @ [col; 1], so neither the
forward nor the backward makes a pass over the output for it (db is the last
column of the weights' gradient g @ [col; 1]^T).

A tap that the mask zeroes for every (o, c) is never gathered or multiplied: the 7x7
mask A keeps 24 of its 49 taps on a grey image (25 on RGB, whose centre tap lets G see
R and B see R, G), a 3x3 mask B 5 of 9.
"""
import numpy as np

from ..backend import get_array_module, to_numpy
from ..tensor import check_same, record


def normalize_padding(padding):
    """int | (ph, pw) | ((PT, PB), (PL, PR))  ->  (PT, PB, PL, PR)."""
    if isinstance(padding, int):
        return (padding,) * 4
    ph, pw = padding
    ph = (ph, ph) if isinstance(ph, int) else tuple(ph)
    pw = (pw, pw) if isinstance(pw, int) else tuple(pw)
    return ph + pw


def kept_taps(mask, KH, KW):
    """The (i, j) kernel positions where the mask is non-zero for some (o, c)."""
    if mask is None:
        return tuple((i, j) for i in range(KH) for j in range(KW))
    used = to_numpy(mask).reshape(-1, KH, KW).any(axis=0)
    return tuple((int(i), int(j)) for i, j in zip(*np.nonzero(used)))


def is_pointwise(taps, OH, OW, Hp, Wp):
    """A 1 x 1 conv without padding: the input is col as it is."""
    return tuple(taps) == ((0, 0),) and (OH, OW) == (Hp, Wp)


def im2col(xpad_t, taps, OH, OW, ones_row=False):
    """(C, N, Hp, Wp) padded input, channel-major  ->  col (C * T, N * OH * OW), one row
    per (channel, tap): the input's window at that tap, one copy per tap; with
    ones_row, one more row of ones at the end (C * T + 1 rows: the bias's)."""
    xp = get_array_module(xpad_t)
    C, N, Hp, Wp = xpad_t.shape
    T, Q = len(taps), N * OH * OW
    if is_pointwise(taps, OH, OW, Hp, Wp) and not ones_row:
        return xpad_t.reshape(C, Q)
    col = xp.empty((C * T + ones_row, Q), dtype=xpad_t.dtype)
    windows = col[:C * T].reshape(C, T, N, OH, OW)
    for t, (i, j) in enumerate(taps):
        windows[:, t] = xpad_t[:, :, i:i + OH, j:j + OW]
    if ones_row:
        col[C * T] = 1
    return col


def col2im(dcol, taps, C, N, Hp, Wp, OH, OW):
    """Adjoint of im2col: (C * T, N * OH * OW)  ->  (C, N, Hp, Wp), one window per tap."""
    xp = get_array_module(dcol)
    if is_pointwise(taps, OH, OW, Hp, Wp):
        return dcol.reshape(C, N, Hp, Wp)
    dcol = dcol.reshape(C, len(taps), N, OH, OW)
    dxpad_t = xp.zeros((C, N, Hp, Wp), dtype=dcol.dtype)
    for t, (i, j) in enumerate(taps):
        dxpad_t[:, :, i:i + OH, j:j + OW] += dcol[:, t]
    return dxpad_t


def tap_weights(w, mask, taps):
    """w (OC, C, KH, KW) and its 0/1 mask (or None)  ->  the kept taps' masked weights
    w_flat (OC, C * T), rows ordered (c, t) as im2col's, and the mask's kept taps
    m_taps (OC, C, T) (None without a mask), which the weight gradient needs."""
    xp = get_array_module(w)
    OC, C = w.shape[:2]
    ti, tj = [i for i, _ in taps], [j for _, j in taps]
    w_taps = w[:, :, ti, tj]                                         # (OC, C, T)
    m_taps = None if mask is None else xp.asarray(mask, dtype=w.dtype)[:, :, ti, tj]
    if m_taps is not None:
        w_taps = w_taps * m_taps
    return w_taps.reshape(OC, C * len(taps)), m_taps


def tap_weights_grad(dw_flat, m_taps, taps, shape):
    """Adjoint of tap_weights: d w_flat (OC, C * T)  ->  dw of the full kernel `shape`,
    masked, zero at the taps not kept."""
    xp = get_array_module(dw_flat)
    OC, C = shape[:2]
    dw_taps = dw_flat.reshape(OC, C, len(taps))
    if m_taps is not None:
        dw_taps = dw_taps * m_taps
    dw = xp.zeros(shape, dtype=dw_flat.dtype)
    dw[:, :, [i for i, _ in taps], [j for _, j in taps]] = dw_taps
    return dw


def conv_inputs(op, x, w, b, in_axis):
    """The tensors of a conv op, checked: x (N, C, H, W), a 4-d w whose axis `in_axis`
    is C (conv2d's w (OC, C, KH, KW): 1; conv_transpose2d's (C, OC, KH, KW): 0), and a
    bias with one entry per output channel or None."""
    tensors = (x, w) if b is None else (x, w, b)
    check_same(*tensors, op=op)
    layout = "(OC, C, KH, KW)" if in_axis == 1 else "(C, OC, KH, KW)"
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[in_axis]:
        raise ValueError(f"{op}: expected x (N, C, H, W) and w {layout} with equal C, "
                         f"got x {x.shape} and w {w.shape}")
    OC = w.shape[1 - in_axis]
    if b is not None and b.shape != (OC,):
        raise ValueError(f"{op}: bias must have shape ({OC},), one per output "
                         f"channel, got {b.shape}")
    return tensors


def conv2d(x, w, b=None, padding=0, mask=None, taps=None):
    """Cross-correlation of x (N, C, H, W) with w (OC, C, KH, KW) -> (N, OC, OH, OW).

    mask: a fixed 0/1 array shaped like w, applied in the forward (w itself is
    never changed); taps: the kept (i, j) positions if already known (derived
    from the mask otherwise). b: optional bias (OC,).
    """
    tensors = conv_inputs("conv2d", x, w, b, in_axis=1)
    if mask is not None and tuple(mask.shape) != w.shape:
        raise ValueError(f"conv2d: mask must have the shape of w {w.shape}, got {tuple(mask.shape)}")
    xp = x.xp
    N, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    PT, PB, PL, PR = normalize_padding(padding)
    Hp, Wp = H + PT + PB, W + PL + PR
    OH, OW = Hp - KH + 1, Wp - KW + 1
    if OH < 1 or OW < 1:
        raise ValueError(f"conv2d: kernel {KH}x{KW} larger than padded input {Hp}x{Wp}")
    taps = kept_taps(mask, KH, KW) if taps is None else tuple(taps)

    # Forward: weights of kept taps (OC, C * T) @ col (C * T, N * OH * OW).
    w_flat, m_taps = tap_weights(w.data, mask, taps)
    if PT or PB or PL or PR:
        xpad_t = xp.zeros((C, N, Hp, Wp), dtype=x.dtype)
        xpad_t[:, :, PT:PT + H, PL:PL + W] = x.data.transpose(1, 0, 2, 3)
    else:
        xpad_t = xp.ascontiguousarray(x.data.transpose(1, 0, 2, 3))
    CT = w_flat.shape[1]
    bias_in_product = b is not None and (not is_pointwise(taps, OH, OW, Hp, Wp) or OC > C)
    col = im2col(xpad_t, taps, OH, OW, ones_row=bias_in_product)      # (C*T [+ 1], N*OH*OW)
    w_mat = xp.concatenate([w_flat, b.data[:, None]], axis=1) if bias_in_product else w_flat
    out = (w_mat @ col).reshape(OC, N, OH, OW)
    if b is not None and not bias_in_product:
        out += b.data[:, None, None, None]
    # (N, OC, OH, OW) as a view of the channel-major result: elementwise ops keep
    # that memory order, so the next conv's transpose to (C, N, H, W) costs no copy.
    out = out.transpose(1, 0, 2, 3)
    need_x, need_w = x.requires_grad, w.requires_grad

    def backward(g):
        g_t = g.transpose(1, 0, 2, 3)                                 # (OC, N, OH, OW)
        g_flat = g_t.reshape(OC, N * OH * OW)
        dx = dw = db = dw_mat = None
        if need_w:                      # [dW | db] = g @ col^T, kept taps only, masked
            dw_mat = g_flat @ col.T
            dw = tap_weights_grad(dw_mat[:, :CT], m_taps, taps, w.shape)
        if need_x:                      # dx = col2im(W^T @ g), padding cropped
            # With one output channel W^T @ g is an outer product, which NumPy's matmul
            # runs in a slow loop (10x); the broadcast product gives the same numbers.
            dcol = w_flat.T * g_flat if OC == 1 else w_flat.T @ g_flat
            dxpad_t = col2im(dcol, taps, C, N, Hp, Wp, OH, OW)
            dx = dxpad_t[:, :, PT:PT + H, PL:PL + W].transpose(1, 0, 2, 3)
        if b is not None:
            db = dw_mat[:, CT] if bias_in_product and need_w else g_flat.sum(axis=1)
        return dx, dw, db
    return record(out, tensors, backward, "conv2d")
