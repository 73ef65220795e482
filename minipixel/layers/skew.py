"""Skew and unskew (paper section 3.2, figure 3).

Notation: N batch, C channels, an H x W map; skewed width W' = H + W - 1.

    skew:    S[..., r, r + c] = X[..., r, c]     (N, C, H, W) -> (N, C, H, W'), zeros elsewhere
    unskew:  X[..., r, c] = S[..., r, r + c]     (N, C, H, W') -> (N, C, H, W)

Skewing turns each anti-diagonal of the image into one column, so a
recurrence over columns of S moves along the image's diagonals. Each op is
one gather or scatter by index arrays, and each is the other's backward.
"""
from ..tensor import record


def _diagonal_index(H, W, xp):
    rows = xp.arange(H)[:, None]
    return rows, rows + xp.arange(W)[None, :]         # (H, 1), (H, W)


def skew(x):
    """(N, C, H, W) -> (N, C, H, H + W - 1);  backward: unskew the gradient."""
    xp = x.xp
    N, C, H, W = x.shape
    rows, cols = _diagonal_index(H, W, xp)
    s = xp.zeros((N, C, H, H + W - 1), dtype=x.dtype)
    s[:, :, rows, cols] = x.data
    return record(s, (x,), lambda g: (g[:, :, rows, cols],), "skew")


def unskew(s, W):
    """(N, C, H, H + W - 1) -> (N, C, H, W);  backward: skew the gradient."""
    xp = s.xp
    N, C, H, Ws = s.shape
    if Ws != H + W - 1:
        raise ValueError(f"unskew: a skewed map of height {H} and width {W} has "
                         f"{H + W - 1} columns, got {Ws}")
    rows, cols = _diagonal_index(H, W, xp)

    shape = s.shape

    def backward(g):
        full = xp.zeros(shape, dtype=g.dtype)
        full[:, :, rows, cols] = g
        return (full,)
    return record(s.data[:, :, rows, cols], (s,), backward, "unskew")
