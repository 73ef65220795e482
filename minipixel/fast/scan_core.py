"""ScanCore: the LSTM scan in place on row blocks, each step computing only the rows it needs.

The Diagonal LSTM's scan (diagonal.py); equal to the paper layer's 1 x 1 K_is on
the skewed input and its loop of a 2 x 1 conv and an lstm_cell per skewed column,
forward and backward (tested).

Notation
--------
D directions side by side, N batch, C input maps, h hidden units, G = 4h gate
maps, S steps, L rows (the positions along a step; each row holds all N images),
T taps of K_ss at row offsets o_t (the Diagonal LSTM: o = -1, 0, rows r-1 and r
of the previous skewed column), R = C + 1 + T*h rows of a step's stacked input.

Step s computes rows a_s .. b_s only (``rows[s]``); its arrays are blocks of
w_s = (b_s - a_s + 1) * N positions, ordered (row, image), each block one
contiguous piece of a flat buffer per quantity, so every elementwise pass of
the cell is one run over memory:

    act[s]            (D, G, w_s)     z = k * pre (below), then the gate activations
    h[s], c[s], tc[s] (D, h, w_s)     tc = tanh(c)
    c_in[s]           (D, h, w_s)     c_{s-1} at rows a_s .. b_s

and the steps' stacked inputs lie side by side in one matrix, step s in the
columns spans[s] (w_s of them):

    z[:, :, spans[s]] = [ x_s ; 1 ; taps_s ]   (D, R, w_s)
        x_s       (D, C, w_s)     the step's input, given by the caller
        1         (D, 1, w_s)     a row of ones: the bias
        taps_s    (D, T*h, w_s)   taps_s[:, t*h:(t+1)*h] at row r = h_{s-1} at row r + o_t

A row q of h_{s-1} or c_{s-1} that step s reads is

    zero                   outside 0 .. L-1 (the image's padding)
    step s-1's row q       inside a_{s-1} .. b_{s-1}
    step s-1's row b_{s-1} below b_{s-1}: states below a step's last row are taken
                           to equal it (the Diagonal LSTM's states left of the image,
                           which see only the bias and each other: the same in every row)

and rows above a_{s-1} are not computed, so must not be read (checked). Before
step 0 every row holds the initial state h0, c0 (one vector per direction).

For each step (paper eq. 3), with the stacked weight [K_is | bias | K_ss] (D, G, R):

    pre = [K_is | bias | K_ss] @ z_s               K_is x_s + bias + K_ss taps_s: one product
    h[s], c[s] = lstm_cell(pre, c_in[s])           in place (cell.lstm_cell_step)

The in-place cell takes k * pre, k = -1 for the gates i, f, o and -2 for g (its
exp form, cell.py); k is folded into the stacked weight, so the product writes
act[s] = k * pre. After the loop the stacked weight's gradient is one product
over all steps, sum_s d pre_s @ z_s^T = d act_all @ z^T.

The backward runs the steps in reverse (backpropagation through time); the
gradient of each row read from step s-1 goes back to the row it came from:
dropped for padding, summed into row b_{s-1} for the rows below it.
"""
import functools
import itertools

import numpy as np

from . import cell as fused_cell


class RowMap:
    """Where rows a .. b of one step read step s-1's rows ap .. bp, at row offset o.

    Segments in columns of the blocks (row i of a block: columns i*N .. (i+1)*N - 1),
    the empty ones left out: ``zero`` (c0, c1) the padding; ``copy`` (c0, c1, q0) reads
    the previous block from its column q0; ``repeat`` c0, one per row below the previous
    block (columns c0 .. c0 + N - 1), reads its last row."""

    def __init__(self, a, b, ap, bp, o, L, N):
        q_first, q_last = a + o, b + o
        if max(q_first, 0) <= min(q_last, ap - 1):
            raise ValueError(f"ScanCore: rows {a}..{b} read rows {max(q_first, 0)}.. at offset "
                             f"{o}, above the previous step's rows {ap}..{bp}")
        clip = lambda q: min(max(q, q_first), q_last + 1) - q_first   # noqa: E731
        rows = lambda d0, d1: [(d0 * N, d1 * N)] if d1 > d0 else []   # noqa: E731
        self.N = N
        self.zero = rows(0, clip(0)) + rows(clip(L), b - a + 1)
        d0, d1 = clip(ap), clip(bp + 1)
        self.copy = [(d0 * N, d1 * N, (d0 + q_first - ap) * N)] if d1 > d0 else []
        self.repeat = [r * N for r in range(clip(bp + 1), clip(L))]

    def gather(self, dst, src):
        """dst (D, k, R*N) <- src (D, k, Rp*N) by the segments."""
        for c0, c1 in self.zero:
            dst[:, :, c0:c1] = 0
        for c0, c1, q0 in self.copy:
            dst[:, :, c0:c1] = src[:, :, q0:q0 + c1 - c0]
        for c0 in self.repeat:
            dst[:, :, c0:c0 + self.N] = src[:, :, -self.N:]

    def scatter_add(self, dsrc, ddst):
        """The adjoint of gather: dsrc (D, k, Rp*N) += ddst (D, k, R*N) by the segments."""
        for c0, c1, q0 in self.copy:
            dsrc[:, :, q0:q0 + c1 - c0] += ddst[:, :, c0:c1]
        for c0 in self.repeat:
            dsrc[:, :, -self.N:] += ddst[:, :, c0:c0 + self.N]


class Blocks:
    """One flat buffer holding a (D, k, w_s) block per step, each contiguous."""

    def __init__(self, widths, D, k, dtype, xp):
        starts = [0, *itertools.accumulate(D * k * w for w in widths)]
        flat = xp.empty(starts[-1], dtype=dtype)
        self.blocks = [flat[lo:hi].reshape(D, k, w)
                       for lo, hi, w in zip(starts, starts[1:], widths)]

    def __getitem__(self, s):
        return self.blocks[s]


@functools.lru_cache(maxsize=64)
def plan(offsets, rows, L, N):
    """The scan's layout for given taps, rows per step, L and N (the same for every
    layer of a model and every training step, so made once): block widths, the steps'
    spans side by side, and the RowMaps of each step's taps and of c_{s-1}."""
    if any(abs(o) > 1 for o in offsets):
        raise ValueError(f"ScanCore: tap offsets must lie in -1..1, got {offsets}")
    widths = [(b - a + 1) * N for a, b in rows]
    ends = list(itertools.accumulate(widths))
    spans = [(e - w, e) for e, w in zip(ends, widths)]
    prev = [(0, L - 1)] + list(rows[:-1])                      # before step 0: every row
    tap_maps = [[RowMap(a, b, ap, bp, o, L, N) for o in offsets]
                for (a, b), (ap, bp) in zip(rows, prev)]
    c_maps = [RowMap(a, b, ap, bp, 0, L, N) for (a, b), (ap, bp) in zip(rows, prev)]
    return tuple(widths), tuple(spans), tuple(map(tuple, tap_maps)), tuple(c_maps)


class ScanCore:
    """The scan on row blocks (see the module docstring).

    The caller writes the steps' inputs into ``core.x`` (D, C, columns: step s in
    ``spans[s]``); then ``forward(weight, h0, c0)`` with the stacked weight (D, G, R) =
    [K_is | bias | K_ss], K_ss's columns ordered (t, k) -> the h blocks;
    ``backward(g)`` with g the gradient of each h block (a ``core.blocks(h)``)
    -> d pre (D, G, columns, laid out as z), d weight (D, G, R), d h0, d c0."""

    def __init__(self, offsets, rows, L, N, D, G, C, dtype, xp):
        self.offsets, self.L, self.N, self.D, self.G = tuple(offsets), L, N, D, G
        self.n, self.dtype, self.xp = G // 4, dtype, xp
        self.widths, self.spans, self.tap_maps, self.c_maps = plan(self.offsets, tuple(rows), L, N)
        T = len(self.offsets)
        self.z = xp.empty((D, C + 1 + T * self.n, self.spans[-1][1]), dtype=dtype)
        self.x = self.z[:, :C]                            # the caller's: the steps' inputs
        self.z[:, C] = 1                                  # the bias's row of ones
        self.taps = self.z[:, C + 1:]                     # written by the scan
        self.act = self.blocks(G)

    def blocks(self, k):
        return Blocks(self.widths, self.D, k, self.dtype, self.xp)

    def forward(self, weight, h0, c0):
        """weight (D, G, R) = [K_is | bias | K_ss]; h0, c0 (D, h)."""
        xp, N, D, n, dt = self.xp, self.N, self.D, self.n, self.dtype
        T, w_max = len(self.offsets), max(self.widths)
        self.K_T = xp.ascontiguousarray(weight[:, :, -T * n:].transpose(0, 2, 1))  # (D, T*h, G)
        weight_k = weight * fused_cell.exp_gate_scale(xp, n, dt)   # the cell's k folded in
        h_init = xp.broadcast_to(h0[:, :, None], (D, n, self.L * N))
        c_init = xp.broadcast_to(c0[:, :, None], (D, n, self.L * N))
        self.h, self.c, self.tc = self.blocks(n), self.blocks(n), self.blocks(n)
        self.c_in = self.blocks(n)
        tmp = xp.empty(D * n * w_max, dtype=dt)
        h_prev, c_prev = h_init, c_init
        with np.errstate(over="ignore"):                   # exp(z) = inf: a gate at its limit 0
            for step in range(len(self.widths)):
                h_prev, c_prev = self.step(step, weight_k, h_prev, c_prev, tmp)
        return self.h

    def step(self, step, weight_k, h_prev, c_prev, tmp):
        """One step of the forward: h_{s-1}, c_{s-1} (blocks)  ->  h_s, c_s (blocks)."""
        xp, D, n = self.xp, self.D, self.n
        w, (lo, hi) = self.widths[step], self.spans[step]
        taps = self.taps[:, :, lo:hi]
        for t, row_map in enumerate(self.tap_maps[step]):
            row_map.gather(taps[:, t * n:(t + 1) * n], h_prev)
        self.c_maps[step].gather(self.c_in[step], c_prev)
        xp.matmul(weight_k, self.z[:, :, lo:hi], out=self.act[step])    # k * pre_s
        fused_cell.lstm_cell_step(self.act[step], self.c_in[step], self.c[step], self.tc[step],
                                  self.h[step], tmp[:D * n * w].reshape(D, n, w), xp)
        return self.h[step], self.c[step]

    def backward(self, g):
        """g: Blocks of the gradient of each step's h  ->  d pre (D, G, columns: the steps
        side by side, step s in spans[s]), d weight (D, G, R), d h0, d c0."""
        xp, N, D, G, n, dt = self.xp, self.N, self.D, self.G, self.n, self.dtype
        T, w_max = len(self.offsets), max(self.widths + (self.L * N,))
        dact_all = xp.empty((D, G, self.spans[-1][1]), dtype=dt)
        dact_buf = xp.empty(D * G * w_max, dtype=dt)
        # d h and d c of step s (cur) and of step s-1 (prev): two pairs of buffers, swapped
        cur, prev = [[xp.empty(D * n * w_max, dtype=dt) for _ in range(2)] for _ in range(2)]
        tmp, tmp_g = xp.empty(D * n * w_max, dtype=dt), xp.empty(D * G * w_max, dtype=dt)
        dtaps_buf = xp.empty(D * T * n * w_max, dtype=dt)
        w_last = self.widths[-1]
        dh, dc = (b[:D * n * w_last].reshape(D, n, w_last) for b in cur)   # step S-1: nothing later
        dh[...] = 0
        dc[...] = 0
        for step in reversed(range(len(self.widths))):
            w, (lo, hi) = self.widths[step], self.spans[step]
            w_prev = self.widths[step - 1] if step else self.L * N
            # 1. the cell: h_s gets gradient from the output and from step s+1
            dh += g[step]
            dact = dact_buf[:D * G * w].reshape(D, G, w)
            fused_cell.lstm_cell_step_backward(dh, dc, self.act[step], self.c_in[step],
                                               self.tc[step], dact,
                                               tmp[:D * n * w].reshape(D, n, w),
                                               tmp_g[:D * G * w].reshape(D, G, w), xp)
            dact_all[:, :, lo:hi] = dact
            # 2. pre_s = [K_is | bias | K_ss] @ z_s: the taps rows (the weight's after the loop)
            dtaps = dtaps_buf[:D * T * n * w].reshape(D, T * n, w)
            xp.matmul(self.K_T, dact, out=dtaps)
            # 3. the rows step s read from step s-1 get their gradient back
            dh_prev, dc_prev = (b[:D * n * w_prev].reshape(D, n, w_prev) for b in prev)
            dh_prev[...] = 0
            dc_prev[...] = 0
            for t, row_map in enumerate(self.tap_maps[step]):
                row_map.scatter_add(dh_prev, dtaps[:, t * n:(t + 1) * n])
            self.c_maps[step].scatter_add(dc_prev, dc)
            dh, dc = dh_prev, dc_prev
            cur, prev = prev, cur
        # the stacked weight's gradient, every step at once: sum_s d pre_s @ z_s^T
        dweight = dact_all @ self.z.transpose(0, 2, 1)                      # (D, G, R)
        return dact_all, dweight, dh.sum(axis=2), dc.sum(axis=2)
