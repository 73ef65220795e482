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

The file is written atomically (a reader sees the old checkpoint or the new
one, never half of one). A file that is missing, not an .npz, not a
minipixel checkpoint, or whose arrays do not fit its config is a ValueError
(FileNotFoundError when it does not exist) that names the file and the problem.
"""
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from .data.atomic import atomic_savez

__all__ = ["save_checkpoint", "load_checkpoint", "Checkpoint", "CheckpointError",
           "FORMAT", "VERSION"]

FORMAT = "minipixel-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a usable minipixel checkpoint."""


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


def save_checkpoint(path, model, optimizer=None, train=None):
    """Write `model` (and optimizer state, training state dict) to `path` atomically."""
    arrays = {"format": np.array(FORMAT), "version": np.array(VERSION),
              "config": np.array(json.dumps(model.config, sort_keys=True)),
              "train": np.array(json.dumps(train, sort_keys=True))}
    for name, value in model.state_dict().items():
        arrays["model/" + name] = value
    if optimizer is not None:
        for name, value in optimizer.state_dict().items():
            arrays["optim/" + name] = np.asarray(value)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    atomic_savez(path, **arrays)
    return path


def _json(path, arrays, key):
    if key not in arrays:
        raise CheckpointError(f"{path}: not a minipixel checkpoint: no {key!r} entry")
    value = arrays[key]
    if value.shape != () or value.dtype.kind != "U":
        raise CheckpointError(f"{path}: entry {key!r} must be a JSON string, "
                              f"got {value.dtype} {value.shape}")
    try:
        return json.loads(str(value))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: entry {key!r} is not valid JSON: {e}") from e


def load_checkpoint(path):
    """Read and check a checkpoint; returns a `Checkpoint` (arrays on the CPU)."""
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
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib.error) as e:
        raise CheckpointError(f"{path}: not a readable .npz checkpoint (corrupt or truncated?): "
                              f"{type(e).__name__}: {e}") from e
    if not isinstance(arrays, dict) or "format" not in arrays:
        raise CheckpointError(f"{path}: not a minipixel checkpoint (no 'format' entry)")
    if str(arrays["format"]) != FORMAT:
        raise CheckpointError(f"{path}: not a minipixel checkpoint (format "
                              f"{str(arrays['format'])!r}, expected {FORMAT!r})")
    try:
        version = int(arrays.get("version"))
    except (TypeError, ValueError):
        version = None
    if version != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {version}, this minipixel "
                              f"reads version {VERSION}")
    config = _json(path, arrays, "config")
    train = _json(path, arrays, "train")
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(f"{path}: config must be a JSON object with a 'model', got {config!r}")
    if train is not None and not isinstance(train, dict):
        raise CheckpointError(f"{path}: train state must be a JSON object, got {type(train).__name__}")
    model_state = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[6:]: v for k, v in arrays.items() if k.startswith("optim/")}
    if not model_state:
        raise CheckpointError(f"{path}: checkpoint holds no model weights")
    ckpt = Checkpoint(path, config, model_state, optim_state, train)
    ckpt.model = ckpt.build_model()   # checks that the weights fit the config
    return ckpt

