"""The training loop: exact resume, test NLL, and runs that stop cleanly (datasets:
``minipixel.data``).

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

Interrupting: Ctrl-C or SIGTERM (``minipixel.interrupts``), or a
KeyboardInterrupt raised by an ``on_step`` hook, saves a checkpoint of the
state after the last *completed* step and is re-raised. Signals are held back
during the parameter update (so a checkpoint never holds half an update) and
during every save (so a second Ctrl-C cannot cut the interrupt's own save
short, and one that arrives while an epoch's checkpoint is written is acted on
once that write is done).

Diverging: a non-finite loss, gradient norm, parameter or test NLL stops the
run with ``TrainingDiverged`` and writes nothing, so the last checkpoint on
disk (finite by construction: ``save_checkpoint`` refuses non-finite weights)
is kept.

Time: ``train_time_s`` is wall-clock time spent training (test evaluations
excluded), ``train_cpu_s`` the process CPU time over the same stretches, both
summed over the whole run: every session that trained it, the first and each
resume (``metrics()`` names them ``whole_run_train_time_s`` and
``whole_run_train_cpu_s``; the checkpoint and each history entry keep the short
names). With single-threaded BLAS on a busy machine the CPU time is the steadier
measure.
``run()`` first has the C library keep freed host memory for the next arrays
(``backend.keep_freed_host_memory``): every step makes and drops the same arrays,
and fresh pages for each would cost a third of a small model's step.

Units: the loss is the NLL in nats per image (the paper's unit for MNIST); for
8-bit data the progress bar and metrics also give bits per dimension.
"""
import contextlib
import math
import os
import time

import numpy as np

from .backend import keep_freed_host_memory, read_scalars
from .checkpoint import (load_checkpoint, nonfinite_count, save_checkpoint, validate_train_state,
                         weights_are_finite)
from .distributed import LocalGroup
from .interrupts import deferred_interrupts
from .io import write_json
from .layers.losses import bits_per_dim
from .nn import clip_grad_norm, grad_norm, make_optimizer
from .parallel import BatchWorkers
from .progress import Progress
from .tensor import no_grad
from .validate import is_finite, whole

__all__ = ["Trainer", "TrainingDiverged", "evaluate_nll", "epoch_permutation",
           "validate_train_state"]


# ---- data order and scoring ---------------------------------------------------
def epoch_permutation(seed, epoch, n):
    """The order of the n training images in `epoch`: a function of (seed, epoch) only."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def evaluate_nll(model, images, batch_size=100, progress=False, desc="test", workers=1,
                 group=None):
    """Mean NLL of `images` under `model`: {"nats": per image, "bits_per_dim", "n"}.
    The numbers may be non-finite (a diverged model); callers decide what that means.
    workers: threads that share each batch (a count, or a ``parallel.BatchWorkers``);
    group: processes that share the images (``distributed``; each its part, rank order)."""
    n = len(images)
    if n == 0:
        raise ValueError("evaluate_nll: no images")
    whole("evaluate_nll: batch_size", batch_size, 1)
    group = group or LocalGroup()
    own = not isinstance(workers, BatchWorkers)
    workers = BatchWorkers(workers) if own else workers
    workers.check_device(model)
    part = images[group.part(n)]
    bar = Progress(-(-len(part) // batch_size), desc, enabled=progress and group.is_root,
                   unit="batch")

    def nats_sum():                              # this process's part, batch by batch
        total = 0.0
        with no_grad(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for i in range(0, len(part), batch_size):
                parts = workers.map(lambda p: model.nll(p).numpy(), part[i:i + batch_size])
                total += float(np.concatenate(parts).astype(np.float64).sum())
                bar.update(1)
        return np.array([total])
    try:
        total = float(group.reduce(nats_sum, 1, np.zeros(1))[0])
    finally:
        if own:
            workers.close()
    bar.close()
    nats = total / n
    return {"nats": nats, "bits_per_dim": float(bits_per_dim(nats, int(np.prod(images.shape[1:])))),
            "n": n}


class TrainingDiverged(FloatingPointError):
    """The loss, a gradient or a weight became non-finite; nothing was saved."""


# ---- the loop -----------------------------------------------------------------
class Trainer:
    """Trains `model` on uint8 images; see the module docstring for the guarantees.

    out: folder for ``checkpoint.npz`` and ``metrics.json`` (None: no files).
    clip: global gradient-norm clipping threshold (None: off).
    max_steps: stop (with a checkpoint) once this many updates were made in all.
    on_step(trainer): called after every completed step (may raise KeyboardInterrupt).
    before_first_save (attribute): None or a callable run once, just before the first
    checkpoint is written (so a run that diverges before it leaves the folder as it was).
    workers: threads that share each batch, forward and backward (minipixel/parallel.py;
    CPU only): a setting of this run (in metrics.json), not of the checkpoint; the
    gradients equal the unsplit batch's up to float rounding, and a given count repeats
    its run bit for bit (a run resumed with another count goes on at rounding distance).
    group: the processes that share each batch (``minipixel.distributed``; default one):
    each takes its fixed part of every batch and of the test set; every rank runs the same
    Trainer on the same state, and only rank 0 should be given `out`, `log` and progress.
    """

    def __init__(self, model, train_images, test_images, *, optimizer="adam", lr=None,
                 batch_size=16, epochs=1, seed=0, clip=None, out=None, max_steps=None,
                 eval_batch_size=100, dataset=None, progress=True, log=print, on_step=None,
                 workers=1, group=None):
        for name, value, low in (("batch_size", batch_size, 1), ("epochs", epochs, 0),
                                 ("seed", seed, 0), ("eval_batch_size", eval_batch_size, 1),
                                 ("max_steps", 1 if max_steps is None else max_steps, 1)):
            whole(name, value, low)
        if clip is not None and not is_finite(clip, 0, above=True):
            raise ValueError(f"clip must be None (off) or a finite number > 0, got {clip!r}")
        if len(train_images) == 0:
            raise ValueError("no training images")
        if len(test_images) == 0:
            raise ValueError("no test images")
        self.model, self.train_images, self.test_images = model, train_images, test_images
        self.group = group or LocalGroup()
        self.workers = BatchWorkers(workers)
        self.workers.check_device(model)
        self.optimizer = make_optimizer(optimizer, model.parameters(), lr)
        self.settings = dict(optimizer=optimizer, lr=self.optimizer.lr,
                             batch_size=int(batch_size), epochs=int(epochs), seed=int(seed),
                             clip=None if clip is None else float(clip), dataset=dataset)
        self.out, self.max_steps, self.eval_batch_size = out, max_steps, eval_batch_size
        self.progress, self.log, self.on_step = progress, log or (lambda *a, **k: None), on_step
        self.state = dict(epoch=0, step=0, global_step=0, loss_sum=0.0, loss_images=0,
                          train_time_s=0.0, train_cpu_s=0.0, history=[])
        self.status = "new"
        self.saved = None        # (epoch, global step) of the last checkpoint this run wrote
        self.before_first_save = None    # called once, just before the first checkpoint

    # ---- files ----------------------------------------------------------------
    @property
    def checkpoint_path(self):
        return None if self.out is None else os.path.join(self.out, "checkpoint.npz")

    @property
    def metrics_path(self):
        return None if self.out is None else os.path.join(self.out, "metrics.json")

    def train_state(self):
        return {**self.settings, **self.state, "status": self.status,
                "threads": self.workers.workers}      # a resume uses it unless told

    def save(self, path=None):
        """Checkpoint (model, optimizer, settings, position) to `path` or out/checkpoint.npz.
        Ctrl-C / SIGTERM during the write wait until it is done."""
        path = path or self.checkpoint_path
        if path is not None:
            if not weights_are_finite(self.model):
                raise self._diverged("a weight became non-finite after the update")
            with deferred_interrupts():
                if self.before_first_save is not None:   # e.g. clear the folder's old run
                    hook, self.before_first_save = self.before_first_save, None
                    hook()
                save_checkpoint(path, self.model, self.optimizer, self.train_state())
            self.saved = (self.state["epoch"], self.state["global_step"])
        return path

    def metrics(self):
        last = self.state["history"][-1] if self.state["history"] else {}
        return {"status": self.status, "config": self.model.config, "settings": self.settings,
                "epoch": self.state["epoch"], "step_in_epoch": self.state["step"],
                "global_step": self.state["global_step"],
                "whole_run_train_time_s": round(self.state["train_time_s"], 2),
                "whole_run_train_cpu_s": round(self.state.get("train_cpu_s", 0.0), 2),
                "workers": self.workers.workers,       # this run's; the bits depend on it
                "processes": self.group.size,          # likewise
                "test_nll_nats": last.get("test_nll_nats"),
                "test_bits_per_dim": last.get("test_bits_per_dim"),
                "history": self.state["history"], "checkpoint": self.checkpoint_path}

    def write_metrics(self, extra=None):
        if self.metrics_path is not None:
            with deferred_interrupts():
                write_json(self.metrics_path, {**self.metrics(), **(extra or {})})

    @classmethod
    def resume(cls, checkpoint, train_images, test_images, *, device="cpu", epochs=None,
               **kwargs):
        """A Trainer that continues the run saved in `checkpoint` (a path or Checkpoint).
        The whole saved state is checked against the model and the data first: ValueError
        (naming the checkpoint) before any step is taken. workers (None or absent): the
        worker count the checkpoint's run used, so the resumed run is bit-exact."""
        ckpt = load_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
        t = ckpt.train
        if not t or "global_step" not in t:
            raise ValueError(f"{ckpt.path}: holds no training state to resume from")
        try:
            validate_train_state(t)
        except ValueError as e:
            raise ValueError(f"{ckpt.path}: {e}") from None
        model = ckpt.model if device == "cpu" else ckpt.model.to(device)
        if kwargs.get("workers") is None:          # the saved run's count (CPU only)
            kwargs["workers"] = t.get("threads", 1) if device == "cpu" else 1
        trainer = cls(model, train_images, test_images, optimizer=t["optimizer"], lr=t["lr"],
                      batch_size=t["batch_size"], epochs=t["epochs"] if epochs is None else epochs,
                      seed=t["seed"], clip=t["clip"], dataset=t.get("dataset"), **kwargs)
        nb, B, N = trainer.steps_per_epoch, t["batch_size"], len(train_images)
        if t["step"] > nb:
            raise ValueError(f"{ckpt.path}: training state is at step {t['step']} of an epoch "
                             f"that has {nb} steps ({N} images, batch {B})")
        if t["loss_images"] != min(t["step"] * B, N):
            raise ValueError(f"{ckpt.path}: training state counts {t['loss_images']} images "
                             f"in {t['step']} steps of batch {B}, expected {min(t['step'] * B, N)}")
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

    def _diverged(self, what):
        return TrainingDiverged(f"{what} at step {self.state['global_step'] + 1} (epoch "
                                f"{self.state['epoch'] + 1}); try a lower --lr or a --clip")

    def train_step(self, batch):
        """One update on `batch`; returns the batch's mean NLL (nats per image).
        TrainingDiverged if the loss, the gradient norm or an updated weight is not finite."""
        self.optimizer.zero_grad()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked below
            loss = self.group.loss_and_backward(self.model, batch, self.workers)
        params = self.model.parameters()
        clip = self.settings["clip"]
        norm = clip_grad_norm(params, clip) if clip else grad_norm(params)
        # One read from the device per step (on a GPU, the step's only synchronisation):
        # the loss, the gradient norm, and whether the weights the loss was computed with
        # (the previous update's) are finite; the last update's are checked by save().
        value, norm, bad = read_scalars(loss, norm, nonfinite_count(params))
        if bad:
            raise self._diverged("a weight became non-finite after the update")
        if not math.isfinite(value):
            raise self._diverged(f"the loss is {value}")
        if not math.isfinite(norm):
            raise self._diverged(f"the gradient norm is {norm}")
        with deferred_interrupts(), np.errstate(over="ignore", invalid="ignore"):
            self.optimizer.step()            # the update and the counters move together
            s = self.state
            s["step"] += 1
            s["global_step"] += 1
            s["loss_sum"] += value * len(batch)
            s["loss_images"] += len(batch)
        return value

    def broadcast_from_root(self):
        """Every rank takes rank 0's weights and optimizer state (a no-op in one process)."""
        buffers = [b for name in self.optimizer.buffers for b in self.optimizer.state[name]]
        self.group.broadcast_arrays([p.data for p in self.model.parameters()] + buffers)

    def run(self):
        """Train until `epochs` (or max_steps); returns metrics(). Saves on the way.
        Ctrl-C and SIGTERM save and re-raise (an Interrupted, a KeyboardInterrupt);
        a diverging run raises TrainingDiverged and saves nothing."""
        keep_freed_host_memory()               # the steps reuse their arrays' memory
        try:
            with self.group.interrupts():
                self.broadcast_from_root()
                return self._run()
        except TrainingDiverged as e:
            self.status = "diverged"
            path = self.checkpoint_path
            if self.saved:
                kept = f"; {path} keeps epoch {self.saved[0]}, step {self.saved[1]}"
            elif path and os.path.exists(path):
                kept = f"; {path} was left as it was"
            else:
                kept = "; no checkpoint was written"
            raise TrainingDiverged(f"training diverged: {e}{kept}") from None
        finally:
            self.workers.close()            # its threads end; a later run() starts new ones

    def _run(self):
        s, nb = self.state, self.steps_per_epoch
        if self.status == "resumed":
            self.log(f"resuming at epoch {s['epoch'] + 1}, step {s['step']}/{nb} "
                     f"(global step {s['global_step']})")
        self.status = "running"
        clock = _Clock(s)
        try:
            while s["epoch"] < self.settings["epochs"]:
                if not self._epoch():                   # max_steps reached
                    self.status = "stopped"
                    break
                with clock.paused():                    # test evaluations are not training
                    test = evaluate_nll(self.model, self.test_images, self.eval_batch_size,
                                        progress=self.progress, workers=self.workers,
                                        group=self.group)
                self._end_epoch(test)
            else:
                self.status = "finished"
            clock.stop()
            self.save()
            self.write_metrics()
            return self.metrics()
        except KeyboardInterrupt:
            clock.stop()
            self.status = "interrupted"
            with deferred_interrupts(deliver=False):     # a second Ctrl-C cannot cut this short
                path = self.save()
                self.write_metrics()
            if path:
                self.log(f"interrupted: checkpoint saved to {path} (epoch {s['epoch'] + 1}, "
                         f"step {s['step']}); continue with --resume {path}")
            raise

    def _epoch(self):
        """The rest of the current epoch's steps; False if max_steps cut it short."""
        s, B, nb = self.state, self.settings["batch_size"], self.steps_per_epoch
        perm = epoch_permutation(self.settings["seed"], s["epoch"], len(self.train_images))
        bar = Progress(nb, f"epoch {s['epoch'] + 1}/{self.settings['epochs']}",
                       enabled=self.progress, unit="step", initial=s["step"])
        try:
            while s["step"] < nb:
                if self.max_steps is not None and s["global_step"] >= self.max_steps:
                    return False
                k = s["step"]
                self.train_step(self.train_images[perm[k * B:(k + 1) * B]])
                bar.update(1, loss=self._units(s["loss_sum"] / s["loss_images"]))
                if self.on_step is not None:
                    self.on_step(self)
            return True
        finally:
            bar.close()

    def _end_epoch(self, test):
        """After an epoch's test NLL: its history entry, the log line, checkpoint, metrics."""
        s = self.state
        if not math.isfinite(test["nats"]):
            raise self._diverged(f"the test NLL is {test['nats']}")
        self.group.check_same([p.data for p in self.model.parameters()])
        train_nll = s["loss_sum"] / max(s["loss_images"], 1)
        s["history"].append({
            "epoch": s["epoch"] + 1, "global_step": s["global_step"],
            "train_nll_nats": train_nll,
            "test_nll_nats": test["nats"], "test_bits_per_dim": test["bits_per_dim"],
            "train_time_s": round(s["train_time_s"], 2),
            "train_cpu_s": round(s["train_cpu_s"], 2)})
        s.update(epoch=s["epoch"] + 1, step=0, loss_sum=0.0, loss_images=0)
        self.log(f"epoch {s['epoch']}/{self.settings['epochs']}: train {self._units(train_nll)}"
                 f", test {self._units(test['nats'])} ({test['nats']:.2f} nats/image)")
        self.save()
        self.write_metrics()


class _Clock:
    """The run's one clock: adds wall-clock and process CPU time into
    state["train_time_s"] and state["train_cpu_s"] while it runs."""

    def __init__(self, state):
        self.state, self.mark = state, None
        self.start()

    def start(self):
        self.mark = (time.perf_counter(), time.process_time())

    def stop(self):
        """Add the time since start(); a stopped clock stays stopped (a no-op)."""
        if self.mark is not None:
            self.state["train_time_s"] += time.perf_counter() - self.mark[0]
            self.state["train_cpu_s"] += time.process_time() - self.mark[1]
            self.mark = None

    @contextlib.contextmanager
    def paused(self):
        self.stop()
        try:
            yield
        finally:
            self.start()
