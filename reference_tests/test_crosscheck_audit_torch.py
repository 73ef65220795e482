"""The audit on PyTorch models (demos/audit_torch_model.py builds them): the BatchNorm leak,
the paper's fields, the Row LSTM padding gap, the torch adapter and the command line.

Needs PyTorch (CPU):  pip install torch==2.13.0  (the [crosscheck] extra).
"""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch==2.13.0 "
                                            "(the [crosscheck] extra)")

pytestmark = pytest.mark.crosscheck
torch.set_num_threads(1)          # tiny convolutions: threads only add waiting on 2 busy cores

from minipixel.crosscheck.adapters import torch_fn  # noqa: E402
from minipixel.crosscheck.audit import audit  # noqa: E402
from minipixel.crosscheck.audit_cli import audit_main  # noqa: E402

from demo_module import DEMOS, load_demo  # noqa: E402

DEMO = os.path.join(DEMOS, "audit_torch_model.py")


@pytest.fixture(scope="module")
def demo():
    return load_demo("audit_torch_model")


def run(demo, name, **kw):
    kw = dict(dict(H=6, W=6, bases=1), **kw)
    return audit(torch_fn(demo.build(name)), channels=1, levels=4, **kw)


@pytest.mark.parametrize("batch", [4, 1])
def test_batchnorm_in_training_mode_is_flagged_with_sizes(demo, batch):
    report = run(demo, "batchnorm-train", batch=batch)
    assert not report.passed
    assert report.dtype == "float64"                 # module.double() worked
    leaks = report.largest_leaks
    assert len(leaks) > 0.9 * (~report.allowed).sum()    # nearly every future pair
    assert 1e-6 < leaks[-1][2] <= leaks[0][2] < 1         # sizes, largest first
    text = report.format()
    assert "every output depends on every input" in text
    if batch > 1:
        assert report.coupled and report.coupling.max() > 0 and "BATCH COUPLING" in text
    else:
        assert report.coupling is None and "not checked" in text


def test_batchnorm_in_eval_mode_passes_with_the_paper_blind_spot(demo):
    report = run(demo, "batchnorm-eval", H=8, W=8, expect="pixelcnn", layers=2)
    assert report.passed, report.format()
    assert np.array_equal(report.dep & report.allowed, report.expected)
    text = report.format()
    assert "the blind spot (context right of the field's 45-degree edge): 125 pairs; this " \
           "function reaches 0 of them" in text
    assert "same field as the paper's pixelcnn (2 layers)" in text


def test_row_lstm_left_padding_passes_with_the_gap_named(demo):
    good = run(demo, "rowlstm", expect="rowlstm", layers=1)
    assert good.passed and np.array_equal(good.dep & good.allowed, good.expected)
    report = run(demo, "rowlstm-left-pad", expect="rowlstm", layers=1)
    assert report.passed                                  # no leak: a coverage gap
    gap = report.expected & ~report.dep
    assert gap.sum() > 0 and report.total_coverage < good.total_coverage
    text = report.format()
    assert "the paper's rowlstm (1 layer) reaches" in text
    assert "output (row 5, column 0, colour 0) misses row 3 column 4; row 2 columns 4-5; " \
           "row 1 columns 4-5; row 0 columns 4-5" in text


def test_centre_tap_kept_is_a_leak_per_output(demo):
    report = run(demo, "centre-kept", H=4, W=4)
    assert report.leaks == [((0, r, c), (0, r, c)) for r in range(4) for c in range(4)]


def test_torch_fn_falls_back_to_float32_when_the_module_casts_its_input():
    class CastsToFloat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 1)

        def forward(self, images):
            x = self.conv(images.float())              # float64 weights: a dtype error
            return torch.nn.functional.pad(x, (1, 0))[..., :-1]
    fn = torch_fn(CastsToFloat())
    report = audit(fn, 1, 2, H=3, W=3, bases=1)
    assert report.passed and report.dtype == "float32" and "float64 failed" in report.format()


def test_cli_loads_the_demo_factory_and_exits_1_on_batchnorm(demo, capsys):
    small = ["--height", "5", "--width", "5", "--bases", "1"]
    assert audit_main([f"{DEMO}:make", "--kwargs", '{"name": "batchnorm-train"}', *small]) == 1
    out = capsys.readouterr().out
    assert "BATCH COUPLING" in out and "result: FAIL" in out
    assert audit_main([f"{DEMO}:make", "--kwargs", '{"name": "batchnorm-eval"}', *small,
                       "--expect", "pixelcnn", "--layers", "2"]) == 0
    assert "result: PASS" in capsys.readouterr().out
