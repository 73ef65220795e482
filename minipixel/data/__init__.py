"""Datasets: embedded MNIST digits, RGB digits, and readers for full MNIST / CIFAR-10.

    load_digits(split, kind)      embedded 5,000 MNIST digits (4,000 train / 1,000 test),
                                  kind "binary" | "binary-threshold" | "grey" | "rgb"
                                  -> uint8 (N, C, 28, 28)
    static_binarize(grey, seed)   Bernoulli(grey / 255) per pixel, portable and seeded
    to_binary(grey)               grey >= 128
    load_mnist_dir(dir, split)    full MNIST from its IDX files -> (N, 1, 28, 28), labels
    load_mnist_idx(path)          one MNIST IDX file (plain or gzip)
    load_cifar10(dir, split)      CIFAR-10 binary version -> (N, 3, 32, 32), labels
    load_binarized_mnist_dir(dir, split)   the standard binarized-MNIST .amat files
    load_dataset(kind, ...)       any of the above by name, checked -> Dataset
    dataset_info()                split sizes and shapes of all of the above
    atomic_write, atomic_savez    crash-safe file writing

Only numpy and the standard library are used. Images are always integer uint8
arrays in (N, C, H, W) order; labels uint8 (N,).
"""
from ..io import atomic_savez, atomic_savez_compressed, atomic_write
from .amat import BINARIZED_MNIST_SPLIT_SIZES, load_binarized_mnist_dir, read_amat, write_amat
from .binarize import STATIC_SEED, pack_bits, static_binarize, unpack_bits
from .cifar10 import CIFAR10_CLASSES, CIFAR10_SPLIT_SIZES, load_cifar10, read_cifar10_batch
from .embedded import (BINARY_THRESHOLD, DIGITS_SPLIT_SIZES, KINDS, README_NOTE, SPLITS,
                       load_digits, stratified_split, to_binary)
from .idx import MNIST_SPLIT_SIZES, load_mnist_dir, load_mnist_idx, read_idx, write_idx
from .rgb_digits import MIN_COLOUR_DISTANCE, colourize, digit_colours, rgb_digits
from .datasets import Dataset, center_crop, dataset_levels, load_dataset


def dataset_info():
    """Split sizes, image shapes (C, H, W) and kinds of every dataset this package reads."""
    return {
        "digits": {"splits": dict(DIGITS_SPLIT_SIZES), "num_classes": 10,
                   "shape": {"binary": (1, 28, 28), "binary-threshold": (1, 28, 28),
                             "grey": (1, 28, 28), "rgb": (3, 28, 28)},
                   "source": README_NOTE},
        "mnist": {"splits": dict(MNIST_SPLIT_SIZES), "num_classes": 10,
                  "shape": {"binary": (1, 28, 28), "binary-threshold": (1, 28, 28),
                            "grey": (1, 28, 28)}},
        "binarized_mnist": {"splits": dict(BINARIZED_MNIST_SPLIT_SIZES),
                            "shape": {"binary": (1, 28, 28)}},
        "cifar10": {"splits": dict(CIFAR10_SPLIT_SIZES), "num_classes": 10,
                    "shape": {"rgb": (3, 32, 32)}, "classes": CIFAR10_CLASSES},
    }


__all__ = ["Dataset", "load_dataset", "center_crop", "dataset_levels",
           "load_binarized_mnist_dir", "read_amat", "write_amat", "BINARIZED_MNIST_SPLIT_SIZES",
           "load_digits", "to_binary", "static_binarize", "pack_bits", "unpack_bits",
           "STATIC_SEED", "stratified_split", "dataset_info", "load_mnist_idx",
           "load_mnist_dir", "read_idx", "write_idx", "load_cifar10", "read_cifar10_batch",
           "colourize", "digit_colours", "rgb_digits", "atomic_write", "atomic_savez",
           "atomic_savez_compressed", "BINARY_THRESHOLD", "DIGITS_SPLIT_SIZES",
           "MNIST_SPLIT_SIZES", "CIFAR10_SPLIT_SIZES", "CIFAR10_CLASSES", "MIN_COLOUR_DISTANCE",
           "SPLITS", "KINDS", "README_NOTE"]
