"""Datasets by name: what `minipixel train` and `evaluate` load, checked.

    data = load_dataset("binary")                          # embedded digits, static 0/1
    data = load_dataset("grey", mnist_dir="~/mnist")       # full MNIST, 256 levels
    data = load_dataset("binary", binarized_mnist_dir=d)   # the standard .amat files
    data = load_dataset("rgb", cifar_dir=d, crop=16)       # CIFAR-10, central 16x16
    data.train, data.test    uint8 (N, C, H, W) in 0..levels-1
    data.spec                the arguments, to load it again (stored in checkpoints)

Sources and kinds:

    embedded digits (no folder)   binary | binary-threshold | grey | rgb
    mnist_dir (IDX files)         binary | binary-threshold | grey
    binarized_mnist_dir (.amat)   binary (the files are already statically binarized)
    cifar_dir (binary version)    rgb

"binary" is statically binarized (each pixel drawn once from its grey level,
see ``minipixel.data.binarize``); "binary-threshold" is grey >= 128.

Checks, each a ValueError saying what was expected and what came: a known
kind for the source; at most one folder; every split loaded holds at least one
image of at least 1x1 pixels; the training and test images have the same
(C, H, W) (a model trained on 5x7 images must not be scored on 28x28 ones);
n_train / n_test / crop are positive integers and crop fits the images.

``splits`` chooses what is read: ``("test",)`` scores a checkpoint without
needing the training files (``Dataset.train`` is then None).
"""
from dataclasses import dataclass

import numpy as np

from .amat import load_binarized_mnist_dir
from .cifar10 import load_cifar10
from .embedded import KINDS, SPLITS, load_digits
from .idx import MNIST_KINDS, load_mnist_dir
from ..validate import is_whole

__all__ = ["Dataset", "load_dataset", "center_crop", "dataset_levels", "SOURCES"]

# source -> the kinds it offers
SOURCES = {"digits": KINDS, "mnist_dir": MNIST_KINDS, "binarized_mnist_dir": ("binary",),
           "cifar_dir": ("rgb",)}
_NAMES = {"digits": "the embedded digits", "mnist_dir": "MNIST (IDX files)",
          "binarized_mnist_dir": "binarized MNIST (.amat files)",
          "cifar_dir": "CIFAR-10"}


@dataclass
class Dataset:
    train: np.ndarray          # uint8 (N, C, H, W) in 0..levels-1; None if not loaded
    test: np.ndarray
    channels: int
    levels: int
    spec: dict                 # how to load it again (stored in checkpoints)

    @property
    def shape(self):
        """(C, H, W) of the images."""
        return (self.train if self.train is not None else self.test).shape[1:]


def dataset_levels(kind):
    """Values per sub-pixel: 2 for the binary kinds, 256 otherwise."""
    return 2 if kind.startswith("binary") else 256


def center_crop(images, size):
    """The central size x size window of (N, C, H, W) images."""
    H, W = images.shape[2:]
    if not 1 <= size <= min(H, W):
        raise ValueError(f"crop size must be in 1..{min(H, W)}, got {size}")
    r, c = (H - size) // 2, (W - size) // 2
    return np.ascontiguousarray(images[:, :, r:r + size, c:c + size])


def _positive(name, value):
    if value is None:
        return None
    if not is_whole(value, 1):
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _read(source, folder, split, kind):
    if source == "digits":
        return load_digits(split, kind)
    if source == "mnist_dir":
        return load_mnist_dir(folder, split, kind)[0]
    if source == "binarized_mnist_dir":
        return load_binarized_mnist_dir(folder, split)
    return load_cifar10(folder, split)[0]


def load_dataset(kind="binary", mnist_dir=None, cifar_dir=None, crop=None, n_train=None,
                 n_test=None, binarized_mnist_dir=None, splits=SPLITS):
    """Images by name (see the module docstring): a checked ``Dataset``.

    crop: the central crop x crop window; n_train / n_test keep the first n of a split.
    """
    spec = dict(kind=kind, mnist_dir=mnist_dir, cifar_dir=cifar_dir,
                binarized_mnist_dir=binarized_mnist_dir, crop=crop, n_train=n_train,
                n_test=n_test)
    folders = {k: v for k, v in (("mnist_dir", mnist_dir), ("cifar_dir", cifar_dir),
                                 ("binarized_mnist_dir", binarized_mnist_dir)) if v}
    if len(folders) > 1:
        raise ValueError(f"expected at most one data folder, got {', '.join(sorted(folders))}")
    source, folder = next(iter(folders.items())) if folders else ("digits", None)
    if kind not in SOURCES[source]:
        raise ValueError(f"dataset kind for {_NAMES[source]}: expected one of "
                         f"{', '.join(SOURCES[source])}, got {kind!r}")
    crop = _positive("crop", crop)
    limits = {"train": _positive("n_train", n_train), "test": _positive("n_test", n_test)}
    if not splits or any(s not in SPLITS for s in splits):
        raise ValueError(f"splits: expected some of {SPLITS}, got {splits!r}")
    images = {}
    for split in SPLITS:
        if split not in splits:
            continue
        x = _read(source, folder, split, kind)
        if x.ndim != 4 or 0 in x.shape:
            raise ValueError(f"{_NAMES[source]} {split} split: expected at least one image of "
                             f"at least 1x1 pixels, got shape {x.shape} (N, C, H, W)")
        if limits[split] is not None:
            x = x[:limits[split]]
        if crop:
            x = center_crop(x, crop)
        images[split] = np.ascontiguousarray(x)
    if len(images) == 2 and images["train"].shape[1:] != images["test"].shape[1:]:
        tr, te = images["train"].shape[1:], images["test"].shape[1:]
        raise ValueError(f"{_NAMES[source]}: the training images are {_size(tr)} but the test "
                         f"images are {_size(te)}; expected the same size (C x H x W)")
    first = next(iter(images.values()))
    return Dataset(images.get("train"), images.get("test"), first.shape[1], dataset_levels(kind),
                   spec)


def _size(shape):
    return "x".join(map(str, shape))
