"""The recurrence shared by the Row LSTM and the Diagonal BiLSTM, as one op.

Notation
--------
N batch, h hidden units, S steps of the recurrence, L positions updated in
parallel at each step, T taps of the state-to-state kernel.

    Row LSTM:        steps = rows (S = H), positions = columns (L = W),
                     K_ss is 1 x 3 over the previous row: offsets (-1, 0, +1)
    Diagonal BiLSTM: steps = skewed columns, positions = rows (L = H),
                     K_ss is 2 x 1 over the previous column: offsets (-1, 0),
                     i.e. zero padding at the top only (bottom padding leaks)

For each step s (paper eq. 3):

    taps_s[:, (k, t), l] = h_{s-1}[:, k, l + offset_t]        zero outside 0..L-1
    pre_s = x_gates[:, :, s] + K_ss @ taps_s                    (N, 4h, L)
    h_s, c_s = lstm_cell(pre_s, c_{s-1})

The input-to-state part x_gates (N, 4h, S, L) is computed for all steps at
once before the scan; the learned initial state h_{-1}, c_{-1} is one vector
(h,) each, broadcast over N and L. The only Python loop is over the steps,
and the backward runs the same loop in reverse (backpropagation through time).
"""
from ..tensor import check_same, record
from .lstm_cell import lstm_cell_backward, lstm_cell_forward


def shift(a, offset, xp):
    """out[..., l] = a[..., l + offset], zero where l + offset is outside the axis."""
    if offset == 0:
        return a
    out = xp.zeros_like(a)
    if offset > 0:
        out[..., :-offset] = a[..., offset:]
    else:
        out[..., -offset:] = a[..., :offset]
    return out


def lstm_scan(x_gates, k_ss, h0, c0, offsets):
    """x_gates (N, 4h, S, L), k_ss (4h, h, KH, KW) with KH*KW == len(offsets),
    h0, c0 (h,)  ->  hidden states (N, h, S, L)."""
    check_same(x_gates, k_ss, h0, c0, op="lstm_scan")
    xp = x_gates.xp
    N, G, S, L = x_gates.shape
    n, T = G // 4, len(offsets)
    if k_ss.shape[:2] != (G, n) or k_ss.shape[2] * k_ss.shape[3] != T:
        raise ValueError(f"lstm_scan: state kernel must be (4h, h, ...) with {T} taps, "
                         f"got {k_ss.shape} for 4h = {G}")
    K = k_ss.data.reshape(G, n * T)                                 # (4h, h*T)
    xg = x_gates.data

    def state_taps(h_prev):                                         # (N, h, L) -> (N, h*T, L)
        return xp.stack([shift(h_prev, o, xp) for o in offsets], axis=2).reshape(N, n * T, L)

    # Forward: one LSTM step per s; keep what the backward needs.
    h_prev = xp.broadcast_to(h0.data[None, :, None], (N, n, L))
    c_prev = xp.broadcast_to(c0.data[None, :, None], (N, n, L))
    hs = xp.empty((N, n, S, L), dtype=xg.dtype)
    saved = []
    for s in range(S):
        taps = state_taps(h_prev)
        h_prev, c_prev, cache = lstm_cell_forward(xg[:, :, s] + K @ taps, c_prev, xp)
        hs[:, :, s] = h_prev
        saved.append((taps, cache))

    def backward(g):
        # Backward through time: the same steps in reverse order.
        dxg = xp.empty_like(xg)
        dK = xp.zeros_like(K)
        dh_next = xp.zeros((N, n, L), dtype=xg.dtype)
        dc_next = xp.zeros((N, n, L), dtype=xg.dtype)
        for s in reversed(range(S)):
            taps, cache = saved[s]
            # 1. the cell: h_s and c_s get gradient from the output and from step s+1
            dpre, dc_next = lstm_cell_backward(g[:, :, s] + dh_next, dc_next, cache, xp)
            # 2. pre_s = x_gates[s] + K @ taps_s
            dxg[:, :, s] = dpre
            dK += xp.tensordot(dpre, taps, axes=([0, 2], [0, 2]))
            # 3. taps_s are shifted copies of h_{s-1}: shift each tap's gradient back
            dtaps = (K.T @ dpre).reshape(N, n, T, L)
            dh_next = sum(shift(dtaps[:, :, t], -o, xp) for t, o in enumerate(offsets))
        return dxg, dK.reshape(k_ss.shape), dh_next.sum(axis=(0, 2)), dc_next.sum(axis=(0, 2))
    return record(hs, (x_gates, k_ss, h0, c0), backward, "lstm_scan")
