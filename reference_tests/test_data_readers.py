"""Data readers under bad input: the .amat reader, dataset checks, gzip limits, and
`evaluate` / `complete` scoring the test split without the training files."""
import json
import os
import time
import tracemalloc
import zlib

import numpy as np
import pytest

from minipixel.cli import main
from minipixel.data import (load_binarized_mnist_dir, load_dataset, load_mnist_dir, read_amat,
                            read_idx, static_binarize, write_amat, write_idx)

TINY = ["--h", "2", "--layers", "1", "--out-hidden", "4", "--batch-size", "8", "--epochs", "1",
        "--samples", "0", "--no-progress"]


def amat_text(bits):
    """The .amat text of 0/1 images, written here independently of write_amat."""
    return "".join(" ".join(str(int(v)) for v in row) + "\n"
                   for row in np.asarray(bits).reshape(len(bits), -1))


def one_line_error(capsys, command):
    err = capsys.readouterr().err
    assert err.startswith(f"minipixel {command}: ") and err.count("\n") == 1, err
    return err


# ---------------------------------------------------------------- .amat

def test_amat_reads_what_was_written(tmp_path):
    bits = np.random.default_rng(0).integers(0, 2, size=(5, 1, 28, 28), dtype=np.uint8)
    (tmp_path / "a.amat").write_text(amat_text(bits))
    got = read_amat(tmp_path / "a.amat")
    assert got.dtype == np.uint8 and np.array_equal(got, bits)
    write_amat(tmp_path / "b.amat", bits)                    # the writer gives the same text
    assert (tmp_path / "b.amat").read_text() == amat_text(bits)
    # no final newline, Windows line ends, tabs and blank lines are all fine
    text = amat_text(bits).replace("\n", "\r\n").replace(" ", "\t", 3)
    (tmp_path / "c.amat").write_text("\n" + text[:-2] + "\n\n", newline="")
    assert np.array_equal(read_amat(tmp_path / "c.amat"), bits)


@pytest.mark.parametrize("damage,message", [
    (lambda t: t.replace("\n", " 0\n", 1), r"line 1: expected 784 values .* got 785"),
    (lambda t: t[:t.index("\n") - 2] + t[t.index("\n"):], r"line 1: expected 784 values .* got 783"),
    (lambda t: t.replace("0", "2", 1), r"line 1: .*got the character '2'"),
    (lambda t: t.replace("0", "1.0", 1), r"line 1: .*got the character '\.'"),
    (lambda t: t.replace("0 ", "0", 1), r"line 1: expected single values 0 or 1, got 0"),
    (lambda t: t + "x\n", r"line 3: .*got the character 'x'"),
    (lambda t: "", "empty file"),
    (lambda t: "\n \n", "no images"),
])
def test_amat_refuses_bad_rows_naming_the_line(tmp_path, damage, message):
    bits = np.zeros((2, 784), np.uint8)
    (tmp_path / "bad.amat").write_text(damage(amat_text(bits)))
    with pytest.raises(ValueError, match=message):
        read_amat(tmp_path / "bad.amat")


def test_amat_huge_file_is_refused_from_its_size_before_reading(tmp_path):
    p = tmp_path / "huge.amat"
    with open(p, "wb") as f:                                 # 4 GiB, sparse: no disk used
        f.truncate(4 << 30)
    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=r"huge.amat: expected at most \d+ bytes"):
            read_amat(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t < 1.0 and peak < 1 << 20
    (tmp_path / "small.amat").write_text(amat_text(np.zeros((1, 784))))
    with pytest.raises(ValueError, match="at most 100 bytes"):
        read_amat(tmp_path / "small.amat", max_bytes=100)


def write_binarized_mnist(folder, n_train=24, n_test=8, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    data = {}
    for split, n in (("train", n_train), ("valid", 4), ("test", n_test)):
        data[split] = rng.integers(0, 2, size=(n, 1, 28, 28), dtype=np.uint8)
        (folder / f"binarized_mnist_{split}.amat").write_text(amat_text(data[split]))
    return data


def test_binarized_mnist_dir_loads_train_and_test(tmp_path):
    want = write_binarized_mnist(tmp_path / "bm")
    for split in ("train", "valid", "test"):
        assert np.array_equal(load_binarized_mnist_dir(tmp_path / "bm", split), want[split])
    d = load_dataset("binary", binarized_mnist_dir=str(tmp_path / "bm"), crop=8)
    assert d.levels == 2 and d.channels == 1 and d.train.shape == (24, 1, 8, 8)
    assert np.array_equal(d.test, want["test"][:, :, 10:18, 10:18])
    with pytest.raises(ValueError, match=r"binarized MNIST.*expected one of binary, got 'grey'"):
        load_dataset("grey", binarized_mnist_dir=str(tmp_path / "bm"))
    with pytest.raises(ValueError, match="at most one data folder"):
        load_dataset("binary", binarized_mnist_dir="a", mnist_dir="b")
    with pytest.raises(FileNotFoundError, match="binarized_mnist_train.amat"):
        load_binarized_mnist_dir(tmp_path, "train")


def test_cli_trains_and_evaluates_on_binarized_mnist_dir(tmp_path, capsys):
    bm = tmp_path / "bm"
    write_binarized_mnist(bm)
    out = tmp_path / "run"
    assert main(["train", "pixelcnn", *TINY, "--binarized-mnist-dir", str(bm), "--crop", "8",
                 "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["settings"]["dataset"]["binarized_mnist_dir"] == str(bm)
    assert main(["evaluate", str(out / "checkpoint.npz"), "--json", str(tmp_path / "e.json")]) == 0
    r = json.loads((tmp_path / "e.json").read_text())
    assert r["images"] == 8 and abs(r["nll_nats_per_image"] - m["test_nll_nats"]) < 1e-4
    (bm / "binarized_mnist_test.amat").write_text("0 1 2\n")
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.npz")]) == 2
    assert "got the character '2'" in one_line_error(capsys, "evaluate")


# ---------------------------------------------------------------- dataset checks

def write_mnist(folder, train_images, test_images):
    folder.mkdir(exist_ok=True)
    for prefix, images in (("train", train_images), ("t10k", test_images)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.zeros(len(images), np.uint8))
    return folder


def grey_images(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


@pytest.mark.parametrize("h,w", [(5, 7), (1, 1)])
def test_train_and_test_images_of_different_sizes_are_refused(tmp_path, capsys, h, w):
    d = write_mnist(tmp_path / "m", grey_images(6, h, w), grey_images(4, 28, 28))
    with pytest.raises(ValueError, match=rf"training images are 1x{h}x{w} but the test images "
                                         r"are 1x28x28"):
        load_dataset("grey", mnist_dir=str(d))
    assert main(["train", "pixelcnn", *TINY, "--mnist-dir", str(d), "--out",
                 str(tmp_path / "run")]) == 2
    assert "training images are" in one_line_error(capsys, "train")
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@pytest.mark.parametrize("shape", [(0, 28, 28), (3, 28, 0), (3, 0, 5)])
def test_empty_or_zero_width_images_are_one_line_errors(tmp_path, capsys, shape):
    d = write_mnist(tmp_path / "m", np.zeros(shape, np.uint8), grey_images(4, 28, 28))
    with pytest.raises(ValueError, match=r"train-images.*expected at least one image of at "
                                         r"least 1x1 pixels"):
        load_mnist_dir(d, "train")
    assert main(["train", "pixelcnn", *TINY, "--mnist-dir", str(d), "--dataset", "grey",
                 "--out", str(tmp_path / "run")]) == 2
    assert "at least one image" in one_line_error(capsys, "train")


def test_limits_and_crop_must_be_positive_integers():
    for bad in (0, -5, 2.5, True, "3"):
        with pytest.raises(ValueError, match="n_train: expected a positive integer"):
            load_dataset("binary", n_train=bad)
    with pytest.raises(ValueError, match="crop: expected a positive integer"):
        load_dataset("binary", crop=0)
    with pytest.raises(ValueError, match="crop size must be in 1..28"):
        load_dataset("binary", crop=29)
    with pytest.raises(ValueError, match="splits"):
        load_dataset("binary", splits=("valid",))
    only_test = load_dataset("grey", splits=("test",), n_test=3)
    assert only_test.train is None and only_test.shape == (1, 28, 28)


def test_evaluate_and_complete_need_only_the_test_files(tmp_path, capsys):
    d = write_mnist(tmp_path / "m", grey_images(16, 28, 28, 1), grey_images(4, 28, 28, 2))
    out = tmp_path / "run"
    assert main(["train", "pixelcnn", *TINY, "--mnist-dir", str(d), "--dataset", "binary",
                 "--crop", "8", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        os.remove(d / name)
    assert main(["evaluate", str(out / "checkpoint.npz"), "--json", str(tmp_path / "e.json")]) == 0
    r = json.loads((tmp_path / "e.json").read_text())
    assert r["images"] == 4 and abs(r["nll_nats_per_image"] - metrics["test_nll_nats"]) < 1e-4
    assert main(["complete", str(out / "checkpoint.npz"), "--images", "2", "--completions", "1",
                 "--out", str(tmp_path / "c.png")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out / "checkpoint.npz"), "--split", "train"]) == 2
    assert "train-images" in one_line_error(capsys, "evaluate")


def test_full_mnist_binary_is_static_and_splits_draw_differently(tmp_path):
    same = grey_images(3, 28, 28)
    d = write_mnist(tmp_path / "m", same, same)
    tr, _ = load_mnist_dir(d, "train", "binary")
    te, _ = load_mnist_dir(d, "test", "binary")
    assert np.array_equal(tr, static_binarize(same[:, None], 0))
    assert np.array_equal(te, static_binarize(same[:, None], 1))
    assert not np.array_equal(tr, te)
    assert np.array_equal(load_mnist_dir(d, "train", "binary")[0], tr)      # deterministic


# ---------------------------------------------------------------- gzip limits

def gzip_stream(header, zero_bytes):
    """A gzip file: `header` then `zero_bytes` zeros, compressed without holding them."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [z.compress(header)]
    for i in range(0, zero_bytes, len(block)):
        parts.append(z.compress(block[:min(len(block), zero_bytes - i)]))
    parts.append(z.flush())
    return b"".join(parts)


def measure(fn):
    tracemalloc.start()
    t = time.perf_counter()
    try:
        fn()
        return time.perf_counter() - t, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_bomb_declaring_gigabytes_is_refused_before_decompressing(tmp_path):
    # the header declares 3.5 million images (2.7 GB); the stream holds 16 MB of zeros
    header = bytes([0, 0, 8, 3]) + (3_500_000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip_stream(header, 16 << 20))
    assert p.stat().st_size < 100_000

    def read():
        with pytest.raises(ValueError, match=r"header claims shape \(3500000, 28, 28\).*"
                                             r"expected at most \d+ bytes"):
            read_idx(p)
    seconds, peak = measure(read)
    assert seconds < 0.5 and peak < 1 << 20


def test_gzip_stream_longer_than_declared_stops_at_the_declared_size(tmp_path):
    # declares 3 images of 28x28; the stream goes on with 24 MB of zeros
    header = bytes([0, 0, 8, 3]) + (3).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    p = tmp_path / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(gzip_stream(header, 24 << 20))

    def read():
        with pytest.raises(ValueError, match="trailing bytes after the data"):
            read_idx(p)
    seconds, peak = measure(read)
    assert seconds < 0.5 and peak < 4 << 20
    with pytest.raises(ValueError, match="expected at most 100 bytes"):
        read_idx(p, max_bytes=100)
