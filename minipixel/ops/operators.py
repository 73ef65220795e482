"""Python's operators on Tensor, as the ops of this package.

tensor.py defines the data, the graph and backward, and imports no op; the
ops import tensor.py. The operator methods are attached here, once, when
minipixel.ops is first imported (minipixel/__init__.py imports it), so
``a + b`` is ``ops.add(a, b)`` and ``t.sum(1)`` is ``ops.sum(t, 1)``.
"""
from ..tensor import Tensor
from .arithmetic import add, div, matmul, mul, neg, pow, sub
from .elementwise import exp, log, relu, sigmoid, tanh
from .reductions import max, mean, sum
from .shape import getitem, reshape, transpose


def _reshape(self, *shape):
    return reshape(self, shape[0] if len(shape) == 1 else shape)


def _transpose(self, *axes):
    # t.transpose((1, 0)) or t.transpose(None); t.transpose(0) on a 1-D tensor is an axis
    one = len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list)))
    return transpose(self, axes[0] if one else (axes or None))


OPERATORS = {
    "__add__": add, "__radd__": lambda a, b: add(b, a),
    "__sub__": sub, "__rsub__": lambda a, b: sub(b, a),
    "__mul__": mul, "__rmul__": lambda a, b: mul(b, a),
    "__truediv__": div, "__rtruediv__": lambda a, b: div(b, a),
    "__neg__": neg, "__pow__": pow, "__matmul__": matmul, "__getitem__": getitem,
    "sum": lambda t, axis=None, keepdims=False: sum(t, axis, keepdims),
    "mean": lambda t, axis=None, keepdims=False: mean(t, axis, keepdims),
    "max": lambda t, axis=None, keepdims=False: max(t, axis, keepdims),
    "reshape": _reshape, "transpose": _transpose, "T": property(lambda t: transpose(t)),
    "exp": exp, "log": log, "sigmoid": sigmoid, "tanh": tanh, "relu": relu,
}

for _name, _method in OPERATORS.items():
    setattr(Tensor, _name, _method)
