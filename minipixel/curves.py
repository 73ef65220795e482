"""Learning curves: train and test NLL per epoch as a PNG line plot, no plotting library.

    curves = run_curves("runs/main")                    # from runs/main/metrics.json
    curves = history_curves(trainer.state["history"], "main")
    image = curves_figure([curves], title="main job")   # uint8 (H, W, 3)
    write_curves_png("runs/main/curves.png", ["runs/main"])

A run's curve is read from its ``metrics.json`` (``history``: one entry per
finished epoch with ``train_nll_nats``, the mean training loss over that
epoch's batches, and ``test_nll_nats``, the test NLL after the epoch). In the
figure each run has one colour; the test NLL is a solid line with filled
squares, the training NLL a dashed line with hollow squares; reference values (a
published result, say) are dotted grey lines. The legend names the data the runs
were measured on (``describe_data``); runs on different data, or in different units
(channels, levels, image size), are refused unless asked for. The y axis
is in nats per image, the x axis in epochs; tick values are round numbers (1, 2 or 5
times a power of ten). Text comes from ``minipixel.font``.
"""
import math
import os

import numpy as np

from .font import draw_text, text_size
from .io import loads_json
from .png import write_png

__all__ = ["run_curves", "history_curves", "curves_figure", "write_curves_png", "nice_ticks",
           "describe_data", "check_comparable", "legend_entries", "COLOURS"]

COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
           (23, 190, 207), (140, 86, 75), (227, 119, 194))
_AXIS, _GRID, _TEXT, _WHITE = (60, 60, 60), (225, 225, 225), (20, 20, 20), (255, 255, 255)
_REFERENCE = (110, 110, 110)


def run_curves(run_dir, label=None):
    """{"label", "epoch", "train", "test", "data", "run", "units"} of the run in `run_dir`
    (its metrics.json): data in words, the folder, (channels, levels) or None."""
    path = os.path.join(run_dir, "metrics.json")
    try:
        with open(path, encoding="utf-8") as f:
            metrics = loads_json(f.read())
    except FileNotFoundError:
        raise FileNotFoundError(f"{run_dir}: expected a run folder with metrics.json, "
                                "none found") from None
    except (ValueError, UnicodeDecodeError) as e:       # JSONDecodeError, 1e999, NaN
        raise ValueError(f"{path}: expected JSON written by minipixel train (strict: no NaN, no 1e999), got: "
                         f"{e}") from None
    history = metrics.get("history") if isinstance(metrics, dict) else None
    if not isinstance(history, list):
        raise ValueError(f"{path}: expected a 'history' list of epochs, got none")
    if label is None:
        label = os.path.basename(os.path.normpath(os.path.abspath(run_dir)))
    settings, config = metrics.get("settings"), metrics.get("config")
    spec = settings.get("dataset") if isinstance(settings, dict) else None
    try:
        return {**history_curves(history, label, data=describe_data(spec)), "run": str(run_dir),
                "units": _units(config)}
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


_SOURCES = (("cifar_dir", "CIFAR-10"), ("binarized_mnist_dir", "binarized MNIST"),
            ("mnist_dir", "MNIST"))


def describe_data(spec):
    """'binary digits 28x28', 'grey MNIST 12x12', 'binarized MNIST 28x28': a dataset spec
    (minipixel.data) in words, what its NLLs are measured on; None for no spec."""
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
        return None
    key, source = next(((k, name) for k, name in _SOURCES if spec.get(k)), (None, "digits"))
    crop = spec.get("crop")
    size = crop if isinstance(crop, int) and crop > 0 else (32 if spec.get("cifar_dir") else 28)
    data = source if key == "binarized_mnist_dir" else f"{spec['kind']} {source}"
    return f"{data} {size}x{size}"


def _units(config):
    """(channels, levels) of a run's model config: what one nat per image is a nat of."""
    try:
        return int(config["channels"]), int(config["levels"])
    except (TypeError, KeyError, ValueError):
        return None


def check_comparable(runs):
    """ValueError (one line) unless every run is on the same data in the same units:
    the same dataset kind, source and image size, and the same channels and levels.
    Runs whose metrics do not say are not judged."""
    for key, show in (("data", lambda r: r["data"]),
                      ("units", lambda r: "{} channel(s) of {} levels".format(*r["units"]))):
        known = [r for r in runs if r.get(key) is not None]
        other = next((r for r in known if r[key] != known[0][key]), None)
        if other is not None:
            a, b = known[0], other
            raise ValueError(f"{a.get('run', a['label'])} is on {show(a)}, "
                             f"{b.get('run', b['label'])} on {show(b)}: their NLLs (nats per "
                             f"image) do not compare; plot them apart, or pass --allow-mixed "
                             f"to overlay them")


def history_curves(history, label, data=None):
    """{"label", "epoch", "train", "test", "data"} from a Trainer's history (one dict per
    epoch); data: what the run was measured on, in words (``describe_data``), or None."""
    rows = []
    for entry in history:
        try:
            row = (int(entry["epoch"]), float(entry["train_nll_nats"]),
                   float(entry["test_nll_nats"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            raise ValueError(f"expected history entries with epoch, train_nll_nats and "
                             f"test_nll_nats, got {entry!r}") from None
        rows.append(row)
    epoch, train, test = (list(col) for col in zip(*rows)) if rows else ([], [], [])
    return {"label": str(label), "epoch": epoch, "train": train, "test": test, "data": data}


def nice_ticks(lo, hi, target=5):
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"tick range must be finite, got {lo}..{hi}")
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    count = int(math.ceil((hi - first) / step - 1e-9))
    return [round(first + k * step, 10) for k in range(count + 1)]


def _label(value):
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"


def _line(image, xs, ys, colour, dash=0, width=2):
    """Polyline through (xs, ys) in pixel coordinates; dash > 0: dashes of `dash` pixels."""
    run = 0.0
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        length = math.hypot(x1 - x0, y1 - y0)
        for t in np.linspace(0.0, 1.0, n + 1):
            if dash and int((run + t * length) // dash) % 2:
                continue
            _dot(image, x0 + t * (x1 - x0), y0 + t * (y1 - y0), colour, width)
        run += length


def _dot(image, x, y, colour, size):
    r, c = int(round(y)) - size // 2, int(round(x)) - size // 2
    H, W = image.shape[:2]
    image[max(r, 0):max(min(r + size, H), 0), max(c, 0):max(min(c + size, W), 0)] = colour


def _marker(image, x, y, colour, filled):
    _dot(image, x, y, colour, 7)
    if not filled:
        _dot(image, x, y, _WHITE, 3)


def curves_figure(runs, title=None, width=640, height=400, references=()):
    """One PNG-ready picture (uint8 (height, width, 3)) of the runs' learning curves.

    references: (nats, label) pairs drawn as dotted horizontal lines (e.g. a published
    result to compare with)."""
    runs = [r for r in runs if r["epoch"]]
    if not runs:
        raise ValueError("no finished epochs to plot: every run's history is empty")
    references = [(float(v), str(label)) for v, label in references]
    values = [v for r in runs for v in r["train"] + r["test"]] + [v for v, _ in references]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("cannot plot non-finite NLL values")
    yt = nice_ticks(min(values), max(values))
    last = max(max(r["epoch"]) for r in runs)
    xt = [int(t) for t in nice_ticks(0, last, target=min(last, 8)) if 1 <= t <= last and t == int(t)]
    xt = [1] + [t for t in xt if t > 1] if 1 not in xt else xt
    left = max(text_size(_label(t))[1] for t in yt) + 24
    top, right, bottom = 30, 14, 42
    image = np.full((height, width, 3), 255, np.uint8)
    x_lo, x_hi = (0.5, last + 0.5)
    plot_w, plot_h = width - left - right, height - top - bottom
    if plot_w < 50 or plot_h < 50:
        raise ValueError(f"figure {width}x{height} is too small for a plot")

    def px(epoch):
        return left + (epoch - x_lo) / (x_hi - x_lo) * plot_w

    def py(nats):
        return top + plot_h - (nats - yt[0]) / (yt[-1] - yt[0]) * plot_h

    for t in yt:                                    # grid and y tick labels
        y = int(round(py(t)))
        image[y, left:left + plot_w] = _GRID
        h, w = text_size(_label(t))
        draw_text(image, _label(t), left - 6 - w, y - h // 2, _TEXT)
    for t in xt:
        x = int(round(px(t)))
        image[top + plot_h:top + plot_h + 4, x] = _AXIS
        h, w = text_size(str(t))
        draw_text(image, str(t), x - w // 2, top + plot_h + 7, _TEXT)
    image[top:top + plot_h + 1, left] = _AXIS      # axes
    image[top + plot_h, left:left + plot_w + 1] = _AXIS
    xlabel = "epoch"
    draw_text(image, xlabel, left + (plot_w - text_size(xlabel)[1]) // 2, height - 14, _TEXT)
    ylabel = "NLL (nats per image)"
    draw_text(image, ylabel, 4, top - 11, _TEXT)
    if title:
        title = fit_label(title, width - 4)
        scale = 2 if text_size(title, 2)[1] <= plot_w else 1
        h, w = text_size(title, scale)
        draw_text(image, title, left + max(plot_w - w, 0) // 2, 2, _TEXT, scale=scale)
    for value, label in references:
        y = py(value)
        _line(image, [left + 1, left + plot_w], [y, y], _REFERENCE, dash=3, width=1)
        draw_text(image, fit_label(label, plot_w - 12), left + 6, int(round(y)) - 10,
                  _REFERENCE)
    for k, r in enumerate(runs):
        colour = COLOURS[k % len(COLOURS)]
        xs = [px(e) for e in r["epoch"]]
        _line(image, xs, [py(v) for v in r["train"]], colour, dash=6)
        _line(image, xs, [py(v) for v in r["test"]], colour)
        for x, tr, te in zip(xs, r["train"], r["test"]):
            _marker(image, x, py(tr), colour, filled=False)
            _marker(image, x, py(te), colour, filled=True)
    _legend(image, runs, left + plot_w - 6, top + 6)
    return image


def fit_label(label, width):
    """`label` on one line, cut to at most `width` pixels (ending in "..." when cut)."""
    label = " ".join(str(label).split())              # newlines and tabs as spaces
    if text_size(label)[1] <= width:
        return label
    keep = max((width + 1) // 6 - 3, 0)               # characters are 6 pixels apart
    return label[:keep] + "..."


def legend_entries(runs):
    """The legend's rows as (text, colour or None, dash or None): the data the runs were
    measured on (one row if they share it, else beside each run's label), one colour per
    run, the two line styles."""
    data = {r.get("data") for r in runs}
    shared = data.pop() if len(data) == 1 else None
    entries = [(f"on {shared}", None, None)] if shared else []
    entries += [(r["label"] if shared or not r.get("data") else f"{r['label']} ({r['data']})",
                 COLOURS[k % len(COLOURS)], None) for k, r in enumerate(runs)]
    return entries + [("test", _AXIS, 0), ("train", _AXIS, 6)]


def _legend(image, runs, right, top):
    """A boxed legend (``legend_entries``) whose top-right corner is at (right, top)."""
    entries = legend_entries(runs)
    sample_w, gap, row_h = 26, 6, 14
    room = max(right - (8 + sample_w + gap + 8) - 4, 6)       # the legend stays inside
    entries = [(fit_label(label, room), colour, dash) for label, colour, dash in entries]
    text_w = max(text_size(label)[1] for label, _, _ in entries)
    box_w, box_h = 8 + sample_w + gap + text_w + 8, 6 + row_h * len(entries) + 2
    x0, y0 = max(right - box_w, 0), top
    image[y0:y0 + box_h, x0:x0 + box_w] = _WHITE
    image[y0, x0:x0 + box_w] = image[y0 + box_h - 1, x0:x0 + box_w] = _AXIS
    image[y0:y0 + box_h, x0] = image[y0:y0 + box_h, x0 + box_w - 1] = _AXIS
    for i, (label, colour, dash) in enumerate(entries):
        y = y0 + 6 + i * row_h + 3
        if colour is None:                          # the runs' data: text alone
            draw_text(image, label, x0 + 8, y - 1, _TEXT)
            continue
        if dash is None:                            # a run: its colour
            image[y - 1:y + 6, x0 + 8:x0 + 8 + sample_w] = colour
        else:                                       # a line style
            _line(image, [x0 + 8, x0 + 8 + sample_w], [y + 3, y + 3], colour, dash=dash)
            _marker(image, x0 + 8 + sample_w // 2, y + 3, colour, filled=dash == 0)
        draw_text(image, label, x0 + 8 + sample_w + gap, y - 1, _TEXT)


def write_curves_png(path, run_dirs, labels=None, title=None, width=640, height=400,
                     references=(), allow_mixed=False):
    """Plot the runs in `run_dirs` (labels: one per run, default the folder names); atomic.
    Runs on different data or in different units are refused (``check_comparable``)
    unless allow_mixed."""
    labels = list(labels) if labels is not None else [None] * len(run_dirs)
    if len(labels) != len(run_dirs):
        raise ValueError(f"expected one label per run ({len(run_dirs)}), got {len(labels)}")
    runs = [run_curves(d, label) for d, label in zip(run_dirs, labels)]
    if not allow_mixed:
        check_comparable(runs)
    return write_png(path, curves_figure(runs, title=title, width=width, height=height,
                                         references=references))
