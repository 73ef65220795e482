"""The command line: every subcommand on a tiny configuration, resume, Ctrl-C, errors."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minipixel.checkpoint import load_checkpoint
from minipixel.cli import build_parser, main
from minipixel.png import PNG_SIGNATURE, read_png

TINY = ["--h", "2", "--layers", "1", "--out-hidden", "4", "--crop", "8", "--n-train", "24",
        "--n-test", "8", "--batch-size", "8", "--epochs", "2", "--no-progress"]


def train(out, *extra):
    return main(["train", "rowlstm", *TINY, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert train(out, "--samples", "4") == 0
    return out


def weights(path):
    return load_checkpoint(path).model_state


def test_train_writes_checkpoint_metrics_and_samples(run_dir, capsys):
    assert sorted(os.listdir(run_dir)) == ["checkpoint.npz", "curves.png", "metrics.json",
                                           "samples.png"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["global_step"] == 6
    assert len(metrics["history"]) == 2 and metrics["test_nll_nats"] > 0
    assert metrics["samples_png"].endswith("samples.png")
    assert metrics["this_process_wall_time_s"] >= metrics["this_process_train_time_s"] >= 0
    img = read_png(run_dir / "samples.png")
    assert img.ndim == 2 and img.shape[0] > 8 * 2


def test_evaluate(run_dir, capsys, tmp_path):
    assert main(["evaluate", str(run_dir / "checkpoint.npz"), "--json",
                 str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "nats/image" in out and "bits/dim" in out
    assert out.splitlines()[1:] == [f"wrote {tmp_path / 'e.json'}"], out
    r = json.loads((tmp_path / "e.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert r["images"] == 8
    assert abs(r["nll_nats_per_image"] - metrics["test_nll_nats"]) < 1e-4
    assert abs(r["bits_per_dim"] - r["nll_nats_per_image"] / (64 * np.log(2))) < 1e-9


def test_evaluate_prints_its_result_once_as_text_or_as_json(run_dir, capsys):
    """It printed a text line and then a JSON line of the same numbers."""
    ckpt = str(run_dir / "checkpoint.npz")
    capsys.readouterr()
    assert main(["evaluate", ckpt]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("test NLL: ") and \
        lines[0].endswith("bits/dim (8 images of 1x8x8)"), lines
    nats = float(lines[0].split()[2])
    assert main(["evaluate", ckpt, "--json", "-"]) == 0
    captured = capsys.readouterr()
    r = json.loads(captured.out)                           # one JSON document, nothing else
    assert captured.out.count("\n") == 1 and abs(r["nll_nats_per_image"] - nats) < 1e-3
    assert r["images"] == 8 and r["checkpoint"] == ckpt and "test" in captured.err  # the bar


def test_help_examples_write_nowhere_in_the_repository(capsys):
    """`sample` and `complete` examples wrote into docs/, replacing its figures."""
    for command in ("train", "evaluate", "sample", "complete", "receptive-field", "plot"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        examples = text[text.index("example"):]
        assert "docs/" not in examples and "minipixel/" not in examples, (command, examples)


def test_sample_is_seeded(run_dir, tmp_path):
    ckpt = str(run_dir / "checkpoint.npz")
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main(["sample", ckpt, "--n", "6", "--seed", seed, "--scale", "2",
                     "--out", str(tmp_path / f"{name}.png")]) == 0
    a, b, c = (read_png(tmp_path / f"{n}.png") for n in "abc")
    np.testing.assert_array_equal(a, b)
    assert a.shape == c.shape and not np.array_equal(a, c)
    assert main(["sample", ckpt, "--n", "6", "--seed", "1", "--scale", "2", "--naive",
                 "--out", str(tmp_path / "naive.png")]) == 0
    np.testing.assert_array_equal(read_png(tmp_path / "naive.png"), a)


def test_complete_keeps_the_top_half(run_dir, tmp_path):
    out = tmp_path / "comp.png"
    assert main(["complete", str(run_dir / "checkpoint.npz"), "--images", "2",
                 "--completions", "3", "--scale", "1", "--out", str(out)]) == 0
    img = read_png(out)
    pad, S = 2, 8
    assert img.shape == (pad + 2 * (S + pad), pad + 5 * (S + pad))
    tile = lambda r, c: img[pad + r * (S + pad):pad + r * (S + pad) + S,
                            pad + c * (S + pad):pad + c * (S + pad) + S]
    for r in range(2):
        original = tile(r, 4)
        np.testing.assert_array_equal(tile(r, 0)[:4], original[:4])
        assert (tile(r, 0)[4:] == 128).all()                      # occluded half drawn grey
        for c in range(1, 4):
            np.testing.assert_array_equal(tile(r, c)[:4], original[:4])
            assert set(np.unique(tile(r, c))) <= {0, 255}


def test_receptive_field(tmp_path, capsys):
    out = tmp_path / "rf.png"
    assert main(["receptive-field", "--size", "8", "--pixel", "6", "3", "--layers", "1",
                 "--h", "2", "--scale", "4", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "!" not in text.split("@ pixel")[0]                     # no leak drawn
    img = read_png(out)
    # three 8x8 panels of 4-pixel cells, titles above, the legend below (test_figures.py)
    assert img.shape[1] >= 3 * 4 * 8 + 2 * 3 * 4 + 2 * 4 and img.shape[0] > 4 * 8 + 2 * 4 + 40
    assert open(out, "rb").read(8) == PNG_SIGNATURE


def test_resume_after_max_steps_equals_an_uninterrupted_run(run_dir, tmp_path):
    assert train(tmp_path, "--samples", "0", "--max-steps", "2") == 0
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.train["global_step"] == 2 and ckpt.train["status"] == "stopped"
    assert main(["train", "--resume", str(tmp_path / "checkpoint.npz"), "--samples", "0",
                 "--no-progress"]) == 0
    a, b = weights(run_dir / "checkpoint.npz"), weights(tmp_path / "checkpoint.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_ctrl_c_saves_then_exits_130_and_resume_matches(run_dir, tmp_path, monkeypatch):
    from minipixel.training import Trainer
    original = Trainer.train_step
    count = []

    def interrupted(self, batch):
        count.append(1)
        if len(count) == 4:
            raise KeyboardInterrupt
        return original(self, batch)
    monkeypatch.setattr(Trainer, "train_step", interrupted)
    assert train(tmp_path, "--samples", "0") == 130
    monkeypatch.setattr(Trainer, "train_step", original)
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert (ckpt.train["epoch"], ckpt.train["step"], ckpt.train["status"]) == (1, 0, "interrupted")
    assert main(["train", "--resume", str(tmp_path / "checkpoint.npz"), "--samples", "0",
                 "--no-progress"]) == 0
    a, b = weights(run_dir / "checkpoint.npz"), weights(tmp_path / "checkpoint.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_real_sigint_in_a_subprocess(tmp_path):
    """python -m minipixel, a real Ctrl-C (SIGINT): checkpoint written, exit status 130."""
    cmd = [sys.executable, "-m", "minipixel", "train", "pixelcnn", *TINY, "--epochs", "1000",
           "--samples", "0", "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for line in proc.stdout:                   # wait until training is under way
            if line.startswith("epoch 2/"):
                break
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.train["status"] == "interrupted" and ckpt.train["global_step"] >= 6


def test_errors_are_one_line_and_exit_2(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["evaluate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "corrupt or truncated" in err and "Traceback" not in err
    assert main(["sample", str(tmp_path / "missing.npz")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir / "checkpoint.npz"), "--h", "3"]) == 2
    assert "--h" in capsys.readouterr().err
    assert main(["train", "--preset", "mnist-pixelcnn", "rowlstm"]) == 2
    assert main(["complete", str(run_dir / "checkpoint.npz"), "--dataset", "rgb"]) == 2
    assert "channel" in capsys.readouterr().err


def test_cuda_request_without_a_gpu_is_a_clear_error(run_dir, capsys):
    from minipixel.backend import cuda_unavailable_reason
    if cuda_unavailable_reason() is None:
        pytest.skip("a GPU is available here")
    assert main(["evaluate", str(run_dir / "checkpoint.npz"), "--device", "cuda"]) == 2
    assert "cuda" in capsys.readouterr().err.lower()


@pytest.mark.parametrize("command", ["train", "evaluate", "sample", "complete",
                                     "receptive-field"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: minipixel " + command in capsys.readouterr().out


def test_no_arguments_is_the_default_main_job():
    from minipixel.cli.train import MAIN_JOB
    args = build_parser().parse_args(["train"])
    assert args.command == "train" and args.model is None and args.out is None
    assert MAIN_JOB["model"] == "diagonal" and MAIN_JOB["dataset"] == "binary"


def test_python_dash_m_and_crosscheck_passthrough():
    r = subprocess.run([sys.executable, "-m", "minipixel", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    for name in ("train", "evaluate", "sample", "complete", "receptive-field", "reference",
                 "compare", "audit"):
        assert name in r.stdout


def test_blas_threads_respect_the_environment(monkeypatch):
    from minipixel.cli import threads
    calls = []
    monkeypatch.setattr(threads, "set_blas_threads", lambda n: calls.append(n) or True)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MINIPIXEL_BLAS_THREADS", raising=False)
    assert threads.configure_blas_threads() == 1
    monkeypatch.setenv("MINIPIXEL_BLAS_THREADS", "3")
    assert threads.configure_blas_threads() == 3
    monkeypatch.delenv("MINIPIXEL_BLAS_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.configure_blas_threads() is None
    assert calls == [1, 3]
