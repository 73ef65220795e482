"""The Row LSTM's hidden states as one op: input-to-state conv and the scan over rows.

The fast twin of RowLSTMLayer.hidden (minipixel/layers/row_lstm.py); equal to it,
forward and every gradient (tested).

Notation
--------
N batch, C = 2h input maps, h hidden units, G = 4h gate maps, H x W image,
T the input-to-state taps its mask keeps (of 1 x 3, at columns j_t - 1 from the pixel).

The layout: every array is step-major (one step per image row r) and channel-major,
and the positions of a row are the N images' rows one after the other, each behind a
padding slot: P = N * (W + 1) positions per step,

    position p = n * (W + 1) + 1 + l      for image n, column l;  p = n * (W + 1): padding

so a shift by one column is a shift by one position, and the column left of l = 0 or
right of l = W - 1 is a padding slot (or beyond the last position, read as zero). The
rows of the channel-major images (N, C, H, W) are contiguous runs of W there, so the
way in and out of this layout copies runs, not single values.

    xr[r, c, 1 + p]  = x at row r, position p; zero at the padding slots and at one
                       slot beyond each end                                (H, C, P + 2)

and for each row r (paper eq. 3), all of it one matrix product:

    z_r = [ col_r ; 1 ; taps_r ]                       (C*T + 1 + 3h, P), stacked:
          col_r[(c, t), p]  = xr[r, c, p + j_t]        K_is's kept taps of x (row r)
          taps_r[(t, k), p] = h_{r-1}[k, p + t - 1]    K_ss's 1 x 3 taps of the row above
                                                       (zero beyond either end)
    pre_r = [ w_taps | bias | K_ss ] @ z_r             (G, P): K_is (*) x + bias + K_ss (*) h
    h_r, c_r = cell(pre_r, c_{r-1})                    in place (cell.lstm_cell_step, which
                                                       takes k * pre_r: k folded into the
                                                       stacked weight for the forward)
    h_r = 0 at the padding slots                       (the zero padding of K_ss)

h_{-1} = h0 and c_{-1} = c0 at every position. The rows' col and ones are filled
before the loop, each row's taps inside it. The cell also runs at the padding slots
(on values nothing reads) so that each step works on whole contiguous arrays.
The backward runs the steps in reverse on the same buffers (backpropagation through
time): the gradient reaching a padding slot's h is dropped, as h is held at zero
there, so the padding slots' cells get none. The gradient of the stacked weight
[w_taps | bias | K_ss] is one batched product over all rows after the loop,
sum_r d pre_r @ z_r^T; the input's goes through col's adjoint. To make these one
matrix product each, z and d pre are kept row-minor: z (C*T + 1 + 3h, H, P) holds
z_r at z[:, r] and d pre (G, H, P) holds d pre_r at [:, r], so that over all rows
they are the matrices (., H * P) side by side.
"""
import numpy as np

from ..ops.conv import tap_weights, tap_weights_grad
from ..tensor import check_same, record
from . import cell as fused_cell
from .scan import ROW_OFFSETS as STATE_SHIFTS   # K_ss's taps: columns l-1, l, l+1 above


def shifted_copy(dst, src, shift):
    """dst[..., p] = src[..., p + shift] wherever both lie within the arrays."""
    P = src.shape[-1]
    lo, hi = max(0, -shift), min(P, P - shift)
    dst[..., lo:hi] = src[..., lo + shift:hi + shift]


def shifted_copy_adjoint(dst, src, shift):
    """The adjoint of shifted_copy: dst[..., p + shift] += src[..., p]."""
    P = src.shape[-1]
    lo, hi = max(0, -shift), min(P, P - shift)
    dst[..., lo + shift:hi + shift] += src[..., lo:hi]


class RowScan:
    """The scan over rows on raw arrays in the layout above (positions of N images, W
    columns each, behind a padding slot). ``forward(z, weight, h0, c0)`` -> hs; keeps
    what ``backward(g)`` needs."""

    def __init__(self, N, W, xp):
        self.N, self.W, self.xp = N, W, xp

    def pads(self, a):
        """The padding slots of a (..., P) array: a view."""
        return a[..., ::self.W + 1]

    def forward(self, z, weight, h0, c0):
        """z (R, S, P): each row's stacked input z_r = z[:, r], the last 3h rows (taps_r)
        written here, the rest given; weight (G, R) = [w_taps | bias | K_ss], K_ss's
        columns ordered (t, k); h0, c0 (h,)  ->  hs (S + 1, h, P): hs[r + 1] = h_r,
        hs[0] = h_{-1}."""
        xp = self.xp
        R, S, P = z.shape
        G, n, T, dt = weight.shape[0], weight.shape[0] // 4, len(STATE_SHIFTS), z.dtype
        self.K_T = xp.ascontiguousarray(weight[:, R - T * n:].T)       # (T * h, G)
        weight_k = weight * fused_cell.exp_gate_scale(xp, n, dt)   # the cell takes k * pre
        act = xp.empty((S, 1, G, P), dtype=dt)           # the cell's (D = 1, ., P) arrays
        hs = xp.empty((S + 1, 1, n, P), dtype=dt)
        cs = xp.empty((S + 1, 1, n, P), dtype=dt)
        tcs = xp.empty((S, 1, n, P), dtype=dt)
        hs[0] = h0[:, None]
        self.pads(hs[0])[...] = 0
        cs[0] = c0[:, None]
        taps = z[R - T * n:].reshape(T, n, S, P)
        taps[...] = 0                                    # beyond either end: stays zero
        tmp = xp.empty((1, n, P), dtype=dt)
        with np.errstate(over="ignore"):                # exp(z) = inf: a gate at its limit 0
            for r in range(S):
                for t, shift in enumerate(STATE_SHIFTS):
                    shifted_copy(taps[t, :, r], hs[r, 0], shift)
                xp.matmul(weight_k, z[:, r], out=act[r, 0])            # k * pre_r
                fused_cell.lstm_cell_step(act[r], cs[r], cs[r + 1], tcs[r], hs[r + 1], tmp, xp)
                self.pads(hs[r + 1])[...] = 0
        self.z, self.act, self.cs, self.tcs = z, act, cs, tcs
        return hs[:, 0]

    def backward(self, g):
        """g (S, h, P), the gradient of h_0..h_{S-1} (zero at the padding slots)
        -> d pre (G, S, P), d weight (G, R), d h0 (h,), d c0 (h,)."""
        xp = self.xp
        z, act, cs, tcs = self.z, self.act, self.cs, self.tcs
        S, _, G, P = act.shape
        n, T, dt = G // 4, len(STATE_SHIFTS), act.dtype
        dpre = xp.empty((G, S, P), dtype=dt)
        dh = xp.empty((1, n, P), dtype=dt)
        dh_prev = xp.zeros((1, n, P), dtype=dt)
        dc = xp.zeros((1, n, P), dtype=dt)
        Z = xp.empty((T, n, P), dtype=dt)
        tmp, tmp_g = xp.empty((1, n, P), dtype=dt), xp.empty((1, G, P), dtype=dt)
        for r in reversed(range(S)):
            # 1. the cell: h_r gets gradient from the output and from row r + 1
            xp.add(g[r], dh_prev[0], out=dh[0])
            fused_cell.lstm_cell_step_backward(dh, dc, act[r], cs[r], tcs[r], dpre[None, :, r],
                                               tmp, tmp_g, xp)
            # 2. pre_r = ... + K_ss @ taps_r, taps_r shifted copies of h_{r-1}
            xp.matmul(self.K_T, dpre[:, r], out=Z.reshape(T * n, P))
            dh_prev[...] = 0
            for t, shift in enumerate(STATE_SHIFTS):
                shifted_copy_adjoint(dh_prev[0], Z[t], shift)
            self.pads(dh_prev)[...] = 0                # h is held at zero there
        R = z.shape[0]
        dweight = dpre.reshape(G, S * P) @ z.reshape(R, S * P).T       # sum_r dpre_r z_r^T
        return dpre, dweight, dh_prev[0].sum(axis=1), dc[0].sum(axis=1)


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
    P, T = N * (W + 1), len(taps)

    def to_rows(a, rows):
        """(N, K, H, W) -> rows (H, K, P + 2): each image row behind its padding slot."""
        rows[...] = 0
        rows[:, :, 1:P + 1].reshape(H, rows.shape[1], N, W + 1)[..., 1:] = a.transpose(2, 1, 0, 3)
        return rows

    def from_rows(rows):
        """(H, K, P) -> (N, K, H, W), channel-major in memory (the padding slots dropped)."""
        K = rows.shape[1]
        out = xp.empty((K, N, H, W), dtype=dt)
        out[...] = rows.reshape(H, K, N, W + 1)[..., 1:].transpose(1, 2, 0, 3)
        return out.transpose(1, 0, 2, 3)

    # 1. each row's stacked input: K_is's taps of x, a row of ones (the bias), and room
    #    for the state taps; the stacked weight [w_taps | bias | K_ss]
    CT = C * T
    z = xp.empty((CT + 1 + 3 * n, H, P), dtype=dt)                # z_r = z[:, r]
    xr = to_rows(x.data, xp.empty((H, C, P + 2), dtype=dt))
    col = z[:CT].reshape(C, T, H, P)
    for t, (_, j) in enumerate(taps):
        col[:, t] = xr[:, :, j:j + P].transpose(1, 0, 2)
    del xr
    z[CT] = 1
    w_flat, m_taps = tap_weights(weight.data, mask, taps)                      # (G, C * T)
    k_taps = k_ss.data.reshape(G, n, 3).transpose(0, 2, 1).reshape(G, 3 * n)   # (t, k)
    stacked = xp.concatenate([w_flat, bias.data[:, None], k_taps], axis=1)
    # 2. the scan over rows
    scan = RowScan(N, W, xp)
    hs = scan.forward(z, stacked, h0.data, c0.data)
    out = from_rows(hs[1:])
    del hs

    def backward(grad):
        g_rows = to_rows(grad, xp.empty((H, n, P + 2), dtype=dt))[..., 1:P + 1]
        dpre, dstacked, dh0, dc0 = scan.backward(g_rows)
        dw = tap_weights_grad(dstacked[:, :CT], m_taps, taps, weight.shape)
        db = dstacked[:, CT]
        dK = dstacked[:, CT + 1:].reshape(G, 3, n).transpose(0, 2, 1).reshape(k_ss.shape)
        dcol = (w_flat.T @ dpre.reshape(G, H * P)).reshape(C, T, H, P)
        dxr = xp.zeros((H, C, P + 2), dtype=dt)
        for t, (_, j) in enumerate(taps):
            dxr[:, :, j:j + P] += dcol[:, t].transpose(1, 0, 2)
        return from_rows(dxr[:, :, 1:P + 1]), dw, db, dK, dh0, dc0
    return record(out, (x, weight, bias, k_ss, h0, c0), backward, "row_lstm")
