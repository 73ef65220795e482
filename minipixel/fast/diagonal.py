"""The Diagonal LSTM's directions as one op: input-to-state product, skew, scan, unskew.

The fast twin of DiagonalLSTM.forward (minipixel/layers/diagonal_bilstm.py) for
D = 1 or 2 directions at once; equal to it, forward and every gradient (tested).

Notation: N batch, C = 2h input maps, h hidden units, G = 4h, H x W image,
S = H + W - 1 skewed columns (the scan's steps, scan_core.py), L = H rows.

    x (N, C, H, W); weight (D*G, C, 1, 1) and its mask, bias (D, G),
    k_ss (D, G, h, 2, 1), h0, c0 (D, h)
      -> (D, N, h, H, W): each direction's hidden states; direction 1 runs right
         to left (on the columns reversed) and comes back in the image's order

In each direction's own column order (columns reversed for d = 1):

    gates[d] = (weight_d * mask_d) @ x_d      (G, H, W, N): K_is (*) x, one product each
    act[j][d, :, r]  = bias[d] + gates[d, :, r, j - r]     pixel (r, j - r) of skewed column j
    out[d, :, r, c]  = h[r + c][d, :, r]                   (unskew)

K_is is a 1 x 1 conv, so it commutes with the skew and with the left-right
flip: it runs on x unskewed (half the skewed map's positions). Skewed column j
is a diagonal of the image, read and written as one strided view (``diagonal``).

Which rows the scan computes at skewed column j:
    rows j-W+1 .. j        the image's pixels on that diagonal
    row j+1                one row left of the image (column -1): the bias alone
    rows above j-W+1       right of the image: no output sees them; not computed
    rows below j+1         left of the image: not computed, see below
Left of the image the input is zero (the skew pads with zeros), so the gates
there are the bias alone, and a state there reads only states left of the image
(rows r-1 and r of the previous column, both left of it when row r is): by
induction every row left of the image holds the same state at column j. The
scan computes it once, in row j+1, and reads the rows below as equal to it
(scan_core.py). With K_ss's offsets (-1, 0) this is exact; a kernel that reads
the row below (offset +1) would see the bottom padding, so then every row down
to H-1 is computed.
"""
from ..tensor import check_same, record
from .scan_core import ScanCore


def direction_order(a, d):
    """(..., W, N): direction d's columns in its own order (reversed for d = 1)."""
    return a if d == 0 else a[..., ::-1, :]


def diagonal(a, j, first, count, xp):
    """A view (D, C, count, N) of a (D, C, H, W, N): the pixels (r, j - r) for
    r = first .. first + count - 1, skewed column j's part of the image."""
    st = a.strides
    return xp.lib.stride_tricks.as_strided(a[:, :, first, j - first],
                                           shape=a.shape[:2] + (count, a.shape[4]),
                                           strides=(st[0], st[1], st[2] - st[3], st[4]))


def scan_rows(H, W, every_row):
    """Per skewed column j: the rows the scan computes (first, last) and how many of them,
    from the first, are the image's."""
    rows, image_rows = [], []
    for j in range(H + W - 1):
        first = max(0, j - W + 1)                       # rows above it: right of the image
        last = H - 1 if every_row else min(j + 1, H - 1)
        rows.append((first, last))
        image_rows.append(min(j, H - 1) - first + 1)
    return rows, image_rows


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
    # 1. K_is (*) x, each direction on its own column order: (D, G, H, W, N)
    xt = xp.ascontiguousarray(x.data.transpose(1, 2, 3, 0))                 # (C, H, W, N)
    xs = [xt.reshape(C, H * W * N) if d == 0 else
          xp.ascontiguousarray(direction_order(xt, d)).reshape(C, H * W * N) for d in range(D)]
    w = (weight.data * mask).reshape(D, G, C)
    gates = xp.empty((D, G, H, W, N), dtype=dt)
    for d in range(D):
        xp.matmul(w[d], xs[d], out=gates[d].reshape(G, H * W * N))
    # 2. skew: step j's gate inputs, bias + gates on the image's rows, the bias alone below
    rows, image_rows = scan_rows(H, W, every_row=max(offsets) > 0)
    core = ScanCore(offsets, rows, H, N, D, G, dt, xp)
    b = bias.data.reshape(D, G, 1, 1)
    for j, (first, last) in enumerate(rows):
        k = image_rows[j]
        act = core.act[j].reshape(D, G, last - first + 1, N)
        xp.add(diagonal(gates, j, first, k, xp), b, out=act[:, :, :k])
        act[:, :, k:] = b
    del gates
    # 3. the scan over skewed columns, then unskew
    hs = core.forward(k_ss.data, h0.data, c0.data)
    out = xp.empty((D, n, H, W, N), dtype=dt)
    for j, (first, last) in enumerate(rows):
        k = image_rows[j]
        diagonal(out, j, first, k, xp)[...] = hs[j].reshape(D, n, -1, N)[:, :, :k]
    if D == 2:
        out[1] = out[1, :, :, ::-1].copy()                                   # image order

    def backward(grad):
        g_dir = xp.empty((D, n, H, W, N), dtype=dt)                         # own column order
        for d in range(D):
            g_dir[d] = direction_order(grad[d].transpose(1, 2, 3, 0), d)
        g = core.blocks(n)
        for j, (first, last) in enumerate(rows):
            k = image_rows[j]
            g4 = g[j].reshape(D, n, last - first + 1, N)
            g4[:, :, :k] = diagonal(g_dir, j, first, k, xp)
            g4[:, :, k:] = 0
        dact, dK, dh0, dc0 = core.backward(g)
        dgates = xp.empty((D, G, H, W, N), dtype=dt)                         # unskew d act
        db = xp.zeros((D, G), dtype=dt)             # the bias's, from the rows left of the image
        for j, (first, last) in enumerate(rows):
            k = image_rows[j]
            d4 = dact[j].reshape(D, G, last - first + 1, N)
            diagonal(dgates, j, first, k, xp)[...] = d4[:, :, :k]
            if last - first + 1 > k:
                db += d4[:, :, k:].sum(axis=(2, 3))
        db += dgates.sum(axis=(2, 3, 4))
        dgates = dgates.reshape(D, G, H * W * N)
        dw = xp.stack([dgates[d] @ xs[d].T for d in range(D)]).reshape(weight.shape) * mask
        dxt = w.transpose(0, 2, 1) @ dgates                                  # (D, C, HWN)
        dx = dxt[0].reshape(C, H, W, N)
        for d in range(1, D):
            dx = dx + direction_order(dxt[d].reshape(C, H, W, N), d)
        return dx.transpose(3, 0, 1, 2), dw, db, dK, dh0, dc0
    return record(out.transpose(0, 4, 1, 2, 3), (x, weight, bias, k_ss, h0, c0), backward,
                  "diagonal_lstm")
