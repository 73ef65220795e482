"""Optimizers (SGD with momentum, Adam, RMSProp as in the paper) and clipping.

Each update is written in place on the parameter arrays under the formula it
implements. ``state_dict()`` / ``load_state_dict()`` hold the step count and
the per-parameter buffers, so a resumed run continues exactly.
"""
import math

import numpy as np

from ..backend import get_array_module, to_device, to_numpy


class Optimizer:
    buffers = ()  # names of the per-parameter state arrays

    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        self.lr = lr
        self.t = 0
        self.state = {name: [p.xp.zeros_like(p.data) for p in self.params] for name in self.buffers}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.t += 1
        for k, p in enumerate(self.params):
            if p.grad is not None:
                self.update(k, p, p.grad)

    def update(self, k, p, g):
        raise NotImplementedError

    def state_dict(self):
        state = {"t": np.asarray(self.t), "lr": np.asarray(self.lr)}
        for name in self.buffers:
            for k, buf in enumerate(self.state[name]):
                state[f"{name}.{k}"] = to_numpy(buf).copy()
        return state

    def load_state_dict(self, state):
        self.t = int(state["t"])
        self.lr = float(state["lr"])
        for name in self.buffers:
            for k, p in enumerate(self.params):
                value = np.asarray(state[f"{name}.{k}"])
                if value.shape != p.shape:
                    raise ValueError(f"optimizer state {name}.{k} has shape {value.shape}, "
                                     f"parameter {k} has {p.shape}")
                self.state[name][k] = to_device(value.astype(p.dtype), p.device)


class SGD(Optimizer):
    """v <- momentum v + g;  p <- p - lr v."""
    buffers = ("velocity",)

    def __init__(self, params, lr=0.01, momentum=0.0):
        super().__init__(params, lr)
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

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.b1, self.b2 = betas
        self.eps = eps

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

    def __init__(self, params, lr=1e-3, alpha=0.95, eps=1e-8):
        super().__init__(params, lr)
        self.alpha, self.eps = alpha, eps

    def update(self, k, p, g):
        s = self.state["s"][k]
        s *= self.alpha
        s += (1 - self.alpha) * g * g
        p.data -= self.lr * g / (p.xp.sqrt(s) + self.eps)


def clip_grad_norm(params, max_norm):
    """Scale all gradients so their global L2 norm is at most max_norm; returns the norm before.

    Worked out on the gradients' device without reading anything back (on a GPU,
    no host synchronisation): the norm comes back as a 0-d array there (a NumPy
    float64 on the CPU); float() reads it."""
    params = list(params)  # a generator would be used up by the norm and nothing clipped
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    xp = get_array_module(grads[0])
    total = xp.sqrt(sum((g * g).sum().astype(np.float64) for g in grads))
    scale = xp.where(total > max_norm, max_norm / (total + 1e-12), 1.0)
    for p in params:
        if p.grad is not None:
            p.grad = p.grad * scale.astype(p.grad.dtype)
    return total
