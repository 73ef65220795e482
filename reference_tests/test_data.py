"""The data layer: embedded digits, RGB digits, IDX and CIFAR-10 readers, atomic writes.

Every file the readers see here is written by the test into tmp_path, so no
download is needed. Corrupt inputs must give a ValueError that names the file.
"""
import gzip
import os
import struct
import time
import tracemalloc

import numpy as np
import pytest

from minipixel.data import (BINARY_THRESHOLD, DIGITS_SPLIT_SIZES, MIN_COLOUR_DISTANCE,
                            atomic_savez, atomic_savez_compressed, atomic_write, colourize,
                            dataset_info, digit_colours, load_cifar10, load_digits,
                            load_mnist_dir, load_mnist_idx, read_idx, stratified_split,
                            to_binary, write_idx)
from minipixel.data import build_embedded
from minipixel.data.embedded import DIGITS_PATH, read_digits_npz


# ---------------------------------------------------------------- embedded digits

@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("kind,channels,top", [("binary", 1, 1), ("binary-threshold", 1, 1),
                                               ("grey", 1, 255), ("rgb", 3, 255)])
def test_load_digits_shapes_dtypes_ranges(split, kind, channels, top):
    x, y = load_digits(split, kind, return_labels=True)
    n = DIGITS_SPLIT_SIZES[split]
    assert x.shape == (n, channels, 28, 28) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.uint8 and set(y.tolist()) == set(range(10))
    assert x.max() == top and x.min() == 0
    assert x.flags.writeable and x.flags.c_contiguous


def test_split_sizes_and_info():
    assert DIGITS_SPLIT_SIZES == {"train": 4000, "test": 1000}
    info = dataset_info()
    assert info["digits"]["splits"] == DIGITS_SPLIT_SIZES
    assert info["mnist"]["splits"] == {"train": 60000, "test": 10000}
    assert info["cifar10"]["splits"] == {"train": 50000, "test": 10000}
    assert "Yann LeCun" in info["digits"]["source"]


def test_embedded_file_small_and_pickle_free():
    assert DIGITS_PATH.stat().st_size < 2_000_000
    with np.load(DIGITS_PATH, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
        assert z["images"].shape == (5000, 28, 28)
        assert np.array_equal(np.bincount(z["labels"]), [500] * 10)


def test_split_stratified_disjoint_deterministic():
    z = read_digits_npz()
    tr, te = z["train_idx"].astype(int), z["test_idx"].astype(int)
    assert len(set(tr)) == 4000 and len(set(te)) == 1000 and not set(tr) & set(te)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(5000))
    assert np.array_equal(np.bincount(z["labels"][te]), [100] * 10)
    assert np.array_equal(np.bincount(z["labels"][tr]), [400] * 10)
    # the stored split is the documented recipe, and the recipe is reproducible
    again_tr, again_te = stratified_split(z["labels"])
    assert np.array_equal(again_tr, tr) and np.array_equal(again_te, te)
    # shuffled, so a prefix already mixes classes
    assert len(set(z["labels"][tr[:50]].tolist())) >= 8
    _, y1 = load_digits("test", return_labels=True)
    _, y2 = load_digits("test", return_labels=True)
    assert np.array_equal(y1, y2)


def test_binary_threshold_is_thresholded_grey():
    g = load_digits("train", "grey")
    b = load_digits("train", "binary-threshold")
    assert set(np.unique(b).tolist()) == {0, 1}
    assert np.array_equal(b, (g >= 128).astype(np.uint8))
    assert BINARY_THRESHOLD == 128
    assert to_binary(np.array([0, 127, 128, 255], np.uint8)).tolist() == [0, 0, 1, 1]
    assert to_binary(np.array([127])).dtype == np.uint8


def test_load_returns_fresh_arrays():
    a = load_digits("test", "grey")
    a[:] = 7
    assert load_digits("test", "grey").max() == 255


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        load_digits("val")
    with pytest.raises(ValueError, match="kind"):
        load_digits("train", "colour")


# ---------------------------------------------------------------- RGB digits

def test_rgb_deterministic_and_colours_differ():
    a = load_digits("test", "rgb")
    b = load_digits("test", "rgb")
    assert np.array_equal(a, b)
    fg, bg = digit_colours(1000, "test")
    dist = np.sqrt(((fg.astype(float) - bg) ** 2).sum(1))
    assert dist.min() >= MIN_COLOUR_DISTANCE
    assert len({tuple(c) for c in fg}) > 900                # really random colours
    # digit i's colours do not depend on how many are drawn, and splits differ
    fg5, bg5 = digit_colours(5, "test")
    assert np.array_equal(fg5, fg[:5]) and np.array_equal(bg5, bg[:5])
    assert not np.array_equal(digit_colours(5, "train")[0], fg5)
    # background pixels are bg, full-intensity pixels are fg
    g = load_digits("test", "grey")
    i = int(np.argmax((g == 255).reshape(1000, -1).any(1)))
    assert np.array_equal(a[i, :, 0, 0], bg[i])
    r, c = np.argwhere(g[i, 0] == 255)[0]
    assert np.array_equal(a[i, :, r, c], fg[i])


def test_colourize_blend_rule():
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, size=(20, 5, 6), dtype=np.uint8)
    fg = rng.integers(0, 256, size=(20, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, size=(20, 3), dtype=np.uint8)
    out = colourize(grey, fg, bg)
    assert out.shape == (20, 3, 5, 6) and out.dtype == np.uint8
    exact = bg[:, :, None, None] + (fg.astype(float) - bg)[:, :, None, None] * grey[:, None] / 255
    assert np.abs(out - exact).max() <= 0.5 + 1e-9
    assert np.array_equal(out, np.floor(exact + 0.5 + 1e-9).astype(np.uint8))
    with pytest.raises(ValueError, match="expected shape"):
        colourize(grey, fg[:3], bg)


# ---------------------------------------------------------------- IDX

def idx_bytes(code, dims, payload):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def write(path, data, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_mnist(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labs = rng.integers(0, 10, size=7, dtype=np.uint8)
    # hand-built bytes, independent of write_idx; the name says nothing about gzip
    p = write(tmp_path / "imgs.bin", idx_bytes(0x08, imgs.shape, imgs.tobytes()), gz)
    q = write(tmp_path / "labs.bin", idx_bytes(0x08, labs.shape, labs.tobytes()), gz)
    assert np.array_equal(load_mnist_idx(p), imgs) and load_mnist_idx(p).dtype == np.uint8
    assert np.array_equal(load_mnist_idx(q), labs)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_generic_dtypes_round_trip(tmp_path, dtype, suffix):
    a = (np.arange(24).reshape(2, 3, 4) * 3 - 5).astype(dtype)
    if dtype == "uint8":
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / f"a.idx{suffix}"
    write_idx(p, a)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    b = read_idx(p)
    assert b.dtype == a.dtype and b.dtype.isnative and np.array_equal(a, b)


def test_idx_big_endian_on_disk(tmp_path):
    p = write(tmp_path / "x", idx_bytes(0x0B, (2,), b"\x01\x02\xff\xfe"))
    assert read_idx(p).tolist() == [258, -2]


@pytest.mark.parametrize("gz", [False, True])
def test_idx_wrong_magic(tmp_path, gz):
    p = write(tmp_path / "bad", idx_bytes(0x08, (2, 2, 2, 2), bytes(16)), gz)   # magic 2052
    with pytest.raises(ValueError, match=r"bad.*expected 2051 \(0x00000803\) or 2049.*got 2052"):
        load_mnist_idx(p)
    p = write(tmp_path / "notidx", b"\x12\x34\x08\x01" + bytes(8), gz)
    with pytest.raises(ValueError, match="notidx: not an IDX file"):
        read_idx(p)


def test_idx_unknown_dtype_code(tmp_path):
    p = write(tmp_path / "code", idx_bytes(0x0A, (3,), bytes(3)))
    with pytest.raises(ValueError, match=r"code: unknown IDX dtype code.*got 0x0A"):
        read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_body_and_header(tmp_path, gz):
    p = write(tmp_path / "short", idx_bytes(0x08, (3, 28, 28), bytes(3 * 784 - 1)), gz)
    with pytest.raises(ValueError, match=r"short: truncated.*expected 2352 data bytes, got 2351"):
        load_mnist_idx(p)
    p = write(tmp_path / "hdr", bytes([0, 0, 8, 3, 0, 0]), gz)
    with pytest.raises(ValueError, match="hdr: truncated header"):
        load_mnist_idx(p)
    p = write(tmp_path / "long", idx_bytes(0x08, (3,), bytes(4)), gz)
    with pytest.raises(ValueError, match="long: trailing bytes"):
        load_mnist_idx(p)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_lying_header_fails_fast_without_allocating(tmp_path, gz):
    # claims 10^9 images (784 GB); holds 10 MB of zeros (10 kB once gzipped)
    p = write(tmp_path / "liar", idx_bytes(0x08, (10**9, 28, 28), bytes(10 * 2**20)), gz)
    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=r"liar: header claims shape \(1000000000, 28, 28\)"
                                             r".*784000000000 bytes.*expected at most"):
            load_mnist_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t < 2.0
    assert peak < 64 * 2**20                         # only what is really there


def test_idx_gzip_decompresses_no_more_than_declared(tmp_path):
    # declares 4 bytes, then 32 MiB of zeros (32 kB gzipped): stop after 5 bytes
    p = write(tmp_path / "bomb.gz", idx_bytes(0x08, (4,), bytes(32 * 2**20)), gz=True)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="bomb.gz: trailing bytes.*expected 4 data bytes"):
            load_mnist_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_idx_bad_gzip(tmp_path):
    p = write(tmp_path / "garbage.gz", b"\x1f\x8b" + os.urandom(64))
    with pytest.raises(ValueError, match="garbage.gz: corrupt gzip"):
        load_mnist_idx(p)
    good = gzip.compress(idx_bytes(0x08, (100, 28, 28), os.urandom(78400)))
    p = write(tmp_path / "cut.gz", good[: len(good) // 2])
    with pytest.raises(ValueError, match="cut.gz: (corrupt gzip|truncated)"):
        load_mnist_idx(p)
    flipped = bytearray(good)
    flipped[-8] ^= 0xFF                              # CRC-32 in the gzip trailer
    p = write(tmp_path / "crc.gz", bytes(flipped))
    with pytest.raises(ValueError, match="crc.gz: corrupt gzip"):
        load_mnist_idx(p)


def make_mnist_dir(d, n_train=6, n_test=4, gz=True, dotted=False):
    rng = np.random.default_rng(3)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n, dtype=np.uint8)
        sep = "." if dotted else "-"
        ext = ".gz" if gz else ""
        write_idx(d / f"{prefix}-images{sep}idx3-ubyte{ext}", x)
        write_idx(d / f"{prefix}-labels{sep}idx1-ubyte{ext}", y)
        out[split] = (x, y)
    return out


@pytest.mark.parametrize("gz,dotted", [(True, False), (False, True)])
def test_load_mnist_dir(tmp_path, gz, dotted):
    ref = make_mnist_dir(tmp_path, gz=gz, dotted=dotted)
    for split in ("train", "test"):
        x, y = load_mnist_dir(tmp_path, split)
        assert x.shape == (len(ref[split][1]), 1, 28, 28) and x.dtype == np.uint8
        assert np.array_equal(x[:, 0], ref[split][0]) and np.array_equal(y, ref[split][1])
    xb, _ = load_mnist_dir(tmp_path, "test", kind="binary-threshold")
    assert np.array_equal(xb, to_binary(ref["test"][0])[:, None])


def test_load_mnist_dir_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        load_mnist_dir(tmp_path, "train")
    make_mnist_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))   # 4 images
    with pytest.raises(ValueError, match="expected as many labels as images, got 5"):
        load_mnist_dir(tmp_path, "test")
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist_dir(tmp_path, "test")
    # images and labels swapped: the magic check catches it
    os.rename(tmp_path / "train-labels-idx1-ubyte.gz", tmp_path / "x.gz")
    os.rename(tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz")
    os.rename(tmp_path / "x.gz", tmp_path / "train-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match="expected 2051"):
        load_mnist_dir(tmp_path, "train")


# ---------------------------------------------------------------- CIFAR-10

def cifar_records(rng, n):
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1)
    return images, labels, raw.tobytes()


@pytest.mark.parametrize("nested", [False, True])
def test_cifar10_round_trip(tmp_path, nested):
    rng = np.random.default_rng(5)
    d = tmp_path / "cifar-10-batches-bin" if nested else tmp_path
    d.mkdir(exist_ok=True)
    xs, ys = [], []
    for i in range(1, 6):
        x, y, raw = cifar_records(rng, i)
        (d / f"data_batch_{i}.bin").write_bytes(raw)
        xs.append(x)
        ys.append(y)
    xt, yt, raw = cifar_records(rng, 3)
    (d / "test_batch.bin").write_bytes(raw)
    x, y = load_cifar10(tmp_path, "train")
    assert x.shape == (15, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.uint8
    assert np.array_equal(x, np.concatenate(xs)) and np.array_equal(y, np.concatenate(ys))
    x, y = load_cifar10(d, "test")
    assert np.array_equal(x, xt) and np.array_equal(y, yt)


def test_cifar10_plane_layout(tmp_path):
    rec = bytes([7]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes(range(256)) * 4
    (tmp_path / "test_batch.bin").write_bytes(rec)
    x, y = load_cifar10(tmp_path, "test")
    assert y.tolist() == [7]
    assert (x[0, 0] == 10).all() and (x[0, 1] == 20).all()
    assert x[0, 2, 0, :5].tolist() == [0, 1, 2, 3, 4] and x[0, 2, 1, 0] == 32


def test_cifar10_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="test_batch.bin"):
        load_cifar10(tmp_path, "test")
    (tmp_path / "test_batch.bin").write_bytes(bytes(3073 * 2 + 5))
    with pytest.raises(ValueError, match=r"test_batch.bin: expected a positive multiple of 3073"
                                         r".*got 6151 bytes"):
        load_cifar10(tmp_path, "test")
    (tmp_path / "test_batch.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="got 0 bytes"):
        load_cifar10(tmp_path, "test")
    (tmp_path / "test_batch.bin").write_bytes(bytes([3]) + bytes(3072) + bytes([12]) + bytes(3072))
    with pytest.raises(ValueError, match="record 1: expected a label 0..9, got 12"):
        load_cifar10(tmp_path, "test")
    for i in range(1, 5):                            # data_batch_5.bin missing
        (tmp_path / f"data_batch_{i}.bin").write_bytes(bytes(3073))
    with pytest.raises(FileNotFoundError, match="data_batch_5.bin"):
        load_cifar10(tmp_path, "train")


# ---------------------------------------------------------------- atomic writes

def listing(d):
    return sorted(os.listdir(d))


@pytest.mark.parametrize("mode,old,new", [("wb", b"old", b"new"), ("w", "old", "new")])
def test_atomic_write_success(tmp_path, mode, old, new):
    p = tmp_path / "f.txt"
    with atomic_write(p, mode) as f:
        f.write(old)
    with atomic_write(p, mode) as f:
        f.write(new)
    assert (p.read_bytes() if mode == "wb" else p.read_text()) == new
    assert listing(tmp_path) == ["f.txt"]


def test_atomic_write_failure_leaves_original(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"original")
    os.chmod(p, 0o640)
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(p) as f:
            f.write(b"partial data")
            f.flush()
            assert len(listing(tmp_path)) == 2       # the temp file exists meanwhile
            raise RuntimeError("boom")
    assert p.read_bytes() == b"original" and listing(tmp_path) == ["f.bin"]
    with pytest.raises(KeyboardInterrupt):           # not only Exception subclasses
        with atomic_write(p) as f:
            raise KeyboardInterrupt
    assert p.read_bytes() == b"original" and listing(tmp_path) == ["f.bin"]
    with atomic_write(p) as f:
        f.write(b"replaced")
    assert p.read_bytes() == b"replaced" and (p.stat().st_mode & 0o777) == 0o640


def test_atomic_write_as_path(tmp_path):
    p = tmp_path / "arr.npy"
    with atomic_write(p, as_path=True) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".npy")
        np.save(tmp, np.arange(3))
    assert np.load(p).tolist() == [0, 1, 2] and listing(tmp_path) == ["arr.npy"]
    with pytest.raises(ValueError):
        with atomic_write(p, as_path=True) as tmp:
            np.save(tmp, np.arange(5))
            raise ValueError
    assert np.load(p).tolist() == [0, 1, 2] and listing(tmp_path) == ["arr.npy"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(p, "a"):
            pass


@pytest.mark.parametrize("save", [atomic_savez, atomic_savez_compressed])
def test_atomic_savez(tmp_path, save):
    p = tmp_path / "ckpt"                            # no ".npz" gets appended
    save(p, w=np.ones((2, 2)), path=np.array(1))
    with np.load(p, allow_pickle=False) as z:
        assert z["w"].sum() == 4 and int(z["path"]) == 1
    class Boom:                                      # fails after "w" is in the zip
        def __array__(self, *args, **kwargs):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save(p, w=np.ones(3), later=Boom())
    with np.load(p, allow_pickle=False) as z:
        assert sorted(z.files) == ["path", "w"]
    assert listing(tmp_path) == ["ckpt"]


# ---------------------------------------------------------------- the converter

def test_build_embedded_on_tiny_csv(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 6)
    pixels = rng.integers(0, 256, size=(60, 784))
    rows = [",".join(map(str, list(p) + [l])) for p, l in zip(pixels, labels)]
    src = tmp_path / "tiny.csv.gz"
    src.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    out = tmp_path / "tiny.npz"
    info = build_embedded.build(src, out, test_per_class=2, seed=0)
    assert info["train"] == 40 and info["test"] == 20
    z = read_digits_npz(out)
    assert np.array_equal(z["images"].reshape(60, -1), pixels)
    assert np.array_equal(np.bincount(z["labels"][z["test_idx"]]), [2] * 10)
    assert str(z["source_sha256"]) == info["source_sha256"]
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n")
    with pytest.raises(ValueError, match="expected 785 columns"):
        build_embedded.build(bad, tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()
