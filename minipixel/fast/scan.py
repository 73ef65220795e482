"""The scan both LSTM layers run: eq. 3 over the steps of a recurrence, in place, with its
backward through time by hand. The fast twin of the loops in minipixel/layers/row_lstm.py
and diagonal_bilstm.py (a conv2d and an lstm_cell per step, the engine deriving the
backward); equal to them, forward and every gradient (tested).

Notation
--------
D directions run side by side (1 for the Row LSTM, 2 for the Diagonal BiLSTM), N batch,
C' rows of a step's input, h hidden units (n in the code, where h names the hidden
states), G = 4h gate maps, S steps, L positions along a step, T taps of the
state-to-state kernel K_ss at position offsets o_t, R = C' + 1 + T*h rows of a step's
stacked input.

    Row LSTM (row.py):        steps = image rows (S = H), positions = columns (L = W),
                              K_ss 1 x 3 over the row above: ROW_OFFSETS (-1, 0, +1);
                              C' = the input-to-state conv's kept taps of x
    Diagonal LSTM (diagonal.py): steps = skewed columns (S = H + W - 1), positions =
                              rows (L = H), K_ss 2 x 1 over the previous column:
                              DIAGONAL_OFFSETS (-1, 0), zero padding at the top only
                              (bottom padding leaks); C' = the skewed column of x

Step s computes the positions a_s .. b_s only (its window, ``windows[s]``; the Row
LSTM's steps compute every column, the Diagonal's only the rows some output needs).
A step's arrays are blocks of w_s = (b_s - a_s + 1) * N columns, ordered (position,
image), each block one contiguous piece of one flat buffer per quantity (StepBlocks),
so every elementwise pass of the cell is one run over memory:

    act[s]                        (D, G, w_s)   k * pre (below), then the gate activations
    h_new[s], c_new[s], tanh_c[s] (D, h, w_s)   the step's new states and tanh(c)
    c_prev[s]                     (D, h, w_s)   c_{s-1} at the step's positions

The steps' stacked inputs lie side by side in one matrix, step s in columns spans[s]:

    z[:, :, spans[s]] = [ x_s ; 1 ; taps_s ]    (D, R, w_s)
        x_s       (D, C', w_s)   the step's input, written by the caller into ``scan.x``
        1         (D, 1, w_s)    a row of ones: the bias
        taps_s    (D, T*h, w_s)  taps_s[:, t*h:(t+1)*h] at position q = h_{s-1} at q + o_t

For each step (paper eq. 3), one matrix product with the stacked weight
[K_is | bias | K_ss] (D, G, R) (``stacked_weight``), then the cell:

    pre_s = [K_is | bias | K_ss] @ z_s          K_is x_s + bias + K_ss taps_s
    h_s, c_s = lstm_cell(pre_s, c_{s-1})        in place (cell.lstm_cell_step)

The in-place cell takes k * pre, k = -1 for the gates i, f, o and -2 for g (cell.py);
k is folded into the stacked weight, so the product writes act[s] = k * pre.

A position q of h_{s-1} or c_{s-1} that step s reads (PositionMap) is

    zero                      outside 0 .. L-1 (the image's padding)
    step s-1's position q     inside a_{s-1} .. b_{s-1}
    step s-1's position b_{s-1}  below b_{s-1}: states there are taken to equal it (the
                              Diagonal LSTM's states left of the image, which see only
                              the bias and each other: the same in every row)

and positions above a_{s-1} are not computed, so must not be read (refused when the
scan is laid out). Before step 0 every position holds the initial state h0, c0 (one
learned vector (h,) per direction). The only Python loop is over the steps.

The backward runs the steps in reverse (backpropagation through time): the gradient of
each position read from step s-1 goes back to the position it came from (dropped for
padding, summed into b_{s-1} for the positions below it). After the loop the stacked
weight's gradient is one product over all steps, sum_s d pre_s @ z_s^T, which
``split_weight`` cuts back into K_is, the bias and K_ss.
"""
import functools
import itertools

import numpy as np

from . import cell as fused_cell

# K_ss as offsets along the positions of the previous step (see the notation above)
ROW_OFFSETS = (-1, 0, 1)       # Row LSTM 1 x 3: columns c-1, c, c+1 of the previous row
DIAGONAL_OFFSETS = (-1, 0)     # Diagonal 2 x 1: rows r-1 and r of the previous skewed column


def stacked_weight(w_is, bias, k_ss, xp):
    """w_is (D, G, C'), bias (D, G), K_ss (D, G, h, T)  ->  [K_is | bias | K_ss] (D, G, R),
    K_ss's columns ordered (tap, unit), as the taps rows of z."""
    D, G, n, T = k_ss.shape
    k_taps = k_ss.transpose(0, 1, 3, 2).reshape(D, G, T * n)
    return xp.concatenate([w_is, bias[:, :, None], k_taps], axis=2)


def split_weight(d_stacked, C, T):
    """The stacked weight's gradient (D, G, R) -> those of K_is (D, G, C'), the bias
    (D, G) and K_ss (D, G, h, T): the inverse of stacked_weight's layout."""
    D, G, R = d_stacked.shape
    n = (R - C - 1) // T
    d_k = d_stacked[:, :, C + 1:].reshape(D, G, T, n).transpose(0, 1, 3, 2)
    return d_stacked[:, :, :C], d_stacked[:, :, C], d_k


class PositionMap:
    """Where positions a .. b of one step read step s-1's positions ap .. bp, at offset o.

    Segments in columns of the blocks (position i of a block: columns i*N .. (i+1)*N - 1),
    the empty ones left out: ``zero`` (col0, col1) the padding; ``copy`` (col0, col1, src0)
    reads the previous block from its column src0; ``repeat`` col0, one per position below
    the previous block (columns col0 .. col0 + N - 1), reads its last position."""

    def __init__(self, a, b, ap, bp, o, L, N):
        q_first, q_last = a + o, b + o
        if max(q_first, 0) <= min(q_last, ap - 1):
            raise ValueError(f"scan: rows {a}..{b} read rows {max(q_first, 0)}.. at offset "
                             f"{o}, above the previous step's rows {ap}..{bp}")
        clip = lambda q: min(max(q, q_first), q_last + 1) - q_first   # noqa: E731
        spans = lambda d0, d1: [(d0 * N, d1 * N)] if d1 > d0 else []  # noqa: E731
        self.N = N
        self.zero = spans(0, clip(0)) + spans(clip(L), b - a + 1)
        d0, d1 = clip(ap), clip(bp + 1)
        self.copy = [(d0 * N, d1 * N, (d0 + q_first - ap) * N)] if d1 > d0 else []
        self.repeat = [i * N for i in range(clip(bp + 1), clip(L))]

    def gather(self, dst, src):
        """dst (D, maps, w) <- src (D, maps, w_prev) by the segments."""
        for col0, col1 in self.zero:
            dst[:, :, col0:col1] = 0
        for col0, col1, src0 in self.copy:
            dst[:, :, col0:col1] = src[:, :, src0:src0 + col1 - col0]
        for col0 in self.repeat:
            dst[:, :, col0:col0 + self.N] = src[:, :, -self.N:]

    def scatter_add(self, d_src, d_dst):
        """The adjoint of gather: d_src (D, maps, w_prev) += d_dst (D, maps, w) by the segments."""
        for col0, col1, src0 in self.copy:
            d_src[:, :, src0:src0 + col1 - col0] += d_dst[:, :, col0:col1]
        for col0 in self.repeat:
            d_src[:, :, -self.N:] += d_dst[:, :, col0:col0 + self.N]


class StepBlocks:
    """One flat buffer (``flat``) holding a (D, maps, w_s) block per step, each contiguous."""

    def __init__(self, widths, D, maps, dtype, xp):
        starts = [0, *itertools.accumulate(D * maps * w for w in widths)]
        self.flat = xp.empty(starts[-1], dtype=dtype)
        self.blocks = [self.flat[lo:hi].reshape(D, maps, w)
                       for lo, hi, w in zip(starts, starts[1:], widths)]

    def __getitem__(self, s):
        return self.blocks[s]


@functools.lru_cache(maxsize=64)
def scan_layout(offsets, windows, L, N):
    """The scan's layout for given taps, windows per step, L and N (the same for every
    layer of a model and every training step, so made once): block widths, the steps'
    spans side by side, and the PositionMaps of each step's taps and of c_{s-1}."""
    if any(abs(o) > 1 for o in offsets):
        raise ValueError(f"scan: tap offsets must lie in -1..1, got {offsets}")
    widths = [(b - a + 1) * N for a, b in windows]
    ends = list(itertools.accumulate(widths))
    spans = [(e - w, e) for e, w in zip(ends, widths)]
    prev = [(0, L - 1)] + list(windows[:-1])                  # before step 0: every position
    tap_maps = [tuple(PositionMap(a, b, ap, bp, o, L, N) for o in offsets)
                for (a, b), (ap, bp) in zip(windows, prev)]
    c_maps = [PositionMap(a, b, ap, bp, 0, L, N) for (a, b), (ap, bp) in zip(windows, prev)]
    return tuple(widths), tuple(spans), tuple(tap_maps), tuple(c_maps)


class Scan:
    """The scan (see the module docstring).

    ``Scan(offsets, windows, L, N, D, G, C, dtype, xp)``; the caller writes the steps'
    inputs into ``scan.x`` (D, C', columns: step s in ``spans[s]``); then
    ``forward(weight, h0, c0)`` with the stacked weight (D, G, R) -> the h blocks;
    ``backward(g)`` with g the gradient of each h block (a ``scan.blocks(h)``)
    -> d pre (D, G, columns, laid out as z), d weight (D, G, R), d h0, d c0 (D, h)."""

    def __init__(self, offsets, windows, L, N, D, G, C, dtype, xp):
        self.offsets, self.L, self.N, self.D, self.G = tuple(offsets), L, N, D, G
        self.n, self.dtype, self.xp = G // 4, dtype, xp
        self.widths, self.spans, self.tap_maps, self.c_maps = \
            scan_layout(self.offsets, tuple(windows), L, N)
        T = len(self.offsets)
        self.z = xp.empty((D, C + 1 + T * self.n, self.spans[-1][1]), dtype=dtype)
        self.x = self.z[:, :C]                            # the caller's: the steps' inputs
        self.z[:, C] = 1                                  # the bias's row of ones
        self.taps = self.z[:, C + 1:]                     # written by the scan
        self.act = self.blocks(G)

    def blocks(self, maps):
        return StepBlocks(self.widths, self.D, maps, self.dtype, self.xp)

    def forward(self, weight, h0, c0):
        """weight (D, G, R) = [K_is | bias | K_ss]; h0, c0 (D, h)  ->  the h blocks."""
        xp, N, D, n, dt = self.xp, self.N, self.D, self.n, self.dtype
        T, w_max = len(self.offsets), max(self.widths)
        self.K_ss_T = xp.ascontiguousarray(weight[:, :, -T * n:].transpose(0, 2, 1))  # (D, T*h, G)
        weight_k = weight * fused_cell.exp_gate_scale(xp, n, dt)   # the cell's k folded in
        h_prev = xp.broadcast_to(h0[:, :, None], (D, n, self.L * N))
        c_prev = xp.broadcast_to(c0[:, :, None], (D, n, self.L * N))
        self.h_new, self.c_new, self.tanh_c = self.blocks(n), self.blocks(n), self.blocks(n)
        self.c_prev = self.blocks(n)
        tmp = xp.empty(D * n * w_max, dtype=dt)
        with np.errstate(over="ignore"):                   # exp(z) = inf: a gate at its limit 0
            for step in range(len(self.widths)):
                h_prev, c_prev = self.step(step, weight_k, h_prev, c_prev, tmp)
        return self.h_new

    def step(self, step, weight_k, h_prev, c_prev, tmp):
        """One step of the forward: h_{s-1}, c_{s-1} (blocks)  ->  h_s, c_s (blocks)."""
        xp, D, n = self.xp, self.D, self.n
        w, (lo, hi) = self.widths[step], self.spans[step]
        taps = self.taps[:, :, lo:hi]
        for t, tap_map in enumerate(self.tap_maps[step]):
            tap_map.gather(taps[:, t * n:(t + 1) * n], h_prev)
        self.c_maps[step].gather(self.c_prev[step], c_prev)
        xp.matmul(weight_k, self.z[:, :, lo:hi], out=self.act[step])    # k * pre_s
        fused_cell.lstm_cell_step(self.act[step], self.c_prev[step], self.c_new[step],
                                  self.tanh_c[step], self.h_new[step],
                                  tmp[:D * n * w].reshape(D, n, w), xp)
        return self.h_new[step], self.c_new[step]

    def backward(self, g):
        """g: StepBlocks of the gradient of each step's h  ->  d pre (D, G, columns: the
        steps side by side, step s in spans[s]), d weight (D, G, R), d h0, d c0."""
        xp, N, D, G, n, dt = self.xp, self.N, self.D, self.G, self.n, self.dtype
        T, w_max = len(self.offsets), max(self.widths + (self.L * N,))
        d_act_all = xp.empty((D, G, self.spans[-1][1]), dtype=dt)
        d_act_buf = xp.empty(D * G * w_max, dtype=dt)
        # d h and d c of step s (cur) and of step s-1 (prev): two pairs of buffers, swapped
        cur, prev = [[xp.empty(D * n * w_max, dtype=dt) for _ in range(2)] for _ in range(2)]
        tmp, tmp_g = xp.empty(D * n * w_max, dtype=dt), xp.empty(D * G * w_max, dtype=dt)
        d_taps_buf = xp.empty(D * T * n * w_max, dtype=dt)
        w_last = self.widths[-1]
        dh, dc = (b[:D * n * w_last].reshape(D, n, w_last) for b in cur)   # step S-1: nothing later
        dh[...] = 0
        dc[...] = 0
        for step in reversed(range(len(self.widths))):
            w, (lo, hi) = self.widths[step], self.spans[step]
            w_prev = self.widths[step - 1] if step else self.L * N
            # 1. the cell: h_s gets gradient from the output and from step s+1
            dh += g[step]
            d_act = d_act_buf[:D * G * w].reshape(D, G, w)
            fused_cell.lstm_cell_step_backward(dh, dc, self.act[step], self.c_prev[step],
                                               self.tanh_c[step], d_act,
                                               tmp[:D * n * w].reshape(D, n, w),
                                               tmp_g[:D * G * w].reshape(D, G, w), xp)
            d_act_all[:, :, lo:hi] = d_act
            # 2. pre_s = [K_is | bias | K_ss] @ z_s: the taps rows (the weight's after the loop)
            d_taps = d_taps_buf[:D * T * n * w].reshape(D, T * n, w)
            xp.matmul(self.K_ss_T, d_act, out=d_taps)
            # 3. the positions step s read from step s-1 get their gradient back
            dh_prev, dc_prev = (b[:D * n * w_prev].reshape(D, n, w_prev) for b in prev)
            dh_prev[...] = 0
            dc_prev[...] = 0
            for t, tap_map in enumerate(self.tap_maps[step]):
                tap_map.scatter_add(dh_prev, d_taps[:, t * n:(t + 1) * n])
            self.c_maps[step].scatter_add(dc_prev, dc)
            dh, dc = dh_prev, dc_prev
            cur, prev = prev, cur
        # the stacked weight's gradient, every step at once: sum_s d pre_s @ z_s^T
        d_weight = d_act_all @ self.z.transpose(0, 2, 1)                    # (D, G, R)
        return d_act_all, d_weight, dh.sum(axis=2), dc.sum(axis=2)
