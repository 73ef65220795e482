"""--paper-path on the command line: train, evaluate and sample run the paper path's layers
and give the fast path's numbers."""
import json

import numpy as np
import pytest

from minipixel.cli import main

TINY = ["--h", "2", "--layers", "1", "--out-hidden", "4", "--crop", "8", "--n-train", "16",
        "--n-test", "8", "--batch-size", "8", "--epochs", "1", "--no-progress"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper_run")
    assert main(["train", "diagonal", *TINY, "--paper-path", "--samples", "0",
                 "--out", str(out)]) == 0
    return str(out / "checkpoint.npz")


def test_evaluate_on_the_paper_path_gives_the_fast_paths_nll(checkpoint, tmp_path):
    for flag, name in (([], "fast.json"), (["--paper-path"], "paper.json")):
        assert main(["evaluate", checkpoint, "--json", str(tmp_path / name), *flag]) == 0
    fast = json.loads((tmp_path / "fast.json").read_text())["nll_nats_per_image"]
    paper = json.loads((tmp_path / "paper.json").read_text())["nll_nats_per_image"]
    assert abs(fast - paper) < 1e-4 * abs(fast)                       # float32 rounding only


def test_sample_on_the_paper_path_draws_the_same_images(checkpoint, tmp_path):
    for flag, name in (([], "fast"), (["--paper-path"], "paper")):
        assert main(["sample", checkpoint, "--n", "3", "--seed", "4", "--out",
                     str(tmp_path / f"{name}.png"), "--npy", str(tmp_path / f"{name}.npy"),
                     *flag]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "fast.npy"), np.load(tmp_path / "paper.npy"))


def test_resume_on_the_paper_path(checkpoint, tmp_path):
    """A fast-path run resumed on the paper path (the optimizer state fits: same parameters)."""
    import shutil
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, run / "checkpoint.npz")
    assert main(["train", "--resume", str(run / "checkpoint.npz"), "--epochs", "2",
                 "--paper-path", "--no-progress", "--samples", "0"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished" and len(metrics["history"]) == 2
