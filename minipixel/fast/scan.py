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

Layout (speed)
--------------
Inside the scan every array is channel-major, and the positions of all N images
share one last axis of M = (L + 1) * N entries, position-major (l, n): the
first N entries are a padding slot for every image, where h is held at zero.
A tap at offset +-1 (a shift by N entries) then reads that zero beyond an
image's top or bottom edge, so K_ss @ taps_s needs no gathered copy of the taps:

    Y = [K_0; ...; K_{T-1}] @ h_{s-1}          (D, T*G, h) @ (D, h, M): one product per step
    pre_s[:, :, p] += Y_t[:, :, p + N * offset_t]  one shifted add per tap

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

# K_ss as offsets along the positions of the previous step (see the notation above)
ROW_OFFSETS = (-1, 0, 1)       # Row LSTM 1 x 3: columns c-1, c, c+1 of the previous row
DIAGONAL_OFFSETS = (-1, 0)     # Diagonal 2 x 1: rows r-1 and r of the previous skewed column


def shifted_add(dst, src, shift):
    """dst[..., p] += src[..., p + shift] wherever p + shift is in range."""
    if shift == 0:
        dst += src
    elif shift > 0:
        dst[..., :-shift] += src[..., shift:]
    else:
        dst[..., -shift:] += src[..., :shift]


def to_scan_layout(x, xp):
    """(D, N, C, S, L) -> (S, D, C, M): step-major, positions (l, n), a zero padding slot."""
    D, N, C, S, L = x.shape
    out = xp.empty((S, D, C, L + 1, N), dtype=x.dtype)
    out[:, :, :, 0] = 0
    out[:, :, :, 1:] = x.transpose(3, 0, 2, 4, 1)
    return out.reshape(S, D, C, (L + 1) * N)


def from_scan_layout(a, N):
    """(S, D, C, M) -> view (D, N, C, S, L): to_scan_layout undone, padding left out."""
    S, D, C, M = a.shape
    return a.reshape(S, D, C, M // N, N)[:, :, :, 1:].transpose(1, 4, 2, 0, 3)


def check_offsets(offsets):
    if any(abs(o) > 1 for o in offsets):
        raise ValueError(f"lstm_scan: tap offsets must lie in -1..1, got {offsets}")


class ScanCore:
    """The scan on raw arrays in the scan layout (see the module docstring).

    ``forward(xg, k_ss, h0, c0)`` -> hs; keeps what ``backward(g)`` needs."""

    def __init__(self, offsets, N, xp):
        check_offsets(offsets)
        self.offsets, self.N, self.xp = tuple(offsets), N, xp

    def forward(self, xg, k_ss, h0, c0):
        """xg (S, D, G, M), overwritten; k_ss (D, G, h, KH, KW); h0, c0 (D, h) -> hs (S+1, D, h, M)."""
        xp, N, offsets = self.xp, self.N, self.offsets
        S, D, G, M = xg.shape
        n, T, dt = G // 4, len(offsets), xg.dtype
        K = k_ss.reshape(D, G, n, T).transpose(0, 3, 1, 2)            # (D, T, G, h)
        K_stack = xp.ascontiguousarray(K).reshape(D, T * G, n)
        self.K_T = xp.ascontiguousarray(K.transpose(0, 1, 3, 2)).reshape(D, T * n, G)
        self.k_shape = k_ss.shape
        s, off = fused_cell.gate_scale(xp, n, 3, dt)                   # (G, 1) each
        self.s2, self.off = s * s, off
        hs = xp.empty((S + 1, D, n, M), dtype=dt)
        cs = xp.empty((S + 1, D, n, M), dtype=dt)
        tcs = xp.empty((S, D, n, M), dtype=dt)
        hs[0] = h0[:, :, None]
        hs[0, :, :, :N] = 0
        cs[0] = c0[:, :, None]
        Y = xp.empty((D, T * G, M), dtype=dt)
        tmp = xp.empty((D, n, M), dtype=dt)
        for step in range(S):
            pre = xg[step]                                             # (D, G, M), in place
            xp.matmul(K_stack, hs[step], out=Y)                        # every tap at once
            for t, o in enumerate(offsets):
                shifted_add(pre, Y[:, t * G:(t + 1) * G], o * N)
            fused_cell.lstm_cell_step(pre, cs[step], cs[step + 1], tcs[step], hs[step + 1],
                                      tmp, s, off, xp)
            hs[step + 1, :, :, :N] = 0
        self.act, self.hs, self.cs, self.tcs = xg, hs, cs, tcs
        return hs

    def backward(self, g):
        """g (S, D, h, M), the gradient of h_0..h_{S-1} (zero in the padding slots)
        -> d xg (S, D, G, M), d k_ss, d h0 (D, h), d c0 (D, h)."""
        xp, N, offsets = self.xp, self.N, self.offsets
        act, hs, cs, tcs = self.act, self.hs, self.cs, self.tcs
        S, D, G, M = act.shape
        n, T, dt = G // 4, len(offsets), act.dtype
        dxg = xp.empty((S, D, G, M), dtype=dt)
        dh = xp.empty((D, n, M), dtype=dt)
        dh_prev = xp.zeros((D, n, M), dtype=dt)
        dc = xp.zeros((D, n, M), dtype=dt)
        Z = xp.empty((D, T * n, M), dtype=dt)
        tmp, tmp_g = xp.empty((D, n, M), dtype=dt), xp.empty((D, G, M), dtype=dt)
        for step in reversed(range(S)):
            # 1. the cell: h_s gets gradient from the output and from step s+1
            xp.add(g[step], dh_prev, out=dh)
            dpre = dxg[step]
            fused_cell.lstm_cell_step_backward(dh, dc, act[step], cs[step], tcs[step], self.s2,
                                               self.off, dpre, tmp, tmp_g, xp)
            # 2. pre_s = x_gates[s] + sum_t K_t @ (h_{s-1} shifted by offset_t)
            xp.matmul(self.K_T, dpre, out=Z)
            dh_prev[...] = 0
            for t, o in enumerate(offsets):
                shifted_add(dh_prev, Z[:, t * n:(t + 1) * n], -o * N)
            dh_prev[..., :N] = 0                       # h is held at zero there
        # K_t's gradient, all steps at once: sum_s,p dpre_s[p] h_{s-1}[p + N offset_t]
        h_prev = hs[:S].transpose(0, 1, 3, 2)                   # (S, D, M, h)
        dK = xp.empty((D, T, G, n), dtype=dt)
        for t, o in enumerate(offsets):
            lo, hi = max(0, -o * N), M - max(0, o * N)
            dK[:, t] = xp.matmul(dxg[..., lo:hi], h_prev[:, :, lo + o * N:hi + o * N]).sum(axis=0)
        dK = dK.transpose(0, 2, 3, 1).reshape(self.k_shape)
        return dxg, dK, dh_prev.sum(axis=2), dc.sum(axis=2)


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
    core = ScanCore(offsets, N, xp)
    hs = core.forward(to_scan_layout(xg, xp), K, h0.data, c0.data)

    def backward(g):
        dxg, dK, dh0, dc0 = core.backward(to_scan_layout(g, xp))
        return from_scan_layout(dxg, N), dK, dh0, dc0
    return record(from_scan_layout(hs[1:], N), (x_gates, k_ss, h0, c0), backward,
                  "lstm_scan")
