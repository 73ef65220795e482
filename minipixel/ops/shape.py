"""Ops that move values around without arithmetic.

skew / unskew (paper section 3.2, figure 3), N batch, C channels, an H x W map,
skewed width W' = H + W - 1:

    skew:    S[..., r, r + c] = X[..., r, c]     (N, C, H, W) -> (N, C, H, W'), zeros elsewhere
    unskew:  X[..., r, c] = S[..., r, r + c]     (N, C, H, W') -> (N, C, H, W)

Skewing turns each anti-diagonal of the image into one column, so a recurrence
over the columns of S moves along the image's diagonals. Each is one gather or
scatter by index arrays, and each is the other's backward.
"""
from ..backend import scatter_add
from ..tensor import as_tensor, check_same, record


def reshape(x, shape):
    """Same values, new shape;  the gradient is reshaped back."""
    shape = tuple(shape) if not isinstance(shape, int) else (shape,)
    old = x.shape
    return record(x.data.reshape(shape), (x,), lambda g: (g.reshape(old),), "reshape")


def transpose(x, axes=None):
    """Permute axes (reverse them when axes is None);  gradient: inverse permutation."""
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))
    return record(x.data.transpose(axes), (x,), lambda g: (g.transpose(inverse),), "transpose")


def _has_array_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "shape") or isinstance(p, list) for p in parts)


def getitem(x, index):
    """z = x[index] (slices, ints, integer arrays);  gradient scattered back.

    Integer-array indices may repeat an element; their gradients are added."""
    if hasattr(index, "requires_grad"):
        index = index.data
    shape, dtype, xp = x.shape, x.dtype, x.xp
    array_index = _has_array_index(index)

    def backward(g):
        full = xp.zeros(shape, dtype=dtype)
        if array_index:
            scatter_add(full, index, g)
        else:
            full[index] = g
        return (full,)
    return record(x.data[index], (x,), backward, "getitem")


def pad(x, widths):
    """Zero padding; widths as numpy.pad's ((before, after), ...) per axis."""
    widths = tuple(tuple(w) for w in widths)
    if len(widths) != x.ndim:
        raise ValueError(f"pad: need one (before, after) per axis ({x.ndim}), got {widths}")
    crop = tuple(slice(b, b + n) for (b, _), n in zip(widths, x.shape))
    return record(x.xp.pad(x.data, widths), (x,), lambda g: (g[crop],), "pad")


def concat(tensors, axis=0):
    """Join along an existing axis;  gradient split back into the pieces."""
    tensors = [as_tensor(t) for t in tensors]
    check_same(*tensors, op="concat")
    xp = tensors[0].xp
    axis = axis % tensors[0].ndim
    edges, total = [], 0
    for t in tensors:
        edges.append((total, total + t.shape[axis]))
        total += t.shape[axis]

    def backward(g):
        idx = [slice(None)] * g.ndim
        out = []
        for lo, hi in edges:
            idx[axis] = slice(lo, hi)
            out.append(g[tuple(idx)])
        return out
    return record(xp.concatenate([t.data for t in tensors], axis=axis), tensors, backward, "concat")


def stack(tensors, axis=0):
    """Join along a new axis;  gradient: slices of g along that axis."""
    tensors = [as_tensor(t) for t in tensors]
    check_same(*tensors, op="stack")
    xp = tensors[0].xp
    axis = axis % (tensors[0].ndim + 1)

    n = len(tensors)

    def backward(g):
        index = (slice(None),) * axis
        return [g[index + (i,)] for i in range(n)]          # views, no copies
    return record(xp.stack([t.data for t in tensors], axis=axis), tensors, backward, "stack")


def flip(x, axis):
    """Reverse the order along axis (or axes);  gradient flipped back."""
    xp = x.xp
    return record(xp.flip(x.data, axis), (x,), lambda g: (xp.flip(g, axis),), "flip")


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
