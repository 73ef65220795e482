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
(one copy per tap); the convolution is then a single matrix product
(OC, C * T) @ (C * T, Q), whose result is the output, channel-major and contiguous:
no output is computed only to be thrown away. A 1 x 1 conv without padding uses the
input itself as col. The padded input xpad is notation: a same-size conv (OH, OW =
H, W, the masked convs' padding) copies each window from the unpadded image as a shift
of its flattened pixels and writes zeros where the window leaves the image, and its
input gradient adds the shifted windows back the same way (see im2col).

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


def is_pointwise(taps, padding, OH, OW, H, W):
    """A 1 x 1 conv (or one tap kept) reading the unpadded input in place: col is the input."""
    PT, _, PL, _ = padding
    return tuple(taps) == ((0, 0),) and (OH, OW) == (H, W) and PT == PL == 0


def im2col(x_t, taps, padding, OH, OW, ones_row=False):
    """(C, N, H, W) input, channel-major and contiguous, with zero padding (PT, PB, PL, PR)
    ->  col (C * T, N * OH * OW), one row per (channel, tap): the padded input's window at
    that tap; with ones_row, one more row of ones at the end (the bias's).

    A same-size conv (OH, OW = H, W: the masked convs' "same" padding) never builds the
    padded input: in the flattened image (p = y * W + x) the window at tap (i, j) is the
    image shifted by s = (i - PT) * W + (j - PL), so each tap is one copy of a contiguous
    run per (channel, image), and zeros where the shifted position left the image
    (rows above or below it, and the |j - PL| columns that wrapped into the next row)."""
    xp = get_array_module(x_t)
    C, N, H, W = x_t.shape
    PT, PB, PL, PR = padding
    T, Q = len(taps), N * OH * OW
    if is_pointwise(taps, padding, OH, OW, H, W) and not ones_row:
        return x_t.reshape(C, Q)
    col = xp.empty((C * T + ones_row, Q), dtype=x_t.dtype)
    if (OH, OW) == (H, W):
        windows, image = col[:C * T].reshape(C, T, N, H * W), x_t.reshape(C, N, H * W)
        for t, (i, j) in enumerate(taps):
            lo, hi, s = shifted_span(i - PT, j - PL, H, W)
            window = windows[:, t]
            if hi > lo:
                window[..., lo:hi] = image[..., lo + s:hi + s]
            if lo > 0:
                window[..., :lo] = 0
            if hi < H * W:
                window[..., max(hi, lo):] = 0
            zero_wrapped_columns(window, j - PL, W)
    else:
        xpad_t = xp.zeros((C, N, H + PT + PB, W + PL + PR), dtype=x_t.dtype)
        xpad_t[:, :, PT:PT + H, PL:PL + W] = x_t
        windows = col[:C * T].reshape(C, T, N, OH, OW)
        for t, (i, j) in enumerate(taps):
            windows[:, t] = xpad_t[:, :, i:i + OH, j:j + OW]
    if ones_row:
        col[C * T] = 1
    return col


def col2im(dcol, taps, padding, shape, OH, OW):
    """Adjoint of im2col: dcol (C * T, N * OH * OW)  ->  dx_t (C, N, H, W) = `shape`, each
    tap's window added back where it was read (padding dropped). dcol is overwritten."""
    xp = get_array_module(dcol)
    C, N, H, W = shape
    PT, PB, PL, PR = padding
    if is_pointwise(taps, padding, OH, OW, H, W):
        return dcol.reshape(C, N, H, W)
    if (OH, OW) == (H, W):
        dwin = dcol.reshape(C, len(taps), N, H * W)
        shifts = [(i - PT, j - PL) for i, j in taps]
        # the unshifted tap's window, if any, is the sum's first term in place (no zeros)
        first = shifts.index((0, 0)) if (0, 0) in shifts else None
        dx_t = dwin[:, first] if first is not None else xp.zeros((C, N, H * W), dcol.dtype)
        for t, (dy, dx) in enumerate(shifts):
            if t == first:
                continue
            lo, hi, s = shifted_span(dy, dx, H, W)
            window = dwin[:, t]
            zero_wrapped_columns(window, dx, W)            # read from outside the row
            if hi > lo:
                dx_t[..., lo + s:hi + s] += window[..., lo:hi]
        return dx_t.reshape(C, N, H, W)
    dcol = dcol.reshape(C, len(taps), N, OH, OW)
    dxpad_t = xp.zeros((C, N, H + PT + PB, W + PL + PR), dtype=dcol.dtype)
    for t, (i, j) in enumerate(taps):
        dxpad_t[:, :, i:i + OH, j:j + OW] += dcol[:, t]
    return dxpad_t[:, :, PT:PT + H, PL:PL + W]


def shifted_span(dy, dx, H, W):
    """For the image shifted by (dy, dx) in flattened form: the positions [lo, hi) whose
    source p + s, s = dy * W + dx, lies in the image (hi <= lo: none), and s."""
    s = dy * W + dx
    return max(0, -s), min(H * W, H * W - s), s


def zero_wrapped_columns(a, dx, W):
    """a (..., H * W): zero the columns whose source x + dx lies left or right of the row
    (in the flattened image it wrapped into the row above or below)."""
    a = a.reshape(a.shape[:-1] + (a.shape[-1] // W, W))
    if dx > 0:
        a[..., max(W - dx, 0):] = 0
    elif dx < 0:
        a[..., :min(-dx, W)] = 0


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


def conv2d(x, w, b=None, padding=0, mask=None, taps=None):
    """Cross-correlation of x (N, C, H, W) with w (OC, C, KH, KW) -> (N, OC, OH, OW).

    mask: a fixed 0/1 array shaped like w, applied in the forward (w itself is
    never changed); taps: the kept (i, j) positions if already known (derived
    from the mask otherwise). b: optional bias (OC,).
    """
    tensors = (x, w) if b is None else (x, w, b)
    check_same(*tensors, op="conv2d")
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(f"conv2d: expected x (N, C, H, W) and w (OC, C, KH, KW) with equal C, "
                         f"got x {x.shape} and w {w.shape}")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({w.shape[0]},), one per output "
                         f"channel, got {b.shape}")
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
    x_t = xp.ascontiguousarray(x.data.transpose(1, 0, 2, 3))       # (C, N, H, W)
    pads = (PT, PB, PL, PR)
    CT = w_flat.shape[1]
    fold = b is not None and (not is_pointwise(taps, pads, OH, OW, H, W) or OC > C)
    col = im2col(x_t, taps, pads, OH, OW, ones_row=fold)           # (C*T [+ 1], N*OH*OW)
    w_mat = xp.concatenate([w_flat, b.data[:, None]], axis=1) if fold else w_flat
    out = (w_mat @ col).reshape(OC, N, OH, OW)
    if b is not None and not fold:
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
        if need_x:                      # dx = col2im(W^T @ g), padding dropped
            # With one output channel W^T @ g is an outer product, which NumPy's matmul
            # runs in a slow loop (10x); the broadcast product gives the same numbers.
            dcol = w_flat.T * g_flat if OC == 1 else w_flat.T @ g_flat
            dx = col2im(dcol, taps, pads, x_t.shape, OH, OW).transpose(1, 0, 2, 3)
        if b is not None:
            db = dw_mat[:, CT] if fold and need_w else g_flat.sum(axis=1)
        return dx, dw, db
    return record(out, tensors, backward, "conv2d")
