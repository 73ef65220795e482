"""minipixel train: train a model, with a checkpoint after every epoch and on Ctrl-C.

With no arguments at all this is the default main job: a small Diagonal
BiLSTM on the embedded (statically) binarized digits, about 3 minutes on a 2-core CPU,
leaving checkpoint.npz, metrics.json (test NLL), curves.png (learning curves) and
samples.png in runs/main.

Ctrl-C and SIGTERM save a checkpoint of the last completed step and exit
(130, 143). One run at a time per output folder (a lock), and one run per folder: a
folder that holds another run (finished or not) is refused unless the command is
--resume of its checkpoint, or --overwrite, which removes the old run's files first
(cli/runfolder.py). A --resume with nothing left to train says so and writes nothing.
A run whose loss or weights become non-finite stops and writes nothing, so the last
checkpoint is kept.

Under an MPI launcher (``mpiexec -n K minipixel train ...``, docs/distributed.md)
the K processes train one run together: each takes its part of every batch of
--batch-size images; rank 0 alone reads the --resume checkpoint, holds the lock,
writes the files and prints; the others print only what rank 0 cannot.
"""
import os
import time

import numpy as np

from ..checkpoint import min_parameters, validate_train_state
from ..distributed import DEFAULT_TIMEOUT, process_group
from ..io import remove_stale_temporaries
from ..argtypes import NON_NEGATIVE, POSITIVE, SEED, number
from ..models import MODELS, PRESETS, build
from ..models.multiscale import DEFAULTS as MULTISCALE, KINDS as MULTISCALE_KINDS
from ..nn import DEFAULT_LR, OPTIMIZERS
from ..runlock import RunLock
from ..training import Trainer
from .common import (CLIError, HelpFormatter, add_dataset, add_device, add_paper_path,
                     add_threads, check_fits, check_output, check_threads, dataset_spec, describe,
                     device, load_data, load_model)
from .runfolder import RUN_FILES, nothing_to_train, refusal, remove_run

# The default main job (measured: see the README's results table).
MAIN_JOB = dict(model="diagonal", h=16, layers=2, out_hidden=32, dataset="binary", epochs=5,
                batch_size=16, optimizer="adam", lr=None, clip=100.0, seed=0, dtype="float32",
                samples=64)
MAIN_OUT = os.path.join("runs", "main")
MAX_MODEL_BYTES = 1 << 30       # refuse models whose weights alone would take more than 1 GiB

# Flags that describe the run itself; with --resume they come from the checkpoint.
RUN_FLAGS = ("model", "preset", "h", "layers", "out_hidden", "kind", "factor", "condition_maps",
             "dataset", "mnist_dir", "cifar_dir",
             "binarized_mnist_dir", "crop", "n_train", "n_test", "batch_size", "optimizer", "lr",
             "clip", "seed", "dtype")

EXAMPLES = """examples:
  minipixel                                   # the default main job (= minipixel train)
  minipixel train pixelcnn --h 16 --layers 7 --epochs 3 --out runs/pixelcnn
  minipixel train --preset mnist-diagonal-1layer --epochs 2
  minipixel train rowlstm --dataset rgb --crop 12 --h 8 --layers 2
  minipixel train --resume runs/main/checkpoint.npz   # continue after Ctrl-C
  minipixel train --resume runs/main/checkpoint.npz --epochs 10   # train a finished run longer
  minipixel train --dataset binary-threshold --out runs/threshold  # runs/main is taken
"""


def add_parser(sub):
    p = sub.add_parser("train", help="train a model (no arguments: the default main job)",
                       description=__doc__, epilog=EXAMPLES, formatter_class=HelpFormatter)
    m = p.add_argument_group("model")
    m.add_argument("model", nargs="?", choices=sorted(MODELS), default=None,
                   help=f"model kind (default {MAIN_JOB['model']})")
    m.add_argument("--preset", choices=sorted(PRESETS), default=None, metavar="NAME",
                   help="a paper setting: " + ", ".join(sorted(PRESETS))
                        + "; --h/--layers/--out-hidden override it")
    m.add_argument("--h", type=POSITIVE, default=None,
                   help=f"hidden units h; layers carry 2h maps (default {MAIN_JOB['h']})")
    m.add_argument("--layers", type=POSITIVE, default=None,
                   help=f"number of LSTM layers / residual blocks (default {MAIN_JOB['layers']})")
    m.add_argument("--out-hidden", type=POSITIVE, default=None,
                   help=f"maps of the output 1x1 convs (default {MAIN_JOB['out_hidden']})")
    m.add_argument("--kind", choices=tuple(MULTISCALE_KINDS), default=None,
                   help="multiscale: the kind of its small and conditional networks "
                        f"(default {MULTISCALE['kind']})")
    m.add_argument("--factor", type=POSITIVE, default=None,
                   help=f"multiscale: the small image is every factor-th pixel "
                        f"(default {MULTISCALE['factor']})")
    m.add_argument("--condition-maps", type=POSITIVE, default=None,
                   help=f"multiscale: maps of the upsampled small image "
                        f"(default {MULTISCALE['condition_maps']})")
    m.add_argument("--dtype", choices=("float32", "float64"), default=None,
                   help="parameter and compute precision (default float32)")
    g = add_dataset(p, default_help="binary, or what --preset implies")
    g.add_argument("--n-train", type=POSITIVE, metavar="N", default=None,
                   help="use only the first N training images")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=POSITIVE, default=None, help=f"default {MAIN_JOB['epochs']}")
    t.add_argument("--batch-size", type=POSITIVE, default=None,
                   help=f"default {MAIN_JOB['batch_size']} (the paper's)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help=f"default {MAIN_JOB['optimizer']} (the paper used rmsprop)")
    t.add_argument("--lr", type=number(0, above=True), default=None,
                   help="learning rate (default " + ", ".join(f"{k} {v:g}" for k, v in
                                                           DEFAULT_LR.items()) + ")")
    t.add_argument("--clip", type=number(0), default=None,
                   help=f"clip gradients to this global norm, 0 = off (default {MAIN_JOB['clip']:g})")
    t.add_argument("--seed", type=SEED, default=None,
                   help="seed of the weights and of the data order (default 0)")
    t.add_argument("--max-steps", type=POSITIVE, default=None,
                   help="stop (with a checkpoint) after this many updates in all")
    t.add_argument("--resume", metavar="CHECKPOINT", default=None,
                   help="continue a run from its checkpoint (model, optimizer, position)")
    t.add_argument("--eval-batch-size", type=POSITIVE, default=100, help="default %(default)s")
    t.add_argument("--peer-timeout", type=number(0, above=True), default=DEFAULT_TIMEOUT,
                   metavar="S", help="under mpiexec: seconds a process waits for the others "
                                     "in one step before the run stops (default %(default)g)")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", default=None,
                   help=f"output folder (default {MAIN_OUT}, or the checkpoint's folder with "
                        "--resume, or runs/<preset or model> for other models); a folder "
                        "that holds another run is refused")
    o.add_argument("--overwrite", action="store_true",
                   help="if --out holds another run, remove its files (" + ", ".join(RUN_FILES)
                        + ") just before this run's first checkpoint; other files stay")
    o.add_argument("--samples", type=NON_NEGATIVE, default=None,
                   help=f"images in the final sample grid, 0 = none (default {MAIN_JOB['samples']})")
    o.add_argument("--sample-seed", type=SEED, default=0, help="default %(default)s")
    o.add_argument("--naive-sampler", action="store_true",
                   help="sample with the naive sampler (one forward pass per sub-pixel) "
                        "instead of the exact cached one")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device(p)
    add_threads(p, default=None, default_help="1, or the checkpoint's run's with --resume")
    add_paper_path(p)
    p.set_defaults(run=run)
    return p


def _model_settings(args):
    """(model kind, config dict) from the model flags, the preset and the defaults."""
    if args.preset:
        config = dict(PRESETS[args.preset])
        if args.model and args.model != config["model"]:
            raise CLIError(f"--preset {args.preset} is a {config['model']} model, not {args.model}")
    else:
        config = dict(model=args.model or MAIN_JOB["model"], h=MAIN_JOB["h"],
                      layers=MAIN_JOB["layers"], out_hidden=MAIN_JOB["out_hidden"])
    for key in ("h", "layers", "out_hidden"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    multiscale = {k: getattr(args, k) for k in ("kind", "factor", "condition_maps")
                  if getattr(args, k) is not None}
    if multiscale and config["model"] != "multiscale":
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in multiscale)
        raise CLIError(f"{flags} set(s) a multiscale model, not {config['model']}; "
                       f"use: minipixel train multiscale {flags} ...")
    if config["model"] == "multiscale":
        config = {**MULTISCALE, **config, **multiscale}
    return config


def _build(kind, config, fast=True):
    """The model, refused (before any allocation) if its weights alone would be too big."""
    need = min_parameters({**config, "model": kind}) * np.dtype(config["dtype"]).itemsize
    if need > MAX_MODEL_BYTES:
        raise CLIError(f"--h {config['h']}, --layers {config['layers']}, --out-hidden "
                       f"{config['out_hidden']} ask for at least {need / 2**30:.1f} GiB of weights "
                       f"(the limit is {MAX_MODEL_BYTES / 2**30:.0f} GiB); choose smaller sizes")
    try:
        return build(kind, fast=fast, **config)
    except (ValueError, TypeError) as e:
        raise CLIError(f"cannot build the model: {e}") from None


def _new_trainer(args, dev, log, group):
    config = _model_settings(args)
    if (args.dataset is None and not args.mnist_dir and not args.cifar_dir
            and not args.binarized_mnist_dir and "channels" in config):
        args.dataset = "rgb" if config["channels"] == 3 else (
            "binary" if config["levels"] == 2 else "grey")
    spec = dataset_spec(args)
    data = load_data(spec)
    config.update(channels=data.channels, levels=data.levels, seed=args.seed or 0,
                  dtype=args.dtype or MAIN_JOB["dtype"])
    model = _build(config.pop("model"), config, fast=not args.paper_path)
    check_fits(model, data)
    if dev != "cpu":
        model.to(dev)
    clip = MAIN_JOB["clip"] if args.clip is None else args.clip
    trainer = Trainer(model, data.train, data.test,
                      optimizer=args.optimizer or MAIN_JOB["optimizer"], lr=args.lr, batch_size=args.batch_size or MAIN_JOB["batch_size"],
                      epochs=MAIN_JOB["epochs"] if args.epochs is None else args.epochs,
                      seed=args.seed or 0, clip=clip or None, dataset=spec,
                      max_steps=args.max_steps, eval_batch_size=args.eval_batch_size,
                      progress=not args.no_progress and group.is_root, log=log,
                      workers=args.threads or 1, group=group)
    return trainer, data


def _resumed_trainer(args, dev, log, group):
    """The run saved in --resume, with its whole state checked before any step."""
    ckpt = _resume_checkpoint(args, group)
    return group.agree(lambda: _trainer_from(args, ckpt, dev, log, group))


def _resume_checkpoint(args, group):
    """The --resume checkpoint: read by rank 0 (the others may not see the file), its
    bytes sent to the other ranks, which load them as rank 0 did."""
    def read():
        given = [f"--{f.replace('_', '-')}" for f in RUN_FLAGS
                 if getattr(args, f, None) is not None]
        if given:
            raise CLIError(f"with --resume the run's settings come from the checkpoint; "
                           f"drop {', '.join(given)} (only --epochs, --max-steps, --out, "
                           f"--device, --threads, --samples and output flags may change)")
        if not group.is_root:
            return None
        ckpt = load_model(args.resume)[1]
        if group.size > 1:
            with open(args.resume, "rb") as f:
                ckpt.bytes = f.read()
        return ckpt
    ckpt = group.agree(read)
    if group.size == 1:
        return ckpt
    blob = group.broadcast_bytes(ckpt.bytes if group.is_root else b"")
    return group.agree(lambda: ckpt if group.is_root else _checkpoint_from(blob, args.resume))


def _checkpoint_from(blob, path):
    """The checkpoint in `blob` (rank 0's copy of `path`), loaded through a private file."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "checkpoint.npz")
        with open(copy, "wb") as f:
            f.write(blob)
        ckpt = load_model(copy)[1]
    ckpt.path = path
    return ckpt


def _trainer_from(args, ckpt, dev, log, group):
    if args.paper_path:                   # the same parameters, in the same order
        ckpt.model = ckpt.model.variant(fast=False)
    if not ckpt.train or "global_step" not in ckpt.train:
        raise CLIError(f"{args.resume}: holds no training state to resume from")
    try:
        validate_train_state(ckpt.train)
    except ValueError as e:
        raise CLIError(f"{args.resume}: cannot resume: {e}") from None
    spec = ckpt.train.get("dataset") or {}
    data = load_data(dataset_spec(args, spec), origin=args.resume)
    check_fits(ckpt.model, data)
    try:
        trainer = Trainer.resume(ckpt, data.train, data.test, device=dev, epochs=args.epochs,
                                 max_steps=args.max_steps, eval_batch_size=args.eval_batch_size,
                                 progress=not args.no_progress and group.is_root, log=log,
                                 workers=args.threads, group=group)
    except ValueError as e:
        raise CLIError(f"cannot resume: {e}") from None
    return trainer, data


def _write_curves(out, history, title, spec, log):
    """curves.png (train and test NLL per epoch) beside metrics.json; None if it fails."""
    from ..curves import curves_figure, describe_data, history_curves
    from ..png import write_png
    label = os.path.basename(os.path.normpath(os.path.abspath(out)))
    try:
        curves = history_curves(history, label, data=describe_data(spec))
        return write_png(os.path.join(out, "curves.png"), curves_figure([curves], title=title))
    except Exception as e:                     # noqa: BLE001 -- a figure never costs the metrics
        log(f"note: no learning-curve plot written: {type(e).__name__}: {e}")
        return None


def _output_folder(args):
    if args.out:
        return args.out
    if args.resume:                  # as the user wrote it: relative stays relative
        return os.path.dirname(args.resume) or os.curdir
    if not (args.model or args.preset):
        return MAIN_OUT
    return os.path.join("runs", args.preset or args.model)


def run(args):
    """Check the flags and the output folder, lock the folder, then read the checkpoint (or
    the data) under the lock, check everything, and train. Reading a checkpoint before the
    lock let a run that finished in between be overwritten by the stale state. Under an
    MPI launcher every check is agreed by all ranks (one line if any fails); rank 0 holds
    the lock for the group."""
    t0, c0 = time.perf_counter(), time.process_time()
    group = process_group(args.peer_timeout, describe)
    dev, gpu = group.agree(lambda: _device(args, group))
    gpus = group.gather(gpu)

    def log(*a):
        if group.is_root:
            print(*a, flush=True)
    out = _output_folder(args)
    lock = RunLock(out)

    def take_folder():                         # rank 0 writes; the lock holds for the group
        if group.is_root:
            if args.resume and not os.path.exists(args.resume):     # before its folder is made
                raise CLIError(f"checkpoint not found: {args.resume}")
            check_output(out, directory=True)  # unwritable, a file, a full disk: first
            lock.acquire()
            return refusal(out, args.resume, args.overwrite)        # under the lock
        return None
    try:
        refused = group.agree(take_folder)
        refused = group.broadcast_bytes((refused or "").encode() if group.is_root else b"")
        if refused:                            # rank 0's line, raised alike on every rank
            raise CLIError(refused.decode())
        if args.resume:                        # read under the lock
            trainer, data = _resumed_trainer(args, dev, log, group)
            done = nothing_to_train(trainer, args.resume, args.epochs)
            if done:
                log(done)
                return 0
        else:
            trainer, data = group.agree(lambda: _new_trainer(args, dev, log, group))
        if group.is_root:
            if args.overwrite:                 # once this run has something to write
                trainer.before_first_save = lambda: _clear_old_run(out, log)
            remove_stale_temporaries(out, RUN_FILES)
            trainer.out = out
        return _train(args, trainer, data, dev, out, (t0, c0), log,
                      {"processes": group.size, "gpus": gpus if dev != "cpu" else None})
    finally:
        lock.release()


def _clear_old_run(out, log):
    removed = remove_run(out)
    if removed:
        log(f"--overwrite: removed the old run's {', '.join(removed)} from {out}")


def _device(args, group):
    """(device, this rank's GPU number or None) after checking --device and --threads."""
    dev = device(args.device)
    check_threads(args, dev)
    return dev, (group.cuda_device() if dev == "cuda" else None)


def _times(extra, state):
    """The summary's times: this process (start to end) and the whole run's training."""
    return (f"this process: {extra['this_process_wall_time_s']:.0f} s wall, "
            f"{extra['this_process_cpu_time_s']:.0f} s CPU; whole run's training steps "
            f"(every session): {state['train_time_s']:.0f} s wall, "
            f"{state['train_cpu_s']:.0f} s CPU")


def _train(args, trainer, data, dev, out, start, log, group_info):
    t0, c0 = start
    model = trainer.model
    N, (C, H, W) = len(data.train), data.shape
    kind = model.name if model.name != "multiscale" else (
        f"multiscale ({model.kind} pair, factor {model.factor}, "
        f"{model.config['condition_maps']} conditioning maps)")
    log(f"{kind}: h={model.config['h']} layers={model.config['layers']} "
        f"out_hidden={model.config['out_hidden']} ({model.num_parameters():,} parameters, "
        f"{model.config['dtype']}, {dev}); data {data.spec['kind']} {N} train / "
        f"{len(data.test)} test images of {C}x{H}x{W}; {trainer.settings['optimizer']} "
        f"lr {trainer.settings['lr']:g}, batch {trainer.settings['batch_size']}, "
        f"{trainer.settings['epochs']} epochs of {trainer.steps_per_epoch} steps -> {out}")
    trained_before = trainer.state["train_time_s"]
    metrics = trainer.run()                    # Ctrl-C / SIGTERM: saved, then re-raised
    if not trainer.group.is_root:
        return 0
    extra = {"device": dev, **group_info, "this_process_train_time_s":
             round(trainer.state["train_time_s"] - trained_before, 2)}
    n_samples = MAIN_JOB["samples"] if args.samples is None else args.samples
    if metrics["status"] == "finished" and n_samples > 0:
        from ..png import write_png
        from ..sampling import sample
        from .common import progress_printer, samples_picture
        ts = time.perf_counter()
        images = sample(model, n_samples, H, W, seed=args.sample_seed,
                        cached=not args.naive_sampler,
                        progress=progress_printer("sampling", not args.no_progress))
        path = write_png(os.path.join(out, "samples.png"),
                         samples_picture(model, images))
        extra.update(samples_png=path, sample_time_s=round(time.perf_counter() - ts, 2))
        log(f"wrote {path} ({n_samples} samples, {extra['sample_time_s']:.1f} s)")
    if trainer.state["history"]:
        extra["curves_png"] = _write_curves(out, trainer.state["history"], model.name,
                                           trainer.settings["dataset"], log)
    extra["this_process_wall_time_s"] = round(time.perf_counter() - t0, 2)
    extra["this_process_cpu_time_s"] = round(time.process_time() - c0, 2)
    trainer.write_metrics(extra)
    if metrics["test_nll_nats"] is not None:
        log(f"test NLL {metrics['test_nll_nats']:.2f} nats/image "
            f"({metrics['test_bits_per_dim']:.4f} bits/dim) after {trainer.state['epoch']} "
            f"epoch(s), {trainer.state['global_step']} steps; {_times(extra, trainer.state)}")
    if metrics["status"] == "stopped":
        log(f"stopped at --max-steps {args.max_steps}: continue with "
            f"--resume {trainer.checkpoint_path}")
    log(f"wrote {trainer.checkpoint_path} and {trainer.metrics_path}")
    return 0
