"""Check an op's hand-written backward against central finite differences.

    gradcheck(fn, *inputs)              every element of every input that requires grad
    gradcheck_directional(fn, *inputs)  a few random directions, for big inputs

fn maps Tensors to a Tensor of any shape. The output is reduced to a scalar
with a fixed random weighting, L = sum(fn(inputs) * v), so every output
element's gradient is exercised. Run in float64: float32 differences are too
coarse to catch a wrong backward.
"""
import numpy as np

from .backend import to_numpy
from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    pass


def _weights(out, seed):
    v = np.random.default_rng(seed).uniform(0.5, 1.5, size=out.shape)
    v *= np.random.default_rng(seed + 1).choice([-1.0, 1.0], size=out.shape)
    return out.xp.asarray(v, dtype=out.dtype)


def _loss(fn, inputs, v):
    with no_grad():
        return float((fn(*inputs).data * v).sum())


def _analytic(fn, inputs, seed):
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    v = _weights(out, seed)
    if out.requires_grad:
        out.backward(v)
    grads = [None if not t.requires_grad else
             (t.grad if t.grad is not None else t.xp.zeros_like(t.data)) for t in inputs]
    return v, grads


def _check_inputs(inputs):
    inputs = [t if isinstance(t, Tensor) else Tensor(t) for t in inputs]
    for k, t in enumerate(inputs):
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs; input {k} is {t.dtype}")
        t.data = t.xp.ascontiguousarray(t.data)   # so reshape(-1) is a view to perturb
    if not any(t.requires_grad for t in inputs):
        raise ValueError("gradcheck: no input has requires_grad=True")
    return inputs


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-6, rtol=1e-5, seed=0, raise_exception=True):
    """True if the analytic gradient matches central differences everywhere.

    An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
    On failure raises GradcheckError naming the worst element: input number,
    index, analytic and numeric values (or returns False)."""
    inputs = _check_inputs(inputs)
    v, analytic = _analytic(fn, inputs, seed)
    worst = None  # (excess, k, index, analytic, numeric)
    for k, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        flat = t.data.reshape(-1)          # a view: perturb in place, then restore
        a_flat = to_numpy(analytic[k]).reshape(-1)
        for e in range(flat.size):
            keep = flat[e].item()
            flat[e] = keep + eps
            up = _loss(fn, inputs, v)
            flat[e] = keep - eps
            down = _loss(fn, inputs, v)
            flat[e] = keep
            numeric = (up - down) / (2 * eps)
            excess = abs(a_flat[e] - numeric) - (atol + rtol * abs(numeric))
            if worst is None or excess > worst[0]:
                worst = (excess, k, np.unravel_index(e, t.shape), a_flat[e], numeric)
    if worst[0] > 0:
        _, k, index, a, n = worst
        msg = (f"gradcheck failed: input {k} at index {tuple(int(i) for i in index)}: "
               f"analytic {a:.10g}, numeric {n:.10g} (difference {abs(a - n):.3g}, "
               f"allowed {atol + rtol * abs(n):.3g})")
        if raise_exception:
            raise GradcheckError(msg)
        return False
    return True


def gradcheck_directional(fn, *inputs, n_directions=3, eps=1e-6, atol=1e-6, rtol=1e-5,
                          seed=0, raise_exception=True):
    """Like gradcheck, along random directions d: <grad, d> vs (L(x+eps d) - L(x-eps d)) / 2eps.

    Costs two forward passes per direction, whatever the input size."""
    inputs = _check_inputs(inputs)
    v, analytic = _analytic(fn, inputs, seed)
    rng = np.random.default_rng(seed + 2)
    for trial in range(n_directions):
        dirs = [None if not t.requires_grad else
                t.xp.asarray(rng.normal(size=t.shape), dtype=t.dtype) for t in inputs]
        predicted = sum(float((a * d).sum()) for a, d in zip(analytic, dirs) if d is not None)
        saved = [t.data for t in inputs]
        for t, d, s in zip(inputs, dirs, saved):
            if d is not None:
                t.data = s + eps * d
        up = _loss(fn, inputs, v)
        for t, d, s in zip(inputs, dirs, saved):
            if d is not None:
                t.data = s - eps * d
        down = _loss(fn, inputs, v)
        for t, s in zip(inputs, saved):
            t.data = s
        numeric = (up - down) / (2 * eps)
        if abs(predicted - numeric) > atol + rtol * abs(numeric):
            msg = (f"gradcheck_directional failed on direction {trial}: analytic "
                   f"{predicted:.10g}, numeric {numeric:.10g} "
                   f"(difference {abs(predicted - numeric):.3g})")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True
