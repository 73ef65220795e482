"""The output NLLs as fused ops: the fast twins of minipixel/layers/losses.py.

    softmax_nll(logits (N, K, ...), targets (N, ...))  d/dlogits = softmax - onehot(target)
    sigmoid_nll(logits (N, ...), targets (N, ...))     softplus(z) - t z;  d/dz = sigmoid(z) - t

Equal to the paper path's log_softmax forms, forward and backward (tested).
"""
from ..layers.losses import check_targets
from ..ops.elementwise import sigmoid_array
from ..ops.reductions import softmax_parts
from ..tensor import record


def softmax_nll(logits, targets):
    """-log softmax(logits)[target] along axis 1;  d/dlogits = softmax - onehot(target).

    Works on the logits as they lie in memory (the model's are a view of the last
    conv's channel-major maps: no transposed copy); keeps e^(z - max) from the
    forward for the backward's softmax (no second exp over the logits)."""
    xp = logits.xp
    targets = check_targets(targets, logits, logits.shape[:1] + logits.shape[2:], "softmax_nll")
    shifted, e, log_norm = softmax_parts(logits.data, 1, xp)
    tgt = xp.expand_dims(targets.astype(xp.int64), 1)
    nll = (log_norm - xp.take_along_axis(shifted, tgt, axis=1))[:, 0]
    del shifted

    def backward(g):
        d = e / xp.exp(log_norm)                          # softmax
        xp.put_along_axis(d, tgt, xp.take_along_axis(d, tgt, axis=1) - 1, axis=1)
        d *= xp.expand_dims(g, 1)
        return (d,)
    return record(nll, (logits,), backward, "softmax_nll")


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
