"""A tiny dependency-free PNG writer (and reader for its own files): zlib + struct.

    write_png(path, image, scale=4)     grey (H, W) or RGB (H, W, 3) uint8, written atomically
    encode_png(image) -> bytes          the PNG file's bytes
    read_png(path) -> array             decodes 8-bit grey / RGB, non-interlaced (any filter)
    upscale(image, k)                   each pixel becomes a k x k block
    to_display(images, levels)          model images (N, C, H, W) 0..levels-1 -> uint8 0..255
    grid(images, ncols, pad)            (N, C, H, W) uint8 -> one (H', W'[, 3]) picture

A PNG file is the 8-byte signature and then chunks, each
``length (4 bytes, big-endian) | type (4 ASCII) | data | CRC-32 of type + data``:
IHDR (width, height, bit depth 8, colour type 0 = grey or 2 = RGB, compression 0,
filter 0, interlace 0), one IDAT with the zlib-compressed scanlines (each
row prefixed with its filter byte, 0 = none, here), and an empty IEND.
"""
import os
import struct
import zlib

import numpy as np

__all__ = ["encode_png", "write_png", "read_png", "upscale", "to_display", "grid", "PNG_SIGNATURE"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2}          # channels -> PNG colour type (grey, RGB)


def _chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _as_hwc(image):
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"PNG image must be uint8, got {a.dtype} (convert with to_display)")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in _COLOUR_TYPES:
        raise ValueError(f"PNG image must be (H, W) grey or (H, W, 3) RGB, got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"PNG image must be at least 1 x 1, got shape {a.shape}")
    return np.ascontiguousarray(a)


def encode_png(image, level=9):
    """The bytes of a PNG file holding `image`: uint8 (H, W) grey or (H, W, 3) RGB."""
    a = _as_hwc(image)
    H, W, C = a.shape
    ihdr = struct.pack(">IIBBBBB", W, H, 8, _COLOUR_TYPES[C], 0, 0, 0)
    rows = np.concatenate([np.zeros((H, 1), np.uint8), a.reshape(H, W * C)], axis=1)
    return (PNG_SIGNATURE + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b""))


def write_png(path, image, scale=1):
    """Write `image` (upscaled `scale` times) to `path` atomically; returns the path."""
    from .io import atomic_write
    data = encode_png(upscale(image, scale))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return path


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def read_png(path):
    """Decode an 8-bit grey or RGB non-interlaced PNG -> uint8 (H, W) or (H, W, 3).

    Checks the signature, every chunk's CRC and the IHDR; a file outside this
    subset (palette, 16-bit, alpha, interlaced) is a ValueError."""
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:8] != PNG_SIGNATURE:
        raise ValueError(f"{path}: not a PNG file (bad signature)")
    pos, header, idat = 8, None, []
    while pos < len(blob):
        if pos + 8 > len(blob):
            raise ValueError(f"{path}: truncated chunk header at byte {pos}")
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        data = blob[pos + 8:pos + 8 + length]
        crc_bytes = blob[pos + 8 + length:pos + 12 + length]
        if len(data) != length or len(crc_bytes) != 4:
            raise ValueError(f"{path}: truncated {kind!r} chunk")
        if struct.unpack(">I", crc_bytes)[0] != zlib.crc32(kind + data) & 0xFFFFFFFF:
            raise ValueError(f"{path}: CRC mismatch in {kind!r} chunk")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError(f"{path}: no IHDR chunk")
    W, H, depth, ctype, comp, filt, interlace = header
    channels = {0: 1, 2: 3}.get(ctype)
    if depth != 8 or channels is None or comp or filt or interlace:
        raise ValueError(f"{path}: unsupported PNG (bit depth {depth}, colour type {ctype}, "
                         f"interlace {interlace}); only 8-bit grey/RGB non-interlaced")
    raw = zlib.decompress(b"".join(idat))
    stride = W * channels
    if len(raw) != H * (stride + 1):
        raise ValueError(f"{path}: expected {H * (stride + 1)} bytes of scanlines, got {len(raw)}")
    out = np.zeros((H, stride), np.uint8)
    prev = np.zeros(stride, np.int64)
    for r in range(H):
        ftype = raw[r * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, r * (stride + 1) + 1).astype(np.int64)
        if ftype == 0:
            cur = line
        elif ftype == 2:
            cur = (line + prev) % 256
        elif ftype in (1, 3, 4):                       # these depend on the left neighbour
            cur = np.zeros(stride, np.int64)
            for i in range(stride):
                a = cur[i - channels] if i >= channels else 0
                b, c = prev[i], (prev[i - channels] if i >= channels else 0)
                pred = a if ftype == 1 else ((a + b) // 2 if ftype == 3 else _paeth(a, b, c))
                cur[i] = (line[i] + pred) % 256
        else:
            raise ValueError(f"{path}: row {r}: unknown filter type {ftype}")
        out[r] = cur
        prev = cur
    return out.reshape(H, W) if channels == 1 else out.reshape(H, W, 3)


def upscale(image, k):
    """Each pixel of (H, W) or (H, W, 3) becomes a k x k block (nearest neighbour)."""
    k = int(k)
    if k < 1:
        raise ValueError(f"scale must be a positive integer, got {k}")
    a = np.asarray(image)
    return a if k == 1 else a.repeat(k, axis=0).repeat(k, axis=1)


def to_display(images, levels):
    """Model images 0..levels-1 (any shape) -> uint8 0..255 (binary 1 -> 255, white)."""
    a = np.asarray(images)
    if levels == 256:
        return a.astype(np.uint8)
    return np.round(a.astype(np.float64) * (255.0 / (levels - 1))).astype(np.uint8)


def grid(images, ncols=None, pad=2, pad_value=128):
    """Tile uint8 images (N, C, H, W), C = 1 or 3, into one (H', W') or (H', W', 3) picture.

    `ncols` defaults to ceil(sqrt(N)); `pad` pixels of `pad_value` go between and
    around the tiles (pad_value: a grey level, or an RGB triple for colour)."""
    a = np.asarray(images)
    if a.ndim != 4 or a.shape[1] not in (1, 3) or len(a) == 0:
        raise ValueError(f"grid expects uint8 images (N, 1 or 3, H, W) with N >= 1, got {a.shape}")
    N, C, H, W = a.shape
    ncols = int(ncols or int(np.ceil(np.sqrt(N))))
    nrows = -(-N // ncols)
    out = np.empty((pad + nrows * (H + pad), pad + ncols * (W + pad), C), np.uint8)
    out[...] = np.asarray(pad_value, np.uint8).reshape(-1)[:C] if np.ndim(pad_value) else pad_value
    for i in range(N):
        r, c = divmod(i, ncols)
        y, x = pad + r * (H + pad), pad + c * (W + pad)
        out[y:y + H, x:x + W] = a[i].transpose(1, 2, 0)
    return out[:, :, 0] if C == 1 else out
