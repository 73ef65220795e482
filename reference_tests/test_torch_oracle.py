"""minipixel against an independent PyTorch implementation (torch_oracle.py).

Needs PyTorch (CPU is enough):  pip install torch==2.13.0  (or pip install -e '.[crosscheck]').
Without it every test here skips, saying so.
"""
import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch==2.13.0 "
                                            "(the [crosscheck] extra) to run the oracle cross-check")

import torch_oracle  # noqa: E402

pytestmark = pytest.mark.crosscheck

torch.set_num_threads(1)

from minipixel.crosscheck.compare import compare  # noqa: E402
from minipixel.crosscheck.reference import reference_arrays  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("pixelcnn", "rowlstm", "diagonal")
# (channels, levels, H, W): grey binary, grey 256-way, RGB 256-way; odd sizes, H < W and H > W
SETTINGS = [(1, 2, 5, 7), (1, 256, 7, 5), (3, 256, 5, 7), (3, 16, 6, 3)]
TORCH_DTYPE = {"float64": torch.float64, "float32": torch.float32}


def reference(model, channels, levels, H, W, dtype, layers=2):
    config = dict(model=model, channels=channels, levels=levels, h=4, layers=layers,
                  out_hidden=7, seed=11)
    return reference_arrays(config, seed=5, batch=2, H=H, W=W, dtype=dtype)


def check(ref, dtype):
    theirs = torch_oracle.run(ref, TORCH_DTYPE[dtype])
    report = compare(ref, theirs)
    assert report.passed, report.format(verbose=False)
    assert not report.not_compared
    assert any(k.startswith("mask/") for k in theirs)        # masks built independently agree
    return report.worst_rel()


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "C{}-V{}-{}x{}".format(*s))
@pytest.mark.parametrize("model", MODELS)
def test_oracle_agrees_float64(model, setting):
    worst = check(reference(model, *setting, "float64"), "float64")
    assert worst < 1e-9


@pytest.mark.parametrize("model", MODELS)
def test_oracle_agrees_float32(model):
    worst = check(reference(model, 3, 256, 5, 7, "float32"), "float32")
    assert worst < 1e-4


def test_oracle_agrees_deeper_rgb():
    for model in MODELS:
        check(reference(model, 3, 8, 4, 6, "float64", layers=4), "float64")


@pytest.mark.parametrize("name", [f"{m}_{k}" for m in MODELS + ("multiscale",)
                                  for k in ("grey", "rgb")])
def test_golden_files_agree_with_oracle(name):
    from minipixel.crosscheck.reference import read_reference
    ref = read_reference(os.path.join(HERE, "golden", name + ".npz"))
    arrays = dict(ref.arrays, config=np.array(__import__("json").dumps(ref.config)))
    check(arrays, "float64")


def _bad_cell(pre, c_prev):                                   # sigmoid on the content gate
    i, f, g, o = pre.chunk(4, dim=1)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.sigmoid(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _no_shift(self, p, x):                                    # right-to-left pass not shifted
    return (self.diagonal_direction(p + "left_to_right.", x)
            + self.diagonal_direction(p + "right_to_left.", x.flip(3)).flip(3))


@pytest.mark.parametrize("model,attr,bug,first", [
    ("rowlstm", "cell", staticmethod(_bad_cell), "hidden/1"),
    ("diagonal", "diagonal_hidden", _no_shift, "hidden/1"),
])
def test_a_bug_in_one_side_is_located(monkeypatch, model, attr, bug, first):
    monkeypatch.setattr(torch_oracle.Net, attr, bug)
    ref = reference(model, 3, 16, 4, 5, "float64")
    report = compare(ref, torch_oracle.run(ref))
    assert not report.passed and report.first_diverging.key == first
    assert report.result("layer/0").passed


def test_demo_audits_torch_models(capsys):
    """The demo's main: the correct PixelCNN passes, the one with mask B first fails (its
    other models: test_crosscheck_audit_torch.py)."""
    spec = importlib.util.spec_from_file_location(
        "audit_torch_model", os.path.join(HERE, "..", "demos", "audit_torch_model.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main(["--models", "pixelcnn", "centre-kept"]) == 0
    out = capsys.readouterr().out
    assert "LEAKS: 64 dependencies" in out and "every output sees the same sub-pixel" in out
    assert "as expected: pixelcnn passes, centre-kept fails" in out


@pytest.mark.parametrize("setting", SETTINGS[::2], ids=lambda s: "C{}-V{}-{}x{}".format(*s))
@pytest.mark.parametrize("model", MODELS)
def test_oracle_agrees_with_the_paper_path_directly(model, setting):
    """The oracle reached the paper path (fast=False: layers from engine ops) only through
    its equality with the fast path: it is checked against the paper path itself here."""
    from minipixel.models import build
    channels, levels, H, W = setting
    paper = build(model, channels=channels, levels=levels, h=4, layers=2, out_hidden=7,
                  seed=11, dtype=np.float64, fast=False)
    ref = reference_arrays(paper, seed=5, batch=2, H=H, W=W)
    assert check(ref, "float64") < 1e-9


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("setting, factor", [((1, 2, 5, 7), 2), ((3, 16, 6, 5), 2), ((3, 4, 7, 4), 3)],
                         ids=["grey-5x7-k2", "rgb-6x5-k2", "rgb-7x4-k3"])
def test_oracle_agrees_on_the_multiscale_model(kind, setting, factor):
    channels, levels, H, W = setting
    config = dict(model="multiscale", kind=kind, factor=factor, condition_maps=3,
                  channels=channels, levels=levels, h=3, layers=2, out_hidden=6, seed=4)
    ref = reference_arrays(config, seed=5, batch=2, H=H, W=W, dtype="float64")
    assert check(ref, "float64") < 1e-9
