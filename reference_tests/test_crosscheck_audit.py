"""Black-box causality audit (minipixel/crosscheck/audit.py), NumPy only.

The PyTorch cases (BatchNorm, Row LSTM padding) are in test_crosscheck_audit_torch.py.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minipixel.causality import PROBE_SLOPE, dependency_map
from minipixel.crosscheck.adapters import model_fn, tiny
from minipixel.crosscheck.audit import (DEFAULT_BATCH, AuditError, FunctionRaised,
                                        NondeterministicError, audit, shared_batch)
from minipixel.crosscheck.audit_cli import audit_main
from minipixel.layers.conv import MaskedConv2d
from minipixel.models import build
from minipixel.ops.conv import kept_taps
from minipixel.crosscheck.report import LABEL_INK
from minipixel.figures import FIELD_COLOURS
from minipixel.png import read_png


def causal_rgb(images, leak=True):
    """A hand-made RGB 'model': each sub-pixel's logits from the pixel to its left, the
    pixel above and the earlier colours of its own pixel, plus two deliberate leaks."""
    x = images.astype(np.float64)
    out = np.zeros_like(x)
    out[:, :, :, 1:] += x[:, :, :, :-1].sum(axis=1, keepdims=True)
    out[:, :, 1:, :] += 0.5 * x[:, :, :-1, :].sum(axis=1, keepdims=True)
    out[:, 1] += x[:, 0]
    out[:, 2] += x[:, 0] * x[:, 1]
    H, W = x.shape[2:]
    if leak:
        out[:, 1, 3, 3] += x[:, 2, 3, 3]        # G at (3, 3) sees B of its own pixel
    if leak and H > 5 and W > 6:
        out[:, 0, 1, 6] += x[:, 1, 5, 0]        # R at (1, 6) sees G at (5, 0), a later row
    return out                                   # (N, C, H, W): one logit per sub-pixel



def test_hand_made_leaks_found_exactly_with_sizes():
    report = audit(causal_rgb, channels=3, levels=4, H=8, W=8, bases=2)
    assert not report.passed
    assert report.leaks == [((0, 1, 6), (1, 5, 0)), ((1, 3, 3), (2, 3, 3))]
    sizes = {(o, i): s for o, i, s in report.largest_leaks}
    # logits change by the change of the input value (at most 3 of levels 4), over max |logit|
    assert sizes[(0, 1, 6), (1, 5, 0)] == pytest.approx(report.change[0, 1, 6, 1, 5, 0] /
                                                         report.scale)
    assert 0 < sizes[(1, 3, 3), (2, 3, 3)] <= 3 / report.scale + 1e-12
    text = report.format()
    assert "output (row 1, column 6, colour R) <- input (row 5, column 0, colour G)" in text
    assert "output (row 3, column 3, colour G) <- input (row 3, column 3, colour B)" in text
    assert "typical in-context change (median)" in text
    assert "1 output sees rows below" in text
    assert "result: FAIL (2 leaks)" in text
    fixed = audit(lambda im: causal_rgb(im, leak=False), 3, 4, H=8, W=8, bases=1)
    assert fixed.passed and fixed.leaks == [] and "result: PASS" in fixed.format()
    # it reaches the pixel to the left and above (and their colours), not more
    assert fixed.dep[1, 3, 3, 0, 3, 3] and fixed.dep[2, 3, 3, 2, 3, 2]
    assert fixed.dep[0, 3, 3, 1, 2, 3]
    assert not fixed.dep[0, 3, 3, 0, 3, 1] and 0 < fixed.total_coverage < 0.2


def test_designs_agree_for_a_per_image_function_and_count_their_calls():
    P = 3 * 5 * 4
    iso = audit(causal_rgb, 3, 4, H=5, W=4, bases=2, design="isolated")
    # per base: the base, P perturbed copies, 3 coupling calls; once: the base again
    assert iso.calls == 2 * (1 + P + 3) + 1 and iso.images == 4 * iso.calls
    fast = audit(lambda im: causal_rgb(im)[:, None].repeat(3, axis=1), 3, 4, H=5, W=4,
                 bases=2, batch=9, per_image=True)
    # per base: ceil(P / (9 - 4)) calls of 9 (base, a random image, 5 copies, another, base)
    assert fast.calls == 2 * 12 + 1 and fast.design == "per-image" and fast.batch == 9
    assert fast.images == 9 * fast.calls
    assert np.array_equal(iso.dep, fast.dep) and np.array_equal(iso.change, fast.change)
    assert iso.coupling.max() == 0 and fast.coupling.max() == 0
    # the default (auto) keeps the per-image calls for a per-image function: three calls
    # of shared_batch(P) = 24 images per base, one more for the determinism check
    auto = audit(causal_rgb, 3, 4, H=5, W=4, bases=2)
    assert auto.design == "per-image" and auto.batch == shared_batch(P) == 24
    assert auto.calls == 2 * 3 + 1 and auto.images == 24 * auto.calls
    assert np.array_equal(auto.change, iso.change) and "auto: " in auto.format()


def batch_norm(images, eps=1e-5):
    """Causal wiring, then a training-mode batch norm: statistics over images and positions."""
    x = images.astype(np.float64)
    out = np.zeros_like(x)
    out[:, :, :, 1:] = x[:, :, :, :-1]
    out[:, :, 1:, :] += x[:, :, :-1, :]
    mean, var = out.mean(axis=(0, 2, 3), keepdims=True), out.var(axis=(0, 2, 3), keepdims=True)
    return (out - mean) / np.sqrt(var + eps)


def test_batch_statistics_are_batch_coupling_and_leaks_with_sizes():
    report = audit(batch_norm, 1, 4, H=5, W=5, bases=1)
    assert not report.passed and report.coupled
    assert report.coupling.max() > 1e-3 * report.scale       # its size is kept
    assert len(report.leaks) > 200                            # nearly every future pair
    text = report.format()
    assert "BATCH COUPLING" in text and "every output depends on every input" in text
    assert "result: FAIL (" in text and "batch coupling" in text
    # one image per call (batch 1): no coupling to check, the leak through the image's own
    # statistics is still there
    alone = audit(batch_norm, 1, 4, H=5, W=5, bases=1, batch=1)
    assert alone.coupling is None and not alone.passed and len(alone.leaks) > 200
    assert "batch coupling: not checked" in alone.format()
    # the per-image fast path cannot see the leak (statistics cancel), but the direct
    # coupling check still fails it: no wrong pass
    fast = audit(batch_norm, 1, 4, H=5, W=5, bases=1, per_image=True)
    assert fast.coupled and not fast.passed


def test_coupling_to_the_previous_image_is_found():
    """An image that sees the image before it in the batch: the base is also checked last."""
    def fn(images):
        x = images.astype(np.float64)
        out = np.zeros_like(x)
        out[1:] += 1e-3 * x[:-1]
        return out
    report = audit(fn, 1, 2, H=3, W=3, bases=1)
    assert report.coupled and report.coupling.max() == pytest.approx(1e-3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_leak_of_1e_4_relative_size_is_flagged(dtype):
    scale = np.abs(causal_rgb(np.full((1, 3, 6, 6), 3), leak=False)).max()

    def fn(images):
        out = causal_rgb(images, leak=False)
        out[:, 0, 2, 2] += 1e-4 * scale / 3 * images[:, 0, 4, 1]
        return out.astype(dtype)
    report = audit(fn, 3, 4, H=6, W=6, bases=1)
    assert report.leaks == [((0, 2, 2), (0, 4, 1))]
    # 1e-4 * scale times the change / 3, relative to the base's own max |logit|
    assert 1e-4 / 4 < report.largest_leaks[0][2] <= 1.01e-4 * scale / report.scale
    size = report.largest_leaks[0][2]
    assert f"{size:9.3g}  output (row 2, column 2, colour R)" in report.format()


def test_faint_changes_are_reported_and_tol_zero_finds_them():
    """float32 logits: a leak under the default threshold is reported as a possible leak,
    and --tol 0 turns it into a leak."""
    def fn(images):
        out = causal_rgb(images, leak=False)
        out[:, 1, 1, 1] += 1e-7 * images[:, 0, 3, 0]
        return out.astype(np.float64)
    report = audit(fn, 3, 4, H=5, W=5, bases=1, tol=1e-6)
    assert report.passed and report.faint(False)[0] == 1
    text = report.format()
    assert "1 pairs OUTSIDE the context (possible leaks smaller than the threshold)" in text
    assert "--tol 0, float64 logits, or more --bases" in text
    assert "result: PASS at threshold" in text and "1 pair(s) outside the context" in text
    strict = audit(fn, 3, 4, H=5, W=5, bases=1, tol=0)
    assert strict.leaks == [((1, 1, 1), (0, 3, 0))]


def test_nondeterministic_function_is_an_error_not_a_pass():
    rng = np.random.default_rng(0)

    def noisy(images):
        return causal_rgb(images) + rng.normal(0, 1e-3, size=images.shape)
    with pytest.raises(NondeterministicError, match="not deterministic"):
        audit(noisy, 3, 4, H=4, W=4)
    with pytest.raises(NondeterministicError):
        audit(noisy, 3, 4, H=4, W=4, per_image=True)


def test_logit_layouts_give_the_same_map():
    def grey(images):                                    # (N, 1, H, W) -> (N, V, H, W)
        x = images.astype(np.float64)
        out = np.zeros((len(x), 3) + x.shape[2:])
        out[:, :, :, 1:] = x[:, :, :, :-1] * np.array([1, 2, 3])[:, None, None]
        out[:, 1, 2, 0] += x[:, 0, 2, 1]                 # a leak
        return out
    want = audit(lambda im: grey(im)[:, :, None], 1, 3, H=4, W=4, bases=1)
    for fn, layout in ((grey, "nchw"),
                       (lambda im: grey(im).transpose(0, 2, 3, 1), "nhwc"),        # (N,H,W,V)
                       (lambda im: grey(im)[:, :, None].transpose(0, 3, 4, 2, 1), "nhwc")):
        got = audit(fn, 1, 3, H=4, W=4, bases=1, layout=layout)
        assert np.array_equal(got.change, want.change) and got.leaks == [((0, 2, 0), (0, 2, 1))]
    rgb = audit(lambda im: causal_rgb(im).transpose(0, 2, 3, 1), 3, 4, H=6, W=7, bases=1,
                layout="nhwc")
    assert rgb.leaks == [((0, 1, 6), (1, 5, 0)), ((1, 3, 3), (2, 3, 3))]


@pytest.mark.parametrize("out_shape", [lambda n: (n, 3, 4), lambda n: (n, 2, 3, 4, 4),
                                       lambda n: (n, 4, 4, 3)])
def test_other_shapes_are_a_one_line_error_naming_the_layouts(out_shape):
    with pytest.raises(AuditError) as e:
        audit(lambda im: np.zeros(out_shape(len(im))), 1, 2, H=4, W=4)
    msg = str(e.value)
    assert "\n" not in msg and "(N, levels, C, H, W)" in msg and "nhwc" in msg


def test_bad_outputs_raise():
    with pytest.raises(AuditError, match="expected logits"):
        audit(lambda im: im[:, :1], 3, 4, H=3, W=3)
    with pytest.raises(AuditError, match="non-finite"):
        audit(lambda im: np.full(im.shape, np.nan), 1, 2, H=3, W=3)
    with pytest.raises(AuditError, match="returned a tuple that is not an array"):
        audit(lambda im: (np.zeros(im.shape), "state"), 1, 2, H=3, W=3)
    with pytest.raises(FunctionRaised, match="ZeroDivisionError"):
        audit(lambda im: 1 / 0, 1, 2, H=3, W=3)
    for bad in (dict(batch=0), dict(batch=-1), dict(batch=2, per_image=True), dict(bases=0),
                dict(tol=float("nan")), dict(expect="pixelcnn"), dict(expect="gan", layers=1)):
        with pytest.raises(ValueError):
            audit(causal_rgb, 3, 4, H=3, W=3, **bad)


def test_a_function_that_ignores_its_input_fails():
    report = audit(lambda im: np.ones(im.shape), 1, 2, H=3, W=3, bases=1)
    assert not report.passed and report.saw_nothing and not report.leaks
    assert "nothing was tested" in report.format()
    assert audit(lambda im: np.ones(im.shape), 1, 2, H=1, W=1, bases=1).passed   # no context


def test_a_report_that_evaluated_nothing_fails():
    report = audit(lambda im: causal_rgb(im, leak=False), 3, 4, H=3, W=3, bases=1)
    report.images = 0
    assert not report.passed and "nothing evaluated" in report.format()


@pytest.mark.parametrize("model", ["pixelcnn", "rowlstm", "diagonal"])
@pytest.mark.parametrize("channels,levels", [(1, 2), (3, 16)])
def test_minipixel_models_pass_and_match_the_gradient_map(model, channels, levels):
    m = build(model, channels=channels, levels=levels, h=4, layers=2, out_hidden=8, seed=0,
              dtype=np.float64)
    report = audit(model_fn(m, leaky=True), channels, levels, H=5, W=5, bases=1,
                   per_image=True, expect=model, layers=2)
    assert report.passed, report.format()
    assert report.noise_floor < 1e-12 and report.coupling.max() <= report.threshold
    grad_map = dependency_map(m, 5, 5)                # leaky probe, as model_fn(leaky=True)
    assert np.array_equal(report.dep, grad_map)       # black box == exact gradients
    assert np.array_equal(report.dep & report.allowed, report.expected)   # the paper's field
    assert "same field as the paper's" in report.format()


def test_expect_names_the_pixels_where_fields_differ():
    m = build("pixelcnn", channels=1, levels=2, h=4, layers=1, out_hidden=8, seed=0,
              dtype=np.float64)
    report = audit(model_fn(m, leaky=True), 1, 2, H=6, W=6, bases=1, per_image=True,
                   expect="rowlstm", layers=1)
    text = report.format()
    assert report.passed and "the paper's rowlstm (1 layer) reaches" in text
    # PixelCNN of 1 block sees 4 rows up and 3 + d columns right; the Row LSTM every row
    # above and 2 + d columns right (the fields of fields.py)
    assert ("output (row 5, column 0, colour 0) misses row 2 column 5; row 1 column 5; "
            "row 0 columns 0-5") in text
    shown = report.show(0, 5, 0)
    assert shown.splitlines()[1].startswith("x x x") and "@" in shown.splitlines()[6]
    pcnn = audit(model_fn(m, leaky=True), 1, 2, H=6, W=6, bases=1, per_image=True,
                 expect="pixelcnn", layers=1)
    assert "blind spot" in pcnn.format() and "same field" in pcnn.format()


def test_show_marks_leaks_and_own_subpixel():
    report = audit(causal_rgb, 3, 4, H=4, W=4, bases=1)
    lines = report.show(1, 3, 3).splitlines()
    assert lines[0] == "field of output (row 3, column 3, colour G):"
    assert lines[4].split()[3] == "#@!"                # R reached, G itself, B a leak
    with pytest.raises(ValueError, match="outside"):
        report.show(0, 4, 0)


def test_float32_model_passes_despite_rounding_noise():
    fn = tiny("rowlstm", channels=3, levels=16, dtype="float32")
    report = audit(fn, 3, 16, H=5, W=5, bases=1)
    assert report.passed and report.dtype == "float32"
    assert "logits came in float32" in report.format()


def keep_centre(conv):
    """Turn a mask A into a mask B (a classic leak): keep each group's own centre tap."""
    groups = np.arange(conv.mask.shape[0]) * 3 // conv.mask.shape[0]
    inputs = np.arange(conv.mask.shape[1])
    if conv.mask.shape[1] == 1:
        conv.mask[:, :, 3, 3] = 1
    else:
        conv.mask[:, :, 3, 3] = inputs[None, :] <= groups[:, None]
    conv.taps = kept_taps(conv.mask, *conv.mask.shape[2:])
    conv._mask_on_device.clear()


@pytest.mark.parametrize("model,channels", [("pixelcnn", 3), ("diagonal", 1), ("rowlstm", 3)])
def test_leaky_minipixel_model_flagged_exactly(model, channels):
    m = build(model, channels=channels, levels=16, h=4, layers=2, out_hidden=8, seed=0,
              dtype=np.float64, relu_slope=PROBE_SLOPE)      # its own probe: keeps the mask below
    assert isinstance(m.first, MaskedConv2d)
    keep_centre(m.first)
    report = audit(model_fn(m, leaky=True), channels, 16, H=5, W=4, bases=1, per_image=True)
    expected = [((k, r, c), (k, r, c)) for r in range(5) for c in range(4) for k in range(channels)]
    assert report.leaks == expected
    assert "pattern: every output sees the same sub-pixel" in report.format()


def test_png_map_has_the_shared_palette_and_a_legend(tmp_path):
    report = audit(causal_rgb, 3, 4, H=4, W=5, bases=1)
    report.write_png(tmp_path / "map.png")
    img = read_png(tmp_path / "map.png")
    assert np.array_equal(img, report.map_image())
    tiles_h, tiles_w = (4 * 3 + 1) * 4 * 3 + 1, (5 * 3 * 3 + 1) * 5 + 1
    y, x = report.map_origin()                 # the labels' margins: rows left, columns top
    assert y > 10 and x > 10
    assert img.shape[0] > y + tiles_h + 40 and img.shape[1] >= x + tiles_w
    tiles, key = img[y - 1:y - 1 + tiles_h, x - 1:x - 1 + tiles_w], img[y - 1 + tiles_h:]
    assert np.all(tiles[0] == 140) and np.all(tiles[:, 0] == 140)     # the grid's frame
    leak = np.all(tiles == FIELD_COLOURS["leak"], axis=-1)
    assert leak.sum() == 9                     # one 3x3 cell: G (3, 3) <- B (3, 3)
    for name, colour in FIELD_COLOURS.items():  # the legend shows every colour
        assert np.all(key == colour, axis=-1).sum() >= 25, name
    clean = audit(lambda im: causal_rgb(im, False), 3, 4, H=4, W=5, bases=1).map_image()
    assert not np.all(clean[:y - 1 + tiles_h] == FIELD_COLOURS["leak"], axis=-1).any()
    # the labels: r0 R .. r3 B down the left margin, c0 .. c4 along the top, in ink that
    # is not the leaks' black
    margin = img[y:y - 1 + tiles_h, :x - 2]
    ink = np.all(margin == LABEL_INK, axis=-1)
    assert ink.any() and not np.all(margin == FIELD_COLOURS["leak"], axis=-1).any()
    rows_with_ink = np.flatnonzero(ink.any(axis=1))
    assert rows_with_ink.min() < 13 and rows_with_ink.max() > tiles_h - 13   # 12 labels
    assert np.all(img[:y - 2, x:x + tiles_w] == LABEL_INK, axis=-1).any()


# ---- the command line: loading and exit codes ------------------------------------------
FACTORY = '''
import numpy as np
from helper_next_to_it import shift          # a module beside this file

def make(leak=True, crash=False, noisy=False, overflow=False):
    def fn(images):
        if crash:
            raise TypeError("bad things inside the model")
        x = images.astype(np.float64)
        out = shift(x)
        if leak:
            out[:, 0, 2, 1] += x[:, 0, 2, 2]
        if overflow:                         # a later sub-pixel sends a logit to infinity
            out[:, 0, 0, 0] += np.where(x[:, 0, 3, 3] > 0, np.inf, 0.0)
        if noisy:
            out += np.random.default_rng().normal(size=out.shape)
        return out
    fn.channels, fn.levels = 1, 2
    return fn

def not_callable():
    return 3

def broken_factory():
    return {}["missing"]
'''
HELPER = '''
import numpy as np

def shift(x):
    out = np.zeros(x.shape)
    out[:, :, :, 1:] = x[:, :, :, :-1]
    return out
'''


@pytest.fixture
def factory_file(tmp_path):
    (tmp_path / "helper_next_to_it.py").write_text(HELPER)
    mod = tmp_path / "leaky_factory.py"
    mod.write_text(FACTORY)
    return f"{mod}:make"


SMALL = ["--height", "4", "--width", "4", "--bases", "1"]


def test_audit_main_exit_codes(factory_file, tmp_path, capsys):
    png = tmp_path / "a.png"
    assert audit_main([factory_file, *SMALL, "--png", str(png)]) == 1          # a leak
    out = capsys.readouterr().out
    assert "output (row 2, column 1, colour 0) <- input (row 2, column 2, colour 0)" in out
    assert png.exists() and read_png(png).ndim == 3
    assert audit_main([factory_file, "--kwargs", '{"leak": false}', *SMALL,
                       "--show", "3,1"]) == 0                                      # pass
    out = capsys.readouterr().out
    assert "result: PASS" in out and "field of output (row 3, column 1, colour 0)" in out
    assert audit_main([factory_file, "--kwargs", '{"leak": false}', *SMALL,
                       "--min-coverage", "0.9"]) == 1
    capsys.readouterr()
    # 3: the audited code raised; its traceback is shown
    assert audit_main([factory_file, "--kwargs", '{"crash": true}', *SMALL]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "TypeError: bad things inside the model" in err
    assert audit_main([factory_file.replace(":make", ":broken_factory")]) == 3
    assert "KeyError" in capsys.readouterr().err
    # 2: bad usage or input, one line
    for bad in ([factory_file.replace(":make", ":nope")],
                [factory_file.replace(":make", ":not_callable")],
                ["no_colon_here"], [str(tmp_path / "missing.py") + ":make"],
                ["minipixel.no_such_module:f", "--channels", "1", "--levels", "2"],
                [factory_file, "--kwargs", '{"noisy": true}', *SMALL],     # nondeterministic
                [factory_file, "--kwargs", "[1]"], [factory_file, "--kwargs", "{"],
                [factory_file, "--batch", "-1"], [factory_file, "--batch", "0"],
                [factory_file, "--per-image", "--batch", "2"], [factory_file, "--tol", "inf"],
                [factory_file, "--expect", "rowlstm"], [factory_file, "--show", "1"],
                [factory_file, *SMALL, "--show", "9,9"], [factory_file, "--layout", "nwhc"]):
        assert exit_code(audit_main, bad) == 2, bad
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "minipixel audit" in err, (bad, err)
    assert audit_main(["minipixel.crosscheck.adapters:tiny", "--kwargs",
                       '{"model": "diagonal", "channels": 1, "levels": 2}', *SMALL,
                       "--json"]) == 0
    assert '"passed": true' in capsys.readouterr().out


def exit_code(main, argv):
    """The exit status of a command-line entry, argparse's SystemExit included."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_the_current_directory_does_not_shadow_installed_modules(tmp_path):
    """`audit pkg:FACTORY` finds pkg in the current directory, but a file there named like
    an installed module (here `colorsys`) does not replace it."""
    (tmp_path / "colorsys.py").write_text("raise RuntimeError('shadowed!')\n")
    (tmp_path / "here_factory.py").write_text(
        "import colorsys\nimport numpy as np\n\ndef make():\n"
        "    fn = lambda im: np.pad(im, ((0, 0), (0, 0), (0, 0), (1, 0)))[..., :-1] * 1.0\n"
        "    fn.channels, fn.levels = 1, 2\n"
        "    return fn\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    run = subprocess.run([sys.executable, "-m", "minipixel", "audit", "here_factory:make",
                          *SMALL], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "result: PASS" in run.stdout and "lowest 0.0% at output (row 1, column 0" in run.stdout


def test_audit_a_checkpoint(tmp_path, capsys):
    from minipixel.checkpoint import save_checkpoint
    m = build("pixelcnn", channels=1, levels=2, h=3, layers=1, out_hidden=4, seed=0,
              dtype=np.float32)
    save_checkpoint(tmp_path / "ck.npz", m)
    assert audit_main([str(tmp_path / "ck.npz"), *SMALL, "--expect", "pixelcnn",
                       "--layers", "1"]) == 0
    out = capsys.readouterr().out
    assert "logits came in float64" in out and "result: PASS" in out
    assert audit_main([str(tmp_path / "nothing.npz")]) == 2


# ---- the batch checks' own pairs of evaluations ------------------------------------------
def sees_previous_image(images):
    """Causal wiring, plus image i of a call seeing image i-1 at 1e-3 of its values."""
    out = causal_rgb(images, leak=False)
    out[1:] += 1e-3 * images[:-1]
    return out


def moves_with_position(images):
    """Causal wiring, plus 1e-3 times the image's position in its call: no companion
    changes it, only where it sits."""
    out = causal_rgb(images, leak=False)
    return out + 1e-3 * np.arange(len(images))[:, None, None, None]


def moves_with_companions(images):
    """Causal wiring, plus 1e-3 times the sum of the other images of the call, wherever the
    image sits."""
    out = causal_rgb(images, leak=False)
    return out + 1e-3 * (images.sum(axis=0, keepdims=True) - images)


@pytest.mark.parametrize("per_image", [False, True])
def test_coupling_to_the_previous_image_fails_both_designs_with_its_size(per_image):
    """The per-image design measured its noise floor with the coupled calls themselves, so
    the coupling raised the threshold above itself and passed: coupling is judged against
    a floor measured without companions."""
    report = audit(sees_previous_image, 3, 4, H=4, W=4, bases=1, per_image=per_image)
    assert report.coupled and not report.passed
    # the base last in its call sees the last companion: 1e-3 * (up to 3 levels of change)
    assert report.coupling.max() == pytest.approx(3e-3)
    assert report.coupling_threshold == 0.0
    assert "BATCH COUPLING" in report.format() and "batch coupling" in report.format()


@pytest.mark.parametrize("per_image", [False, True])
def test_position_in_the_call_is_reported_as_position_not_coupling(per_image):
    """The coupling check compares the base with new companions against the base with the
    old ones at the same place in the call: a function that moves with position only shows
    no coupling, and its position change is reported under its own name, with its size."""
    report = audit(moves_with_position, 3, 4, H=4, W=4, bases=1, per_image=per_image)
    assert report.coupling.max() == 0.0 and not report.coupled
    last = (report.batch - 1) if per_image else (DEFAULT_BATCH - 1)
    assert report.position.max() == pytest.approx(1e-3 * last)
    text = report.format()
    assert "position in the call" in text and "BATCH COUPLING" not in text
    if per_image:        # the per-image design's floor is this change: it would hide leaks
        assert not report.passed and "position" in text.splitlines()[-1]
    else:                # the isolated design holds the image of interest at one place
        assert report.passed


@pytest.mark.parametrize("per_image", [False, True])
def test_coupling_to_companions_is_coupling_with_its_size(per_image):
    report = audit(moves_with_companions, 3, 4, H=4, W=4, bases=1, per_image=per_image)
    assert report.coupled and not report.passed
    assert report.position.max() == 0.0
    # each companion sub-pixel may change by up to 3 levels; 3 companions move together
    assert 1e-3 - 1e-12 <= report.coupling.max() <= 9e-3 + 1e-12
    assert report.to_dict()["batch_coupling"] == pytest.approx(
        report.coupling.max() / report.scale)


def test_audit_json_is_strict_json(factory_file, capsys):
    """--json printed Infinity (a leak whose size is infinite), which is not JSON."""
    # a seed whose base image holds 0 at (3, 3), so only perturbed copies overflow (the
    # bases come from default_rng(seed), audit._generators)
    seed = next(s for s in range(100)
                if np.random.default_rng(s).integers(0, 2, size=(1, 1, 4, 4))[0, 0, 3, 3] == 0)
    code = audit_main([factory_file, "--kwargs", '{"overflow": true}', *SMALL, "--json",
                       "--seed", str(seed)])
    text = capsys.readouterr().out
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in --json"))
    assert code == 1 and report["passed"] is False and report["leaks"]
