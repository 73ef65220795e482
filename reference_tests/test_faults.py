"""Faults: runs that diverge, are interrupted (Ctrl-C, SIGTERM, a second Ctrl-C, a signal
in the middle of a checkpoint write), are killed outright, or collide with another run.
In every case the checkpoint on disk stays loadable and finite, and a good one is never
replaced by a worse one."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bad_files import (ROOT, TINY, assert_one_line_error, cli, file_bytes, spawn_train,
                       train_tiny, wait_for_line)
from minipixel.checkpoint import load_checkpoint
from minipixel.cli import main
from minipixel.interrupts import Interrupted, deferred_interrupts, interrupts
from minipixel.models import build
from minipixel.runlock import LOCK_NAME, RunLock
from minipixel.data import load_dataset
from minipixel.training import Trainer, TrainingDiverged


def assert_loadable_and_finite(path):
    ckpt = load_checkpoint(path)
    assert all(np.isfinite(v).all() for v in ckpt.model_state.values())
    return ckpt


def leftovers(folder):
    return [f for f in os.listdir(folder) if ".tmp" in f or f == LOCK_NAME]


@pytest.fixture(scope="module")
def data():
    return load_dataset("binary", crop=8, n_train=24, n_test=8)


def tiny_trainer(data, out, **kw):
    model = build("rowlstm", channels=1, levels=2, h=2, layers=1, out_hidden=4, seed=1)
    return Trainer(model, data.train, data.test, batch_size=8, epochs=3, out=str(out),
                   progress=False, log=None, **kw)


# ---- divergence ---------------------------------------------------------------------------
def test_a_diverging_new_run_leaves_the_good_checkpoint_byte_for_byte(tmp_path, capsys):
    """Even with --overwrite: the old run's files go only just before the new run's first
    checkpoint, which a run diverging in its first epoch never writes."""
    path = train_tiny(tmp_path)
    before = {f: file_bytes(tmp_path / f) for f in os.listdir(tmp_path)}
    rc, err = cli(capsys, "train", "rowlstm", *TINY, "--epochs", "2", "--out", tmp_path,
                  "--lr", "1e30", "--clip", "0", "--overwrite")
    line = assert_one_line_error(rc, err, "train", "diverged", "left as it was")
    assert "Warning" not in err, err
    assert {f: file_bytes(tmp_path / f) for f in os.listdir(tmp_path)} == before, line
    assert_loadable_and_finite(path)


def test_a_run_diverging_after_an_epoch_keeps_that_epochs_checkpoint(data, tmp_path,
                                                                     monkeypatch):
    """Weights poisoned in epoch 2: the run stops at once, epoch 1's checkpoint stays."""
    original, saved = Trainer.train_step, {}

    def poisoned(self, batch):
        if self.state["global_step"] == 4:
            saved["bytes"] = file_bytes(tmp_path / "checkpoint.npz")
            for p in self.model.parameters():
                p.data[...] = np.nan
        return original(self, batch)
    monkeypatch.setattr(Trainer, "train_step", poisoned)
    t = tiny_trainer(data, tmp_path)
    with pytest.raises(TrainingDiverged, match="keeps epoch 1"):
        t.run()
    assert file_bytes(tmp_path / "checkpoint.npz") == saved["bytes"]
    assert assert_loadable_and_finite(tmp_path / "checkpoint.npz").train["epoch"] == 1


def test_a_non_finite_gradient_stops_before_the_update(data, tmp_path, monkeypatch):
    t = tiny_trainer(data, tmp_path)
    weights = {k: v.copy() for k, v in t.model.state_dict().items()}
    real_backward = type(t.model.loss(data.train[:1])).backward

    def backward_with_inf(self, *a, **k):
        real_backward(self, *a, **k)
        t.model.parameters()[0].grad[...] = np.inf
    monkeypatch.setattr(type(t.model.loss(data.train[:1])), "backward", backward_with_inf)
    with pytest.raises(TrainingDiverged, match="gradient norm is inf"):
        t.run()
    for k, v in t.model.state_dict().items():
        np.testing.assert_array_equal(v, weights[k])
    assert os.listdir(tmp_path) == []


# ---- interrupts ---------------------------------------------------------------------------
def test_sigterm_inside_interrupts_raises_interrupted_with_its_number():
    with pytest.raises(Interrupted) as info:
        with interrupts():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert info.value.signum == signal.SIGTERM and isinstance(info.value, KeyboardInterrupt)


def test_deferred_interrupts_finish_the_block_then_deliver_once():
    before = signal.getsignal(signal.SIGINT)   # Python's default, or SIG_IGN in a background job
    done = []
    with pytest.raises(Interrupted) as info:
        with interrupts():
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGTERM)
                done.append("block finished")
    assert done == ["block finished"] and info.value.signum == signal.SIGINT
    with deferred_interrupts(deliver=False):
        os.kill(os.getpid(), signal.SIGINT)          # dropped
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_ctrl_c_during_the_interrupt_save_cannot_cut_it_short(data, tmp_path,
                                                                       monkeypatch):
    import minipixel.training as training
    real_save, calls = training.save_checkpoint, []

    def save_hit_by_ctrl_c(path, model, optimizer, train):
        calls.append(train["status"])
        os.kill(os.getpid(), signal.SIGINT)          # the impatient second Ctrl-C
        os.kill(os.getpid(), signal.SIGTERM)
        return real_save(path, model, optimizer, train)
    monkeypatch.setattr(training, "save_checkpoint", save_hit_by_ctrl_c)

    def first_ctrl_c(trainer):
        if trainer.state["global_step"] == 2:
            raise KeyboardInterrupt
    t = tiny_trainer(data, tmp_path, on_step=first_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        t.run()
    assert calls == ["interrupted"]
    ckpt = assert_loadable_and_finite(tmp_path / "checkpoint.npz")
    assert (ckpt.train["status"], ckpt.train["global_step"]) == ("interrupted", 2)
    metrics = json.loads((tmp_path / "metrics.json").read_text())   # written after the save
    assert (metrics["status"], metrics["global_step"]) == ("interrupted", 2)
    assert leftovers(tmp_path) == []


def test_an_interrupt_during_a_checkpoint_write_still_leaves_the_interrupt_checkpoint(
        data, tmp_path, monkeypatch):
    """Ctrl-C in the middle of epoch 1's checkpoint write: that write completes, then the
    interrupt is acted on and its own checkpoint (status interrupted) is written."""
    import minipixel.checkpoint as checkpoint
    real_savez, statuses, completed = checkpoint.atomic_savez, [], []

    def savez_hit_midway(path, **arrays):
        statuses.append(str(arrays["train"]))
        if len(statuses) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        real_savez(path, **arrays)
        completed.append(len(statuses))
    monkeypatch.setattr(checkpoint, "atomic_savez", savez_hit_midway)
    t = tiny_trainer(data, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        t.run()
    assert len(statuses) == 2 and '"running"' in statuses[0] and completed == [1, 2]
    ckpt = assert_loadable_and_finite(tmp_path / "checkpoint.npz")
    assert (ckpt.train["status"], ckpt.train["epoch"], ckpt.train["global_step"]) == \
        ("interrupted", 1, 3)


@settings(max_examples=2, deadline=None)
@given(delay=st.floats(0.0, 0.6))
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_a_random_moment_saves_a_loadable_checkpoint(tmp_path_factory, sig, delay):
    out = tmp_path_factory.mktemp("signalled")
    proc = spawn_train(out)
    try:
        wait_for_line(proc, "epoch 2/")         # epoch 1 is saved by now
        time.sleep(delay)
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert rc == 128 + sig and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last == f"minipixel train: interrupted ({signal.Signals(sig).name})"
    ckpt = assert_loadable_and_finite(out / "checkpoint.npz")
    assert ckpt.train["status"] == "interrupted" and ckpt.train["global_step"] >= 3
    assert leftovers(out) == []


@settings(max_examples=2, deadline=None)
@given(delay=st.floats(0.0, 0.6))
def test_sigkill_at_a_random_moment_leaves_a_loadable_checkpoint_and_no_stale_lock(
        tmp_path_factory, capsys, delay):
    out = tmp_path_factory.mktemp("killed")
    proc = spawn_train(out)
    try:
        wait_for_line(proc, "epoch 2/")         # epoch 1 is saved by now
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    ckpt = assert_loadable_and_finite(out / "checkpoint.npz")
    stale = out / ".checkpoint.npz.x1y2z3.tmp.npz"        # what a kill mid-write leaves
    stale.write_bytes(b"half a checkpoint")
    rc, err = cli(capsys, "train", "--resume", out / "checkpoint.npz", "--epochs",
                  str(ckpt.train["epoch"] + 1), "--no-progress", "--samples", "0")
    assert rc == 0, err                                    # the dead run's lock is gone
    assert leftovers(out) == []


# ---- one run per folder -------------------------------------------------------------------
def test_a_second_run_into_a_locked_folder_fails_at_once(tmp_path, capsys):
    path = train_tiny(tmp_path)
    before = file_bytes(path)
    with RunLock(tmp_path):
        rc, err = cli(capsys, "train", "rowlstm", *TINY, "--out", tmp_path)
        assert_one_line_error(rc, err, "train", "another minipixel run", f"pid {os.getpid()}")
        rc, err = cli(capsys, "train", "--resume", path, "--no-progress")
        assert_one_line_error(rc, err, "train", "another minipixel run")
    assert file_bytes(path) == before
    assert cli(capsys, "train", "rowlstm", *TINY, "--out", tmp_path,        # released
               "--overwrite")[0] == 0


def test_a_killed_lock_holder_leaves_no_stale_lock(tmp_path):
    code = ("import sys, time; from minipixel.runlock import RunLock; "
            "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        from minipixel.runlock import RunLocked
        with pytest.raises(RunLocked, match=f"pid {proc.pid}"):
            RunLock(tmp_path).acquire()
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with RunLock(tmp_path):                                 # taken at once
        assert os.path.exists(tmp_path / LOCK_NAME)
    assert not os.path.exists(tmp_path / LOCK_NAME)


def test_only_the_temporaries_of_the_run_files_are_cleared(tmp_path):
    from minipixel.io import remove_stale_temporaries
    names = [".checkpoint.npz.ab12.tmp.npz", ".metrics.json.cd34.tmp.json", "notes.tmp",
             ".checkpoint.npz.keep", "checkpoint.npz", ".other.npz.ef56.tmp.npz"]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = remove_stale_temporaries(tmp_path, ("checkpoint.npz", "metrics.json"))
    assert sorted(os.path.basename(p) for p in removed) == sorted(names[:2])
    assert sorted(os.listdir(tmp_path)) == sorted(names[2:])


def test_a_resume_reads_its_checkpoint_under_the_lock(tmp_path, capsys, monkeypatch):
    """The race: `train --resume` read its checkpoint, then another run in the folder
    finished, then the resume took the lock and overwrote the finished run with the stale
    state. Here the other run finishes just before the lock is taken: the resume must go
    on from the finished checkpoint (nothing left to train), not from the stale one."""
    from bad_files import train_tiny
    from minipixel.cli import train as train_cli
    stale = train_tiny(tmp_path / "run", "--max-steps", "2")
    finished = train_tiny(tmp_path / "other")              # the same run, to the end
    done = load_checkpoint(finished).train
    real_acquire = train_cli.RunLock.acquire

    def other_run_finishes_first(self):
        shutil.copyfile(finished, stale)
        return real_acquire(self)
    monkeypatch.setattr(train_cli.RunLock, "acquire", other_run_finishes_first)
    monkeypatch.setattr(Trainer, "train_step",                # nothing is left to train
                        lambda self, batch: pytest.fail("trained from the stale checkpoint"))
    capsys.readouterr()
    assert main(["train", "--resume", stale, "--no-progress", "--samples", "0"]) == 0
    after = load_checkpoint(stale).train
    assert after["global_step"] == done["global_step"] and after["history"] == done["history"]


def test_a_resume_uses_the_saved_thread_count(tmp_path, capsys):
    """A --threads 2 run resumed without --threads went on with one worker and differed by
    about 1e-8: the count is stored in the checkpoint and used unless --threads is given."""
    from bad_files import train_tiny
    whole = train_tiny(tmp_path / "whole", "--threads", "2")
    part = train_tiny(tmp_path / "part", "--threads", "2", "--max-steps", "4")
    assert load_checkpoint(part).train["threads"] == 2
    assert main(["train", "--resume", part, "--no-progress", "--samples", "0"]) == 0
    a, b = load_checkpoint(whole), load_checkpoint(part)
    for name, value in a.model_state.items():
        np.testing.assert_array_equal(b.model_state[name], value)
    assert json.load(open(tmp_path / "part" / "metrics.json"))["workers"] == 2
    assert main(["train", "--resume", part, "--threads", "1", "--epochs", "3", "--no-progress",
                 "--samples", "0"]) == 0
    assert json.load(open(tmp_path / "part" / "metrics.json"))["workers"] == 1
