"""The PNG writer: files decode to what was written (own decoder and raw zlib)."""
import struct
import zlib

import numpy as np
import pytest

from minipixel.png import (PNG_SIGNATURE, encode_png, grid, read_png, to_display, upscale,
                           write_png)


def chunks(blob):
    pos, out = 8, []
    while pos < len(blob):
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        data = blob[pos + 8:pos + 8 + length]
        crc, = struct.unpack(">I", blob[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        out.append((kind, data))
        pos += 12 + length
    return out


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 3), (1, 1)])
def test_png_layout_decodes_by_hand(shape):
    img = np.random.default_rng(0).integers(0, 256, size=shape).astype(np.uint8)
    blob = encode_png(img)
    assert blob[:8] == PNG_SIGNATURE
    parts = chunks(blob)
    assert [k for k, _ in parts] == [b"IHDR", b"IDAT", b"IEND"]
    W, H, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", parts[0][1])
    C = 3 if len(shape) == 3 else 1
    assert (H, W, depth, ctype, comp, filt, interlace) == (shape[0], shape[1], 8,
                                                           2 if C == 3 else 0, 0, 0, 0)
    raw = np.frombuffer(zlib.decompress(parts[1][1]), np.uint8).reshape(H, 1 + W * C)
    assert (raw[:, 0] == 0).all()                           # filter type 0 on every row
    np.testing.assert_array_equal(raw[:, 1:].reshape(shape), img)


def test_write_read_round_trip_with_upscaling(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, size=(3, 4, 3)).astype(np.uint8)
    path = write_png(tmp_path / "sub" / "x.png", img, scale=3)
    out = read_png(path)
    assert out.shape == (9, 12, 3)
    np.testing.assert_array_equal(out, upscale(img, 3))
    np.testing.assert_array_equal(out[::3, ::3], img)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.png"]   # no temp files left


def test_reader_handles_all_filter_types(tmp_path):
    """Write rows with filters 1..4 by hand; the reader must undo them."""
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(5, 4, 3)).astype(np.int64)
    H, W, C = img.shape
    flat = img.reshape(H, W * C)
    rows = []
    prev = np.zeros(W * C, np.int64)
    for r in range(H):
        f = r % 5
        cur = flat[r]
        left = np.concatenate([np.zeros(C, np.int64), cur[:-C]])
        upleft = np.concatenate([np.zeros(C, np.int64), prev[:-C]])
        if f == 0:
            enc = cur
        elif f == 1:
            enc = cur - left
        elif f == 2:
            enc = cur - prev
        elif f == 3:
            enc = cur - (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
            enc = cur - pred
        rows.append(bytes([f]) + (enc % 256).astype(np.uint8).tobytes())
        prev = cur
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    blob = (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    (tmp_path / "f.png").write_bytes(blob)
    np.testing.assert_array_equal(read_png(tmp_path / "f.png"), img)


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ValueError, match="scale"):
        upscale(np.zeros((2, 2), np.uint8), 0)
    (tmp_path / "no.png").write_bytes(b"hello")
    with pytest.raises(ValueError, match="signature"):
        read_png(tmp_path / "no.png")
    blob = bytearray(encode_png(np.zeros((2, 2), np.uint8)))
    blob[20] ^= 1                                            # inside IHDR
    (tmp_path / "crc.png").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="CRC"):
        read_png(tmp_path / "crc.png")


def test_grid_and_display():
    imgs = np.arange(5 * 1 * 2 * 3).reshape(5, 1, 2, 3).astype(np.uint8)
    g = grid(imgs, ncols=2, pad=1, pad_value=7)
    assert g.shape == (1 + 3 * 3, 1 + 2 * 4)
    np.testing.assert_array_equal(g[1:3, 1:4], imgs[0, 0])
    np.testing.assert_array_equal(g[7:9, 1:4], imgs[4, 0])
    assert g[0, 0] == 7 and (g[7:9, 5:8] == 7).all()          # empty sixth tile is padding
    rgb = grid(np.zeros((2, 3, 2, 2), np.uint8), pad_value=(1, 2, 3))
    assert rgb.shape[2] == 3 and tuple(rgb[0, 0]) == (1, 2, 3)
    np.testing.assert_array_equal(to_display(np.array([0, 1]), 2), [0, 255])
    np.testing.assert_array_equal(to_display(np.array([0, 128, 255]), 256), [0, 128, 255])
