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
    ScanCore    (scan_core.py) the same in place on row blocks, each step computing
                only the rows some output needs: the Diagonal LSTM's scan
                (diagonal.py).
"""
from ..tensor import check_same, record
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
