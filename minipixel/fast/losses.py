"""The output NLLs as fused ops: the fast twins of minipixel/layers/losses.py.

    softmax_nll(logits (N, K, ...), targets (N, ...))  d/dlogits = softmax - onehot(target)
    sigmoid_nll(logits (N, ...), targets (N, ...))     softplus(z) - t z;  d/dz = sigmoid(z) - t

Equal to the paper path's log_softmax forms, forward and backward (tested).
"""
from ..layers.losses import check_targets
from ..ops.elementwise import sigmoid_array
from ..ops.reductions import log_softmax_array
from ..tensor import record


def softmax_nll(logits, targets):
    """-log softmax(logits)[target] along axis 1;  d/dlogits = softmax - onehot(target)."""
    xp = logits.xp
    targets = check_targets(targets, logits, logits.shape[:1] + logits.shape[2:], "softmax_nll")
    log_p = log_softmax_array(logits.data, 1, xp)
    tgt = xp.expand_dims(targets.astype(xp.int64), 1)
    picked = xp.take_along_axis(log_p, tgt, axis=1)[:, 0]

    def backward(g):
        d = xp.exp(log_p)
        xp.put_along_axis(d, tgt, xp.take_along_axis(d, tgt, axis=1) - 1, axis=1)
        return (d * g[:, None],)
    return record(-picked, (logits,), backward, "softmax_nll")


def sigmoid_nll(logits, targets):
    """-log Bernoulli(target; sigmoid(z)) = softplus(z) - t z, stable;  d/dz = sigmoid(z) - t."""
    xp = logits.xp
    targets = check_targets(targets, logits, logits.shape, "sigmoid_nll")
    z = logits.data
    t = targets.astype(z.dtype)
    nll = xp.maximum(z, 0) - t * z + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(g):
        return ((sigmoid_array(z, xp) - t) * g,)
    return record(nll, (logits,), backward, "sigmoid_nll")
