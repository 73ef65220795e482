"""One training batch split across threads (the CPU's cores).

The batch's mean loss is a weighted sum of its parts' mean losses, so its
gradient is the same weighted sum of theirs:

    L = (1/n) sum_i l_i = sum_k (n_k / n) L_k,     dL/dθ = sum_k (n_k / n) dL_k/dθ

with n images, part k holding n_k of them and L_k its mean NLL. With
``workers`` > 1, ``BatchWorkers.loss_and_backward`` cuts the batch into that
many contiguous parts (sizes differing by at most one), runs each part's
forward and backward in its own thread (the calling thread takes part 0), and
adds the parts' gradients into each parameter's ``.grad`` in part order.

- Same numbers: the sum of the parts equals the whole batch's gradient up to
  float rounding (tested in float64: the loss to 1e-12, every gradient to 1e-10
  relative), and a given worker count gives the same bits on every run (each
  part's gradient is kept apart with ``tensor.gradients`` and the parts are
  added in a fixed order).
- Why threads help: NumPy lets go of Python's global interpreter lock inside its
  array loops and matrix products, so the parts run at once while the arrays
  are large (a PixelCNN's convolutions, the RGB models). A small scan's many
  per-step calls hold the lock for a larger share of their time, and gain
  little or lose (the binary Diagonal BiLSTM: slower, at 1.8x the CPU time).
- Each worker's matrix products should run on one BLAS thread (the command
  line's default), or the workers and BLAS's own threads fight over the cores.
- CPU only: on a GPU the device already runs the batch in parallel.
"""
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .models.base import check_images
from .tensor import grad_mode, gradients, is_grad_enabled
from .validate import whole

__all__ = ["BatchWorkers", "split_sizes", "add_in_order"]


def split_sizes(n, workers):
    """Sizes of the parts of an n-image batch: min(n, workers) parts (one if n = 0), within
    one of each other."""
    k = max(1, min(n, workers))
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


class BatchWorkers:
    """Runs a batch's forward and backward on `workers` threads (1: in the calling thread)."""

    def __init__(self, workers=1):
        self.workers = whole("workers", workers, 1)
        self._pool = None

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def map(self, fn, images):
        """[fn(part) for each part of images], the parts run at once (part 0 in the calling
        thread), each thread in the caller's NumPy error mode and grad mode."""
        sizes = split_sizes(len(images), self.workers)
        starts = np.cumsum([0] + sizes)
        parts = [images[a:b] for a, b in zip(starts[:-1], starts[1:])]
        if len(parts) == 1:
            return [fn(parts[0])]
        run = _in_modes(fn, np.geterr(), is_grad_enabled())
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="minipixel-worker")
        futures = [self._pool.submit(run, part) for part in parts[1:]]
        try:
            first = run(parts[0])
        finally:                            # never leave a thread running past this call
            wait(futures)
        return [first] + [f.result() for f in futures]      # re-raises a part's error

    def loss_and_backward(self, model, images):
        """The batch's mean loss as a 0-d array (no graph); each parameter's gradient
        of it is added into its ``.grad``, as ``model.loss(images).backward()`` would."""
        self.check_device(model)
        if self.workers == 1 or len(images) < 2:
            loss = model.loss(images)
            loss.backward()
            return loss.data
        check_images(images, model.channels, model.levels)   # the whole batch, first
        loss, grads = add_in_order(self.shares(model, images, len(images)))
        for p, g in zip(model.parameters(), grads):
            if g is not None:
                p.grad = g if p.grad is None else p.grad + g
        return loss

    def shares(self, model, images, n):
        """[((n_k / n) L_k, its gradients) for each part k of `images`], in part order:
        `images` is all of an n-image batch or (``minipixel.distributed``) one process's
        share of it. Leaves every ``.grad`` as it is."""
        self.check_device(model)
        params = model.parameters()

        def part(images):
            loss = model.loss(images)
            weight = loss.xp.asarray(len(images) / n, dtype=loss.dtype)
            return loss.data * weight, gradients(loss, params, grad=weight)
        return self.map(part, images)

    def check_device(self, model):
        if self.workers > 1 and model.device != "cpu":
            raise ValueError(f"workers: {self.workers} threads split a batch on the CPU; "
                             f"the model is on {model.device}, use 1")


def add_in_order(shares):
    """(loss, [gradient per parameter]) of shares() summed in part order: the batch's
    loss and gradients (None for a parameter no part reached)."""
    loss, grads = shares[0][0], list(shares[0][1])
    for part_loss, part_grads in shares[1:]:
        loss = loss + part_loss
        for i, g in enumerate(part_grads):
            if g is not None:
                grads[i] = g if grads[i] is None else grads[i] + g
    return loss, grads


def _in_modes(fn, errstate, grad):
    """fn, run in the given NumPy error mode and grad mode (a new thread has the defaults)."""
    def run(part):
        with np.errstate(**errstate), grad_mode(grad):
            return fn(part)
    return run
