"""Transposed 2-D convolution with stride (the "deconvolution"), as PyTorch's
conv_transpose2d: the adjoint of a strided cross-correlation.

Notation
--------
N  batch size                 C   input channels      OC  output channels
H  input height               W   input width
KH kernel height              KW  kernel width
s  stride                     p   padding (cropped from each side of the output)
OH = (H - 1) s - 2p + KH      OW = (W - 1) s - 2p + KW

    full[n, o, y s + i, x s + j] += sum_c x[n, c, y, x] w[c, o, i, j] (+ b[o])
    out = full[:, :, p:p + OH, p:p + OW]

Each input pixel paints a KH x KW patch of the output, scaled by its channels, the
patches of neighbours s apart. One matrix product makes every patch at once,

    cols (OC * KH * KW, N * H * W) = w_mat^T @ x_flat        w_mat (C, OC * KH * KW)

and each tap (i, j) then adds its row block into the output with stride s. The
backward reads the same strided windows of the output's gradient (one per tap) and
runs the two products back: dx = w_mat @ dcols, dw = x_flat @ dcols^T.

It is the adjoint of conv2d with the same weight, stride and padding:
<conv2d(u, w), v> = <u, conv_transpose2d(v, w)> (tested, strided against a loop).
"""
from ..tensor import record
from .conv import conv_inputs


def conv_transpose2d(x, w, b=None, stride=1, padding=0):
    """x (N, C, H, W), w (C, OC, KH, KW), b (OC,) or None  ->  (N, OC, OH, OW)."""
    tensors = conv_inputs("conv_transpose2d", x, w, b, in_axis=0)
    s, p = int(stride), int(padding)
    if s < 1 or p < 0:
        raise ValueError(f"conv_transpose2d: stride >= 1 and padding >= 0 expected, "
                         f"got stride={stride}, padding={padding}")
    xp = x.xp
    N, C, H, W = x.shape
    _, OC, KH, KW = w.shape
    FH, FW = (H - 1) * s + KH, (W - 1) * s + KW                  # before the crop
    OH, OW = FH - 2 * p, FW - 2 * p
    if OH < 1 or OW < 1:
        raise ValueError(f"conv_transpose2d: padding {p} crops the whole {FH}x{FW} output")

    x_flat = x.data.transpose(1, 0, 2, 3).reshape(C, N * H * W)
    w_mat = w.data.reshape(C, OC * KH * KW)
    cols = (w_mat.T @ x_flat).reshape(OC, KH, KW, N, H, W)
    full = xp.zeros((OC, N, FH, FW), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            full[:, :, i:i + (H - 1) * s + 1:s, j:j + (W - 1) * s + 1:s] += cols[:, i, j]
    out = full[:, :, p:p + OH, p:p + OW]
    if b is not None:
        out += b.data[:, None, None, None]
    out = out.transpose(1, 0, 2, 3)                                # (N, OC, OH, OW)

    def backward(g):
        g_full = xp.zeros((OC, N, FH, FW), dtype=g.dtype)
        g_full[:, :, p:p + OH, p:p + OW] = g.transpose(1, 0, 2, 3)
        dcols = xp.empty((OC, KH, KW, N, H, W), dtype=g.dtype)
        for i in range(KH):
            for j in range(KW):
                dcols[:, i, j] = g_full[:, :, i:i + (H - 1) * s + 1:s, j:j + (W - 1) * s + 1:s]
        dcols = dcols.reshape(OC * KH * KW, N * H * W)
        dx = (w_mat @ dcols).reshape(C, N, H, W).transpose(1, 0, 2, 3)
        dw = (x_flat @ dcols.T).reshape(w.shape)
        db = None if b is None else g.sum(axis=(0, 2, 3))
        return (dx, dw) if b is None else (dx, dw, db)
    return record(out, tensors, backward, "conv_transpose2d")
