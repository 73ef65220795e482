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

Two implementations of that loop, tested equal to the paper path (and, through
it, to each other):

    lstm_scan   the op on (D, N, 4h, S, L) arrays, any offsets: the Row LSTM's scan.
                Channel-major inside, (D, G, S, N, L); one step is one matrix
                product per direction, (G, h*T) @ (h*T, N*L), and the fused cell.
    ScanCore    the same on preallocated buffers in place, in the layout below,
                steps restricted to the positions some output sees: the Diagonal
                LSTM's scan (diagonal.py), whose skew writes straight into it.

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
from ..tensor import check_same, record
from . import cell as fused_cell
from .cell import lstm_cell_backward, lstm_cell_forward

# K_ss as offsets along the positions of the previous step (see the notation above)
ROW_OFFSETS = (-1, 0, 1)       # Row LSTM 1 x 3: columns c-1, c, c+1 of the previous row
DIAGONAL_OFFSETS = (-1, 0)     # Diagonal 2 x 1: rows r-1 and r of the previous skewed column


def lstm_scan(x_gates, k_ss, h0, c0, offsets):
    """x_gates (D, N, 4h, S, L), k_ss (D, 4h, h, KH, KW) with KH*KW == len(offsets),
    h0, c0 (D, h)  ->  hidden states (D, N, h, S, L)."""
    check_same(x_gates, k_ss, h0, c0, op="lstm_scan")
    xp = x_gates.xp
    xg, K = x_gates.data, k_ss.data
    if xg.ndim != 5 or K.ndim != 5:
        raise ValueError(f"lstm_scan: x_gates (D, N, 4h, S, L) and k_ss (D, 4h, h, KH, KW) "
                         f"expected, got {x_gates.shape} and {k_ss.shape}")
    D, N, G, S, L = xg.shape
    n, T = G // 4, len(offsets)
    if K.shape[:3] != (D, G, n) or K.shape[3] * K.shape[4] != T:
        raise ValueError(f"lstm_scan: state kernel must be (4h, h, ...) with {T} taps per "
                         f"direction, got {k_ss.shape} for x_gates {x_gates.shape}")
    K_shape = K.shape                                             # (D, 4h, h, KH, KW)
    K = K.reshape(D, G, n * T)
    xg = xp.ascontiguousarray(xg.transpose(0, 2, 3, 1, 4))        # (D, G, S, N, L)

    def state_taps(h_prev):                       # (D, h, N, L) -> (D, h, T, N, L)
        taps = xp.zeros((D, n, T, N, L), dtype=h_prev.dtype)
        for t, o in enumerate(offsets):
            if o >= 0:
                taps[:, :, t, :, :L - o] = h_prev[..., o:]
            else:
                taps[:, :, t, :, -o:] = h_prev[..., :o]
        return taps

    # Forward: one LSTM step per s; keep the cell caches (the taps are rebuilt from hs).
    h_init = xp.broadcast_to(h0.data.reshape(D, n, 1, 1), (D, n, N, L))
    c_prev = xp.broadcast_to(c0.data.reshape(D, n, 1, 1), (D, n, N, L))
    hs = xp.empty((D, n, S, N, L), dtype=xg.dtype)
    caches = []
    for s in range(S):
        taps = state_taps(hs[:, :, s - 1] if s else h_init)
        pre = xg[:, :, s] + (K @ taps.reshape(D, n * T, N * L)).reshape(D, G, N, L)
        hs[:, :, s], c_prev, cache = lstm_cell_forward(pre, c_prev, xp)
        caches.append(cache)

    xg_shape = xg.shape
    del xg                       # the backward needs the caches, not the gates

    def backward(g):
        g = xp.ascontiguousarray(g.transpose(0, 2, 3, 1, 4))
        dxg = xp.empty(xg_shape, dtype=hs.dtype)
        dK = xp.zeros_like(K)
        dh_next = xp.zeros((D, n, N, L), dtype=hs.dtype)
        dc_next = xp.zeros((D, n, N, L), dtype=hs.dtype)
        for s in reversed(range(S)):
            # 1. the cell: h_s and c_s get gradient from the output and from step s+1
            dpre, dc_next = lstm_cell_backward(g[:, :, s] + dh_next, dc_next, caches[s], xp)
            dxg[:, :, s] = dpre
            # 2. pre_s = x_gates[s] + K @ taps_s
            dpre = dpre.reshape(D, G, N * L)
            taps = state_taps(hs[:, :, s - 1] if s else h_init).reshape(D, n * T, N * L)
            dK += dpre @ taps.transpose(0, 2, 1)
            dtaps = (K.transpose(0, 2, 1) @ dpre).reshape(D, n, T, N, L)
            # 3. taps_s are shifted copies of h_{s-1}: shift each tap's gradient back
            dh_next = xp.zeros((D, n, N, L), dtype=hs.dtype)
            for t, o in enumerate(offsets):
                if o >= 0:
                    dh_next[..., o:] += dtaps[:, :, t, :, :L - o]
                else:
                    dh_next[..., :o] += dtaps[:, :, t, :, -o:]
        dxg = dxg.transpose(0, 3, 1, 2, 4)                          # (D, N, G, S, L)
        dK = dK.reshape(K_shape)
        return dxg, dK, dh_next.sum(axis=(2, 3)), dc_next.sum(axis=(2, 3))

    out = hs.transpose(0, 3, 1, 2, 4)                                 # (D, N, h, S, L)
    return record(out, (x_gates, k_ss, h0, c0), backward, "lstm_scan")


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

    ``forward(xg, k_ss, h0, c0, windows, repeats)`` -> hs; keeps what ``backward(g)`` needs.

    windows[s] = (lo, hi), multiples of N: the positions step s computes (default: all
    but the padding slot). The others are left as they are: zero in hs (the Diagonal
    LSTM's skewed map right of the image, which no output sees) unless a repeat fills
    them. Windows may only grow from one step to the next by one row (N entries) at
    either end, since a position reads the rows next to it in the previous step.

    repeats[s] = p or None: before step s, the states h_{s-1}, c_{s-1} at positions
    p .. p+N (one row of all N images) are set to those of the row above, p-N .. p.
    The Diagonal LSTM's states left of the image are equal in every row (they see no
    image, only the bias and each other), so it computes one such row per step and
    repeats it one row down for the next step to read. The backward folds the
    gradient of a repeated row back into the row it was copied from."""

    def __init__(self, offsets, N, xp):
        check_offsets(offsets)
        self.offsets, self.N, self.xp = tuple(offsets), N, xp

    def forward(self, xg, k_ss, h0, c0, windows=None, repeats=None):
        """xg (S, D, G, M), overwritten; k_ss (D, G, h, KH, KW); h0, c0 (D, h) -> hs (S+1, D, h, M)."""
        xp, N, offsets = self.xp, self.N, self.offsets
        S, D, G, M = xg.shape
        n, T, dt = G // 4, len(offsets), xg.dtype
        self.windows = windows = [(N, M)] * S if windows is None else list(windows)
        self.repeats = repeats = [None] * S if repeats is None else list(repeats)
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
            lo, hi = windows[step]
            h_prev, c_prev = hs[step], cs[step]
            if repeats[step] is not None:                             # the row above, repeated
                p = repeats[step]
                h_prev[..., p:p + N] = h_prev[..., p - N:p]
                c_prev[..., p:p + N] = c_prev[..., p - N:p]
            for t, o in enumerate(offsets):                           # taps[p] = h[p + N o]
                end = min(hi, M - o * N)
                taps[:, t, :, lo:end] = h_prev[..., lo + o * N:end + o * N]
            pre = xg[step][..., lo:hi]                                 # (D, G, hi - lo), in place
            Yw = Y[..., lo:hi]
            xp.matmul(K_taps, taps.reshape(D, T * n, M)[..., lo:hi], out=Yw)
            pre += Yw
            fused_cell.lstm_cell_step(pre, c_prev[..., lo:hi], cs[step + 1][..., lo:hi],
                                      tcs[step][..., lo:hi], hs[step + 1][..., lo:hi],
                                      tmp[..., lo:hi], s, off, xp)
        self.act, self.hs, self.cs, self.tcs = xg, hs, cs, tcs
        return hs

    def backward(self, g):
        """g (S, D, h, M), the gradient of h_0..h_{S-1} (zero in the padding slots)
        -> d xg (S, D, G, M) (zero outside the windows), d k_ss, d h0 (D, h), d c0 (D, h)."""
        xp, N, offsets = self.xp, self.N, self.offsets
        act, hs, cs, tcs = self.act, self.hs, self.cs, self.tcs
        S, D, G, M = act.shape
        n, T, dt = G // 4, len(offsets), act.dtype
        dxg = xp.zeros((S, D, G, M), dtype=dt)
        dh = xp.empty((D, n, M), dtype=dt)
        dh_prev = xp.zeros((D, n, M), dtype=dt)
        dc = xp.zeros((D, n, M), dtype=dt)
        Z = xp.empty((D, T * n, M), dtype=dt)
        tmp, tmp_g = xp.empty((D, n, M), dtype=dt), xp.empty((D, G, M), dtype=dt)
        below, above = N * max(0, -min(offsets)), N * max(0, max(offsets))
        for step in reversed(range(S)):
            lo, hi = self.windows[step]
            # 1. the cell: h_s gets gradient from the output and from step s+1
            xp.add(g[step][..., lo:hi], dh_prev[..., lo:hi], out=dh[..., lo:hi])
            dpre = dxg[step][..., lo:hi]
            fused_cell.lstm_cell_step_backward(dh[..., lo:hi], dc[..., lo:hi], act[step][..., lo:hi],
                                               cs[step][..., lo:hi], tcs[step][..., lo:hi], self.s2,
                                               self.off, dpre, tmp[..., lo:hi], tmp_g[..., lo:hi], xp)
            # 2. pre_s = x_gates[s] + sum_t K_t @ (h_{s-1} shifted by offset_t)
            Zw = Z[..., :hi - lo]
            xp.matmul(self.K_T, dpre, out=Zw)
            start = lo - below
            window = dh_prev[..., start:min(M, hi + above)]          # the rows step s read
            window[...] = 0
            for t, o in enumerate(offsets):
                add_shifted_back(window, Zw[:, t * n:(t + 1) * n], lo + o * N - start)
            dh_prev[..., :N] = 0                       # h is held at zero there
            # 3. the repeat before step s: fold the copy's gradient into its source row
            if self.repeats[step] is not None:
                p = self.repeats[step]
                for d in (dh_prev, dc):
                    d[..., p - N:p] += d[..., p:p + N]
                    d[..., p:p + N] = 0
        # K_t's gradient, all steps at once: sum_s,p dpre_s[p] h_{s-1}[p + N offset_t]
        h_prev = hs[:S].transpose(0, 1, 3, 2)                   # (S, D, M, h)
        dK = xp.empty((D, T, G, n), dtype=dt)
        for t, o in enumerate(offsets):
            lo, hi = max(0, -o * N), M - max(0, o * N)
            dK[:, t] = xp.matmul(dxg[..., lo:hi], h_prev[:, :, lo + o * N:hi + o * N]).sum(axis=0)
        dK = dK.transpose(0, 2, 3, 1).reshape(self.k_shape)
        return dxg, dK, dh_prev.sum(axis=2), dc.sum(axis=2)
