"""A batch split across threads (minipixel/parallel.py) gives the whole batch's loss and
gradients; a given worker count repeats its run bit for bit; errors, error modes and
grad modes cross into the worker threads."""
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, strategies as st

from minipixel import Tensor, no_grad
from minipixel.data import load_dataset
from minipixel.models import build
from minipixel.parallel import BatchWorkers, split_sizes
from minipixel.tensor import gradients, is_grad_enabled
from minipixel.training import Trainer, evaluate_nll


@given(st.integers(0, 200), st.integers(1, 9))
def test_split_sizes_cover_the_batch_in_near_equal_parts(n, workers):
    sizes = split_sizes(n, workers)
    assert sum(sizes) == n and len(sizes) == max(1, min(n, workers))
    assert min(sizes) >= min(n, 1) and max(sizes) - min(sizes) <= 1


def whole_and_split(model, images, workers):
    """(loss, grads) of the unsplit batch, then of the batch split across `workers` threads."""
    out = []
    for w in (1, workers):
        for p in model.parameters():
            p.grad = None
        loss = BatchWorkers(w).loss_and_backward(model, images)
        out.append((float(loss), [p.grad.copy() for p in model.parameters()]))
    return out


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "paper"])
@pytest.mark.parametrize("kind", ["pixelcnn", "rowlstm", "diagonal"])
@given(data=st.data())
def test_split_batch_gives_the_whole_batchs_loss_and_gradients(kind, fast, data):
    """Unequal parts (n not a multiple of the workers) would expose a wrong weighting."""
    C, levels = data.draw(st.sampled_from([(1, 2), (3, 4), (1, 5), (3, 2)]), label="channels, levels")
    H, W = data.draw(st.integers(2, 5), label="H"), data.draw(st.integers(2, 6), label="W")
    n, workers = data.draw(st.integers(2, 7), label="n"), data.draw(st.integers(2, 4), label="workers")
    model = build(kind, channels=C, levels=levels, h=3, layers=2, out_hidden=5, seed=n,
                  dtype=np.float64, fast=fast)
    images = np.random.default_rng(H * W).integers(0, levels, size=(n, C, H, W))
    (loss1, g1), (loss2, g2) = whole_and_split(model, images, workers)
    assert abs(loss1 - loss2) <= 1e-12 * abs(loss1)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_split_batch_adds_into_existing_gradients_as_backward_does():
    model = build("pixelcnn", channels=1, levels=2, h=2, layers=1, out_hidden=3, seed=0,
                  dtype=np.float64)
    images = np.random.default_rng(0).integers(0, 2, size=(5, 1, 4, 4))
    once = [g for g in whole_and_split(model, images, 2)[1][1]]
    BatchWorkers(2).loss_and_backward(model, images)          # on top of the last call's
    for p, g in zip(model.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-12)


def test_one_image_or_one_worker_runs_in_the_calling_thread():
    model = build("rowlstm", channels=1, levels=2, h=2, layers=1, out_hidden=3, seed=0)
    images = np.zeros((1, 1, 3, 3), dtype=np.int64)
    seen = []
    w = BatchWorkers(3)
    w.map(lambda part: seen.append(threading.current_thread()), images)
    assert seen == [threading.main_thread()] and w._pool is None
    one = BatchWorkers(3)
    one.loss_and_backward(model, images)                      # one part: no thread started
    assert one._pool is None and all(p.grad is not None for p in model.parameters())


def test_a_part_s_error_reaches_the_caller_after_every_thread_is_done():
    finished = []

    def fn(part):
        if part[0] == 2:
            raise ValueError("part starting at image 2")
        finished.append(int(part[0]))
        return part

    with pytest.raises(ValueError, match="image 2"):
        BatchWorkers(3).map(fn, np.arange(6))
    assert sorted(finished) == [0, 4]


def test_worker_threads_take_the_caller_s_error_mode_and_grad_mode():
    x = Tensor(np.ones(2), requires_grad=True)
    w = BatchWorkers(2)
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):   # part 1 overflows
        w.map(lambda part: np.exp(np.full(len(part), 1000.0 * part[0])), np.arange(4))
    with no_grad():
        modes = w.map(lambda part: (is_grad_enabled(), (x * 2).requires_grad), np.arange(4))
    assert modes == [(False, False), (False, False)]
    modes = w.map(lambda part: (is_grad_enabled(), (x * 2).requires_grad), np.arange(4))
    assert modes == [(True, True), (True, True)]
    w.close()


def test_grad_mode_is_per_thread():
    """no_grad in one thread must not switch recording off (or back on) in another."""
    inside, release = threading.Event(), threading.Event()
    seen = []

    def other():
        with no_grad():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    seen.append(is_grad_enabled())
    release.set()
    t.join()
    assert seen == [True] and is_grad_enabled()


def test_gradients_returns_arrays_and_leaves_grad_alone():
    a, b = Tensor(np.array([1.0, 2.0]), requires_grad=True), Tensor(np.array(3.0), requires_grad=True)
    c = Tensor(np.array(5.0), requires_grad=True)            # not used by the output
    ga, gb, gc = gradients((a * a * b).sum(), [a, b, c])
    np.testing.assert_allclose(ga, [6.0, 12.0])
    np.testing.assert_allclose(gb, 5.0)
    assert gc is None and a.grad is None and b.grad is None and c.grad is None
    with pytest.raises(RuntimeError, match="gradients"):
        gradients(Tensor(np.ones(2)).sum(), [a])


def test_workers_are_refused_off_the_cpu_and_must_be_counts(device):
    model = build("pixelcnn", channels=1, levels=2, h=2, layers=1, out_hidden=3, seed=0).to(device)
    images = np.zeros((4, 1, 3, 3), dtype=np.int64)
    if device == "cpu":
        assert BatchWorkers(2).loss_and_backward(model, images).shape == ()
    else:
        with pytest.raises(ValueError, match="on the CPU"):
            BatchWorkers(2).loss_and_backward(model, images)
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError, match="workers must be an integer"):
            BatchWorkers(bad)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("binary", crop=8, n_train=30, n_test=11)


def train(digits, workers, dtype=np.float32):
    model = build("pixelcnn", channels=1, levels=2, h=3, layers=2, out_hidden=4, seed=2,
                  dtype=dtype)
    t = Trainer(model, digits.train, digits.test, epochs=2, batch_size=7, seed=1,
                progress=False, log=None, workers=workers)
    t.run()
    return t


def test_trainer_with_workers_repeats_bit_for_bit_and_matches_one_thread(digits):
    a, b = train(digits, 3), train(digits, 3)
    for k, v in a.model.state_dict().items():
        np.testing.assert_array_equal(v, b.model.state_dict()[k], err_msg=k)
    assert a.state["history"][-1]["test_nll_nats"] == b.state["history"][-1]["test_nll_nats"]
    one, three = train(digits, 1, np.float64), train(digits, 3, np.float64)
    for k, v in one.model.state_dict().items():
        np.testing.assert_allclose(three.model.state_dict()[k], v, rtol=1e-9, atol=1e-12)
    assert a.workers._pool is None                 # run() ended its threads
    with pytest.raises(ValueError, match="workers"):
        Trainer(a.model, digits.train, digits.test, workers=0)


def test_evaluate_nll_with_workers_equals_one_thread(digits):
    model = build("rowlstm", channels=1, levels=2, h=3, layers=1, out_hidden=4, seed=0,
                  dtype=np.float64)
    one = evaluate_nll(model, digits.test, batch_size=5)
    three = evaluate_nll(model, digits.test, batch_size=5, workers=3)
    assert abs(one["nats"] - three["nats"]) <= 1e-12 * abs(one["nats"])


def test_cli_threads_reach_the_trainer_and_match_one_thread(tmp_path):
    """--threads 2 is not ignored: metrics.json says 2 workers, and the NLL is one thread's."""
    nll = {}
    for t in (1, 2):
        out = tmp_path / f"t{t}"
        subprocess.run([sys.executable, "-m", "minipixel", "train", "pixelcnn", "--h", "3",
                        "--layers", "1", "--out-hidden", "4", "--epochs", "1", "--n-train", "20",
                        "--n-test", "10", "--crop", "8", "--samples", "0", "--no-progress",
                        "--threads", str(t), "--out", str(out)], check=True, capture_output=True,
                       timeout=300, cwd=tmp_path)
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["workers"] == t
        nll[t] = metrics["test_nll_nats"]
    assert abs(nll[1] - nll[2]) <= 1e-4 * abs(nll[1])


@pytest.mark.parametrize("argv,expected", [
    (["train", "--threads", "0"], "--threads"),
    (["train", "--threads", "2", "--device", "cuda"], "cuda"),
    (["evaluate", "x.npz", "--threads", "two"], "--threads"),
])
def test_cli_refuses_bad_thread_counts_in_one_line(argv, expected, tmp_path):
    out = subprocess.run([sys.executable, "-m", "minipixel", *argv], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in out.stderr
