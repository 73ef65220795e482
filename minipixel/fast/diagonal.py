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

    gates = (weight * mask) @ x            (W, D, G, H, N): K_is (*) x, a product per column
    xg[r + c', d, :, 1 + r] = bias[d] + gates[c, d, :, r]      c' = c, or W-1-c for d = 1
    then the scan (scan.ScanCore), and unskew:
    out[d, :, r, c] = hs[1 + r + c', d, :, 1 + r]

K_is is a 1 x 1 conv, so it commutes with the skew and with the left-right
flip: it runs on x unskewed (half the skewed map's positions). The skew is one
strided view of the scan's buffer (``skew_view``: pixel (r, c) sits at step
r + c, row r), so skewing and unskewing are single copies, not loops.

Which positions the scan computes at step j (skewed column j):
    rows j-W+1 .. j        the image's pixels on that diagonal
    row j+1                one row left of the image (column -1)
    rows above j-W+1       right of the image: no output sees them; not computed
    rows below j+1         left of the image: not computed, see below
Left of the image the input is zero (the skew pads with zeros), so the gates
there are the bias alone, and a state there reads only states left of the image
(rows r-1 and r of the previous column, both left of it when row r is): by
induction every row left of the image holds the same state at step j. The scan
computes it once, in row j+1, and repeats it into row j+2 for step j+1 to read
(ScanCore's repeats). With K_ss's offsets (-1, 0) this is exact; a kernel that
reads the row below (offset +1) would see the bottom padding, so then every
row is computed.
"""
from ..tensor import check_same, record
from .scan import ScanCore


def in_image_order(a, d):
    """(W, ...): direction d's columns in the image's order (reversed for d = 1)."""
    return a if d == 0 else a[::-1]


def column_major(image):
    """(D, C, H, W, N) -> (W, D, C, H, N), a view: the order the image's copies run in
    (one column after another, which suits the skewed layout's memory best)."""
    return image.transpose(3, 0, 1, 2, 4)


def skew_view(buf, rows, cols, first_slot, xp):
    """A view (D, C, rows, cols, N) of buf (S, D, C, H + 1, N), the scan's layout:
    view[d, c, i, k] = buf[i + k, d, c, first_slot + i]; writing to it writes buf."""
    st = buf.strides
    return xp.lib.stride_tricks.as_strided(
        buf[:, :, :, first_slot:], shape=(buf.shape[1], buf.shape[2], rows, cols, buf.shape[4]),
        strides=(st[1], st[2], st[0] + st[3], st[0], st[4]))


def scan_windows(H, W, N, every_row):
    """Per skewed column j: the positions computed (lo, hi) and the row repeated first."""
    windows, repeats = [], []
    for j in range(H + W - 1):
        first = max(0, j - W + 1)                       # rows above it: right of the image
        last = H - 1 if every_row else min(j + 1, H - 1)
        windows.append((N * (1 + first), N * (2 + last)))
        repeats.append(None if every_row or j + 1 > H - 1 else N * (2 + j))
    return windows, repeats


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
    # 1. K_is (*) x for every direction: one product per image column, positions (H, N)
    xw = xp.ascontiguousarray(x.data.transpose(3, 1, 2, 0)).reshape(W, C, H * N)
    w = (weight.data * mask).reshape(D * G, C)
    gates = (w @ xw).reshape(W, D, G, H, N)
    # 2. skew into the scan's layout (S, D, G, H + 1, N): bias + gates on the image,
    #    the bias alone in the row left of it
    every_row = max(offsets) > 0
    xg = xp.empty((S, D, G, H + 1, N), dtype=dt)
    b = bias.data.reshape(D, G, 1, 1)
    if every_row:
        xg[...] = b
    image = column_major(skew_view(xg, H, W, 1, xp))                     # (W, D, G, H, N)
    for d in range(D):
        xp.add(in_image_order(gates[:, d], d), b[d], out=image[:, d])
    skew_view(xg, H - 1, 1, 2, xp)[...] = b[..., None]
    del gates
    # 3. the scan over skewed columns, then unskew
    core = ScanCore(offsets, N, xp)
    windows, repeats = scan_windows(H, W, N, every_row)
    hs = core.forward(xg.reshape(S, D, G, (H + 1) * N), k_ss.data, h0.data, c0.data,
                      windows, repeats)
    hs_image = column_major(skew_view(hs[1:].reshape(S, D, n, H + 1, N), H, W, 1, xp))
    out = xp.empty((W, D, n, H, N), dtype=dt)
    for d in range(D):
        out[:, d] = in_image_order(hs_image[:, d], d)

    def backward(grad):
        gy = grad.transpose(4, 0, 2, 3, 1)                               # (W, D, h, H, N)
        g_scan = xp.zeros((S, D, n, H + 1, N), dtype=dt)                  # skew the gradient
        g_image = column_major(skew_view(g_scan, H, W, 1, xp))
        for d in range(D):
            g_image[:, d] = in_image_order(gy[:, d], d)
        dxg, dK, dh0, dc0 = core.backward(g_scan.reshape(S, D, n, (H + 1) * N))
        dxg = dxg.reshape(S, D, G, H + 1, N)
        dgates = xp.empty((W, D, G, H, N), dtype=dt)                      # unskew d xg
        dxg_image = column_major(skew_view(dxg, H, W, 1, xp))
        for d in range(D):
            dgates[:, d] = in_image_order(dxg_image[:, d], d)
        if every_row:                                    # the bias at every computed position
            db = dxg.sum(axis=(0, 3, 4))
        else:                                            # on the image and in the row left of it
            db = dgates.sum(axis=(0, 3, 4)) + skew_view(dxg, H - 1, 1, 2, xp).sum(axis=(2, 3, 4))
        dgates = dgates.reshape(W, D * G, H * N)
        dw = (dgates @ xw.transpose(0, 2, 1)).sum(axis=0).reshape(weight.shape) * mask
        dx = (w.T @ dgates).reshape(W, C, H, N).transpose(3, 1, 2, 0)
        return dx, dw, db, dK, dh0, dc0
    return record(out.transpose(1, 4, 2, 3, 0), (x, weight, bias, k_ss, h0, c0), backward,
                  "diagonal_lstm")
