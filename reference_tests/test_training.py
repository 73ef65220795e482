"""Training: an interrupted-then-resumed run ends with bit-identical weights (CPU)."""
import math
import os
import signal

import numpy as np
import pytest

from minipixel.checkpoint import load_checkpoint
from minipixel.data import load_dataset
from minipixel.models import build
from minipixel.nn import make_optimizer
from minipixel.training import Trainer, epoch_permutation, evaluate_nll


@pytest.fixture(scope="module")
def data():
    return load_dataset("binary", crop=8, n_train=40, n_test=12)


def tiny(kind="diagonal"):
    return build(kind, channels=1, levels=2, h=2, layers=1, out_hidden=4, seed=3)


def run(data, out, kind="diagonal", optimizer="adam", **kw):
    t = Trainer(tiny(kind), data.train, data.test, optimizer=optimizer, epochs=2, batch_size=7,
                seed=5, clip=5.0, out=out, dataset=data.spec, progress=False, log=None, **kw)
    t.run()
    return t


def assert_same_run(a, b):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    oa, ob = a.optimizer.state_dict(), b.optimizer.state_dict()
    for k in oa:
        np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("train_time_s", "train_cpu_s")}
                       for e in h]
    assert strip(a.state["history"]) == strip(b.state["history"])


class Stop:
    """on_step hook: Ctrl-C after `k` completed steps."""
    def __init__(self, k):
        self.k = k

    def __call__(self, trainer):
        if trainer.state["global_step"] == self.k:
            raise KeyboardInterrupt


@pytest.mark.parametrize("kind,optimizer,k", [("diagonal", "adam", 3), ("rowlstm", "rmsprop", 8),
                                              ("pixelcnn", "sgd", 6)])
def test_interrupt_and_resume_gives_identical_weights(data, tmp_path, kind, optimizer, k):
    """k=3: inside epoch 1; k=8: inside epoch 2 (6 steps per epoch); k=6: at the epoch's end."""
    whole = run(data, str(tmp_path / "whole"), kind, optimizer)
    with pytest.raises(KeyboardInterrupt):
        run(data, str(tmp_path / "cut"), kind, optimizer, on_step=Stop(k))
    ckpt = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    assert ckpt.train["global_step"] == k and ckpt.train["status"] == "interrupted"
    # at the end of an epoch (k=6) the interrupt comes before its test evaluation
    assert (ckpt.train["epoch"], ckpt.train["step"]) == ((0, 6) if k == 6 else divmod(k, 6))
    resumed = Trainer.resume(tmp_path / "cut" / "checkpoint.npz", data.train, data.test,
                             out=str(tmp_path / "cut"), progress=False, log=None)
    resumed.run()
    assert resumed.status == "finished" and resumed.state["global_step"] == 12
    assert_same_run(whole, resumed)


def test_max_steps_then_resume(data, tmp_path):
    whole = run(data, str(tmp_path / "whole"))
    part = run(data, str(tmp_path / "part"), max_steps=4)
    assert part.status == "stopped" and part.state["global_step"] == 4
    resumed = Trainer.resume(str(tmp_path / "part" / "checkpoint.npz"), data.train, data.test,
                             progress=False, log=None)
    resumed.run()
    assert_same_run(whole, resumed)


def test_ctrl_c_during_the_update_is_held_until_it_is_done(data, tmp_path, monkeypatch):
    """SIGINT arriving inside optimizer.step(): the update and the counters finish first."""
    whole = run(data, str(tmp_path / "whole"))
    from minipixel.nn.optim import Optimizer
    original = Optimizer.step
    calls = []

    def step_with_signal(self):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)     # delivered mid-update
        original(self)
    monkeypatch.setattr(Optimizer, "step", step_with_signal)
    with pytest.raises(KeyboardInterrupt):
        run(data, str(tmp_path / "cut"))
    monkeypatch.setattr(Optimizer, "step", original)
    ckpt = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    assert ckpt.train["global_step"] == 5 and ckpt.optimizer_state["t"] == 5
    resumed = Trainer.resume(tmp_path / "cut" / "checkpoint.npz", data.train, data.test,
                             progress=False, log=None)
    resumed.run()
    assert_same_run(whole, resumed)


def test_epoch_order_depends_only_on_seed_and_epoch():
    a = epoch_permutation(1, 0, 50)
    np.testing.assert_array_equal(a, epoch_permutation(1, 0, 50))
    assert sorted(a) == list(range(50))
    assert not np.array_equal(a, epoch_permutation(1, 1, 50))
    assert not np.array_equal(a, epoch_permutation(2, 0, 50))


def test_every_image_is_used_once_per_epoch(data, monkeypatch):
    seen = []
    t = Trainer(tiny(), data.train, data.test, epochs=1, batch_size=7, progress=False, log=None)
    original = t.train_step
    monkeypatch.setattr(t, "train_step", lambda b: (seen.append(b.copy()), original(b))[1])
    t.run()
    assert [len(b) for b in seen] == [7] * 5 + [5]
    batches = np.concatenate(seen)
    perm = epoch_permutation(0, 0, len(data.train))
    np.testing.assert_array_equal(batches, data.train[perm])


def test_training_lowers_the_test_nll_and_writes_files(data, tmp_path):
    model = tiny("rowlstm")
    before = evaluate_nll(model, data.test)["nats"]
    t = Trainer(model, data.train, data.test, epochs=3, batch_size=4, lr=1e-2,
                out=str(tmp_path), progress=False, log=None)
    metrics = t.run()
    assert metrics["status"] == "finished" and len(metrics["history"]) == 3
    assert metrics["test_nll_nats"] < before - 1
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "metrics.json"]


def test_evaluate_nll_units(data):
    model = tiny()
    r = evaluate_nll(model, data.test, batch_size=5)
    nll = model.nll(data.test).numpy()
    assert r["n"] == 12 and math.isclose(r["nats"], float(nll.mean()), rel_tol=1e-6)
    assert math.isclose(r["bits_per_dim"], r["nats"] / (64 * math.log(2)), rel_tol=1e-12)


def test_datasets_and_errors(tmp_path):
    rgb = load_dataset("rgb", crop=6, n_train=3, n_test=2)
    assert rgb.train.shape == (3, 3, 6, 6) and (rgb.channels, rgb.levels) == (3, 256)
    grey = load_dataset("grey", n_train=2, n_test=2)
    assert grey.train.shape == (2, 1, 28, 28) and grey.levels == 256
    with pytest.raises(ValueError, match="rgb"):
        load_dataset("rgb", mnist_dir="/nowhere")
    with pytest.raises(ValueError, match="kind"):
        load_dataset("colour")
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("lbfgs", tiny().parameters())
    with pytest.raises(ValueError, match="training state"):
        from minipixel.checkpoint import save_checkpoint
        save_checkpoint(tmp_path / "model_only.npz", tiny())
        Trainer.resume(tmp_path / "model_only.npz", rgb.train, rgb.test)
