"""IDX files (the MNIST distribution format), plain or gzip-compressed.

Format: a 4-byte magic ``0x00 0x00 <dtype code> <ndim>``, then ``ndim``
big-endian uint32 dimension sizes, then the data in C order, big-endian:

    code  0x08 uint8   0x09 int8   0x0B int16   0x0C int32   0x0D float32   0x0E float64

MNIST uses uint8 only: images have magic 2051 (0x00000803: uint8, 3-d,
(N, 28, 28)) and labels magic 2049 (0x00000801: uint8, 1-d, (N,)).
A file is treated as gzip when it starts with the gzip magic bytes 1f 8b,
whatever its name. An MNIST images file's images are at most MAX_MNIST_SIDE
pixels a side (checked from the header).

Nothing is allocated from the header's word alone: the declared data size
must be at most ``max_bytes`` (``MAX_IDX_BYTES``, 512 MiB, ten times full
MNIST, by default) before any data is read or decompressed; a plain file's
size must equal header + declared data exactly, and a gzip stream is
decompressed in 1 MiB chunks, at most declared size + 1 bytes. So a header
that claims 10^9 images fails at once, and a small gzip file cannot expand to
more than the declared size (a "gzip bomb" of a few hundred KB that unpacks to
gigabytes is refused from its header, or stops at the declared size).
Every problem is a ValueError naming the file and what was expected vs found.
"""
import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..io import atomic_write
from .binarize import STATIC_SEED, static_binarize, to_binary
from .embedded import SPLITS

__all__ = ["read_idx", "write_idx", "load_mnist_idx", "load_mnist_dir", "MNIST_SPLIT_SIZES",
           "IDX_DTYPES", "MNIST_IMAGES_MAGIC", "MNIST_LABELS_MAGIC", "MAX_IDX_BYTES", "MNIST_KINDS"]

IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
MNIST_IMAGES_MAGIC = 0x00000803   # 2051
MNIST_LABELS_MAGIC = 0x00000801   # 2049
MNIST_SPLIT_SIZES = {"train": 60000, "test": 10000}
MNIST_KINDS = ("binary", "binary-threshold", "grey")
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
MAX_IDX_BYTES = 512 << 20
MAX_MNIST_SIDE = 256              # pixels a side of an MNIST image file's images (MNIST: 28)


def _read_exact(f, n, path, what):
    data = f.read(n)
    if len(data) != n:
        raise ValueError(f"{path}: truncated {what}: expected {n} bytes, got {len(data)}")
    return data


def _read_at_most(f, limit):
    """Up to ``limit`` bytes, in chunks, so memory follows the bytes really read."""
    buf = bytearray()
    while len(buf) < limit:
        chunk = f.read(min(_CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _parse(f, path, allowed_magics, data_bytes_available, max_bytes, check_dims=None):
    magic_bytes = _read_exact(f, 4, path, "header (magic number)")
    magic = int.from_bytes(magic_bytes, "big")
    if magic_bytes[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file: expected magic 0x0000TTDD, "
                         f"got 0x{magic:08X}")
    if allowed_magics is not None and magic not in allowed_magics:
        want = " or ".join(f"{m} (0x{m:08X})" for m in allowed_magics)
        raise ValueError(f"{path}: wrong magic number: expected {want}, got {magic} "
                         f"(0x{magic:08X})")
    code, ndim = magic_bytes[2], magic_bytes[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({dt.name})" for c, dt in IDX_DTYPES.items())
        raise ValueError(f"{path}: unknown IDX dtype code: expected one of {known}, "
                         f"got 0x{code:02X}")
    dims = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, path, "header (dimensions)"))
    dtype = IDX_DTYPES[code]
    nbytes = dtype.itemsize
    for d in dims:
        nbytes *= d                                   # Python int: no overflow
    header = 4 + 4 * ndim
    if check_dims is not None:
        check_dims(dims)                              # from the header, before any data
    if nbytes > max_bytes:
        raise ValueError(f"{path}: header claims shape {dims} of {dtype.name} ({nbytes} bytes); "
                         f"expected at most {max_bytes} bytes (max_bytes)")
    if data_bytes_available is None:                  # gzip: read at most nbytes + 1
        body = _read_at_most(f, nbytes + 1)
        found = len(body)
    else:
        found = data_bytes_available - header
        body = None
    if found != nbytes:
        problem = "truncated" if found < nbytes else "trailing bytes after the data"
        got = f"got at least {found}" if body is not None and found > nbytes else f"got {found}"
        raise ValueError(f"{path}: {problem}: header claims shape {dims} of {dtype.name}, "
                         f"expected {nbytes} data bytes, {got}")
    if body is None:                                  # size checked: safe to allocate
        body = bytearray(nbytes)
        if f.readinto(body) != nbytes:
            raise ValueError(f"{path}: truncated data: expected {nbytes} bytes (file changed?)")
    a = np.frombuffer(body, dtype=dtype).reshape(dims)
    return a.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path, allowed_magics=None, max_bytes=MAX_IDX_BYTES, check_dims=None):
    """Any IDX file -> native-endian numpy array; ``allowed_magics`` restricts the magic,
    ``max_bytes`` bounds the declared data size and ``check_dims(dims)`` (raising
    ValueError) judges the declared dimensions, both before reading the data."""
    path = Path(path)
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not is_gzip:
            return _parse(raw, path, allowed_magics, os.fstat(raw.fileno()).st_size, max_bytes,
                          check_dims)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                return _parse(f, path, allowed_magics, None, max_bytes, check_dims)
        except (OSError, EOFError, zlib.error) as e:   # BadGzipFile is an OSError
            raise ValueError(f"{path}: corrupt gzip stream: expected a valid gzip file, "
                             f"got {type(e).__name__}: {e}") from e


def load_mnist_idx(path):
    """An MNIST IDX file (images magic 2051 -> uint8 (N, H, W), labels 2049 -> uint8 (N,))."""
    return read_idx(path, allowed_magics=(MNIST_IMAGES_MAGIC, MNIST_LABELS_MAGIC))


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzip-compressed if ``path`` ends in .gz), atomically."""
    a = np.asarray(array)
    code = _CODES.get(a.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"write_idx: expected dtype in {[d.name for d in IDX_DTYPES.values()]}, "
                         f"got {a.dtype}")
    if a.ndim > 255:
        raise ValueError(f"write_idx: expected at most 255 dimensions, got {a.ndim}")
    data = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    data += np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with atomic_write(path, "wb") as f:
        f.write(data)


def _mnist_names(split, what):
    prefix = "train" if split == "train" else "t10k"
    ndim = 3 if what == "images" else 1
    stems = [f"{prefix}-{what}-idx{ndim}-ubyte", f"{prefix}-{what}.idx{ndim}-ubyte"]
    return [s + ext for s in stems for ext in (".gz", "")]


def _find(directory, names):
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory}: expected one of {', '.join(names)}; none found")


def _check_image_dims(path, dims):
    """Images of at most MAX_MNIST_SIDE pixels a side, from the header: one 23000x23000
    image fits the byte budget but costs gigabytes to binarize and train on."""
    if len(dims) == 3 and max(dims[1:]) > MAX_MNIST_SIDE:
        raise ValueError(f"{path}: header claims images of {dims[1]}x{dims[2]} pixels; "
                         f"expected MNIST-like images of at most {MAX_MNIST_SIDE}x"
                         f"{MAX_MNIST_SIDE} (MNIST's are 28x28)")


def load_mnist_dir(directory, split="train", kind="grey"):
    """MNIST from its four standard files -> (images uint8 (N, 1, 28, 28), labels uint8 (N,)).

    Looks in ``directory`` for ``train-images-idx3-ubyte[.gz]`` and
    ``train-labels-idx1-ubyte[.gz]`` (split "train") or the ``t10k-`` ones
    (split "test"); the "train-images.idx3-ubyte" spelling is accepted too.
    kind: "grey" (0..255), "binary" (0/1, statically binarized: ``static_binarize``
    with seed ``STATIC_SEED`` for the training file and ``STATIC_SEED + 1`` for the
    test file, so the two splits never share draws) or "binary-threshold" (0/1,
    ``to_binary``).
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    if kind not in MNIST_KINDS:
        raise ValueError(f"kind: expected one of {MNIST_KINDS}, got {kind!r}")
    directory = Path(directory)
    img_path = _find(directory, _mnist_names(split, "images"))
    lab_path = _find(directory, _mnist_names(split, "labels"))
    images = read_idx(img_path, allowed_magics=(MNIST_IMAGES_MAGIC,),
                      check_dims=lambda dims: _check_image_dims(img_path, dims))
    if 0 in images.shape:
        raise ValueError(f"{img_path}: expected at least one image of at least 1x1 pixels, "
                         f"got shape {images.shape} (images, height, width)")
    labels = read_idx(lab_path, allowed_magics=(MNIST_LABELS_MAGIC,))
    if len(images) != len(labels):
        raise ValueError(f"{directory}: expected as many labels as images, got {len(labels)} "
                         f"labels in {lab_path.name} and {len(images)} images in {img_path.name}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{lab_path}: expected labels 0..9, got {int(labels.max())}")
    images = images[:, None]
    if kind == "binary":
        images = static_binarize(images, STATIC_SEED + SPLITS.index(split))
    elif kind == "binary-threshold":
        images = to_binary(images)
    return images, labels
