"""CIFAR-10, "binary version" (cifar-10-binary.tar.gz, extracted).

The extracted folder ``cifar-10-batches-bin`` holds ``data_batch_1.bin`` ..
``data_batch_5.bin`` (training, 50,000 images) and ``test_batch.bin`` (10,000).
Each file is a run of 3,073-byte records (10,000 per official file):

    byte 0          label 0..9 (airplane, automobile, bird, cat, deer,
                    dog, frog, horse, ship, truck)
    bytes 1..3072   the 32x32 image as three planes, red then green then blue,
                    each 1,024 bytes in row-major order

so a file reshaped to (N, 3073) gives labels ``[:, 0]`` and images
``[:, 1:].reshape(N, 3, 32, 32)`` directly. A file whose size is not a
positive multiple of 3,073, or with a label above 9, is a ValueError (the
CIFAR-100 binary version, with two label bytes, fails here by design).
"""
from pathlib import Path

import numpy as np

from .embedded import SPLITS

__all__ = ["load_cifar10", "read_cifar10_batch", "CIFAR10_CLASSES", "CIFAR10_SPLIT_SIZES",
           "CIFAR10_FILES", "RECORD_BYTES"]

RECORD_BYTES = 1 + 3 * 32 * 32
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_SPLIT_SIZES = {"train": 50000, "test": 10000}
CIFAR10_FILES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
                 "test": ("test_batch.bin",)}
SUBDIR = "cifar-10-batches-bin"


def read_cifar10_batch(path):
    """One CIFAR-10 binary file -> (images uint8 (N, 3, 32, 32), labels uint8 (N,))."""
    path = Path(path)
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0 or size % RECORD_BYTES:
            raise ValueError(f"{path}: expected a positive multiple of {RECORD_BYTES} bytes "
                             f"(1 label + 3072 pixel bytes per record), got {size} bytes")
        f.seek(0)
        data = np.fromfile(f, dtype=np.uint8, count=size)
    if data.size != size:
        raise ValueError(f"{path}: expected {size} bytes, read {data.size} (file changed?)")
    records = data.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(f"{path}: record {bad}: expected a label 0..9, got {labels[bad]}")
    images = np.ascontiguousarray(records[:, 1:]).reshape(-1, 3, 32, 32)
    return images, labels


def _find_dir(directory, names):
    directory = Path(directory)
    candidates = [directory, directory / SUBDIR]
    for d in candidates:
        if all((d / n).is_file() for n in names):
            return d
    searched = " and ".join(str(d) for d in candidates)
    raise FileNotFoundError(f"CIFAR-10 binary files not found: expected {', '.join(names)} "
                            f"in {searched}")


def load_cifar10(directory, split="train"):
    """CIFAR-10 -> (images uint8 (N, 3, 32, 32), labels uint8 (N,)).

    ``directory`` is the extracted ``cifar-10-batches-bin`` folder or the folder
    that holds it. split "train" concatenates data_batch_1..5 in order.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    names = CIFAR10_FILES[split]
    d = _find_dir(directory, names)
    parts = [read_cifar10_batch(d / n) for n in names]
    if len(parts) == 1:
        return parts[0]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
