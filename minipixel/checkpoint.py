"""Checkpoints: one .npz file with the model, the optimizer and the training state.

Layout (every entry a plain array; read with ``allow_pickle=False``):

    format        "minipixel-checkpoint"
    version       1
    config        JSON: the model's config (``model.config``: model, channels,
                  levels, h, layers, out_hidden, seed, dtype)
    train         JSON: the training state and settings (optimizer, lr,
                  batch size, seed, dataset, epoch, step within the epoch,
                  global step, history of per-epoch metrics), or "null"
    model/<name>  one array per parameter (``model.state_dict()``)
    optim/<key>   the optimizer's ``state_dict()`` (step count, lr, buffers)

Writing: atomic (a reader sees the old checkpoint or the new one, never half of
one), and only finite weights and optimizer state are written: a model whose
weights went non-finite is refused, so a good checkpoint is never replaced by
a NaN one. The config records the dtype the parameters really have (a model
cast with ``model.astype`` saves and loads as what it became).

Reading never trusts the file. Before anything is decompressed or allocated,
the zip directory and the .npy headers are checked (``minipixel.io.inspect_npz``:
plain arrays only, sizes that match the headers, no zip bombs, a byte budget,
and at most MAX_CHECKPOINT_RATIO times the file's size in all: minipixel writes
checkpoints uncompressed); then only the small entries (format, version, config,
train) are read and the config is checked (kinds, types, ranges), and the
parameter count it implies is compared with the weights the file declares, both
ways (the file must hold at least min_parameters and at most
MAX_PARAMETER_FACTOR times it, the optimizer state at most MAX_OPTIM_FACTOR
values per weight), so neither a small file whose config asks for a huge model
nor one that declares gigabytes its model cannot use costs more than the model
before it is refused. Only then are the weights and optimizer state read (other
entries never), and they must be finite. ``validate_train_state`` checks a
training state (every field's type, finiteness and range) before a resume. Every problem is a
``CheckpointError`` (a ValueError) that names the file (FileNotFoundError when
it does not exist).
"""
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .io import MAX_NPZ_BYTES, NpzError, atomic_savez, inspect_npz, load_npz, loads_json
from .validate import finite_span, is_finite, is_whole, whole_span

__all__ = ["save_checkpoint", "load_checkpoint", "Checkpoint", "CheckpointError",
           "validate_config", "validate_train_state", "min_parameters", "weights_are_finite", "FORMAT", "VERSION"]

FORMAT = "minipixel-checkpoint"
VERSION = 1
DTYPES = ("float32", "float64")
MAX_LEVELS = 65536
STATE_KEYS = ("format", "version", "config", "train")
MAX_STATE_BYTES = 16 << 20       # each of the entries above, read before the arrays
MAX_CHECKPOINT_RATIO = 16        # minipixel writes checkpoints uncompressed (np.savez)
MAX_PARAMETER_FACTOR = 4         # weights held / min_parameters(config): 2.03 at most today
MAX_OPTIM_FACTOR = 3             # optimizer state / weights (Adam: two buffers per weight)


class CheckpointError(ValueError):
    """A file that is not a usable minipixel checkpoint."""


# ---- model configs ----------------------------------------------------------------
def validate_config(config):
    """ValueError naming the first problem unless `config` describes a model that
    ``models.build`` can make: a known kind, and integer sizes in range."""
    from .models import MODELS
    if not isinstance(config, dict):
        raise ValueError(f"config must be a JSON object, got {type(config).__name__}")
    if config.get("model") not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {config.get('model')!r}")
    ranges = {"channels": (1, 3), "levels": (2, MAX_LEVELS), "h": (1, None),
              "layers": (1, None), "out_hidden": (1, None), "seed": (0, None)}
    for key, (low, high) in ranges.items():
        if not is_whole(config.get(key), low, high):
            raise ValueError(f"{key} must be {whole_span(low, high)}, got {config.get(key)!r}")
    if config["channels"] not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {config['channels']}")
    if config.get("dtype", "float32") not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {config.get('dtype')!r}")
    if config["model"] == "multiscale":
        if config.get("kind") not in LAYER_WEIGHTS_PER_H2:
            raise ValueError(f"kind must be one of {sorted(LAYER_WEIGHTS_PER_H2)}, "
                             f"got {config.get('kind')!r}")
        for key, low in (("factor", 2), ("condition_maps", 1)):
            if not is_whole(config.get(key), low, None):
                raise ValueError(f"{key} must be {whole_span(low, None)}, got {config.get(key)!r}")
    return config


# ---- training states ---------------------------------------------------------------
def _whole(low=0):
    return (lambda v: is_whole(v, low)), whole_span(low)


def _finite(low=None, above=False):
    return (lambda v: is_finite(v, low, above)), finite_span(low, above)


def _or_none(check):
    ok, what = check
    return (lambda v: v is None or ok(v)), f"null or {what}"


def _json_object(v):
    return isinstance(v, dict) and all(isinstance(k, str) for k in v)


# Every field of a checkpoint's training state, with what it must be. The optional ones
# (older checkpoints lack them) are checked when present.
TRAIN_FIELDS = {
    "optimizer": (lambda v: isinstance(v, str) and v in _optimizers(), "a known optimizer"),
    "lr": _finite(0, above=True),
    "batch_size": _whole(1),
    "epochs": _whole(0),
    "seed": _whole(0),
    "clip": _or_none(_finite(0, above=True)),
    "dataset": ((lambda v: v is None or _json_object(v)), "null or a JSON object"),
    "epoch": _whole(0),
    "step": _whole(0),
    "global_step": _whole(0),
    "loss_sum": _finite(0),
    "loss_images": _whole(0),
    "train_time_s": _finite(0),
    "history": ((lambda v: isinstance(v, list) and all(_json_object(e) for e in v)),
                "a list of JSON objects"),
}
OPTIONAL_TRAIN_FIELDS = {"train_cpu_s": _finite(0), "threads": _whole(1),
                         "status": ((lambda v: isinstance(v, str)), "a string")}
# The numbers of one history entry (one finished epoch), when present.
HISTORY_FIELDS = {"epoch": _whole(1), "global_step": _whole(0), "train_nll_nats": _finite(),
                  "test_nll_nats": _finite(), "test_bits_per_dim": _finite(),
                  "train_time_s": _finite(0), "train_cpu_s": _finite(0)}


def _optimizers():
    from .nn import OPTIMIZERS
    return OPTIMIZERS


def validate_train_state(t):
    """ValueError naming the first problem unless `t` (a checkpoint's training state) holds
    every setting and counter a resumed run needs, each of the right type, finite and in
    range (the optional fields too, and the numbers of every history entry)."""
    if not isinstance(t, dict):
        raise ValueError(f"training state must be a JSON object, got {type(t).__name__}")
    missing = [k for k in TRAIN_FIELDS if k not in t]
    if missing:
        raise ValueError(f"training state lacks {', '.join(missing)}")
    fields = {**TRAIN_FIELDS, **{k: v for k, v in OPTIONAL_TRAIN_FIELDS.items() if k in t}}
    for key, (ok, what) in fields.items():
        if not ok(t[key]):
            what = f"one of {_optimizers()}" if key == "optimizer" else what
            raise ValueError(f"training state: {key} must be {what}, got {t[key]!r}")
    for i, entry in enumerate(t["history"]):
        for key, (ok, what) in HISTORY_FIELDS.items():
            if key in entry and not ok(entry[key]):
                raise ValueError(f"training state: history entry {i}: {key} must be {what}, "
                                 f"got {entry[key]!r}")
    if t["global_step"] < t["step"]:
        raise ValueError(f"training state: global_step {t['global_step']} is smaller than "
                         f"the step within the epoch, {t['step']}")
    return t


# Weights per layer in units of h*h, half of what the paper's layers have (Row LSTM:
# 24 input-to-state + 12 state-to-state; Diagonal BiLSTM: two directions of 8 + 8;
# PixelCNN block: 2 + 9 + 2), so the bound below stays a bound with room to spare.
LAYER_WEIGHTS_PER_H2 = {"rowlstm": 18, "diagonal": 16, "pixelcnn": 6}


def min_parameters(config):
    """A lower bound on the parameter count of the model `config` describes, from its
    sizes alone (no model is built): the 7x7 first conv (2h x C x 7 x 7), the layers
    (LAYER_WEIGHTS_PER_H2 * h*h each), the skip conv over all layers (out_hidden x
    2h*layers), and the two output convs. Within a factor of about 2.5 of the true count,
    so a file's declared weights bound what building its model costs. Exact arithmetic on
    Python ints, so h = 1e9 is just a big number."""
    C, h, L, F = (int(config[k]) for k in ("channels", "h", "layers", "out_hidden"))
    if config.get("model") == "multiscale":   # two networks, V per layer, the upsampler
        one = min_parameters({**config, "model": config.get("kind")})
        c, k = int(config["condition_maps"]), int(config["factor"])
        return 2 * one + L * h * c + c * c * (k * k + 9)
    values = 1 if int(config["levels"]) == 2 else int(config["levels"])
    per_layer = LAYER_WEIGHTS_PER_H2.get(config.get("model"), 1) * h * h
    return 2 * h * C * 49 + L * per_layer + F * 2 * h * L + F * F + C * values * F


def nonfinite_count(params):
    """How many entries of `params` are not finite: a 0-d array on their device, worked
    out without reading anything back."""
    params = list(params)
    if not params:
        return np.int64(0)
    return sum((~p.xp.isfinite(p.data)).sum() for p in params)


def weights_are_finite(model):
    """True when every parameter of `model` is finite (NumPy or CuPy; one read back)."""
    return int(nonfinite_count(model.parameters())) == 0


@dataclass
class Checkpoint:
    path: str
    config: dict
    model_state: dict
    optimizer_state: dict
    train: dict = field(default=None)
    model: object = field(default=None, repr=False)   # built on the CPU by load_checkpoint

    def build_model(self, device="cpu"):
        """The model of this checkpoint with its weights, on `device` (a fresh copy)."""
        from .models import build
        try:
            validate_config(self.config)
        except ValueError as e:
            raise CheckpointError(f"{self.path}: config {self.config} does not build a model: "
                                  f"{e}") from None
        config = dict(self.config)
        try:
            model = build(config.pop("model"), **config)
        except (TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{self.path}: config {self.config} does not build a model: "
                                  f"{e}") from e
        try:
            model.load_state_dict(self.model_state)
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{self.path}: weights do not fit config {self.config}: "
                                  f"{e}") from e
        if device != "cpu":
            model.to(device)
        return model


# ---- writing ------------------------------------------------------------------------
def _plain(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def save_checkpoint(path, model, optimizer=None, train=None):
    """Write `model` (and optimizer state, training state dict) to `path` atomically.
    ValueError, with nothing written, if a weight or optimizer value is not finite, the
    parameters mix dtypes, or the training state holds a non-finite number."""
    state = model.state_dict()
    dtypes = sorted({v.dtype.name for v in state.values()})
    if len(dtypes) != 1 or dtypes[0] not in DTYPES:
        raise ValueError(f"save_checkpoint: parameters must all be float32 or all float64, "
                         f"got {dtypes}; cast the model with model.astype(...)")
    bad = [name for name, v in state.items() if not np.isfinite(v).all()]
    if bad:
        raise ValueError(f"save_checkpoint: refusing to write non-finite weights "
                         f"({', '.join(bad[:3])}{'...' if len(bad) > 3 else ''}) to {path}")
    config = {**model.config, "dtype": dtypes[0]}
    try:
        train_json = json.dumps(train, sort_keys=True, allow_nan=False, default=_plain)
    except ValueError:
        raise ValueError("save_checkpoint: the training state holds a non-finite number") from None
    arrays = {"format": np.array(FORMAT), "version": np.array(VERSION),
              "config": np.array(json.dumps(config, sort_keys=True, default=_plain)),
              "train": np.array(train_json)}
    for name, value in state.items():
        arrays["model/" + name] = value
    if optimizer is not None:
        for name, value in optimizer.state_dict().items():
            value = np.asarray(value)
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ValueError(f"save_checkpoint: refusing to write non-finite optimizer "
                                 f"state {name} to {path}")
            arrays["optim/" + name] = value
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    atomic_savez(path, **arrays)
    return path


# ---- reading ------------------------------------------------------------------------
def _json(path, arrays, key):
    if key not in arrays:
        raise CheckpointError(f"{path}: not a minipixel checkpoint: no {key!r} entry")
    value = arrays[key]
    if value.shape != () or value.dtype.kind != "U":
        raise CheckpointError(f"{path}: entry {key!r} must be a JSON string, "
                              f"got {value.dtype} {value.shape}")
    try:
        return loads_json(str(value))
    except ValueError as e:
        raise CheckpointError(f"{path}: entry {key!r} is not valid JSON: {e}") from None


def _check_declared(path, declared):
    """Checks on the .npy headers alone, before any array is read."""
    for key in STATE_KEYS:
        if key in declared and declared[key][0] != ():
            raise CheckpointError(f"{path}: entry {key!r} must be a single value, got shape "
                                  f"{declared[key][0]}")
        if key in declared and declared[key][1].itemsize > MAX_STATE_BYTES:
            raise CheckpointError(f"{path}: entry {key!r} declares {declared[key][1].itemsize:,}"
                                  f" bytes, more than the {MAX_STATE_BYTES:,} allowed")
    for key, (shape, dtype) in declared.items():
        if key.startswith(("model/", "optim/")) and dtype.kind not in "iuf":
            raise CheckpointError(f"{path}: entry {key!r} must hold numbers, got {dtype}")


def _declared_total(declared, prefix):
    return sum(math.prod(shape) for key, (shape, _) in declared.items()
               if key.startswith(prefix))


def _check_size(path, config, declared):
    """Refuse, from the headers alone, a config that implies more parameters than the file
    declares, weights far more than the config can use, or optimizer state far larger than
    the weights: what is read next is bounded by what the config's model needs."""
    held, optim = _declared_total(declared, "model/"), _declared_total(declared, "optim/")
    need = min_parameters(config)
    if need > held:
        raise CheckpointError(f"{path}: weights do not fit config {config}: it needs at least "
                              f"{need:,} parameters, the file holds {held:,}")
    if held > MAX_PARAMETER_FACTOR * need:
        raise CheckpointError(f"{path}: weights do not fit config {config}: the file declares "
                              f"{held:,} weights, more than {MAX_PARAMETER_FACTOR} times the "
                              f"{need:,} its model is built from at least")
    if optim > MAX_OPTIM_FACTOR * held + 1024:
        raise CheckpointError(f"{path}: the optimizer state declares {optim:,} values, more "
                              f"than {MAX_OPTIM_FACTOR} per weight ({held:,} weights)")


def load_checkpoint(path, *, max_bytes=MAX_NPZ_BYTES):
    """Read and check a checkpoint; returns a `Checkpoint` (arrays on the CPU).
    `max_bytes` bounds the arrays' total size (checked from the headers first)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint .npz file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":
        raise CheckpointError(f"{path}: not a minipixel checkpoint: expected an .npz (zip) "
                              f"file, the file starts with {head!r}")
    limits = dict(max_bytes=max_bytes, max_ratio=MAX_CHECKPOINT_RATIO)
    try:
        declared = inspect_npz(path, **limits)
        _check_declared(path, declared)
        if "format" not in declared:
            raise CheckpointError(f"{path}: not a minipixel checkpoint (no 'format' entry)")
        arrays = load_npz(path, **limits, keys=STATE_KEYS)     # the small entries first
    except NpzError as e:
        raise CheckpointError(f"{path}: {e}") from None
    if str(arrays["format"]) != FORMAT:
        raise CheckpointError(f"{path}: not a minipixel checkpoint (format "
                              f"{str(arrays['format'])!r}, expected {FORMAT!r})")
    version = arrays.get("version")
    version = int(version) if version is not None and version.dtype.kind in "iu" else None
    if version != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {version}, this minipixel "
                              f"reads version {VERSION}")
    config = _json(path, arrays, "config")
    train = _json(path, arrays, "train")
    try:
        validate_config(config)
    except ValueError as e:
        raise CheckpointError(f"{path}: config {config!r} does not build a model: {e}") from None
    if train is not None and not isinstance(train, dict):
        raise CheckpointError(f"{path}: train state must be a JSON object, got {type(train).__name__}")
    if not any(k.startswith("model/") for k in declared):
        raise CheckpointError(f"{path}: checkpoint holds no model weights")
    _check_size(path, config, declared)
    try:
        arrays = load_npz(path, **limits,           # other entries are never read
                          keys=[k for k in declared if k.startswith(("model/", "optim/"))])
    except NpzError as e:
        raise CheckpointError(f"{path}: {e}") from None
    model_state = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
    for kind, entries in (("weight", model_state), ("optimizer state", optim_state)):
        bad = [k for k, v in entries.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
        if bad:
            raise CheckpointError(f"{path}: non-finite {kind} values in {', '.join(bad[:3])}"
                                  f"{'...' if len(bad) > 3 else ''} (a diverged run?); "
                                  f"refusing to use it")
    ckpt = Checkpoint(path, config, model_state, optim_state, train)
    ckpt.model = ckpt.build_model()   # checks that the weights fit the config
    return ckpt
