"""The command line on a Multi-Scale checkpoint: train's final samples, sample and complete
drawing in two stages, upscale; bad input one line and exit 2."""
import numpy as np
import pytest

from minipixel.checkpoint import save_checkpoint
from minipixel.cli import main
from minipixel.data import load_dataset
from minipixel.figures import small_as_blocks
from minipixel.models import build
from minipixel.png import read_png

S, K, PAD = 7, 2, 2                 # 7 x 7 digits (not divisible by the factor 2): small 4 x 4
TINY = ["--h", "2", "--layers", "1", "--out-hidden", "4", "--crop", str(S), "--n-train", "16",
        "--n-test", "8", "--batch-size", "8", "--epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("multiscale")
    assert main(["train", "--preset", "mnist-multiscale", *TINY, "--samples", "4",
                 "--out", str(out)]) == 0
    return out


def tiles(img, rows, cols, H, W, pad):
    """The (rows, cols) tiles of H x W of a grid picture with `pad` between and around."""
    return [[img[pad + r * (H + pad):pad + r * (H + pad) + H,
                 pad + c * (W + pad):pad + c * (W + pad) + W] for c in range(cols)]
            for r in range(rows)]


def assert_pairs(img, rows, cols):
    """Each pair of a samples picture (scale 1): its left half is its right half's small
    image (the pixels (k r, k c)) as k x k blocks."""
    for row in tiles(img, rows, cols, S, 2 * S + PAD, 2 * PAD):
        for pair in row:
            small, large = pair[:, :S], pair[:, S + PAD:]
            assert (pair[:, S:S + PAD] == 90).all()
            np.testing.assert_array_equal(small, small_as_blocks(
                large[None, None, ::K, ::K], K, S, S)[0, 0])


def test_train_on_a_multiscale_preset_writes_pairs_of_samples(run_dir):
    img = read_png(run_dir / "samples.png")[::3, ::3]          # written at scale 3
    assert img.shape == (2 * PAD + 2 * (S + 2 * PAD), 2 * PAD + 2 * (2 * S + PAD + 2 * PAD))
    assert_pairs(img, 2, 2)


def test_sample_shows_the_small_image_beside_the_large_one(run_dir, tmp_path):
    ckpt = str(run_dir / "checkpoint.npz")
    assert main(["sample", ckpt, "--n", "3", "--cols", "3", "--scale", "1", "--seed", "5",
                 "--out", str(tmp_path / "s.png"), "--npy", str(tmp_path / "s.npy")]) == 0
    img, large = read_png(tmp_path / "s.png"), np.load(tmp_path / "s.npy")
    assert large.shape == (3, 1, S, S) and img.shape == (2 * PAD + S + 2 * PAD,
                                                         2 * PAD + 3 * (2 * S + 3 * PAD))
    assert_pairs(img, 1, 3)
    for pair, image in zip(tiles(img, 1, 3, S, 2 * S + PAD, 2 * PAD)[0], large):
        np.testing.assert_array_equal(pair[:, S + PAD:], image[0] * 255)
    assert main(["sample", ckpt, "--n", "3", "--cols", "3", "--scale", "1", "--seed", "5",
                 "--naive", "--out", str(tmp_path / "naive.png")]) == 0
    np.testing.assert_array_equal(read_png(tmp_path / "naive.png"), img)


def test_upscale_draws_large_images_given_the_test_digits_small_ones(run_dir, tmp_path):
    ckpt = str(run_dir / "checkpoint.npz")
    assert main(["upscale", ckpt, "--images", "2", "--draws", "3", "--first", "1",
                 "--scale", "1", "--out", str(tmp_path / "u.png")]) == 0
    img = read_png(tmp_path / "u.png")
    assert img.shape == (PAD + 2 * (S + PAD), PAD + 5 * (S + PAD))
    originals = load_dataset("binary", crop=S, splits=("test",)).test[1:3, 0] * 255
    for row, original in zip(tiles(img, 2, 5, S, S, PAD), originals):
        np.testing.assert_array_equal(row[0], small_as_blocks(
            original[None, None, ::K, ::K], K, S, S)[0, 0])
        for drawn in row[1:4]:
            np.testing.assert_array_equal(drawn[::K, ::K], original[::K, ::K])
        np.testing.assert_array_equal(row[4], original)
    assert main(["upscale", ckpt, "--images", "2", "--draws", "3", "--first", "1",
                 "--scale", "1", "--naive", "--out", str(tmp_path / "naive.png")]) == 0
    np.testing.assert_array_equal(read_png(tmp_path / "naive.png"), img)


def test_complete_on_a_multiscale_checkpoint_keeps_the_top_rows(run_dir, tmp_path):
    assert main(["complete", str(run_dir / "checkpoint.npz"), "--images", "2",
                 "--completions", "2", "--keep-rows", "3", "--scale", "1",
                 "--out", str(tmp_path / "c.png")]) == 0
    img = read_png(tmp_path / "c.png")
    originals = load_dataset("binary", crop=S, splits=("test",)).test[:2, 0] * 255
    for row, original in zip(tiles(img, 2, 4, S, S, PAD), originals):
        for drawn in row[1:3]:
            np.testing.assert_array_equal(drawn[:3], original[:3])


def test_upscale_errors_are_one_line_and_exit_2(run_dir, tmp_path, capsys):
    single = tmp_path / "rowlstm.npz"
    save_checkpoint(single, build("rowlstm", h=2, layers=1, out_hidden=4))
    assert main(["upscale", str(single), "--out", str(tmp_path / "u.png")]) == 2
    err = capsys.readouterr().err
    assert "needs a multi-scale checkpoint" in err and "rowlstm" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "u.png").exists()
    ckpt = str(run_dir / "checkpoint.npz")
    assert main(["upscale", ckpt, "--first", "100000", "--images", "2",
                 "--out", str(tmp_path / "u.png")]) == 2
    assert "--first 100000 with --images 2: the test set has" in capsys.readouterr().err
    assert main(["upscale", ckpt, "--dataset", "rgb", "--out", str(tmp_path / "u.png")]) == 2
    assert "channel" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["upscale", ckpt, "--draws", "0"])
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_upscale_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["upscale", "--help"])
    assert e.value.code == 0
    assert "usage: minipixel upscale" in capsys.readouterr().out


def test_train_multiscale_takes_its_kind_factor_and_maps(tmp_path, capsys):
    from minipixel.checkpoint import load_checkpoint
    out = tmp_path / "pixelcnn-pair"
    assert main(["train", "multiscale", "--kind", "pixelcnn", "--factor", "3",
                 "--condition-maps", "2", *TINY, "--samples", "0", "--out", str(out)]) == 0
    config = load_checkpoint(str(out / "checkpoint.npz")).config
    assert (config["kind"], config["factor"], config["condition_maps"]) == ("pixelcnn", 3, 2)
    assert "multiscale (pixelcnn pair, factor 3, 2 conditioning maps)" in capsys.readouterr().out


def test_train_multiscale_alone_builds_a_diagonal_pair(tmp_path, capsys):
    assert main(["train", "multiscale", *TINY, "--samples", "0", "--max-steps", "1",
                 "--out", str(tmp_path / "pair")]) == 0
    assert "multiscale (diagonal pair, factor 2, 16 conditioning maps)" in capsys.readouterr().out


@pytest.mark.parametrize("args, expected", [
    (["rowlstm", "--factor", "2"], "--factor set(s) a multiscale model, not rowlstm"),
    (["multiscale", "--factor", "1"], "factor must be a whole number >= 2"),
])
def test_train_refuses_multiscale_flags_that_do_not_fit(tmp_path, capsys, args, expected):
    assert main(["train", *args, *TINY, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err
