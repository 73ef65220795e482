"""Reductions: sum, mean, max, and the stable logsumexp / log_softmax."""
from ..tensor import record


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axis)


def _expand(g, shape, axes, keepdims):
    """Put reduced axes back as size 1 so g broadcasts against the input."""
    if not keepdims:
        for a in sorted(axes):
            g = g.reshape(g.shape[:a] + (1,) + g.shape[a:])
    return g


def sum(x, axis=None, keepdims=False):
    """z = sum over axes;  dz/dx = 1 (g broadcast back)."""
    axes = _axes(axis, x.ndim)
    shape, xp = x.shape, x.xp

    def backward(g):
        return (xp.broadcast_to(_expand(g, shape, axes, keepdims), shape),)
    return record(x.data.sum(axis=axes, keepdims=keepdims), (x,), backward, "sum")


def mean(x, axis=None, keepdims=False):
    """z = sum / count;  dz/dx = 1 / count."""
    axes = _axes(axis, x.ndim)
    count = 1
    for a in axes:
        count *= x.shape[a]
    return sum(x, axes, keepdims) * (1.0 / count)


def max(x, axis=None, keepdims=False):
    """z = max over axes;  dz/dx = 1 at the maximum (shared equally by ties)."""
    axes = _axes(axis, x.ndim)
    xd = x.data
    zk = xd.max(axis=axes, keepdims=True)

    def backward(g):
        hit = (xd == zk)
        share = hit / hit.sum(axis=axes, keepdims=True)
        return (_expand(g, xd.shape, axes, keepdims) * share.astype(xd.dtype),)
    z = zk if keepdims else zk.squeeze(axis=axes)
    return record(z, (x,), backward, "max")


def logsumexp(x, axis=-1, keepdims=False):
    """z = m + log sum e^(x - m), m = max x;  dz/dx = softmax(x)."""
    axes = _axes(axis, x.ndim)
    xd, xp = x.data, x.xp
    m = xd.max(axis=axes, keepdims=True)
    e = xp.exp(xd - m)
    s = e.sum(axis=axes, keepdims=True)
    zk = m + xp.log(s)

    def backward(g):
        return (_expand(g, xd.shape, axes, keepdims) * (e / s),)
    z = zk if keepdims else zk.squeeze(axis=axes)
    return record(z, (x,), backward, "logsumexp")


def softmax_parts(z, axis, xp):
    """The pieces of the stable log-softmax along axis, m = max z:

        shifted = z - m,  e = e^shifted,  log_norm = log sum e  (keepdims)

    The sum holds k >= 1 terms equal to 1 (the maxima) and the rest; its log is
    taken as log1p((k - 1) + rest), exact even when the rest is below the
    rounding of 1 (a confident prediction's NLL of e^-30 stays e^-30, not 0).
    softmax = e / e^log_norm; the fused NLL keeps e for its backward."""
    shifted = z - z.max(axis=axis, keepdims=True)
    top = shifted == 0
    e = xp.exp(shifted)
    rest = xp.where(top, 0, e).sum(axis=axis, keepdims=True)
    ties = (top.sum(axis=axis, keepdims=True) - 1).astype(z.dtype)
    return shifted, e, xp.log1p(ties + rest)


def log_softmax_array(z, axis, xp):
    """The stable log-softmax of an array: (z - m) - log sum e^(z - m) (softmax_parts).

    The one log-softmax of the project: the op below and the fused NLL of the
    fast path build on softmax_parts."""
    shifted, _, log_norm = softmax_parts(z, axis, xp)
    return shifted - log_norm


def log_softmax(x, axis=-1):
    """z = x - logsumexp(x);  dz/dx: g - softmax * sum(g)."""
    axis = axis % x.ndim
    xp = x.xp
    z = log_softmax_array(x.data, axis, xp)

    def backward(g):
        return (g - xp.exp(z) * g.sum(axis=axis, keepdims=True),)
    return record(z, (x,), backward, "log_softmax")

