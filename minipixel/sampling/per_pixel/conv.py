"""The per-pixel twin of minipixel/layers/conv.py: a convolution at one output position.

Made by ``conv.at_pixel(grid)`` (Conv2d and MaskedConv2d) from the conv's current
weights; masked-out taps are never read. Tested equal to the conv's forward pass at
every position (reference_tests/test_per_pixel_twins.py).
"""
import copy

import numpy as np

from ...backend import get_array_module
from ...ops.conv import kept_taps


class PixelConv:
    """A convolution evaluated at one output position (r, col), in raw arrays, no graph.

    Notation: N batch, C input / OC output channels, T kept taps (i_t, j_t) of
    a KH x KW kernel, in row-major order; `grid` (N, Hp, Wp, C) the conv's
    input, channels last, padded as the conv pads it, so the window of output
    (r, col) starts at grid[:, r, col]:

        w (T * C, OC)                   the kept taps' weights, row t * C + ch
        window(r, col)[:, t * C + ch]  = grid[:, r + i_t, col + j_t, ch]      (channel ch)
        out(r, col)                     = window(r, col) @ w + b               (N, OC)

    Split by the last kept kernel row e (the output's own row for a masked
    conv): the taps above it, and the taps on it, columns j0..j1 (contiguous):

        out(r, col) = above(r)[:, col] + grid[:, r + e, col + j0 : col + j1 + 1] @ w_own
        above(r)    = b + the taps above row e, at every column of row r   (N, W, OC)

    For the causal grids of the cached samplers, rows above the output's do not
    change while its row is drawn: ``begin_row(r)`` computes above(r) at once, as
    one gather from the flattened grid (columns[col] + r * Wp * C, columns[col] the
    indices of the window of (0, col)) and one product; ``at(r, col)`` adds the own
    row's taps, one slice of the grid. ``row(r)`` is every tap at every column.

    Made by ``conv.at_pixel(grid)`` from the conv's current weights (masked-out
    taps are never read); `grid` is the caller's cache (C-contiguous: a fresh
    zeros), read as it is when ``begin_row``, ``at`` and ``row`` run. Without a
    grid, ``vec`` applies a 1 x 1 conv to one pixel's features."""

    def __init__(self, w, bias, taps, kernel, grid=None):
        taps = taps if taps is not None else kept_taps(None, *kernel)
        xp = get_array_module(w)
        ti, tj = (np.array([tap[a] for tap in taps]) for a in (0, 1))
        OC, C = w.shape[:2]
        kept = w[:, :, xp.asarray(ti), xp.asarray(tj)]                           # (OC, C, T)
        self.w = xp.ascontiguousarray(kept.transpose(2, 1, 0).reshape(len(taps) * C, OC))
        self.b = bias.data.reshape(1, OC) if bias is not None else None
        self.xp = xp
        if grid is not None:
            N, Hp, Wp, C = grid.shape
            e = int(ti.max())
            n_above = int((ti < e).sum())
            own = tj[n_above:]                                      # columns on row e, in order
            if list(own) != list(range(own[0], own[0] + len(own))):
                raise ValueError(f"PixelConv: the taps on the last kept row must be contiguous, "
                                 f"got columns {list(own)}")
            window = ((ti * Wp + tj)[:, None] * C + np.arange(C)).reshape(-1)    # (T * C,)
            columns = window + C * np.arange(Wp - kernel[1] + 1)[:, None]       # (W, T * C)
            self.columns = xp.asarray(columns)
            self.w_above, self.w_own = self.w[:n_above * C], self.w[n_above * C:]
            self.grid, self.e, self.j0, self.j1 = grid, e, int(own[0]), int(own[-1])
            self.flat, self.row_size = grid.reshape(N, Hp * Wp * C), Wp * C    # a view

    def begin_row(self, r):
        """above(r) (N, W, OC): the bias and the taps above row e, for every column of row r."""
        N, W = len(self.grid), len(self.columns)
        if len(self.w_above):
            above = self.product(r, self.columns[:, :len(self.w_above)], self.w_above)
        else:                                             # a 1 x K conv: nothing above
            above = self.xp.zeros((N, W, self.w.shape[1]), dtype=self.w.dtype)
        self.above = above + self.b if self.b is not None else above

    def at(self, r, col):
        """The output (N, OC) at (r, col): above(r) (``begin_row(r)`` first) plus row e's
        taps, from the grid's values there now."""
        own = self.grid[:, r + self.e, col + self.j0:col + self.j1 + 1]           # (N, T_own, C)
        y = self.xp.dot(own.reshape(len(own), -1), self.w_own)
        y += self.above[:, col]
        return y

    def row(self, r):
        """The outputs (N, W, OC) at every column of row r, every tap read now."""
        y = self.product(r, self.columns, self.w)
        return y + self.b if self.b is not None else y

    def product(self, r, columns, w):
        """The windows at row r of the taps in `columns` (W, T' * C) times their weights
        w (T' * C, OC): (N, W, OC), no bias; one gather and one 2-d product."""
        windows = self.flat.take(columns + r * self.row_size, axis=1)           # (N, W, T' * C)
        N, W, TC = windows.shape
        return self.xp.dot(windows.reshape(N * W, TC), w).reshape(N, W, -1)

    def output_block(self, start, stop):
        """The same conv computing only its outputs start..stop-1."""
        part = copy.copy(self)
        part.w = self.xp.ascontiguousarray(self.w[:, start:stop])
        part.b = None if self.b is None else self.b[:, start:stop]
        return part

    def vec(self, x):
        """x (M, T * C) @ w + b -> (M, OC); for a 1 x 1 conv, x is one pixel's features."""
        y = self.xp.dot(x, self.w)
        if self.b is not None:
            y += self.b
        return y


def condition_bias(module, cond):
    """A conditional layer's bias V (*) cond at every pixel, computed once: (N, H, W, OC)
    for the conditioning map cond (N, H, W, c), channels last (the Multi-Scale model,
    layers/conditioning.py; V is ``module.condition``, a 1 x 1 unmasked conv). None
    without a map; a module built without V refuses one."""
    if cond is None:
        return None
    if getattr(module, "condition", None) is None:
        raise ValueError(f"{type(module).__name__} has no conditioning (built with "
                         f"condition_maps=0), but a conditioning map was given")
    N, H, W, c = cond.shape
    v = module.condition.at_pixel()                                   # w (c, OC)
    if v.w.shape[0] != c:
        raise ValueError(f"{type(module).__name__} takes {v.w.shape[0]} conditioning maps, "
                         f"got a map of {c}")
    return v.vec(cond.reshape(N * H * W, c)).reshape(N, H, W, -1)
