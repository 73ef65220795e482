"""The recurrence of both LSTM layers as one op with a hand-written backward through time.

The fast twin of the loops in minipixel/layers/row_lstm.py and
diagonal_bilstm.py (a conv2d and an lstm_cell per step, the engine deriving
the backward); equal to them, forward and backward (tested).

Notation
--------
D directions run side by side (1 for the Row LSTM; 2 for the Diagonal BiLSTM), N batch,
h hidden units, G = 4h gate maps, S steps of the recurrence, L positions
updated in parallel at each step, T taps of the state-to-state kernel.

    Row LSTM:        steps = rows (S = H), positions = columns (L = W),
                     K_ss is 1 x 3 over the previous row: offsets (-1, 0, +1)
    Diagonal BiLSTM: steps = skewed columns, positions = rows (L = H),
                     K_ss is 2 x 1 over the previous column: offsets (-1, 0),
                     i.e. zero padding at the top only (bottom padding leaks)

For each step s (paper eq. 3):

    taps_s[(k, t), l] = h_{s-1}[k, l + offset_t]        zero outside 0..L-1
    pre_s = x_gates[:, :, s] + K_ss @ taps_s            (G, L) for each n, d
    h_s, c_s = lstm_cell(pre_s, c_{s-1})

The input-to-state part x_gates is computed for all steps at once before the
scan; the learned initial state h_{-1}, c_{-1} is one vector (h,) each per
direction, broadcast over N and L. The only Python loop is over the steps;
the backward runs the same loop in reverse (backpropagation through time).

ScanCore runs that loop on preallocated buffers in place, in the layout below,
steps restricted to the positions some output sees: the Diagonal LSTM's scan
(diagonal.py), whose skew writes straight into it. (The Row LSTM's scan, row.py,
runs the same loop over rows in a layout of its own.) Both are tested equal to
the paper path.

ScanCore's layout
-----------------
Inside the scan every array is channel-major, and the positions of all N images
share one last axis of M = (L + 1) * N entries, position-major (l, n): the
first N entries are a padding slot for every image, where h is held at zero.
A tap at offset +-1 (a shift by N entries) then reads that zero beyond an
image's top or bottom edge, so the taps are whole-row copies, not a gather:

    taps[t, :, p] = h_{s-1}[:, p + N * offset_t]   T copies of h (zero beyond the last row)
    pre_s += K_ss @ taps                          (D, G, T*h) @ (D, T*h, M): one product

and the cell runs in place on preallocated buffers (cell.lstm_cell_step):

    xg   (S, D, G, M)     the gate inputs, overwritten by the gate activations
    hs   (S+1, D, h, M)   hs[s] = h_{s-1} (slot 0: the initial state)
    cs   (S+1, D, h, M)   the same for c;  tcs (S, D, h, M) = tanh(c_s)

step-major, so that each step reads and writes contiguous blocks. The backward
goes through the same buffers; K_ss's gradient is one batched product per tap
over all steps at once, after the loop.
"""
from . import cell as fused_cell

# K_ss as offsets along the positions of the previous step (see the notation above)
ROW_OFFSETS = (-1, 0, 1)       # Row LSTM 1 x 3: columns c-1, c, c+1 of the previous row
DIAGONAL_OFFSETS = (-1, 0)     # Diagonal 2 x 1: rows r-1 and r of the previous skewed column


def add_shifted_back(dst, src, start):
    """The taps' adjoint: dst[..., p + start] += src[..., p] wherever p + start is within dst."""
    n = min(src.shape[-1], dst.shape[-1] - start)
    if n > 0:
        dst[..., start:start + n] += src[..., :n]


def check_offsets(offsets):
    if any(abs(o) > 1 for o in offsets):
        raise ValueError(f"lstm_scan: tap offsets must lie in -1..1, got {offsets}")


class ScanCore:
    """The scan on raw arrays in the scan layout (see the module docstring).

    ``forward(xg, k_ss, h0, c0, live)`` -> hs; keeps what ``backward(g)`` needs.
    live[s] (a multiple of N, at least N) is the first position step s computes;
    the positions before it are left at zero (the Diagonal LSTM's skewed map right
    of the image, which no output sees). It must not rise by more than N a step,
    since a live position reads the row above it in the previous step."""

    def __init__(self, offsets, N, xp):
        check_offsets(offsets)
        self.offsets, self.N, self.xp = tuple(offsets), N, xp

    def forward(self, xg, k_ss, h0, c0, live=None):
        """xg (S, D, G, M), overwritten; k_ss (D, G, h, KH, KW); h0, c0 (D, h) -> hs (S+1, D, h, M)."""
        xp, N, offsets = self.xp, self.N, self.offsets
        S, D, G, M = xg.shape
        n, T, dt = G // 4, len(offsets), xg.dtype
        self.live = live = [N] * S if live is None else list(live)
        K = k_ss.reshape(D, G, n, T)
        K_taps = xp.ascontiguousarray(K.transpose(0, 1, 3, 2)).reshape(D, G, T * n)
        self.K_T = xp.ascontiguousarray(K.transpose(0, 3, 2, 1)).reshape(D, T * n, G)
        self.k_shape = k_ss.shape
        s, off = fused_cell.gate_scale(xp, n, 3, dt)                   # (G, 1) each
        self.s2, self.off = s * s, off
        hs = xp.zeros((S + 1, D, n, M), dtype=dt)        # padding slots stay zero
        cs = xp.empty((S + 1, D, n, M), dtype=dt)
        tcs = xp.empty((S, D, n, M), dtype=dt)
        hs[0, :, :, N:] = h0[:, :, None]
        cs[0] = c0[:, :, None]
        taps = xp.zeros((D, T, n, M), dtype=dt)          # beyond the last row: stays zero
        Y = xp.empty((D, G, M), dtype=dt)
        tmp = xp.empty((D, n, M), dtype=dt)
        for step in range(S):
            lo = live[step]
            h_prev = hs[step]
            for t, o in enumerate(offsets):                           # taps[p] = h[p + N o]
                end = min(M, M - o * N)
                taps[:, t, :, lo:end] = h_prev[..., lo + o * N:end + o * N]
            pre = xg[step][..., lo:]                                   # (D, G, M - lo), in place
            Yw = Y[..., lo:]
            xp.matmul(K_taps, taps.reshape(D, T * n, M)[..., lo:], out=Yw)
            pre += Yw
            fused_cell.lstm_cell_step(pre, cs[step][..., lo:], cs[step + 1][..., lo:],
                                      tcs[step][..., lo:], hs[step + 1][..., lo:],
                                      tmp[..., lo:], s, off, xp)
        self.act, self.hs, self.cs, self.tcs = xg, hs, cs, tcs
        return hs

    def backward(self, g):
        """g (S, D, h, M), the gradient of h_0..h_{S-1} (zero in the padding slots)
        -> d xg (S, D, G, M), d k_ss, d h0 (D, h), d c0 (D, h)."""
        xp, N, offsets, live = self.xp, self.N, self.offsets, self.live
        act, hs, cs, tcs = self.act, self.hs, self.cs, self.tcs
        S, D, G, M = act.shape
        n, T, dt = G // 4, len(offsets), act.dtype
        dxg = xp.zeros((S, D, G, M), dtype=dt)
        dh = xp.empty((D, n, M), dtype=dt)
        dh_prev = xp.zeros((D, n, M), dtype=dt)
        dc = xp.zeros((D, n, M), dtype=dt)
        Z = xp.empty((D, T * n, M), dtype=dt)
        tmp, tmp_g = xp.empty((D, n, M), dtype=dt), xp.empty((D, G, M), dtype=dt)
        for step in reversed(range(S)):
            lo = live[step]
            # 1. the cell: h_s gets gradient from the output and from step s+1
            xp.add(g[step][..., lo:], dh_prev[..., lo:], out=dh[..., lo:])
            dpre = dxg[step][..., lo:]
            fused_cell.lstm_cell_step_backward(dh[..., lo:], dc[..., lo:], act[step][..., lo:],
                                               cs[step][..., lo:], tcs[step][..., lo:], self.s2,
                                               self.off, dpre, tmp[..., lo:], tmp_g[..., lo:], xp)
            # 2. pre_s = x_gates[s] + sum_t K_t @ (h_{s-1} shifted by offset_t)
            Zw = Z[..., :M - lo]
            xp.matmul(self.K_T, dpre, out=Zw)
            window = dh_prev[..., lo - N:]                            # the row above lo on
            window[...] = 0
            for t, o in enumerate(offsets):
                add_shifted_back(window, Zw[:, t * n:(t + 1) * n], N + o * N)
            dh_prev[..., :N] = 0                       # h is held at zero there
        # K_t's gradient, all steps at once: sum_s,p dpre_s[p] h_{s-1}[p + N offset_t]
        h_prev = hs[:S].transpose(0, 1, 3, 2)                   # (S, D, M, h)
        dK = xp.empty((D, T, G, n), dtype=dt)
        for t, o in enumerate(offsets):
            lo, hi = max(0, -o * N), M - max(0, o * N)
            dK[:, t] = xp.matmul(dxg[..., lo:hi], h_prev[:, :, lo + o * N:hi + o * N]).sum(axis=0)
        dK = dK.transpose(0, 2, 3, 1).reshape(self.k_shape)
        return dxg, dK, dh_prev.sum(axis=2), dc.sum(axis=2)
