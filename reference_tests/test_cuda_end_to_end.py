"""Device 'cuda' end to end: the CLI, the demos, the reference writer, host synchronisations.

Without a GPU these run on the strict CuPy stand-in (cupy_standin.py), installed
in-process through ``minipixel.backend.use_cuda_module``; with one, on real CuPy
(conftest's ``cuda_backend``). The synchronisation bounds need the stand-in's
counter, so they always run on it. Every result is compared with the CPU's.
"""
import importlib.util
import json
import re
import runpy
import sys

import numpy as np
import pytest

import cupy_standin
from conftest import cuda_backend
from minipixel import backend
from minipixel.checkpoint import load_checkpoint
from minipixel.cli import main
from minipixel.crosscheck.reference import read_reference, write_reference
from minipixel.models import build
from minipixel.png import read_png
from minipixel.sampling import sample
from minipixel.training import Trainer, evaluate_nll

TINY = ["--h", "2", "--layers", "1", "--out-hidden", "4", "--crop", "8", "--n-train", "24",
        "--n-test", "8", "--batch-size", "8", "--epochs", "2", "--no-progress"]


@pytest.fixture
def cuda():
    with cuda_backend() as xp:
        yield xp


def on_standin(xp):
    return xp is cupy_standin.cupy


# ---- the command line on device cuda -------------------------------------------------------

def test_cli_train_evaluate_sample_complete_resume_on_cuda_match_the_cpu(cuda, tmp_path, capsys):
    runs = {}
    for dev in ("cpu", "cuda"):
        out = tmp_path / dev
        assert main(["train", "rowlstm", *TINY, "--out", str(out), "--samples", "4",
                     "--device", dev]) == 0
        ckpt = str(out / "checkpoint.npz")
        assert main(["evaluate", ckpt, "--device", dev, "--json", str(out / "e.json")]) == 0
        for sampler in ([], ["--naive"]):
            png = out / f"s{len(sampler)}.png"
            assert main(["sample", ckpt, "--n", "3", "--seed", "1", "--device", dev,
                         "--out", str(png), *sampler]) == 0
        assert main(["complete", ckpt, "--images", "2", "--completions", "2", "--device", dev,
                     "--out", str(out / "c.png")]) == 0
        assert main(["train", "--resume", ckpt, "--epochs", "3", "--device", dev,
                     "--no-progress"]) == 0
        runs[dev] = out
    assert "error" not in capsys.readouterr().err
    cpu, gpu = runs["cpu"], runs["cuda"]
    metrics = json.loads((gpu / "metrics.json").read_text())
    assert metrics["device"] == "cuda" and metrics["global_step"] == 9
    # checkpoints written from the device hold host arrays of the model's dtype, and agree
    a, b = load_checkpoint(cpu / "checkpoint.npz"), load_checkpoint(gpu / "checkpoint.npz")
    assert a.model_state.keys() == b.model_state.keys()
    for k, v in b.model_state.items():
        assert isinstance(v, np.ndarray) and v.dtype == np.float32
        np.testing.assert_allclose(v, a.model_state[k], rtol=1e-4, atol=1e-5, err_msg=k)
    e_cpu, e_gpu = (json.loads((d / "e.json").read_text()) for d in (cpu, gpu))
    assert e_gpu["nll_nats_per_image"] == pytest.approx(e_cpu["nll_nats_per_image"], rel=1e-4)
    # cached and naive samplers draw the same images on the device
    np.testing.assert_array_equal(read_png(gpu / "s0.png"), read_png(gpu / "s1.png"))
    for name in ("s0.png", "c.png", "samples.png"):
        if on_standin(cuda):      # NumPy underneath: bit for bit the CPU's images
            np.testing.assert_array_equal(read_png(gpu / name), read_png(cpu / name))
        else:                     # GPU rounding may flip a rare draw
            assert (read_png(gpu / name) == read_png(cpu / name)).mean() > 0.95


def test_reference_file_from_a_cuda_model_equals_the_cpu_one(cuda, tmp_path):
    """The reference writer on a model that lives on the device (the CLI's `reference`
    has no --device: it computes on the CPU)."""
    model = build("diagonal", channels=3, levels=4, h=3, layers=1, out_hidden=6, seed=2,
                  dtype=np.float64)
    write_reference(tmp_path / "cpu.npz", model, batch=2, H=4, W=3)
    write_reference(tmp_path / "cuda.npz", model.to("cuda"), batch=2, H=4, W=3)
    a, b = read_reference(tmp_path / "cpu.npz"), read_reference(tmp_path / "cuda.npz")
    assert a.keys() == b.keys()
    for k in a.keys():
        np.testing.assert_allclose(b[k], a[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_minipixel_device_cuda_does_not_touch_commands_run_on_the_cpu(tmp_path, monkeypatch,
                                                                       capsys):
    """MINIPIXEL_DEVICE sets the API's default device; a command's --device (cpu unless
    given, and cpu for the commands without one) decides where the command computes.
    CuPy is hidden, so any array sent to 'cuda' would fail."""
    monkeypatch.setenv("MINIPIXEL_DEVICE", "cuda")
    monkeypatch.setitem(sys.modules, "cupy", None)
    out = tmp_path / "run"
    ckpt = str(out / "checkpoint.npz")
    commands = [["train", "pixelcnn", *TINY, "--epochs", "1", "--out", str(out)],
                ["evaluate", ckpt], ["sample", ckpt, "--n", "2", "--out", str(tmp_path / "s.png")],
                ["complete", ckpt, "--images", "1", "--completions", "1",
                 "--out", str(tmp_path / "c.png")],
                ["train", "--resume", ckpt, "--epochs", "2", "--no-progress"],
                ["receptive-field", "--size", "5", "--pixel", "3", "2", "--layers", "1",
                 "--h", "2", "--out", str(tmp_path / "rf.png")],
                ["reference", str(tmp_path / "ref.npz"), "--model", "rowlstm"]]
    for argv in commands:
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    assert json.loads((out / "metrics.json").read_text())["device"] == "cpu"
    with pytest.raises(backend.DeviceError, match="not installed"):
        backend.check_device(backend.default_device())       # the variable still says cuda


# ---- the demos on device cuda --------------------------------------------------------------

DEMOS = {
    "autograd_walkthrough.py": [],
    "receptive_field.py": ["--size", "5", "--pixel", "3", "2", "--layers", "1",
                           "--out", "{tmp}/rf.png"],
    "train_digits.py": ["--model", "rowlstm", "--h", "2", "--epochs", "1", "--out", "{tmp}/d"],
    "rgb_digits.py": ["--model", "diagonal", "--crop", "4", "--epochs", "1", "--n-train", "16",
                      "--out", "{tmp}/rgb"],
    "bench_conv.py": ["--reps", "1", "--warmup", "0"],
    "bench_conditioning.py": ["--reps", "1"],
}


def _few_digits(load):
    def load_small(kind="binary", **kw):
        data = load(kind, **kw)
        data.train, data.test = data.train[:16], data.test[:8]
        return data
    return load_small


@pytest.mark.parametrize("demo", list(DEMOS))
def test_demo_runs_on_cuda(cuda, demo, tmp_path, monkeypatch, capsys):
    import minipixel.data
    if demo in ("train_digits.py", "rgb_digits.py"):     # thousands of digits, cut to a few
        monkeypatch.setattr(minipixel.data, "load_dataset",
                            _few_digits(minipixel.data.load_dataset))
    argv = [a.format(tmp=tmp_path) for a in DEMOS[demo]] + ["--device", "cuda"]
    monkeypatch.setattr(sys, "argv", [demo] + argv)
    runpy.run_path(f"demos/{demo}", run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip()
    if demo == "receptive_field.py":
        assert out.count("0 dependencies on the future (must be 0)") == 3
    if demo == "autograd_walkthrough.py":          # the graph, a recorded op, a failing check
        assert "       softplus\n           u\n" in out and "right backward: True" in out
        assert "wrong backward: gradcheck failed: input 0 at index" in out


# ---- host synchronisations -----------------------------------------------------------------

MODELS = [(name, C, levels) for name in ("pixelcnn", "rowlstm", "diagonal")
          for C, levels in ((1, 2), (3, 256))]


@pytest.mark.parametrize("name,C,levels", MODELS)
def test_a_training_step_synchronises_once_for_the_loss(standin, name, C, levels):
    model = build(name, channels=C, levels=levels, h=3, layers=2, out_hidden=6).to("cuda")
    images = np.random.default_rng(0).integers(0, levels, (12, C, 5, 4)).astype(np.uint8)
    trainer = Trainer(model, images, images[:4], optimizer="rmsprop", batch_size=6, clip=0.5,
                      progress=False, log=None)
    trainer.train_step(images[:6])                    # warm-up (optimizer state is made)
    with cupy_standin.count_syncs() as syncs:
        loss = trainer.train_step(images[6:])
    assert syncs.total == 1 and syncs.kinds == {"asnumpy": 1}, syncs   # loss, norm, weight check
    assert np.isfinite(loss)


@pytest.mark.parametrize("name,C,levels", MODELS)
def test_cached_sampling_synchronises_once_per_sub_pixel(standin, name, C, levels):
    """The drawn value is chosen on the host from the logits: one read per sub-pixel,
    nothing else (the uniforms are drawn up front, values go back up as uploads)."""
    model = build(name, channels=C, levels=levels, h=3, layers=2, out_hidden=6).to("cuda")
    H, W = 4, 3
    with cupy_standin.count_syncs() as syncs:
        images = sample(model, 2, H, W, seed=0, cached=True)
    assert syncs.total == H * W * C and set(syncs.kinds) == {"asnumpy"}, syncs
    np.testing.assert_array_equal(images, sample(model.to("cpu"), 2, H, W, seed=0, cached=True))


def test_evaluation_synchronises_once_per_batch(standin):
    model = build("rowlstm", channels=1, levels=2, h=2, layers=1, out_hidden=4).to("cuda")
    images = np.random.default_rng(1).integers(0, 2, (10, 1, 4, 4)).astype(np.uint8)
    with cupy_standin.count_syncs() as syncs:
        evaluate_nll(model, images, batch_size=4)
    assert syncs.total == 3, syncs


def test_device_images_are_checked_with_one_read(standin):
    """Images already on the device: their range check reads both ends at once; a float
    array is refused by the model's message, not by a NumPy call on device data."""
    model = build("pixelcnn", channels=1, levels=2, h=2, layers=1, out_hidden=4).to("cuda")
    images = backend.to_device((np.arange(18) % 2).astype(np.uint8).reshape(2, 1, 3, 3), "cuda")
    with cupy_standin.count_syncs() as syncs:
        model.scale(images)
    assert syncs.total == 1, syncs
    with pytest.raises(ValueError, match=r"0\.\.1, got 0\.\.2"):
        model.scale(images * 2)
    floats = backend.to_device(np.full((2, 1, 3, 3), np.nan), "cuda")
    with pytest.raises(ValueError, match="contains NaN"):
        model.scale(floats)


def test_audit_of_a_cuda_model_equals_the_cpu_audit(cuda):
    from minipixel.crosscheck.adapters import model_fn
    from minipixel.crosscheck.audit import audit
    model = build("rowlstm", channels=3, levels=4, h=3, layers=1, out_hidden=6, seed=1,
                  dtype=np.float64)
    on_cpu = audit(model_fn(model), 3, 4, H=4, W=3)
    on_gpu = audit(model_fn(model.to("cuda")), 3, 4, H=4, W=3)
    assert not on_gpu.leaks and on_gpu.dtype == on_cpu.dtype == "float64"
    np.testing.assert_array_equal(on_gpu.dep, on_cpu.dep)
    assert on_gpu.dep.any()


# ---- the GPU check script ------------------------------------------------------------------

def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ".ci/gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_runs_end_to_end_on_the_stand_in(tmp_path, capsys):
    """The script a GPU owner runs, on the stand-in in a small setting: a test file's
    cuda variants, the benchmark's step and sampling rows, the CIFAR-size rows (smoke)."""
    previous = backend.use_cuda_module(None)       # main() installs the stand-in itself
    try:
        rc = _gpu_check().main(["--stand-in", "--small", "--tests", "reference_tests/test_skew.py",
                                "--out", str(tmp_path / "report.md")])
    finally:
        backend.use_cuda_module(previous)
    report = (tmp_path / "report.md").read_text()
    assert rc == 0, report
    assert report.startswith("# minipixel GPU check\n\nPASSED")
    assert re.search(r"cuda variants: [1-9]\d* passed, 0 failed, 0 skipped", report)
    assert "cupy_standin" not in report and "+standin (the test suite's CuPy stand-in" in report
    for model in ("pixelcnn", "rowlstm", "diagonal"):       # sampling rows: same images
        assert re.search(rf"\n{model} +[\d.]+s +[\d.]+s +[\d.]+x True", report), model
    assert re.search(r"\| rowlstm \| smoke [^|]+\| [\d.]+ \| n/a \|", report)
    assert re.search(r"\| diagonal \| smoke [^|]+\| [\d.]+ \| n/a \|", report)


def test_gpu_check_counts_a_skipped_or_failed_cuda_variant(tmp_path):
    junit = tmp_path / "j.xml"
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="t" name="test_a[cpu]"/><testcase classname="t" name="test_a[cuda]"/>'
        '<testcase classname="t" name="test_b[3-cuda-x]"><skipped message="no GPU"/></testcase>'
        '<testcase classname="t" name="test_c[cuda]"><failure message="boom"/></testcase>'
        '<testcase classname="t" name="test_cudatoolkit"><skipped/></testcase>'
        '</testsuite></testsuites>')
    counts, not_passed = _gpu_check().summarize_junit(junit)
    assert counts["all"] == dict(passed=2, failed=1, skipped=2)
    assert counts["cuda"] == dict(passed=1, failed=1, skipped=1)
    assert not_passed == ["t::test_b[3-cuda-x] (skipped)", "t::test_c[cuda] (failed)"]


def test_a_multiscale_run_on_cuda_matches_the_cpu(cuda, tmp_path):
    """train (both networks and the upsampler), evaluate, sample and upscale of a
    Multi-Scale checkpoint on device cuda, against the CPU."""
    runs = {}
    for dev in ("cpu", "cuda"):
        out = tmp_path / dev
        assert main(["train", "multiscale", "--kind", "rowlstm", "--condition-maps", "3",
                     *TINY, "--out", str(out), "--samples", "2", "--device", dev]) == 0
        ckpt = str(out / "checkpoint.npz")
        assert main(["evaluate", ckpt, "--device", dev, "--json", str(out / "e.json")]) == 0
        assert main(["upscale", ckpt, "--images", "2", "--draws", "2", "--device", dev,
                     "--out", str(out / "u.png")]) == 0
        runs[dev] = out
    a, b = (load_checkpoint(runs[d] / "checkpoint.npz") for d in ("cpu", "cuda"))
    assert a.model_state.keys() == b.model_state.keys()
    assert any(k.startswith("upsampler.") for k in a.model_state)
    for k, v in b.model_state.items():
        np.testing.assert_allclose(v, a.model_state[k], rtol=1e-4, atol=1e-5, err_msg=k)
    e_cpu, e_gpu = (json.loads((runs[d] / "e.json").read_text()) for d in ("cpu", "cuda"))
    assert e_gpu["nll_nats_per_image"] == pytest.approx(e_cpu["nll_nats_per_image"], rel=1e-4)
    for name in ("samples.png", "u.png"):
        gpu, cpu = read_png(runs["cuda"] / name), read_png(runs["cpu"] / name)
        if on_standin(cuda):      # NumPy underneath: bit for bit the CPU's images
            np.testing.assert_array_equal(gpu, cpu)
        else:                     # GPU rounding may flip a rare draw
            assert (gpu == cpu).mean() > 0.95
