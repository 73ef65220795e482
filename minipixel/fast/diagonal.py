"""The Diagonal LSTM's directions as one op: input-to-state product, skew, scan, unskew.

The fast twin of DiagonalLSTM.forward (minipixel/layers/diagonal_bilstm.py) for
D = 1 or 2 directions at once; equal to it, forward and every gradient (tested).

Notation: N batch, C = 2h input maps, h hidden units, G = 4h, H x W image,
S = H + W - 1 skewed columns (the scan's steps), M = (H + 1) * N positions per
step (scan.py's layout: step-major, positions (row, image), a padding slot in front).

    x (N, C, H, W); weight (D*G, C, 1, 1) and its mask, bias (D, G),
    k_ss (D, G, h, 2, 1), h0, c0 (D, h)
      -> (D, N, h, H, W): each direction's hidden states; direction 1 runs right
         to left (on the columns reversed) and comes back in the image's order

    gates = (weight * mask) @ x            (D, G, H, W, N): K_is (*) x, one product
    xg[r + c', d, :, 1 + r] = bias[d] + gates[d, :, r, c]      c' = c, or W-1-c for d = 1
    xg = bias at every other skewed position; then the scan (scan.ScanCore)
    out[d, :, r, c] = hs[1 + r + c', d, :, 1 + r]              (unskew)

K_is is a 1 x 1 conv, so it commutes with the skew and with the left-right
flip: it runs on x unskewed (half the skewed map's positions), and the skew is
a copy of its output straight into the scan's layout, one image row at a time
(contiguous runs of N values); unskew and the backward's skews are the same
copies the other way.
"""
from ..tensor import check_same, record
from .scan import ScanCore


def in_image_order(a, d):
    """(..., W, N): direction d's columns in the image's order (reversed for d = 1)."""
    return a if d == 0 else a[..., ::-1, :]


def diagonal_lstm(x, weight, mask, bias, k_ss, h0, c0, offsets):
    """(N, C, H, W), (D*4h, C, 1, 1), mask, (D, 4h), (D, 4h, h, 2, 1), (D, h), (D, h)
    -> (D, N, h, H, W)."""
    check_same(x, weight, bias, k_ss, h0, c0, op="diagonal_lstm")
    xp = x.xp
    N, C, H, W = x.shape
    D, G = bias.shape
    n, S, dt = G // 4, H + W - 1, x.dtype
    if weight.shape != (D * G, C, 1, 1) or k_ss.shape[:3] != (D, G, n) or \
            h0.shape != (D, n) or c0.shape != (D, n):
        raise ValueError(f"diagonal_lstm: x (N, C, H, W), weight (D*4h, C, 1, 1), bias (D, 4h), "
                         f"k_ss (D, 4h, h, 2, 1), h0 and c0 (D, h) expected, got {x.shape}, "
                         f"{weight.shape}, {bias.shape}, {k_ss.shape}, {h0.shape}, {c0.shape}")
    # 1. K_is (*) x for every direction: one product, positions (H, W, N)
    xt = xp.ascontiguousarray(x.data.transpose(1, 2, 3, 0)).reshape(C, H * W * N)
    w = (weight.data * mask).reshape(D * G, C)
    gates = (w @ xt).reshape(D, G, H, W, N)
    # 2. skew into the scan's layout (S, D, G, H + 1, N), the bias at every position
    xg = xp.empty((S, D, G, H + 1, N), dtype=dt)
    xg[...] = bias.data.reshape(D, G, 1, 1)
    for d in range(D):
        for r in range(H):
            xg[r:r + W, d, :, 1 + r] += in_image_order(gates[d, :, r], d).transpose(1, 0, 2)
    del gates
    # 3. the scan over skewed columns, then unskew
    core = ScanCore(offsets, N, xp)
    # skewed column j reaches the image's right edge at row j - W + 1: the rows above
    # it are right of the image, where no output looks; they are not computed
    live = [N * (1 + max(0, j - W + 1)) for j in range(S)]
    hs = core.forward(xg.reshape(S, D, G, (H + 1) * N), k_ss.data, h0.data, c0.data, live)
    hs = hs[1:].reshape(S, D, n, H + 1, N)
    out = xp.empty((D, n, H, W, N), dtype=dt)
    for d in range(D):
        for r in range(H):
            out[d, :, r] = in_image_order(hs[r:r + W, d, :, 1 + r].transpose(1, 0, 2), d)

    def backward(grad):
        gy = grad.transpose(0, 2, 3, 4, 1)                               # (D, h, H, W, N)
        g_scan = xp.zeros((S, D, n, H + 1, N), dtype=dt)                  # skew the gradient
        for d in range(D):
            for r in range(H):
                g_scan[r:r + W, d, :, 1 + r] = in_image_order(gy[d, :, r], d).transpose(1, 0, 2)
        dxg, dK, dh0, dc0 = core.backward(g_scan.reshape(S, D, n, (H + 1) * N))
        db = dxg.sum(axis=(0, 3))                     # every skewed position (padding slots: 0)
        dxg = dxg.reshape(S, D, G, H + 1, N)
        dgates = xp.empty((D, G, H, W, N), dtype=dt)                      # unskew d xg
        for d in range(D):
            for r in range(H):
                dgates[d, :, r] = in_image_order(dxg[r:r + W, d, :, 1 + r].transpose(1, 0, 2), d)
        dgates = dgates.reshape(D * G, H * W * N)
        dw = (dgates @ xt.T).reshape(weight.shape) * mask
        dx = (w.T @ dgates).reshape(C, H, W, N).transpose(3, 0, 1, 2)
        return dx, dw, db, dK, dh0, dc0
    return record(out.transpose(0, 4, 1, 2, 3), (x, weight, bias, k_ss, h0, c0), backward,
                  "diagonal_lstm")
