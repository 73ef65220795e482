"""Black-box causality audit (minipixel/crosscheck/audit.py)."""
import numpy as np
import pytest

from minipixel.causality import dependency_map, probe_activation
from minipixel.crosscheck.adapters import model_fn, tiny
from minipixel.crosscheck.audit import AuditError, audit
from minipixel.crosscheck.audit_cli import audit_main
from minipixel.layers.conv import MaskedConv2d
from minipixel.models import build
from minipixel.ops.conv import kept_taps
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


def test_hand_made_leaks_found_exactly():
    report = audit(causal_rgb, channels=3, levels=4, H=8, W=8)
    assert not report.passed
    assert report.leaks == [((0, 1, 6), (1, 5, 0)), ((1, 3, 3), (2, 3, 3))]
    text = report.format()
    assert "output (row 1, column 6, colour R) <- input (row 5, column 0, colour G)" in text
    assert "output (row 3, column 3, colour G) <- input (row 3, column 3, colour B)" in text
    assert "result: FAIL (2 leaks)" in text
    fixed = audit(lambda im: causal_rgb(im, leak=False), 3, 4, H=8, W=8)
    assert fixed.passed and fixed.leaks == []
    # it reaches the pixel to the left and above (and their colours), not more
    assert fixed.dep[1, 3, 3, 0, 3, 3] and fixed.dep[2, 3, 3, 2, 3, 2] and fixed.dep[0, 3, 3, 1, 2, 3]
    assert not fixed.dep[0, 3, 3, 0, 3, 1] and 0 < fixed.total_coverage < 0.2


def test_batching_and_levels_axis_give_the_same_map():
    whole = audit(causal_rgb, 3, 4, H=5, W=4, bases=1)
    split = audit(lambda im: causal_rgb(im)[:, None].repeat(3, axis=1), 3, 4, H=5, W=4,
                  bases=1, batch=7)
    assert split.calls == 9 and np.array_equal(whole.dep, split.dep)


@pytest.mark.parametrize("model", ["pixelcnn", "rowlstm", "diagonal"])
@pytest.mark.parametrize("channels,levels", [(1, 2), (3, 16)])
def test_minipixel_models_pass_and_match_the_gradient_map(model, channels, levels):
    m = build(model, channels=channels, levels=levels, h=4, layers=2, out_hidden=8, seed=0,
              dtype=np.float64)
    report = audit(model_fn(m, leaky=True), channels, levels, H=6, W=6, bases=2)
    assert report.passed, report.format()
    assert report.images == 2 * (channels * 36 + 2) and report.noise_floor == 0
    with probe_activation(m):
        grad_map = dependency_map(m, 6, 6)
    assert np.array_equal(report.dep, grad_map)       # black box == exact gradients
    assert 0.5 < report.total_coverage <= 1 and "coverage of the causal context" in report.format()


def test_float32_model_passes_despite_rounding_noise():
    fn = tiny("rowlstm", channels=3, levels=16, dtype="float32")
    report = audit(fn, 3, 16, H=8, W=8)
    assert report.passed and report.dtype == "float32"
    assert report.threshold >= 4 * report.noise_floor


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
              dtype=np.float64)
    assert isinstance(m.first, MaskedConv2d)
    keep_centre(m.first)
    report = audit(model_fn(m, leaky=True), channels, 16, H=6, W=5)
    expected = [((k, r, c), (k, r, c)) for r in range(6) for c in range(5) for k in range(channels)]
    assert report.leaks == expected


def test_png_map(tmp_path):
    report = audit(causal_rgb, 3, 4, H=4, W=5, bases=1)
    report.write_png(tmp_path / "map.png")
    img = read_png(tmp_path / "map.png")
    assert img.shape == ((4 * 3 + 1) * 4 * 3 + 1, (5 * 3 * 3 + 1) * 5 + 1, 3)
    assert np.array_equal(img, report.map_image())
    red = np.all(img == report.PALETTE["leak"], axis=-1)
    assert red.sum() == 9                      # one 3x3 cell: G (3, 3) <- B (3, 3)
    clean = audit(lambda im: causal_rgb(im, False), 3, 4, H=4, W=5, bases=1).map_image()
    assert not np.all(clean == report.PALETTE["leak"], axis=-1).any()


def test_bad_outputs_raise():
    with pytest.raises(AuditError, match="must return logits"):
        audit(lambda im: im[:, :1], 3, 4, H=3, W=3)
    with pytest.raises(AuditError, match="non-finite"):
        audit(lambda im: np.full(im.shape, np.nan), 1, 2, H=3, W=3)


FACTORY = '''
import numpy as np

def make(leak=True):
    def fn(images):
        x = images.astype(np.float64)
        out = np.zeros(x.shape)
        out[:, :, :, 1:] = x[:, :, :, :-1]
        if leak:
            out[:, 0, 2, 1] += x[:, 0, 2, 2]
        return out
    fn.channels, fn.levels = 1, 2
    return fn

def not_callable():
    return 3
'''


def test_audit_main(tmp_path, capsys):
    mod = tmp_path / "leaky_factory.py"
    mod.write_text(FACTORY)
    png = tmp_path / "a.png"
    assert audit_main([f"{mod}:make", "--height", "4", "--width", "4", "--png", str(png)]) == 1
    out = capsys.readouterr().out
    assert "output (row 2, column 1, colour 0) <- input (row 2, column 2, colour 0)" in out
    assert png.exists() and read_png(png).ndim == 3
    assert audit_main([f"{mod}:make", "--kwargs", '{"leak": false}', "--height", "4",
                       "--width", "4"]) == 0
    assert audit_main([f"{mod}:make", "--kwargs", '{"leak": false}', "--height", "4",
                       "--width", "4", "--min-coverage", "0.9"]) == 1
    capsys.readouterr()
    assert audit_main(["minipixel.crosscheck.adapters:tiny", "--kwargs",
                       '{"model": "diagonal", "channels": 1, "levels": 2}', "--json"]) == 0
    assert '"passed": true' in capsys.readouterr().out
    for bad in ([f"{mod}:nope"], [f"{mod}:not_callable"], ["no_colon_here"],
                ["minipixel.no_such_module:f", "--channels", "1", "--levels", "2"]):
        assert audit_main(bad) == 2
    assert "minipixel audit:" in capsys.readouterr().err
