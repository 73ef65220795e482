"""The standard binarized-MNIST files: ``binarized_mnist_{train,valid,test}.amat``.

These are the statically binarized MNIST digits published results use (50,000
training, 10,000 validation, 10,000 test images). Each file is text: one image
per line, 784 values ``0`` or ``1`` separated by spaces, the 28x28 pixels in
row-major order::

    0 0 0 1 1 0 ... 0\\n        (784 values)

The reader is strict: every line holds exactly 784 single-character values,
each 0 or 1 (a "2", "1.0", "10" or a letter is an error naming the line), blank
lines are skipped, and a file larger than ``max_bytes`` is refused from its
size before anything is read. The file is streamed in pieces of whole lines
(a first pass counts the lines to size the output), so reading it needs the
images (half the file's size) and a few MB, not several times the file. Every problem is a ValueError naming the file.
"""
import os
from pathlib import Path

import numpy as np

__all__ = ["read_amat", "load_binarized_mnist_dir", "BINARIZED_MNIST_FILES",
           "BINARIZED_MNIST_SPLIT_SIZES", "MAX_AMAT_BYTES", "write_amat"]

PIXELS = 784
BINARIZED_MNIST_FILES = {"train": "binarized_mnist_train.amat",
                         "valid": "binarized_mnist_valid.amat",
                         "test": "binarized_mnist_test.amat"}
BINARIZED_MNIST_SPLIT_SIZES = {"train": 50000, "valid": 10000, "test": 10000}
# 2 bytes a pixel ("0 "): the 50,000-image training file is 78 MB; this allows ~340,000.
MAX_AMAT_BYTES = 512 << 20

_CHUNK = 4 << 20                # bytes per piece of a streamed read
_ALLOWED = np.zeros(256, bool)
_ALLOWED[[ord(c) for c in "01 \t\r\n"]] = True


def read_amat(path, max_bytes=MAX_AMAT_BYTES, chunk_bytes=_CHUNK):
    """One .amat file -> uint8 (N, 1, 28, 28) of 0/1, checked (see the module docstring).
    Streamed: whole lines of about `chunk_bytes` at a time go into an output sized by a
    first pass that counts the lines, so memory is the images (half the file) plus a chunk."""
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise ValueError(f"{path}: expected at most {max_bytes} bytes for a binarized-MNIST "
                             f"file, got {size}")
        lines = sum(chunk.count(b"\n") for chunk in _chunks(f, chunk_bytes, max_bytes)) + 1
        f.seek(0)
        out = np.empty((lines, PIXELS), np.uint8)
        n, line = 0, 1
        for chunk in _line_chunks(f, chunk_bytes, max_bytes, path):
            rows = _parse_lines(np.frombuffer(chunk, np.uint8), path, line)
            if n + len(rows) > lines:
                raise ValueError(f"{path}: the file changed while it was read")
            out[n:n + len(rows)] = rows
            n, line = n + len(rows), line + chunk.count(b"\n")
    if size == 0:
        raise ValueError(f"{path}: expected lines of {PIXELS} values 0/1, got an empty file")
    if n == 0:
        raise ValueError(f"{path}: expected lines of {PIXELS} values 0/1, got no images")
    return out[:n].reshape(n, 1, 28, 28)


def _chunks(f, chunk_bytes, max_bytes):
    """The file's bytes in chunks; ValueError once more than max_bytes came (it grew)."""
    total = 0
    while True:
        chunk = f.read(chunk_bytes)
        if not chunk:
            return
        total += len(chunk)
        if total > max_bytes:
            raise ValueError(f"{f.name}: expected at most {max_bytes} bytes (file grew while "
                             f"read)")
        yield chunk


def _line_chunks(f, chunk_bytes, max_bytes, path):
    """The file in pieces that end at a newline (the last piece: at the end of the file)."""
    rest = b""
    for chunk in _chunks(f, chunk_bytes, max_bytes):
        chunk = rest + chunk
        cut = chunk.rfind(b"\n") + 1
        if cut:
            yield chunk[:cut]
        rest = chunk[cut:]
        if len(rest) > 64 * PIXELS:
            raise ValueError(f"{path}: a line of more than {64 * PIXELS} bytes: expected "
                             f"{PIXELS} values 0/1 separated by spaces")
    if rest:
        yield rest


def _parse_lines(data, path, first_line):
    """(images, 784) uint8 of whole lines `data` (uint8 bytes), numbered from first_line."""
    bad = np.flatnonzero(~_ALLOWED[data])
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"{path}: line {first_line - 1 + _line_of(data, k)}: expected values 0 "
                         f"or 1 separated by spaces, got the character {chr(data[k])!r}")
    is_value = (data == ord("0")) | (data == ord("1"))
    joined = np.flatnonzero(is_value[:-1] & is_value[1:])
    if joined.size:
        k = int(joined[0])
        raise ValueError(f"{path}: line {first_line - 1 + _line_of(data, k)}: expected single "
                         f"values 0 or 1, got {bytes(data[k:k + 2]).decode()}...")
    # values per line; each line's segment includes its newline, so none is empty
    ends = np.flatnonzero(data == ord("\n"))
    if data[-1] != ord("\n"):
        ends = np.append(ends, len(data) - 1)
    starts = np.concatenate([[0], ends[:-1] + 1])
    per_line = np.add.reduceat(is_value, starts, dtype=np.int64)
    wrong = np.flatnonzero((per_line != 0) & (per_line != PIXELS))
    if wrong.size:
        k = int(wrong[0])
        raise ValueError(f"{path}: line {first_line + k}: expected {PIXELS} values (a 28x28 "
                         f"image), got {int(per_line[k])}")
    return (data[is_value] - ord("0")).astype(np.uint8).reshape(-1, PIXELS)


def _line_of(data, k):
    return int(np.count_nonzero(data[:k] == ord("\n"))) + 1


def load_binarized_mnist_dir(directory, split="train", max_bytes=MAX_AMAT_BYTES):
    """``binarized_mnist_<split>.amat`` from ``directory`` -> uint8 (N, 1, 28, 28), 0/1.

    split: "train", "valid" or "test". There are no labels in these files.
    """
    if split not in BINARIZED_MNIST_FILES:
        raise ValueError(f"split: expected one of {tuple(BINARIZED_MNIST_FILES)}, got {split!r}")
    path = Path(directory) / BINARIZED_MNIST_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: expected {BINARIZED_MNIST_FILES[split]}; "
                                "not found")
    return read_amat(path, max_bytes)


def write_amat(path, images):
    """Write 0/1 images (N, ...) of 784 pixels each as an .amat file (for tests and tools)."""
    from ..io import atomic_write
    bits = np.asarray(images).reshape(len(images), -1)
    if bits.shape[1] != PIXELS or not np.isin(bits, (0, 1)).all():
        raise ValueError(f"write_amat: expected 0/1 images of {PIXELS} pixels, got shape "
                         f"{np.shape(images)}")
    with atomic_write(path, "w") as f:
        for row in bits:
            f.write(" ".join("1" if v else "0" for v in row) + "\n")
