"""Elementwise nonlinearities and `where`."""
from ..tensor import as_tensor, check_same, record
from .arithmetic import unbroadcast


def exp(x):
    """z = e^x;  dz/dx = z."""
    z = x.xp.exp(x.data)
    return record(z, (x,), lambda g: (g * z,), "exp")


def log(x):
    """z = ln x;  dz/dx = 1/x."""
    xd = x.data
    return record(x.xp.log(xd), (x,), lambda g: (g / xd,), "log")


def sigmoid_array(x, xp):
    """1 / (1 + e^-x), computed without overflow for large |x|."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid(x):
    """z = 1 / (1 + e^-x);  dz/dx = z (1 - z)."""
    z = sigmoid_array(x.data, x.xp)
    return record(z, (x,), lambda g: (g * z * (1 - z),), "sigmoid")


def tanh(x):
    """z = tanh x;  dz/dx = 1 - z^2."""
    z = x.xp.tanh(x.data)
    return record(z, (x,), lambda g: (g * (1 - z * z),), "tanh")


def relu(x):
    """z = max(x, 0);  dz/dx = [x > 0]."""
    positive = x.data > 0
    return record(x.data * positive, (x,), lambda g: (g * positive,), "relu")


def leaky_relu(x, slope=0.01):
    """z = x for x > 0, slope * x otherwise;  dz/dx = 1 or slope."""
    scale = x.xp.where(x.data > 0, 1.0, slope).astype(x.dtype)
    return record(x.data * scale, (x,), lambda g: (g * scale,), "leaky_relu")


def where(cond, a, b):
    """z = a where cond else b (cond is a boolean array, not differentiated)."""
    cond = cond.data if hasattr(cond, "requires_grad") else cond
    a = as_tensor(a, like=b if hasattr(b, "requires_grad") else None)
    b = as_tensor(b, like=a)
    check_same(a, b, op="where")
    xp = a.xp
    sa, sb = a.shape, b.shape

    def backward(g):
        zero = xp.zeros((), dtype=g.dtype)
        return (unbroadcast(xp.where(cond, g, zero), sa),
                unbroadcast(xp.where(cond, zero, g), sb))
    return record(xp.where(cond, a.data, b.data), (a, b), backward, "where")
