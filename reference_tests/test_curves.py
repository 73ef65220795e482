"""Learning curves (minipixel.curves, `minipixel plot`, curves.png from `train`) and the
reproducibility of a training command (same command, same NLL)."""
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minipixel.checkpoint import load_checkpoint
from minipixel.cli import main
from minipixel.curves import COLOURS, curves_figure, history_curves, nice_ticks, run_curves
from minipixel.png import read_png

TINY = ["pixelcnn", "--h", "2", "--layers", "1", "--out-hidden", "4", "--crop", "8",
        "--n-train", "24", "--n-test", "8", "--batch-size", "8", "--epochs", "2",
        "--samples", "0", "--no-progress"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same tiny training command, run twice into two folders."""
    dirs = [tmp_path_factory.mktemp("same") / name for name in ("a", "b")]
    for d in dirs:
        assert main(["train", *TINY, "--out", str(d)]) == 0
    return dirs


def test_the_same_command_gives_the_same_nll_and_weights(two_runs):
    a, b = (json.loads((d / "metrics.json").read_text()) for d in two_runs)
    strip = ("train_time_s", "train_cpu_s")
    ha = [{k: v for k, v in e.items() if k not in strip} for e in a["history"]]
    hb = [{k: v for k, v in e.items() if k not in strip} for e in b["history"]]
    assert ha == hb and len(ha) == 2 and a["test_nll_nats"] == b["test_nll_nats"]
    wa, wb = (load_checkpoint(d / "checkpoint.npz").model_state for d in two_runs)
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def test_train_writes_a_learning_curve_png(two_runs):
    metrics = json.loads((two_runs[0] / "metrics.json").read_text())
    assert metrics["curves_png"].endswith("curves.png")
    image = read_png(two_runs[0] / "curves.png")
    assert image.shape == (400, 640, 3)
    assert (image == COLOURS[0]).all(-1).sum() > 50           # the run's lines are drawn


def test_plot_overlays_runs_with_a_legend(two_runs, tmp_path, capsys):
    out = tmp_path / "both.png"
    assert main(["plot", *map(str, two_runs), "--labels", "first", "second", "--title",
                 "two runs", "--out", str(out)]) == 0
    image = read_png(out)
    assert image.shape == (400, 640, 3)
    for colour in COLOURS[:2]:
        assert (image == colour).all(-1).sum() > 20
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["nowhere"], "expected a run folder with metrics.json"),
    (["RUN", "--labels", "x", "y"], "expected one label per run (1), got 2"),
    (["RUN", "--size", "10", "10"], "--size: expected a width"),
    (["EMPTY"], "no finished epochs to plot"),
    (["BROKEN"], "expected JSON written by minipixel train"),
])
def test_plot_bad_input_is_a_one_line_error(two_runs, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.json").write_text('{"history": []}')
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text('{"history": [')
    names = {"RUN": str(two_runs[0]), "EMPTY": str(tmp_path / "empty"),
             "BROKEN": str(tmp_path / "broken"), "nowhere": str(tmp_path / "nowhere")}
    capsys.readouterr()
    assert main(["plot", *[names.get(a, a) for a in args], "--out",
                 str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minipixel plot: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "x.png").exists()


def coloured_rows(image, colour, x):
    rows = np.flatnonzero((image[:, x - 1:x + 2] == colour).all(-1).any(1))
    return rows.min(), rows.max()


def test_higher_nll_is_drawn_higher_and_epochs_left_to_right():
    run = history_curves([{"epoch": 1, "train_nll_nats": 150.0, "test_nll_nats": 120.0},
                          {"epoch": 2, "train_nll_nats": 100.0, "test_nll_nats": 90.0}], "r")
    image = curves_figure([run], width=640, height=300)
    colour = COLOURS[0]
    below_axis = image[300 - 42 + 2]                 # only the x tick marks are drawn here
    x1, x2 = np.flatnonzero((below_axis == (60, 60, 60)).all(-1))
    top1, bottom1 = coloured_rows(image, colour, x1)
    top2, bottom2 = coloured_rows(image, colour, x2)
    assert top1 < top2 and bottom1 < bottom2         # epoch 2's NLLs are lower: drawn lower
    # the spans are proportional to the NLL differences (150-120 vs 100-90)
    assert math.isclose((bottom1 - top1) / (bottom2 - top2), 3.0, rel_tol=0.25)


def test_title_is_drawn_only_when_given():
    run = history_curves([{"epoch": 1, "train_nll_nats": 3.0, "test_nll_nats": 2.0}], "r")
    text = np.array([20, 20, 20])
    with_title = curves_figure([run], title="PixelCNN")
    without = curves_figure([run])
    assert (with_title[:18] == text).all(-1).sum() > 30
    assert (without[:18] == text).all(-1).sum() == 0


def test_bad_histories_are_refused(tmp_path):
    with pytest.raises(ValueError, match="epoch, train_nll_nats and test_nll_nats"):
        history_curves([{"epoch": 1}], "r")
    with pytest.raises(ValueError, match="non-finite"):
        curves_figure([history_curves([{"epoch": 1, "train_nll_nats": float("nan"),
                                        "test_nll_nats": 1.0}], "r")])
    (tmp_path / "metrics.json").write_text(json.dumps({"history": "no"}))
    with pytest.raises(ValueError, match="'history' list"):
        run_curves(tmp_path)


@given(lo=st.floats(-1e6, 1e6), span=st.floats(1e-3, 1e6), target=st.integers(2, 10))
def test_nice_ticks_cover_the_range_with_round_steps(lo, span, target):
    hi = lo + span
    ticks = nice_ticks(lo, hi, target)
    assert ticks[0] <= lo + 1e-9 * max(1, abs(lo)) and ticks[-1] >= hi - 1e-9 * max(1, abs(hi))
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6
    assert 2 <= len(ticks) <= 2 * target + 2


def test_reference_lines_are_drawn_at_their_value():
    run = history_curves([{"epoch": 1, "train_nll_nats": 120.0, "test_nll_nats": 110.0},
                          {"epoch": 2, "train_nll_nats": 105.0, "test_nll_nats": 100.0}], "r")
    image = curves_figure([run], references=[(50.0, "paper"), (108.0, "mid")])
    grey = (image == (110, 110, 110)).all(-1).sum(1)
    lines = np.flatnonzero(grey > 200)               # dotted rows across the plot
    run_rows = np.flatnonzero((image[:, :500] == COLOURS[0]).all(-1).any(1))
    assert len(lines) == 2
    assert lines[1] > run_rows.max()                 # 50 nats: below every run value
    assert run_rows.min() < lines[0] < run_rows.max()  # 108 nats: among them


@pytest.mark.parametrize("epochs", range(1, 25))
def test_any_number_of_epochs_draws_inside_the_picture(epochs):
    """Epoch ticks never fall right of the last epoch (e.g. a tick at 4 after 3 epochs)."""
    from minipixel.curves import curves_figure, history_curves
    history = [{"epoch": e + 1, "global_step": 10 * e, "train_nll_nats": 100.0 - e,
                "test_nll_nats": 99.0 - e} for e in range(epochs)]
    image = curves_figure([history_curves(history, "run")], width=320, height=200)
    assert image.shape == (200, 320, 3)


def test_labels_of_any_length_are_cut_to_fit():
    """A legend label of 100+ characters drew past the picture's edge: IndexError."""
    from minipixel.curves import curves_figure, fit_label, history_curves
    h = [{"epoch": 1, "train_nll_nats": 3.0, "test_nll_nats": 2.0},
         {"epoch": 2, "train_nll_nats": 2.5, "test_nll_nats": 1.9}]
    image = curves_figure([history_curves(h, "x" * 150), history_curves(h, "y\n" * 80)],
                          title="t" * 300, references=[(2.2, "r" * 400)], width=200, height=150)
    assert image.shape == (150, 200, 3)
    assert fit_label("x" * 150, 60).endswith("...") and len(fit_label("x" * 150, 60)) == 10
    assert fit_label("short", 60) == "short"


def test_train_in_a_folder_with_a_long_name_keeps_every_metrics_field(tmp_path):
    """train saved the checkpoint, then died drawing curves.png for a 100+ character
    folder name, leaving metrics.json without its final fields."""
    from bad_files import train_tiny
    out = tmp_path / ("run-" + "n" * 150)
    train_tiny(out, epochs=1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished" and "this_process_cpu_time_s" in metrics
    assert metrics["curves_png"] == str(out / "curves.png") and (out / "curves.png").exists()


def test_plot_refuses_an_epoch_of_1e999_in_one_line(tmp_path, capsys):
    """`"epoch": 1e999` read as infinity and crashed int(): strict JSON refuses it."""
    from minipixel.cli import main
    (tmp_path / "metrics.json").write_text(
        '{"history": [{"epoch": 1e999, "train_nll_nats": 1.0, "test_nll_nats": 1.0}]}')
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1e999" in err and "metrics.json" in err


# ---- runs that cannot be compared -----------------------------------------------------------
def fake_run(folder, kind="binary", crop=8, channels=1, levels=2, **source):
    """A run folder whose metrics.json says what data it was measured on."""
    folder.mkdir(parents=True)
    spec = {**dict(kind=kind, crop=crop, n_train=None, n_test=None, mnist_dir=None,
                   cifar_dir=None, binarized_mnist_dir=None), **source}
    metrics = {"settings": {"dataset": spec}, "config": {"channels": channels, "levels": levels},
               "history": [{"epoch": 1, "train_nll_nats": 50.0, "test_nll_nats": 49.0}]}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return str(folder)


@pytest.mark.parametrize("other,shown", [
    (dict(kind="binary-threshold"), "binary-threshold digits 8x8"),
    (dict(crop=12), "binary digits 12x12"),
    (dict(binarized_mnist_dir="bm"), "binarized MNIST 8x8"),
    (dict(kind="rgb", channels=3, levels=256), "rgb digits 8x8"),
])
def test_plot_refuses_runs_on_different_data_in_one_line_unless_allowed(tmp_path, capsys,
                                                                       other, shown):
    a, b = fake_run(tmp_path / "a"), fake_run(tmp_path / "b", **other)
    out = tmp_path / "c.png"
    capsys.readouterr()
    assert main(["plot", a, b, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("minipixel plot: "), err
    for fragment in (f"{a} is on binary digits 8x8", f"{b} on {shown}", "--allow-mixed"):
        assert fragment in err, err
    assert not out.exists()
    assert main(["plot", a, b, "--allow-mixed", "--out", str(out)]) == 0
    assert read_png(out).shape == (400, 640, 3)


def test_plot_refuses_different_units_even_where_the_data_is_unknown(tmp_path):
    from minipixel.curves import check_comparable
    runs = [{"label": "a", "data": None, "units": (1, 2)},
            {"label": "b", "data": None, "units": (3, 256)}]
    with pytest.raises(ValueError, match="a is on 1 channel.s. of 2 levels, b on 3 channel"):
        check_comparable(runs)
    check_comparable([{"label": "a", "data": None, "units": None}, runs[1]])   # unknown: no say


def test_the_legend_names_the_data_once_or_beside_each_run(tmp_path, two_runs):
    from minipixel.curves import legend_entries
    same = [run_curves(d) for d in two_runs]
    texts = [text for text, _, _ in legend_entries(same)]
    assert texts == ["on binary digits 8x8", "a", "b", "test", "train"]
    mixed = [run_curves(fake_run(tmp_path / "t", kind="binary-threshold"), "thr"), same[0]]
    texts = [text for text, _, _ in legend_entries(mixed)]
    assert texts[:2] == ["thr (binary-threshold digits 8x8)", "a (binary digits 8x8)"]
    image = curves_figure(mixed)                       # and the figure draws it
    assert image.shape == (400, 640, 3)
