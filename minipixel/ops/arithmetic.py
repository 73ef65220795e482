"""Broadcasting arithmetic and the matrix product."""
from ..tensor import Tensor, as_tensor, check_same, record


def unbroadcast(g, shape):
    """Sum a broadcast gradient back down to `shape` (the input's shape)."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, n in enumerate(shape):
        if n == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


def _pair(a, b, op):
    a = as_tensor(a, like=b if isinstance(b, Tensor) else None)
    b = as_tensor(b, like=a)
    check_same(a, b, op=op)
    return a, b


def add(a, b):
    """z = a + b;  dz/da = 1, dz/db = 1 (summed over broadcast axes)."""
    a, b = _pair(a, b, "add")
    sa, sb = a.shape, b.shape

    def backward(g):
        return unbroadcast(g, sa), unbroadcast(g, sb)
    return record(a.data + b.data, (a, b), backward, "add")


def sub(a, b):
    """z = a - b;  dz/da = 1, dz/db = -1."""
    a, b = _pair(a, b, "sub")
    sa, sb = a.shape, b.shape

    def backward(g):
        return unbroadcast(g, sa), unbroadcast(-g, sb)
    return record(a.data - b.data, (a, b), backward, "sub")


def mul(a, b):
    """z = a * b;  dz/da = b, dz/db = a."""
    a, b = _pair(a, b, "mul")
    ad, bd = a.data, b.data

    def backward(g):
        return unbroadcast(g * bd, ad.shape), unbroadcast(g * ad, bd.shape)
    return record(ad * bd, (a, b), backward, "mul")


def div(a, b):
    """z = a / b;  dz/da = 1/b, dz/db = -a/b^2."""
    a, b = _pair(a, b, "div")
    ad, bd = a.data, b.data

    def backward(g):
        return unbroadcast(g / bd, ad.shape), unbroadcast(-g * ad / (bd * bd), bd.shape)
    return record(ad / bd, (a, b), backward, "div")


def neg(a):
    """z = -a."""
    return record(-a.data, (a,), lambda g: (-g,), "neg")


def pow(a, p):
    """z = a ** p;  dz/da = p a^(p-1), dz/dp = a^p log a (needs a > 0).

    p is a Python number or a tensor."""
    a, p = _pair(a, p, "pow")
    ad, pd = a.data, p.data
    z = ad ** pd
    xp = a.xp

    def backward(g):
        ga = unbroadcast(g * pd * ad ** (pd - 1), ad.shape)
        gp = unbroadcast(g * z * xp.log(ad), pd.shape) if p.requires_grad else None
        return ga, gp
    return record(z, (a, p), backward, "pow")


def matmul(a, b):
    """z = a @ b, batched and broadcast like numpy.matmul.

    (..., M, K) @ (..., K, P) -> (..., M, P);  dz/da = g @ b^T, dz/db = a^T @ g.
    1-D operands are treated as a row (left) or column (right) and squeezed."""
    a, b = as_tensor(a), as_tensor(b)
    check_same(a, b, op="matmul")
    ad, bd = a.data, b.data
    a2 = ad[None, :] if ad.ndim == 1 else ad
    b2 = bd[:, None] if bd.ndim == 1 else bd
    z = a2 @ b2
    xp = a.xp

    def backward(g):
        g2 = g
        if bd.ndim == 1:
            g2 = g2[..., None]
        if ad.ndim == 1:
            g2 = g2[..., None, :]
        ga = unbroadcast(g2 @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(ad.shape)
        gb = unbroadcast(xp.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(bd.shape)
        return ga, gb
    if bd.ndim == 1:
        z = z[..., 0]
    if ad.ndim == 1:
        z = z[..., 0, :] if bd.ndim > 1 else z[..., 0]
    return record(z, (a, b), backward, "matmul")
