"""The output distributions' negative log-likelihoods, as fused ops (paper section 2.2).

    softmax_nll(logits (N, K, ...), targets (N, ...))  256-way softmax per sub-pixel
    sigmoid_nll(logits (N, ...), targets (N, ...))     Bernoulli per sub-pixel (binary images)

Both return the NLL in nats per element (same shape as targets); sum over
C, H, W for the NLL of an image. bits_per_dim converts.
"""
import math

from ..backend import device_of
from ..ops.elementwise import sigmoid_array
from ..tensor import Tensor, record


def _targets(targets, logits, shape, op):
    """Integer target array of `shape`, on the logits' device."""
    t = targets.data if isinstance(targets, Tensor) else targets
    if device_of(t) != logits.device:
        raise ValueError(f"{op}: targets are on {device_of(t)}, logits on {logits.device}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{op}: targets of shape {tuple(shape)} expected, got {tuple(t.shape)}")
    if t.dtype.kind not in "iub":
        raise ValueError(f"{op}: integer targets expected, got {t.dtype}")
    return t


def softmax_nll(logits, targets):
    """-log softmax(logits)[target] along axis 1;  d/dlogits = softmax - onehot(target)."""
    xp = logits.xp
    targets = _targets(targets, logits, logits.shape[:1] + logits.shape[2:], "softmax_nll")
    z = logits.data
    m = z.max(axis=1, keepdims=True)
    log_p = z - m - xp.log(xp.exp(z - m).sum(axis=1, keepdims=True))  # stable log-softmax
    picked = xp.take_along_axis(log_p, targets[:, None].astype(xp.int64), axis=1)[:, 0]

    def backward(g):
        d = xp.exp(log_p)
        tgt = xp.expand_dims(targets.astype(xp.int64), 1)
        xp.put_along_axis(d, tgt, xp.take_along_axis(d, tgt, axis=1) - 1, axis=1)
        return (d * g[:, None],)
    return record(-picked, (logits,), backward, "softmax_nll")


def sigmoid_nll(logits, targets):
    """-log Bernoulli(target; sigmoid(z)) = softplus(z) - t z, stable;  d/dz = sigmoid(z) - t."""
    xp = logits.xp
    targets = _targets(targets, logits, logits.shape, "sigmoid_nll")
    z = logits.data
    t = targets.astype(z.dtype)
    nll = xp.maximum(z, 0) - t * z + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(g):
        return ((sigmoid_array(z, xp) - t) * g,)
    return record(nll, (logits,), backward, "sigmoid_nll")


def bits_per_dim(nll_nats, dims):
    """Nats per image -> bits per sub-pixel: nll / (dims * ln 2), dims = C * H * W."""
    return nll_nats / (dims * math.log(2))
