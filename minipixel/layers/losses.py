"""The output distributions' negative log-likelihoods (paper section 2.2), from one log_softmax.

    softmax_nll(logits (N, K, ...), targets (N, ...))  K-way softmax per sub-pixel (K = 256)
        nll = -log_softmax(logits, axis=1)[target]
    sigmoid_nll(logits (N, ...), targets (N, ...))     Bernoulli per sub-pixel (binary images)
        the same with the two logits (0, z): p(1) = e^z / (1 + e^z) = sigmoid(z)

Both return the NLL in nats per element (same shape as targets); sum over
C, H, W for the NLL of an image. bits_per_dim converts. The engine derives
the backward; the fused twins (softmax - onehot by hand) are minipixel/fast/losses.py.
"""
import math

from ..backend import device_of
from ..ops import log_softmax, stack
from ..tensor import Tensor


def check_targets(targets, logits, shape, op):
    """Integer target array of `shape`, on the logits' device."""
    t = targets.data if isinstance(targets, Tensor) else targets
    if device_of(t) != logits.device:
        raise ValueError(f"{op}: targets are on {device_of(t)}, logits on {logits.device}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{op}: targets of shape {tuple(shape)} expected, got {tuple(t.shape)}")
    if t.dtype.kind not in "iub":
        raise ValueError(f"{op}: integer targets expected, got {t.dtype}")
    return t


def one_hot(targets, K, like):
    """(N, ...) integers -> (N, K, ...) 0/1 array in like's dtype and device."""
    xp = like.xp
    values = xp.arange(K).reshape((1, K) + (1,) * (targets.ndim - 1))
    return (xp.expand_dims(targets, 1) == values).astype(like.dtype)


def softmax_nll(logits, targets):
    """-log softmax(logits)[target] along axis 1: (N, K, ...) -> (N, ...)."""
    targets = check_targets(targets, logits, logits.shape[:1] + logits.shape[2:], "softmax_nll")
    log_p = log_softmax(logits, axis=1)
    return -(log_p * Tensor(one_hot(targets, logits.shape[1], logits))).sum(axis=1)


def sigmoid_nll(logits, targets):
    """-log Bernoulli(target; sigmoid(z)): a 2-way softmax over the logits (0, z)."""
    targets = check_targets(targets, logits, logits.shape, "sigmoid_nll")
    zero = Tensor(logits.xp.zeros(logits.shape, dtype=logits.dtype))
    return softmax_nll(stack([zero, logits], axis=1), targets)


def bits_per_dim(nll_nats, dims):
    """Nats per image -> bits per sub-pixel: nll / (dims * ln 2), dims = C * H * W."""
    return nll_nats / (dims * math.log(2))
