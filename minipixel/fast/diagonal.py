"""The Diagonal LSTM's directions as one op: input-to-state product, skew, scan, unskew.

The fast twin of DiagonalLSTM.forward (minipixel/layers/diagonal_bilstm.py) for
D = 1 or 2 directions at once (``diagonal_lstm``), and of DiagonalBiLSTMLayer.hidden,
l2r + shift_down(r2l), with the combination inside the op (``diagonal_bilstm``);
equal to them, forward and every gradient (tested).

Notation: N batch, C = 2h input maps, h hidden units (n in the code, where h names the
hidden states), G = 4h, H x W image, S = H + W - 1 skewed columns (the scan's steps,
scan.py), L = H rows (its positions).

    x (N, C, H, W); weight (D*G, C, 1, 1) and its mask, bias (D, G),
    k_ss (D, G, h, 2, 1), h0, c0 (D, h)
      -> (D, N, h, H, W): each direction's hidden states; direction 1 runs right
         to left (on the columns reversed) and comes back in the image's order

In each direction's own column order (columns reversed for d = 1), with step j
computing rows first_j .. last_j (below), the scan's input and output are

    x_skew[d][:, step j's columns] = x[:, r, j - r] for its rows r on the image, else 0
    pre[j][d] = [weight_d * mask_d | bias_d | K_ss_d] @ [x_skew_j ; 1 ; taps_j]   (scan.py)
    out[d, :, r, c] = h[r + c][d, :, r]                                 (unskew)

K_is is a 1 x 1 conv, so it commutes with the skew: the skew moves x's C maps,
not the 4h gate maps per direction, and each step's K_is (*) x is part of the
step's one product. Each skewed column is a diagonal of the image, read and
written as one slice (``diagonal``) of pixel-major arrays (H, W, maps, N), where
a pixel's maps are one contiguous run. The steps' columns lie side by side in one
matrix per direction (x_skew, the first C rows of the scan's stacked inputs, and
d pre from Scan.backward), so the backward's products for the stacked
weight's and the input's gradients are one each, over all steps at once.

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
(scan.py). With K_ss's offsets (-1, 0) this is exact; a kernel that reads
the row below (offset +1) would see the bottom padding, so then every row down
to H-1 is computed.
"""
import functools

from ..tensor import check_same, record
from .scan import Scan, split_weight, stacked_weight


def in_scan_order(a, d):
    """(H, W, ...): direction d's columns in its own order (reversed for d = 1)."""
    return a if d == 0 else a[:, ::-1]


def diagonal(a, j, first, count):
    """A view (D, C, count, N) of a (D, H, W, C, N), pixel-major: the pixels (r, j - r)
    for r = first .. first + count - 1, skewed column j's part of the image. In the
    flattened pixels (r * W + c) they are every (W - 1)-th, from j + first * (W - 1)."""
    D, H, W, C, N = a.shape
    start = j + first * (W - 1)
    pixels = a.reshape(D, H * W, C, N)[:, start:start + (count - 1) * (W - 1) + 1:max(W - 1, 1)]
    return pixels.transpose(0, 2, 1, 3)


@functools.lru_cache(maxsize=64)
def scan_rows(H, W, every_row):
    """Per skewed column j: the rows the scan computes (first, last) and how many of them,
    from the first, are the image's."""
    rows, image_rows = [], []
    for j in range(H + W - 1):
        first = max(0, j - W + 1)                       # rows above it: right of the image
        last = H - 1 if every_row else min(j + 1, H - 1)
        rows.append((first, last))
        image_rows.append(min(j, H - 1) - first + 1)
    return tuple(rows), tuple(image_rows)


def diagonal_lstm(x, weight, mask, bias, k_ss, h0, c0, offsets):
    """(N, C, H, W), (D*4h, C, 1, 1), mask, (D, 4h), (D, 4h, h, 2, 1), (D, h), (D, h)
    -> (D, N, h, H, W), each direction's hidden states."""
    check_same(x, weight, bias, k_ss, h0, c0, op="diagonal_lstm")
    out, backward = scan_directions(x, weight, mask, bias, k_ss, h0, c0, offsets)   # (D, H, W, h, N)
    return record(out.transpose(0, 4, 3, 1, 2), (x, weight, bias, k_ss, h0, c0),
                  lambda grad: backward(grad.transpose(0, 3, 4, 2, 1)), "diagonal_lstm")


def diagonal_bilstm(x, weight, mask, bias, k_ss, h0, c0, offsets, shift):
    """The same for D = 2, the two directions combined as the Diagonal BiLSTM combines
    them: l2r + r2l shifted down by `shift` rows (1; row r takes row r - 1's states,
    row 0 zeros)  ->  (N, h, H, W)."""
    check_same(x, weight, bias, k_ss, h0, c0, op="diagonal_bilstm")
    if bias.shape[0] != 2:
        raise ValueError(f"diagonal_bilstm: two directions expected, got bias {bias.shape}")
    out, backward = scan_directions(x, weight, mask, bias, k_ss, h0, c0, offsets)   # (2, H, W, h, N)
    H = out.shape[1]
    y = out[0]                                           # out is this op's own: add in place
    y[shift:] += out[1][:H - shift]

    def combined_backward(grad):
        g = grad.transpose(2, 3, 1, 0)                                   # (H, W, h, N)
        g_r2l = x.xp.zeros_like(g)
        g_r2l[:H - shift] = g[shift:]
        return backward((g, g_r2l))
    return record(y.transpose(3, 2, 0, 1), (x, weight, bias, k_ss, h0, c0), combined_backward,
                  "diagonal_bilstm")


def scan_directions(x, weight, mask, bias, k_ss, h0, c0, offsets):
    """The op's work on raw arrays: -> out (D, H, W, h, N), pixel-major in the image's
    order, and backward(g) from the D directions' gradients (H, W, h, N) each, any
    strides, to the gradients of x, weight, bias, k_ss, h0, c0."""
    xp = x.xp
    N, C, H, W = x.shape
    D, G = bias.shape
    n, dt = G // 4, x.dtype
    if weight.shape != (D * G, C, 1, 1) or k_ss.shape[:3] != (D, G, n) or \
            h0.shape != (D, n) or c0.shape != (D, n):
        raise ValueError(f"diagonal LSTM: x (N, C, H, W), weight (D*4h, C, 1, 1), bias (D, 4h), "
                         f"k_ss (D, 4h, h, 2, 1), h0 and c0 (D, h) expected, got {x.shape}, "
                         f"{weight.shape}, {bias.shape}, {k_ss.shape}, {h0.shape}, {c0.shape}")
    rows, image_rows = scan_rows(H, W, every_row=max(offsets) > 0)
    scan = Scan(offsets, rows, H, N, D, G, C, dt, xp)
    # 1. skew x into the scan's inputs, one matrix per direction, step j's rows in
    #    columns spans[j]: x on the image's rows, zero below them (left of the image)
    spans = scan.spans
    x_scan = xp.empty((D, H, W, C, N), dtype=dt)
    x_scan[0] = x.data.transpose(2, 3, 1, 0)
    for d in range(1, D):
        x_scan[d] = in_scan_order(x_scan[0], d)
    x_skew = scan.x
    for j, ((lo, hi), count) in enumerate(zip(spans, image_rows)):
        x_skew[:, :, lo:lo + count * N].reshape(D, C, count, N)[...] = \
            diagonal(x_scan, j, rows[j][0], count)
        x_skew[:, :, lo + count * N:hi] = 0
    del x_scan
    # 2. the stacked weight [K_is | bias | K_ss]
    T = len(offsets)
    w = (weight.data * mask).reshape(D, G, C)
    stacked = stacked_weight(w, bias.data, k_ss.data.reshape(D, G, n, T), xp)
    # 3. the scan over skewed columns, then unskew (pixel-major, each direction its own order)
    h_new = scan.forward(stacked, h0.data, c0.data)
    out = xp.empty((D, H, W, n, N), dtype=dt)
    for j, count in enumerate(image_rows):
        diagonal(out, j, rows[j][0], count)[...] = h_new[j].reshape(D, n, -1, N)[:, :, :count]
    if D == 2:
        out[1] = out[1, :, ::-1].copy()                                     # image order

    def backward(grad):
        g_scan = xp.empty((D, H, W, n, N), dtype=dt)
        for d in range(D):
            g_scan[d] = in_scan_order(grad[d], d)
        g = scan.blocks(n)
        for j, count in enumerate(image_rows):
            gj = g[j].reshape(D, n, -1, N)
            gj[:, :, :count] = diagonal(g_scan, j, rows[j][0], count)
            gj[:, :, count:] = 0
        d_pre, d_stacked, dh0, dc0 = scan.backward(g)                    # (D, G, columns)
        # 2. pre = [K_is | bias | K_ss] @ [x_skew ; 1 ; taps]: the stacked weight's gradient
        #    split into its three parts; x_skew's is K_is^T @ d pre
        dw, db, dK = split_weight(d_stacked, C, T)
        dx_skew = w.transpose(0, 2, 1) @ d_pre                               # (D, C, columns)
        # 1. the skew's: each pixel's gradient back from its step's columns
        dx_scan = xp.empty((D, H, W, C, N), dtype=dt)
        for j, ((lo, hi), count) in enumerate(zip(spans, image_rows)):
            diagonal(dx_scan, j, rows[j][0], count)[...] = \
                dx_skew[:, :, lo:lo + count * N].reshape(D, C, count, N)
        dx = dx_scan[0]
        for d in range(1, D):
            dx = dx + in_scan_order(dx_scan[d], d)
        return (dx.transpose(3, 2, 0, 1), dw.reshape(weight.shape) * mask, db,
                dK.reshape(k_ss.shape), dh0, dc0)
    return out, backward
