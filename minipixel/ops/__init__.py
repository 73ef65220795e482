"""Differentiable ops. Each op's backward sits right under its forward.

Notation used in shape comments: N batch, C channels, H x W image,
KH x KW kernel, OH x OW output, T kept kernel taps, h hidden units.
"""
from .arithmetic import add, sub, mul, div, neg, pow, matmul
from .elementwise import exp, log, sigmoid, tanh, relu, leaky_relu, where
from .reductions import sum, mean, max, logsumexp, log_softmax
from .shape import reshape, transpose, getitem, pad, concat, stack, flip, skew, unskew
from .conv import conv2d, im2col, col2im
from .conv_transpose import conv_transpose2d
from . import operators  # noqa: F401  (a + b, t.sum(), ... on Tensor)

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "matmul",
           "exp", "log", "sigmoid", "tanh", "relu", "leaky_relu", "where",
           "sum", "mean", "max", "logsumexp", "log_softmax",
           "reshape", "transpose", "getitem", "pad", "concat", "stack", "flip", "skew", "unskew",
           "conv2d", "im2col", "col2im", "conv_transpose2d"]
