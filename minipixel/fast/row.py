"""The Row LSTM's hidden states as one op: input-to-state conv and the scan over rows.

The fast twin of RowLSTMLayer.hidden (minipixel/layers/row_lstm.py); equal to it,
forward and every gradient (tested).

Notation
--------
N batch, C = 2h input maps, h hidden units (n in the code, where h names the hidden
states), G = 4h gate maps, H x W image,
T the input-to-state taps its mask keeps (of 1 x 3, at columns j_t - 1 from the pixel).

The op runs the scan of scan.py (D = 1) with one step per image row r and one
position per column l, each position holding the N images (columns ordered (l, n)),
every step computing every column. The step's input x_s is K_is's kept taps of row r,

    x_r[(c, t), (l, n)] = x[n, c, r, l + j_t - 1]        zero outside 0 .. W-1

so that pre_r = [w_taps | bias | K_ss] @ [x_r ; 1 ; taps_r] is K_is (*) x + bias +
K_ss (*) h_{r-1} in one product, with K_ss's 1 x 3 taps of the row above at offsets
ROW_OFFSETS (-1, 0, +1), zero beyond either end (the zero padding of K_ss).
"""
from ..ops.conv import tap_weights, tap_weights_grad
from ..tensor import check_same, record
from .scan import ROW_OFFSETS, Scan, split_weight, stacked_weight


def column_shift(W, o):
    """The columns l whose neighbour l + o lies on the image: the slice lo:hi of l."""
    return max(0, -o), min(W, W - o)


def row_lstm(x, weight, mask, taps, bias, k_ss, h0, c0):
    """(N, C, H, W), input-to-state weight (G, C, 1, 3), its mask and kept taps
    ((0, j), ...), bias (G,), k_ss (G, h, 1, 3), h0, c0 (h,)  ->  (N, h, H, W)."""
    check_same(x, weight, bias, k_ss, h0, c0, op="row_lstm")
    xp = x.xp
    N, C, H, W = x.shape
    G, n, dt = weight.shape[0], weight.shape[0] // 4, x.dtype
    if weight.shape[1:] != (C, 1, 3) or bias.shape != (G,) or k_ss.shape != (G, n, 1, 3) \
            or h0.shape != (n,) or c0.shape != (n,) or any(i != 0 for i, _ in taps):
        raise ValueError(f"row_lstm: x (N, C, H, W), weight (4h, C, 1, 3), bias (4h,), "
                         f"k_ss (4h, h, 1, 3), h0 and c0 (h,) expected, got {x.shape}, "
                         f"{weight.shape}, {bias.shape}, {k_ss.shape}, {h0.shape}, {c0.shape}")
    T = len(taps)
    CT = C * T
    scan = Scan(ROW_OFFSETS, ((0, W - 1),) * H, W, N, 1, G, CT, dt, xp)
    # 1. each row's input: K_is's kept taps of x, (C, T, H, W, N) in the scan's columns
    x_rows = scan.x.reshape(C, T, H, W, N)
    x_chw = x.data.transpose(1, 2, 3, 0)                                   # (C, H, W, N)
    for t, (_, j) in enumerate(taps):
        lo, hi = column_shift(W, j - 1)
        x_rows[:, t, :, lo:hi] = x_chw[:, :, lo + j - 1:hi + j - 1]
        x_rows[:, t, :, :lo] = 0
        x_rows[:, t, :, hi:] = 0
    # 2. the stacked weight [w_taps | bias | K_ss] and the scan over rows
    w_taps, m_taps = tap_weights(weight.data, mask, taps)                   # (G, C * T)
    stacked = stacked_weight(w_taps[None], bias.data[None], k_ss.data.reshape(1, G, n, 3), xp)
    h_new = scan.forward(stacked, h0.data[None], c0.data[None])
    out = xp.empty((n, N, H, W), dtype=dt)                   # channel-major, as a conv's
    out[...] = h_new.flat.reshape(H, n, W, N).transpose(1, 3, 0, 2)
    out = out.transpose(1, 0, 2, 3)                                         # (N, h, H, W)

    def backward(grad):
        g = scan.blocks(n)
        g.flat.reshape(H, n, W, N)[...] = grad.transpose(2, 1, 3, 0)
        d_pre, d_stacked, dh0, dc0 = scan.backward(g)
        d_taps, db, dK = split_weight(d_stacked, CT, len(ROW_OFFSETS))
        dw = tap_weights_grad(d_taps[0], m_taps, taps, weight.shape)
        d_rows = (w_taps.T @ d_pre[0]).reshape(C, T, H, W, N)
        dx = xp.zeros((C, H, W, N), dtype=dt)
        for t, (_, j) in enumerate(taps):
            lo, hi = column_shift(W, j - 1)
            dx[:, :, lo + j - 1:hi + j - 1] += d_rows[:, t, :, lo:hi]
        return dx.transpose(3, 0, 1, 2), dw, db[0], dK.reshape(k_ss.shape), dh0[0], dc0[0]
    return record(out, (x, weight, bias, k_ss, h0, c0), backward, "row_lstm")
