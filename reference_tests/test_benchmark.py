"""The benchmark's pieces: its PyTorch peer computes what minipixel computes, and the
multi-process runner produces its rows (no timing is asserted anywhere)."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minipixel.models import build
from minipixel.ops import skew, unskew
from minipixel import Tensor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "demos", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.crosscheck
@pytest.mark.parametrize("model", ["pixelcnn", "rowlstm", "diagonal"])
@pytest.mark.parametrize("channels,levels", [(1, 2), (3, 256)])
def test_torch_peer_equals_minipixel_loss_and_every_gradient(model, channels, levels):
    """The peer the benchmark times is the same model: same loss, same gradients (float64)."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    import torch_oracle
    peer = load("torch_peer")
    cfg = dict(model=model, channels=channels, levels=levels, h=3, layers=2, out_hidden=6)
    net = build(**cfg, seed=3, dtype=np.float64)
    images = np.random.default_rng(1).integers(0, levels, size=(2, channels, 4, 6))
    params = {k: torch.tensor(v, requires_grad=True) for k, v in net.state_dict().items()}
    masks = {k: m.double() for k, m in torch_oracle.model_masks(cfg).items()}
    loss = peer.Peer(cfg, params, masks).loss(torch.tensor(images))
    loss.backward()
    ours = net.loss(images)
    ours.backward()
    np.testing.assert_allclose(loss.item(), float(ours.numpy()), rtol=1e-12)
    for name, p in net.named_parameters():
        np.testing.assert_allclose(params[name].grad.numpy(), p.grad, rtol=1e-10, atol=1e-12,
                                   err_msg=name)


@pytest.mark.crosscheck
def test_torch_peer_skew_is_minipixels_skew():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    peer = load("torch_peer")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    s = peer.skew(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(s, skew(Tensor(x)).numpy())
    np.testing.assert_array_equal(peer.unskew(torch.tensor(s), 5).numpy(),
                                  unskew(Tensor(s), 5).numpy())


def test_benchmark_runner_writes_a_row_per_model_with_medians_and_spread(tmp_path):
    """The multi-process runner on the smoke setting, minipixel alone (a few seconds)."""
    out = tmp_path / "rows.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, os.path.join(ROOT, "demos", "benchmark.py"), "--settings",
                    "smoke", "--models", "pixelcnn", "--threads", "1,2", "--processes", "2",
                    "--reps", "1", "--warmup", "0", "--no-torch", "--no-paper", "--no-sampling",
                    "--json", str(out)], check=True, env=env, capture_output=True, timeout=300)
    rows = json.loads(out.read_text())
    assert [(r["model"], r["threads"]) for r in rows] == [("pixelcnn", 1), ("pixelcnn", 2)]
    for row in rows:
        fast = row["fast"]
        assert fast["processes"] == 2 and fast["lo"] <= fast["hi"] and fast["ms"] > 0
        assert row["bound_ms"] > 0 and row["gemm_gflops"] > 0
    # at 2 threads also the batch split across 2 threads (BLAS single-threaded in each)
    assert "workers" not in rows[0] and rows[1]["workers"]["processes"] == 2
    assert rows[1]["workers_over_bound"] == rows[1]["workers"]["ms"] / rows[1]["bound_ms"]


@pytest.mark.parametrize("model", ["pixelcnn", "diagonal"])
def test_sampling_row_times_both_samplers_and_checks_they_draw_the_same(model):
    """The sampling row (warm-up, cached timed 7 times, naive once) runs and reports the
    two samplers' times and whether they drew the same images (they must)."""
    bench = load("benchmark")
    row = bench.sampling_times(dict(kind="sampling", model=model, setting=list(bench.SMOKE)[0],
                                    n=2, size=5))
    assert row["same"] is True
    assert row["cached_s"] > 0 and row["naive_s"] > 0
