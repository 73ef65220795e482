"""One run per output folder: a new run never starts over another (finished or not)
unless told to, --overwrite clears the old run's files, --resume of a finished run
says so and writes nothing, paths stay as the user wrote them, and times say whose
they are (this process, the whole run)."""
import json
import os

import pytest

from bad_files import TINY, assert_one_line_error, cli, file_bytes, train_tiny
from minipixel.checkpoint import load_checkpoint
from minipixel.cli import main
from minipixel.training import Trainer


def folder_bytes(folder):
    return {name: file_bytes(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}


def no_training(monkeypatch):
    monkeypatch.setattr(Trainer, "train_step",
                        lambda self, batch: pytest.fail("a step was trained"))


# ---- a new run over another ---------------------------------------------------------------
@pytest.mark.parametrize("stop", [[], ["--max-steps", "2"]], ids=["finished", "stopped"])
def test_a_new_run_into_a_folder_holding_a_run_is_refused_in_one_line(tmp_path, capsys,
                                                                      monkeypatch, stop):
    ckpt = train_tiny(tmp_path, *stop)
    before = folder_bytes(tmp_path)
    no_training(monkeypatch)
    rc, err = cli(capsys, "train", "rowlstm", *TINY, "--out", tmp_path)
    line = assert_one_line_error(rc, err, "train", "already holds a run",
                                 f"--resume {ckpt}", "--out", "--overwrite")
    assert err.count("\n") == 1, err
    assert ("finished, 2 of 2 epochs" if not stop else "stopped, 0 of 2 epochs") in line
    assert folder_bytes(tmp_path) == before


def test_the_readme_sequence_refuses_the_second_default_run(tmp_path, capsys, monkeypatch):
    """`minipixel` then `minipixel train --dataset binary-threshold`: both default to
    runs/main; the second started afresh over the first's results."""
    monkeypatch.chdir(tmp_path)
    small = ["--h", "2", "--layers", "1", "--out-hidden", "4", "--crop", "8", "--n-train",
             "16", "--n-test", "8", "--batch-size", "8", "--epochs", "1", "--samples", "2",
             "--no-progress"]
    assert main(["train", *small]) == 0
    before = folder_bytes("runs/main")
    rc, err = cli(capsys, "train", *small, "--dataset", "binary-threshold")
    assert_one_line_error(rc, err, "train", "runs/main already holds a run",
                          "--resume runs/main/checkpoint.npz")
    assert folder_bytes("runs/main") == before
    assert cli(capsys, "train", *small, "--dataset", "binary-threshold",
               "--out", "runs/threshold")[0] == 0                    # a new --out: fine


def test_overwrite_removes_every_file_of_the_old_run_and_keeps_other_files(tmp_path, capsys):
    train_tiny(tmp_path, "--samples", "2")
    (tmp_path / "completions.png").write_bytes(b"the old run's completions")
    (tmp_path / "notes.txt").write_text("mine")
    assert {"checkpoint.npz", "metrics.json", "samples.png", "curves.png"} <= set(
        os.listdir(tmp_path))
    rc, err = cli(capsys, "train", "rowlstm", *TINY, "--out", tmp_path, "--overwrite",
                  "--max-steps", "1", "--samples", "0")            # stops in epoch 1
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "metrics.json", "notes.txt"]
    assert load_checkpoint(tmp_path / "checkpoint.npz").train["global_step"] == 1
    assert json.loads((tmp_path / "metrics.json").read_text())["history"] == []


def test_overwrite_leaves_the_old_run_if_the_new_one_fails_its_checks(tmp_path, capsys):
    train_tiny(tmp_path)
    before = folder_bytes(tmp_path)
    rc, err = cli(capsys, "train", "rowlstm", *TINY, "--out", tmp_path, "--overwrite",
                  "--mnist-dir", tmp_path / "missing")
    assert_one_line_error(rc, err, "train", "cannot load the dataset")
    assert folder_bytes(tmp_path) == before


def test_overwrite_with_a_resume_of_the_same_folder_is_refused(tmp_path, capsys):
    ckpt = train_tiny(tmp_path, "--max-steps", "2")
    before = folder_bytes(tmp_path)
    rc, err = cli(capsys, "train", "--resume", ckpt, "--overwrite", "--no-progress")
    assert_one_line_error(rc, err, "train", "--overwrite would remove", ckpt)
    assert folder_bytes(tmp_path) == before


def test_a_resume_into_another_folder_holding_a_run_is_refused(tmp_path, capsys):
    ckpt = train_tiny(tmp_path / "a", "--max-steps", "2")
    train_tiny(tmp_path / "b")
    before = folder_bytes(tmp_path / "b")
    rc, err = cli(capsys, "train", "--resume", ckpt, "--out", tmp_path / "b", "--no-progress")
    assert_one_line_error(rc, err, "train", f"{tmp_path / 'b'} already holds a run")
    assert folder_bytes(tmp_path / "b") == before


def test_a_folder_with_only_other_files_or_stale_temporaries_is_not_a_run(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / ".checkpoint.npz.ab12.tmp.npz").write_bytes(b"half a checkpoint")
    assert cli(capsys, "train", "rowlstm", *TINY, "--epochs", "1", "--out", tmp_path)[0] == 0
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "curves.png", "metrics.json",
                                            "notes.txt"]


# ---- --resume of a run with nothing left to train ----------------------------------------
def test_resume_of_a_finished_run_says_so_and_writes_nothing(tmp_path, capsys, monkeypatch):
    ckpt = train_tiny(tmp_path)
    before = folder_bytes(tmp_path)
    no_training(monkeypatch)
    capsys.readouterr()
    assert main(["train", "--resume", ckpt, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "resuming" not in out, out
    assert f"{ckpt}: the run finished its 2 epochs (6 steps" in out
    assert f"minipixel train --resume {ckpt} --epochs M, with M > 2" in out
    assert folder_bytes(tmp_path) == before
    assert main(["train", "--resume", ckpt, "--epochs", "1", "--no-progress"]) == 0
    assert "has trained 2 epochs and --epochs 1 asks for no more" in capsys.readouterr().out
    assert folder_bytes(tmp_path) == before


def test_resume_at_its_max_steps_says_so_and_writes_nothing(tmp_path, capsys, monkeypatch):
    ckpt = train_tiny(tmp_path, "--max-steps", "2")
    before = folder_bytes(tmp_path)
    no_training(monkeypatch)
    capsys.readouterr()
    assert main(["train", "--resume", ckpt, "--max-steps", "2", "--no-progress"]) == 0
    assert "is at step 2 and --max-steps 2 stops it there" in capsys.readouterr().out
    assert folder_bytes(tmp_path) == before


def test_resume_of_a_finished_run_with_more_epochs_trains_on(tmp_path, capsys):
    ckpt = train_tiny(tmp_path, epochs=1)
    assert main(["train", "--resume", ckpt, "--epochs", "2", "--no-progress",
                 "--samples", "0"]) == 0
    t = load_checkpoint(ckpt).train
    assert (t["epoch"], t["status"], len(t["history"])) == (2, "finished", 2)


# ---- paths as the user wrote them ---------------------------------------------------------
def test_resume_keeps_relative_paths_relative(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_tiny("run", "--max-steps", "2")
    capsys.readouterr()
    assert main(["train", "--resume", os.path.join("run", "checkpoint.npz"), "--samples", "2",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) not in out and "-> run\n" in out, out
    assert f"wrote {os.path.join('run', 'checkpoint.npz')} and " in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["checkpoint"] == os.path.join("run", "checkpoint.npz")
    assert metrics["samples_png"] == os.path.join("run", "samples.png")
    assert metrics["curves_png"] == os.path.join("run", "curves.png")
    assert main(["sample", os.path.join("run", "checkpoint.npz"), "--n", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {os.path.join('run', 'samples.png')}:")


# ---- times: this process and the whole run ------------------------------------------------
def test_times_name_this_process_and_the_whole_run(tmp_path, capsys):
    ckpt = train_tiny(tmp_path, "--max-steps", "4")
    first = load_checkpoint(ckpt).train["train_time_s"]
    capsys.readouterr()
    assert main(["train", "--resume", ckpt, "--no-progress", "--samples", "0"]) == 0
    summary = [line for line in capsys.readouterr().out.splitlines()
               if line.startswith("test NLL")]
    assert len(summary) == 1 and "this process:" in summary[0] \
        and "whole run's training steps (every session):" in summary[0], summary
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert not {"wall_time_s", "cpu_time_s", "train_time_s", "train_cpu_s"} & set(m)
    whole, here = m["whole_run_train_time_s"], m["this_process_train_time_s"]
    assert abs(whole - (first + here)) <= 0.02          # each rounded to 0.01 s
    assert m["this_process_wall_time_s"] >= here >= 0
    assert m["whole_run_train_cpu_s"] >= 0 and m["this_process_cpu_time_s"] >= 0
