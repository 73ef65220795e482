"""Two ways to turn grey digits (0..255) into binary ones (0/1).

    static_binarize(grey, seed)   each pixel drawn once from Bernoulli(grey / 255), with
                                  a fixed, portable pseudo-random stream: the standard
                                  "statically binarized MNIST" recipe (noisy edges)
    to_binary(grey, threshold)    1 where grey >= threshold (clean strokes)

Static binarization makes the likelihoods comparable with published MNIST
results, which are measured on statically binarized digits; thresholded digits
are easier to model (no noise at the stroke edges) and give lower NLLs.

The random stream
-----------------
The draws must be the same on every machine and with every NumPy version, so
they do not come from NumPy's generators (whose streams may change between
releases) but from SHAKE-256, a standard extendable-output hash (FIPS 202,
``hashlib.shake_256``)::

    stream = shake_256(b"minipixel static binarization, seed %d" % seed)
    u      = the first 4 * size bytes of the stream, read as little-endian uint32,
             one per pixel in C order of the grey array
    bit    = 1  if  255 * u < grey * 2**32  else 0

so P(bit = 1) = ceil(grey * 2**32 / 255) / 2**32, which is grey / 255 to
within 2**-32; grey 0 always gives 0 and grey 255 always 1. Pixel k's draw
depends only on (seed, k), not on the pixel values.
"""
import hashlib

import numpy as np

__all__ = ["to_binary", "static_binarize", "pack_bits", "unpack_bits", "BINARY_THRESHOLD",
           "STATIC_SEED"]

BINARY_THRESHOLD = 128
STATIC_SEED = 0
_BLOCK = 1 << 20


def to_binary(grey, threshold=BINARY_THRESHOLD):
    """Grey levels 0..255 -> uint8 0/1: ``1 where grey >= threshold`` (128 by default)."""
    return (np.asarray(grey) >= threshold).astype(np.uint8)


def uniform_uint32(n, seed=STATIC_SEED):
    """The first n uint32 draws of the static-binarization stream of `seed` (see above)."""
    if n < 0 or int(seed) != seed:
        raise ValueError(f"expected n >= 0 and an integer seed, got n={n}, seed={seed!r}")
    stream = hashlib.shake_256(b"minipixel static binarization, seed %d" % int(seed))
    return np.frombuffer(stream.digest(4 * n), dtype="<u4")


def static_binarize(grey, seed=STATIC_SEED):
    """Grey levels 0..255 (uint8, any shape) -> uint8 0/1, pixel k ~ Bernoulli(grey_k / 255).

    Deterministic: the same grey array and seed give the same bits everywhere.
    ``255 u < g 2**32`` is evaluated as ``u < T[g]`` with the integer table
    ``T[g] = ceil(g 2**32 / 255)``, in blocks, so memory stays near 5 bytes a pixel.
    """
    grey = np.asarray(grey)
    if grey.dtype != np.uint8:
        raise ValueError(f"static_binarize: expected uint8 grey levels, got {grey.dtype}")
    table = (np.arange(256, dtype=np.uint64) * np.uint64(1 << 32) + np.uint64(254)) // np.uint64(255)
    flat, u = grey.reshape(-1), uniform_uint32(grey.size, seed)
    bits = np.empty(grey.size, np.uint8)
    for i in range(0, grey.size, _BLOCK):
        bits[i:i + _BLOCK] = u[i:i + _BLOCK] < table[flat[i:i + _BLOCK]]
    return bits.reshape(grey.shape)


def pack_bits(bits):
    """uint8 0/1 (N, ...) -> uint8 (N, ceil(prod(...) / 8)), 8 pixels a byte, C order."""
    bits = np.asarray(bits, dtype=np.uint8)
    return np.packbits(bits.reshape(len(bits), -1), axis=1)


def unpack_bits(packed, shape):
    """Inverse of ``pack_bits``: uint8 (N, B) -> uint8 0/1 (N, *shape)."""
    n, size = len(packed), int(np.prod(shape))
    if packed.ndim != 2 or packed.shape[1] != -(-size // 8):
        raise ValueError(f"expected packed bits of shape (N, {-(-size // 8)}), "
                         f"got {packed.shape}")
    return np.unpackbits(packed, axis=1, count=size).reshape((n,) + tuple(shape))
