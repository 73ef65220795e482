"""Training loop with exact resume, and test NLL (datasets: ``minipixel.data``).

    data = load_dataset("binary")        # minipixel.data: embedded digits, statically binarized
    model = build("diagonal", channels=data.channels, levels=data.levels, h=16, layers=1)
    trainer = Trainer(model, data.train, data.test, epochs=3, out="runs/x")
    trainer.run()              # checkpoint + metrics.json after every epoch
    trainer = Trainer.resume("runs/x/checkpoint.npz", data.train, data.test)

Reproducibility (CPU): the model's weights come from its seed; the order of
the training images in epoch e is ``epoch_permutation(seed, e, N)``, a
function of (seed, epoch) only, so a run that stops after step k of epoch e
and is resumed from its checkpoint (weights, optimizer state, epoch, step)
takes exactly the batches and updates an uninterrupted run takes: the final
weights are bit-for-bit the same. Batches are ``perm[k*B:(k+1)*B]``; the last
one of an epoch may be smaller (no image is dropped).

Interrupting: a KeyboardInterrupt (Ctrl-C, or raised by an ``on_step`` hook)
saves a checkpoint of the state after the last *completed* step and is
re-raised. Ctrl-C during the parameter update itself is held back until the
update and the step counter are done, so a checkpoint never holds half an
update.

Time: ``train_time_s`` is wall-clock time spent training (test evaluations
excluded), ``train_cpu_s`` the process CPU time over the same stretches; with
single-threaded BLAS on a busy machine the CPU time is the steadier measure.

Units: the loss is the NLL in nats per image (the paper's unit for MNIST); for
8-bit data the progress bar and metrics also give bits per dimension.
"""
import contextlib
import json
import math
import os
import signal
import threading
import time

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .data.atomic import atomic_write
from .layers.losses import bits_per_dim
from .nn import SGD, Adam, RMSProp, clip_grad_norm
from .progress import Progress
from .tensor import no_grad

__all__ = ["Trainer", "evaluate_nll", "epoch_permutation", "make_optimizer", "OPTIMIZERS",
           "DEFAULT_LR", "write_json"]

OPTIMIZERS = ("rmsprop", "adam", "sgd")
DEFAULT_LR = {"rmsprop": 1e-3, "adam": 1e-3, "sgd": 1e-2}


# ---- data order and scoring ---------------------------------------------------
def epoch_permutation(seed, epoch, n):
    """The order of the n training images in `epoch`: a function of (seed, epoch) only."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def evaluate_nll(model, images, batch_size=100, progress=False, desc="test"):
    """Mean NLL of `images` under `model`: {"nats": per image, "bits_per_dim", "n"}."""
    n = len(images)
    if n == 0:
        raise ValueError("evaluate_nll: no images")
    bar = Progress(-(-n // batch_size), desc, enabled=progress, unit="batch")
    total = 0.0
    with no_grad():
        for i in range(0, n, batch_size):
            total += float(model.nll(images[i:i + batch_size]).numpy().astype(np.float64).sum())
            bar.update(1)
    bar.close()
    nats = total / n
    return {"nats": nats, "bits_per_dim": float(bits_per_dim(nats, int(np.prod(images.shape[1:])))),
            "n": n}


def make_optimizer(name, params, lr=None):
    """rmsprop (the paper's), adam or sgd (momentum 0.9), with DEFAULT_LR unless lr is given."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "rmsprop":
        return RMSProp(params, lr=lr)
    if name == "adam":
        return Adam(params, lr=lr)
    if name == "sgd":
        return SGD(params, lr=lr, momentum=0.9)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def write_json(path, obj):
    """Write `obj` as indented JSON, atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    return path


@contextlib.contextmanager
def defer_sigint():
    """Hold back Ctrl-C inside the block; deliver it (KeyboardInterrupt) at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if received and old is not signal.SIG_IGN:
            if callable(old):
                old(signal.SIGINT, None)
            raise KeyboardInterrupt


# ---- the loop -----------------------------------------------------------------
class Trainer:
    """Trains `model` on uint8 images; see the module docstring for the guarantees.

    out: folder for ``checkpoint.npz`` and ``metrics.json`` (None: no files).
    clip: global gradient-norm clipping threshold (None: off).
    max_steps: stop (with a checkpoint) once this many updates were made in all.
    on_step(trainer): called after every completed step (may raise KeyboardInterrupt).
    """

    def __init__(self, model, train_images, test_images, *, optimizer="adam", lr=None,
                 batch_size=16, epochs=1, seed=0, clip=None, out=None, max_steps=None,
                 eval_batch_size=100, dataset=None, progress=True, log=print, on_step=None):
        if batch_size < 1 or epochs < 0:
            raise ValueError(f"need batch_size >= 1 and epochs >= 0, got {batch_size}, {epochs}")
        if len(train_images) == 0:
            raise ValueError("no training images")
        self.model, self.train_images, self.test_images = model, train_images, test_images
        self.optimizer = make_optimizer(optimizer, model.parameters(), lr)
        self.settings = dict(optimizer=optimizer, lr=self.optimizer.lr,
                             batch_size=int(batch_size), epochs=int(epochs), seed=int(seed),
                             clip=clip, dataset=dataset)
        self.out, self.max_steps, self.eval_batch_size = out, max_steps, eval_batch_size
        self.progress, self.log, self.on_step = progress, log or (lambda *a, **k: None), on_step
        self.state = dict(epoch=0, step=0, global_step=0, loss_sum=0.0, loss_images=0,
                          train_time_s=0.0, train_cpu_s=0.0, history=[])
        self.status = "new"

    # ---- files ----------------------------------------------------------------
    @property
    def checkpoint_path(self):
        return None if self.out is None else os.path.join(self.out, "checkpoint.npz")

    @property
    def metrics_path(self):
        return None if self.out is None else os.path.join(self.out, "metrics.json")

    def train_state(self):
        return {**self.settings, **self.state, "status": self.status}

    def save(self, path=None):
        """Checkpoint (model, optimizer, settings, position) to `path` or out/checkpoint.npz."""
        path = path or self.checkpoint_path
        if path is not None:
            save_checkpoint(path, self.model, self.optimizer, self.train_state())
        return path

    def metrics(self):
        last = self.state["history"][-1] if self.state["history"] else {}
        return {"status": self.status, "config": self.model.config, "settings": self.settings,
                "epoch": self.state["epoch"], "step_in_epoch": self.state["step"],
                "global_step": self.state["global_step"],
                "train_time_s": round(self.state["train_time_s"], 2),
                "train_cpu_s": round(self.state.get("train_cpu_s", 0.0), 2),
                "test_nll_nats": last.get("test_nll_nats"),
                "test_bits_per_dim": last.get("test_bits_per_dim"),
                "history": self.state["history"], "checkpoint": self.checkpoint_path}

    def write_metrics(self, extra=None):
        if self.metrics_path is not None:
            write_json(self.metrics_path, {**self.metrics(), **(extra or {})})

    @classmethod
    def resume(cls, checkpoint, train_images, test_images, *, device="cpu", epochs=None,
               **kwargs):
        """A Trainer that continues the run saved in `checkpoint` (a path or Checkpoint)."""
        ckpt = load_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
        t = ckpt.train
        if not t or "global_step" not in t:
            raise ValueError(f"{ckpt.path}: holds no training state to resume from")
        model = ckpt.model if device == "cpu" else ckpt.model.to(device)
        trainer = cls(model, train_images, test_images, optimizer=t["optimizer"], lr=t["lr"],
                      batch_size=t["batch_size"], epochs=t["epochs"] if epochs is None else epochs,
                      seed=t["seed"], clip=t["clip"], dataset=t.get("dataset"), **kwargs)
        try:
            trainer.optimizer.load_state_dict(ckpt.optimizer_state)
        except (KeyError, ValueError) as e:
            raise ValueError(f"{ckpt.path}: optimizer state does not fit the model: {e}") from e
        trainer.state = {k: t[k] for k in ("epoch", "step", "global_step", "loss_sum",
                                           "loss_images", "train_time_s", "history")}
        trainer.state["train_cpu_s"] = float(t.get("train_cpu_s", 0.0))  # older checkpoints
        trainer.status = "resumed"
        return trainer

    # ---- training -----------------------------------------------------------
    @property
    def steps_per_epoch(self):
        return -(-len(self.train_images) // self.settings["batch_size"])

    def _units(self, nats):
        if self.model.levels == 2:
            return f"{nats:.2f} nats"
        dims = int(np.prod(self.train_images.shape[1:]))
        return f"{float(bits_per_dim(nats, dims)):.3f} bits/dim"

    def train_step(self, batch):
        """One update on `batch`; returns the batch's mean NLL (nats per image)."""
        self.optimizer.zero_grad()
        loss = self.model.loss(batch)
        loss.backward()
        value = float(loss.item())
        if not math.isfinite(value):
            raise FloatingPointError(f"loss is {value} at step {self.state['global_step'] + 1}; "
                                     "try a lower --lr or --clip")
        with defer_sigint():          # the update and the counters move together
            if self.settings["clip"]:
                clip_grad_norm(self.model.parameters(), self.settings["clip"])
            self.optimizer.step()
            s = self.state
            s["step"] += 1
            s["global_step"] += 1
            s["loss_sum"] += value * len(batch)
            s["loss_images"] += len(batch)
        return value

    def run(self):
        """Train until `epochs` (or max_steps); returns metrics(). Saves on the way."""
        s, B = self.state, self.settings["batch_size"]
        epochs, nb = self.settings["epochs"], self.steps_per_epoch
        if self.status == "resumed":
            self.log(f"resuming at epoch {s['epoch'] + 1}, step {s['step']}/{nb} "
                     f"(global step {s['global_step']})")
        self.status = "running"
        t_mark, c_mark = time.perf_counter(), time.process_time()
        bar = None
        try:
            while s["epoch"] < epochs:
                perm = epoch_permutation(self.settings["seed"], s["epoch"], len(self.train_images))
                bar = Progress(nb, f"epoch {s['epoch'] + 1}/{epochs}", enabled=self.progress,
                               unit="step", initial=s["step"])
                while s["step"] < nb:
                    if self.max_steps is not None and s["global_step"] >= self.max_steps:
                        break
                    k = s["step"]
                    self.train_step(self.train_images[perm[k * B:(k + 1) * B]])
                    bar.update(1, loss=self._units(s["loss_sum"] / s["loss_images"]))
                    if self.on_step is not None:
                        self.on_step(self)
                bar.close()
                bar = None
                if s["step"] < nb:                         # max_steps reached
                    self.status = "stopped"
                    break
                s["train_time_s"] += time.perf_counter() - t_mark
                s["train_cpu_s"] += time.process_time() - c_mark
                test = evaluate_nll(self.model, self.test_images, self.eval_batch_size,
                                    progress=self.progress)
                t_mark, c_mark = time.perf_counter(), time.process_time()
                s["history"].append({
                    "epoch": s["epoch"] + 1, "global_step": s["global_step"],
                    "train_nll_nats": s["loss_sum"] / max(s["loss_images"], 1),
                    "test_nll_nats": test["nats"], "test_bits_per_dim": test["bits_per_dim"],
                    "train_time_s": round(s["train_time_s"], 2),
                    "train_cpu_s": round(s["train_cpu_s"], 2)})
                s.update(epoch=s["epoch"] + 1, step=0, loss_sum=0.0, loss_images=0)
                self.log(f"epoch {s['epoch']}/{epochs}: train {self._units(s['history'][-1]['train_nll_nats'])}"
                         f", test {self._units(test['nats'])} ({test['nats']:.2f} nats/image)")
                self.save()
                self.write_metrics()
            else:
                self.status = "finished"
            s["train_time_s"] += time.perf_counter() - t_mark
            s["train_cpu_s"] += time.process_time() - c_mark
            t_mark, c_mark = time.perf_counter(), time.process_time()
            self.save()
            self.write_metrics()
            return self.metrics()
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
            self.status = "interrupted"
            s["train_time_s"] += time.perf_counter() - t_mark
            s["train_cpu_s"] += time.process_time() - c_mark
            path = self.save()
            self.write_metrics()
            if path:
                self.log(f"interrupted: checkpoint saved to {path} (epoch {s['epoch'] + 1}, "
                         f"step {s['step']}); continue with --resume {path}")
            raise
