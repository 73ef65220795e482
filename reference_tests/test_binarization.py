"""Static binarization: the default binary digits are drawn once from their grey levels,
stored, and the same on every machine."""
import hashlib

import numpy as np
import pytest

from minipixel.data import (STATIC_SEED, load_digits, pack_bits, static_binarize, to_binary,
                            unpack_bits)
from minipixel.data.binarize import uniform_uint32
from minipixel.data.embedded import read_digits_npz

# SHA-256 of load_digits(split, "binary").tobytes(): any change to the stored bits, the
# split or the unpacking shows up here.
BINARY_SHA256 = {
    "train": "980c9a8b448304814efa0ae63f16b1aba834c84ebbb3c4637b823a6b0e6ccb64",
    "test": "69cef089122b590f3fcf491dfe730a4cdb24412aff8a9c5f6145cb658909d1ae",
}


@pytest.mark.parametrize("split", ["train", "test"])
def test_static_binary_digits_checksum_is_pinned(split):
    bits = load_digits(split, "binary")
    assert hashlib.sha256(bits.tobytes()).hexdigest() == BINARY_SHA256[split]


def test_stored_bits_are_the_documented_draw_from_the_grey_levels():
    z = read_digits_npz()
    again = pack_bits(static_binarize(z["images"], STATIC_SEED))
    assert np.array_equal(again, z["static_binary"])


def test_static_binary_follows_grey_levels_and_differs_from_threshold():
    g = load_digits("train", "grey")
    b = load_digits("train", "binary")
    t = load_digits("train", "binary-threshold")
    assert b.dtype == np.uint8 and set(np.unique(b).tolist()) == {0, 1}
    assert not b[g == 0].any() and b[g == 255].all()      # certain pixels are certain
    # the mean of the bits is the mean grey level / 255 (1.6M pixels: sd 3e-4)
    assert abs(b.mean() - g.mean() / 255) < 2e-3
    grey_mid = (g > 50) & (g < 205)                          # uncertain pixels are noisy
    assert 0.3 < b[grey_mid].mean() < 0.7
    assert (b != t).mean() > 0.01 and np.array_equal(t, to_binary(g))


def test_uniform_stream_is_fixed_by_the_standard_hash():
    # SHAKE-256 test: the stream's first bytes, computed independently of numpy
    want = hashlib.shake_256(b"minipixel static binarization, seed 0").digest(8)
    u = uniform_uint32(2, 0)
    assert [int(x) for x in u] == [int.from_bytes(want[:4], "little"),
                                   int.from_bytes(want[4:], "little")]
    assert not np.array_equal(uniform_uint32(4, 0), uniform_uint32(4, 1))
    # a prefix of the stream does not depend on how much is drawn
    assert np.array_equal(uniform_uint32(100, 3)[:10], uniform_uint32(10, 3))


def test_static_binarize_probabilities_are_grey_over_255():
    n = 200_000
    for grey in (0, 1, 64, 128, 200, 254, 255):
        bits = static_binarize(np.full(n, grey, np.uint8), seed=7)
        p = grey / 255
        assert abs(bits.mean() - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12, grey
    with pytest.raises(ValueError, match="uint8"):
        static_binarize(np.zeros(3, np.float32))


def test_pack_unpack_round_trip():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(5, 1, 3, 7), dtype=np.uint8)     # 21 bits: padded
    packed = pack_bits(bits)
    assert packed.shape == (5, 3)
    assert np.array_equal(unpack_bits(packed, (1, 3, 7)), bits)
    with pytest.raises(ValueError, match="packed bits"):
        unpack_bits(packed, (1, 28, 28))


def test_load_dataset_default_binary_is_static():
    from minipixel.data import load_dataset
    d = load_dataset("binary", n_train=50, n_test=20)
    assert d.levels == 2 and np.array_equal(d.train, load_digits("train", "binary")[:50])
    t = load_dataset("binary-threshold", n_train=50, n_test=20)
    assert t.levels == 2 and np.array_equal(t.test, load_digits("test", "binary-threshold")[:20])


def test_table_form_equals_the_documented_inequality():
    grey = np.arange(256, dtype=np.uint8).repeat(40)
    u = uniform_uint32(grey.size, 3)
    want = [int(255 * int(a) < int(g) << 32) for a, g in zip(u, grey)]
    assert static_binarize(grey, seed=3).tolist() == want


def test_restatic_recomputes_only_the_stored_bits(tmp_path):
    from minipixel.data import build_embedded
    from minipixel.io import atomic_savez_compressed
    z = read_digits_npz()
    keep = {k: z[k][:30] if k == "images" else z[k] for k in ("images", "labels")}
    arrays = dict(keep, train_idx=np.arange(20, dtype=np.uint16),
                  test_idx=np.arange(20, 30, dtype=np.uint16), source_sha256=np.array("x"),
                  static_binary=np.zeros((30, 98), np.uint8))
    arrays["labels"] = arrays["labels"][:30]
    atomic_savez_compressed(tmp_path / "d.npz", **arrays)
    build_embedded.restatic(tmp_path / "d.npz")
    again = read_digits_npz(tmp_path / "d.npz")
    assert np.array_equal(again["static_binary"], z["static_binary"][:30])
    assert np.array_equal(again["images"], z["images"][:30])
