"""Optimizers (SGD with momentum, Adam, RMSProp as in the paper), clipping, and
``make_optimizer`` (the optimizer by name, as the command line and checkpoints name it).

Each update is written in place on the parameter arrays under the formula it
implements. ``state_dict()`` / ``load_state_dict()`` hold the step count and
the per-parameter buffers, so a resumed run continues exactly.
``load_state_dict`` checks the whole state first (every key, shape, dtype and
value) and changes nothing when any of it is wrong.
"""
import math
import numbers

import numpy as np

from ..backend import get_array_module, to_device, to_numpy
from ..validate import finite

__all__ = ["Optimizer", "SGD", "Adam", "RMSProp", "clip_grad_norm", "grad_norm", "make_optimizer",
           "OPTIMIZERS", "DEFAULT_LR"]


def check_lr(lr):
    """The learning rate as a float; ValueError unless it is a finite number > 0."""
    return finite("learning rate", lr, 0, above=True)


def _check_fraction(name, value):
    if not (isinstance(value, numbers.Real) and 0 <= value < 1):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def _check_eps(eps):
    finite("eps", eps, 0, above=True)
    return eps


class Optimizer:
    buffers = ()  # names of the per-parameter state arrays
    nonnegative = ()  # buffers that hold running means of squares (never negative)

    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.lr = check_lr(lr)
        self.t = 0
        self.state = {name: [p.xp.zeros_like(p.data) for p in self.params] for name in self.buffers}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.t += 1
        for k, p in enumerate(self.params):
            if p.grad is not None:
                self._match_buffers(k, p)
                self.update(k, p, p.grad)

    def _match_buffers(self, k, p):
        """Keep parameter k's buffers in its dtype (a model cast with astype after the
        optimizer was made would otherwise mix float32 buffers into float64 updates)."""
        for name in self.buffers:
            if self.state[name][k].dtype != p.dtype:
                self.state[name][k] = self.state[name][k].astype(p.dtype)

    def update(self, k, p, g):
        raise NotImplementedError

    def state_dict(self):
        state = {"t": np.asarray(self.t), "lr": np.asarray(self.lr)}
        for name in self.buffers:
            for k, buf in enumerate(self.state[name]):
                state[f"{name}.{k}"] = to_numpy(buf).astype(self.params[k].dtype, copy=True)
        return state

    def load_state_dict(self, state):
        """Load a state_dict(); ValueError naming the first problem, and nothing changed,
        unless every entry is there with the right shape and a finite value."""
        expected = {"t", "lr"} | {f"{name}.{k}" for name in self.buffers
                                  for k in range(len(self.params))}
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"optimizer state: missing entries {missing}, unexpected "
                             f"entries {unexpected} (a {type(self).__name__} over "
                             f"{len(self.params)} parameters)")
        t = np.asarray(state["t"])
        if t.shape != () or t.dtype.kind not in "iuf" or not np.isfinite(t) or t < 0 \
                or t != np.floor(t):
            raise ValueError(f"optimizer state: step count t must be an integer >= 0, "
                             f"got {t!r}")
        lr = np.asarray(state["lr"])
        if lr.shape != () or lr.dtype.kind not in "iuf":
            raise ValueError(f"optimizer state: lr must be a number, got {lr!r}")
        lr = check_lr(float(lr))
        values = {}
        for name in self.buffers:
            for k, p in enumerate(self.params):
                key = f"{name}.{k}"
                value = np.asarray(state[key])
                if value.shape != p.shape:
                    raise ValueError(f"optimizer state {key} has shape {value.shape}, "
                                     f"parameter {k} has {p.shape}")
                if value.dtype.kind != "f":
                    raise ValueError(f"optimizer state {key} must hold floats, "
                                     f"got {value.dtype}")
                if not np.isfinite(value).all():
                    raise ValueError(f"optimizer state {key} holds non-finite values")
                if name in self.nonnegative and (value < 0).any():
                    raise ValueError(f"optimizer state {key} (a mean of squares) holds "
                                     f"negative values")
                values[key] = value
        self.t, self.lr = int(t), lr
        for name in self.buffers:
            for k, p in enumerate(self.params):
                self.state[name][k] = to_device(values[f"{name}.{k}"].astype(p.dtype), p.device)


class SGD(Optimizer):
    """v <- momentum v + g;  p <- p - lr v."""
    buffers = ("velocity",)

    def __init__(self, params, lr=0.01, momentum=0.0):
        super().__init__(params, lr)
        _check_fraction("momentum", momentum)
        self.momentum = momentum

    def update(self, k, p, g):
        v = self.state["velocity"][k]
        v *= self.momentum
        v += g
        p.data -= self.lr * v


class Adam(Optimizer):
    """m <- b1 m + (1-b1) g;  s <- b2 s + (1-b2) g^2;
    p <- p - lr * m_hat / (sqrt(s_hat) + eps), with bias-corrected m_hat, s_hat."""
    buffers = ("m", "s")
    nonnegative = ("s",)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.b1, self.b2 = betas
        _check_fraction("beta1", self.b1)
        _check_fraction("beta2", self.b2)
        self.eps = _check_eps(eps)

    def update(self, k, p, g):
        m, s = self.state["m"][k], self.state["s"][k]
        m *= self.b1
        m += (1 - self.b1) * g
        s *= self.b2
        s += (1 - self.b2) * g * g
        # m_hat = m / bc1, sqrt(s_hat) = sqrt(s) / sqrt(bc2); eps is added to sqrt(s_hat)
        # as documented above (and as torch.optim.Adam), not to sqrt(s).
        bc1, bc2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        p.data -= (self.lr / bc1) * m / (p.xp.sqrt(s) / math.sqrt(bc2) + self.eps)


class RMSProp(Optimizer):
    """s <- alpha s + (1-alpha) g^2;  p <- p - lr g / (sqrt(s) + eps).  (The paper's optimizer.)"""
    buffers = ("s",)
    nonnegative = ("s",)

    def __init__(self, params, lr=1e-3, alpha=0.95, eps=1e-8):
        super().__init__(params, lr)
        _check_fraction("alpha", alpha)
        self.alpha, self.eps = alpha, _check_eps(eps)

    def update(self, k, p, g):
        """The formula above in place, in its order of operations (the same roundings),
        through two scratch arrays: no temporary per operation."""
        xp, s = p.xp, self.state["s"][k]
        step, root = xp.empty_like(s), xp.empty_like(s)
        s *= self.alpha
        xp.multiply(1 - self.alpha, g, out=step)
        step *= g
        s += step                                        # s = alpha s + (1 - alpha) g g
        xp.sqrt(s, out=root)
        root += self.eps
        xp.multiply(self.lr, g, out=step)
        step /= root
        p.data -= step                                   # p -= lr g / (sqrt(s) + eps)


def grad_norm(params):
    """The global L2 norm of all gradients (inf or nan if any gradient is not finite).

    Worked out on the gradients' device without reading anything back (on a GPU, no
    host synchronisation): a 0-d float64 array there (a NumPy float64 on the CPU);
    float() reads it."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return np.float64(0.0)
    xp = get_array_module(grads[0])
    return xp.sqrt(sum((g * g).sum().astype(np.float64) for g in grads))


def clip_grad_norm(params, max_norm):
    """Scale all gradients so their global L2 norm is at most max_norm; returns the norm
    before, as grad_norm does (on the device). A non-finite norm clips nothing: it is the
    caller's to see."""
    finite("clip_grad_norm: max_norm", max_norm, 0, above=True)
    params = list(params)  # a generator would be used up by the norm and nothing clipped
    total = grad_norm(params)
    xp = get_array_module(total)
    scale = xp.where(total > max_norm, max_norm / (total + 1e-12), 1.0)   # nan > x is False
    for p in params:
        if p.grad is not None:
            p.grad = p.grad * scale.astype(p.grad.dtype)
    return total


OPTIMIZERS = ("rmsprop", "adam", "sgd")
DEFAULT_LR = {"rmsprop": 1e-3, "adam": 1e-3, "sgd": 1e-2}


def make_optimizer(name, params, lr=None):
    """rmsprop (the paper's), adam or sgd (momentum 0.9), with DEFAULT_LR unless lr is given."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "rmsprop":
        return RMSProp(params, lr=lr)
    if name == "adam":
        return Adam(params, lr=lr)
    return SGD(params, lr=lr, momentum=0.9)
