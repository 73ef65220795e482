"""The audit's default design (auto: shared calls while the function shows itself per-image)
hides no leak the isolated design finds; inputs, progress, batch-size failures, verdict
lines. NumPy only (the PyTorch cases: test_crosscheck_audit_torch.py, test_crosscheck_outside.py).

A wrong PASS is the worst bug the audit can have, so every leak kind is planted and must
FAIL the auto design with the isolated design's exact leak list, and so must every way
one image of a call can reach another (batch coupling) or its place in the call.
"""
import io

import numpy as np
import pytest
from hypothesis import given, strategies as st

from minipixel.crosscheck.audit import (DEFAULT_BATCH, FunctionRaised, audit, scaled,
                                        shared_batch)
from minipixel.crosscheck.audit_cli import AuditProgress, audit_main

from test_crosscheck_audit import batch_norm, causal_rgb, moves_with_position


def causal(images):
    """Causal wiring, one logit per sub-pixel: the left pixel, the pixel above, the earlier
    colours of the own pixel, all non-linear so that nothing cancels."""
    x = images.astype(np.float64)
    out = np.zeros_like(x)
    out[:, :, :, 1:] += np.tanh(x[:, :, :, :-1]).sum(axis=1, keepdims=True)
    out[:, :, 1:, :] += 0.5 * np.sin(x[:, :, :-1, :]).sum(axis=1, keepdims=True)
    for k in range(1, x.shape[1]):
        out[:, k] += np.cos(x[:, :k]).sum(axis=1)
    return out


def planted(o, i, size):
    """causal() plus output o (k, r, c) moving with input i (k', r', c') by `size`."""
    def fn(images):
        out = causal(images)
        out[:, o[0], o[1], o[2]] += size * np.sin(1.0 + images[:, i[0], i[1], i[2]])
        return out
    return fn


KINDS = {   # one planted leak of each kind the report names (C=3, 4x5)
    "the same sub-pixel": ((1, 2, 2), (1, 2, 2)),
    "later colours of the same pixel": ((0, 1, 3), (2, 1, 3)),
    "pixels to the right on the same row": ((2, 3, 0), (0, 3, 4)),
    "rows below": ((0, 0, 4), (1, 3, 0)),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("design", ["auto", "per-image"])
def test_each_leak_kind_fails_the_shared_designs_as_the_isolated_one(kind, design):
    o, i = KINDS[kind]
    fn = planted(o, i, 1e-9)
    iso = audit(fn, 3, 4, H=4, W=5, bases=2, design="isolated")
    got = audit(fn, 3, 4, H=4, W=5, bases=2, design=design)
    assert iso.leaks == got.leaks == [(o, i)]
    assert got.design == "per-image" and not got.passed
    assert np.array_equal(got.change, iso.change)      # the same bases, the same sizes
    assert f"sees {kind}" in got.format()


def test_a_leak_between_perturbed_copies_sharing_a_call_fails():
    """Copies of one base perturbed at different sub-pixels share a call: a function whose
    image sees a sub-pixel of the next image of its call (any later sub-pixel) is coupled,
    and the auto design must never keep its shared calls."""
    def sees_next_image(images):
        out = causal(images)
        out[:-1, 0, 0, 0] += 1e-12 * images[1:, 2, 3, 4]
        return out
    report = audit(sees_next_image, 3, 4, H=4, W=5, bases=1)
    assert report.coupled and not report.passed
    assert report.design == "isolated" and "started again" in report.design_note
    fixed = audit(sees_next_image, 3, 4, H=4, W=5, bases=1, design="per-image")
    assert fixed.coupled and not fixed.passed


@given(o=st.integers(0, 2 * 3 * 4 - 1), ahead=st.integers(0, 10),
       size=st.sampled_from([1e-13, 1e-6, 1.0]), batch=st.sampled_from([None, 5, 7, 13]))
def test_any_planted_leak_fails_the_auto_design_exactly(o, ahead, size, batch):
    """Any output, any input at or after it (raster order), any size a float64 logit can
    carry, any number of images per call: the auto design reports exactly that leak."""
    C, H, W = 2, 3, 4
    P = C * H * W
    r, c, k = np.unravel_index(o, (H, W, C))                      # raster order: r, c, k
    r2, c2, k2 = np.unravel_index(min(o + ahead, P - 1), (H, W, C))
    out, inp = (int(k), int(r), int(c)), (int(k2), int(r2), int(c2))
    report = audit(planted(out, inp, size), C, 4, H=H, W=W, bases=1, batch=batch)
    assert report.leaks == [(out, inp)] and not report.passed


@pytest.mark.parametrize("coupling", ["previous", "next", "far", "mean", "only-later-calls"])
def test_every_kind_of_batch_coupling_sends_auto_to_the_isolated_design(coupling):
    calls = []

    def fn(images):
        calls.append(len(images))
        out = causal(images)
        x = images.astype(np.float64)
        if coupling == "previous":
            out[1:] += 1e-12 * x[:-1]
        elif coupling == "next":
            out[:-1] += 1e-12 * x[1:]
        elif coupling == "far":                  # image n sees image n + 3 of its call
            out[:-3] += 1e-12 * x[3:]
        elif coupling == "mean":
            out += 1e-12 * x.mean(axis=0)
        elif len(calls) > 3:                     # coupled from the 4th call on
            out[1:] += 1e-12 * x[:-1]
        return out
    report = audit(fn, 3, 4, H=4, W=5, bases=2)
    assert report.coupled and not report.passed and report.design == "isolated"
    assert "auto: " in report.design_note and "started again" in report.design_note
    iso = audit(fn, 3, 4, H=4, W=5, bases=2, design="isolated")
    assert iso.leaks == report.leaks


def test_batch_statistics_auto_is_the_isolated_audit():
    """BatchNorm-style statistics: auto sees the coupling in its first calls, starts again
    isolated, and reports exactly the isolated design's leaks within the image."""
    auto = audit(batch_norm, 1, 4, H=5, W=5, bases=2)
    iso = audit(batch_norm, 1, 4, H=5, W=5, bases=2, design="isolated")
    assert auto.design == "isolated" and auto.coupled and not auto.passed
    assert np.array_equal(auto.change, iso.change) and auto.leaks == iso.leaks
    assert len(auto.leaks) > 200
    assert auto.calls < iso.calls + 4          # a few shared calls spent before


def test_position_in_the_call_sends_auto_to_the_isolated_design():
    report = audit(moves_with_position, 3, 4, H=4, W=4, bases=1)
    assert report.design == "isolated" and "place in the call" in report.design_note
    assert report.passed                       # the isolated design holds the image first


def test_auto_shares_calls_for_a_per_image_function_with_the_isolated_verdict():
    iso = audit(causal_rgb, 3, 4, H=8, W=8, bases=3, design="isolated")
    auto = audit(causal_rgb, 3, 4, H=8, W=8, bases=3)
    assert auto.design == "per-image" and auto.leaks == iso.leaks
    assert np.array_equal(auto.change, iso.change)
    # per base: 10 calls of 24 (the base twice, two random images, 20 copies) against
    # 1 + 192 + 3 calls of 4
    assert auto.batch == shared_batch(3 * 8 * 8) == 24
    assert auto.images * 3 < iso.images and auto.calls * 15 < iso.calls


@pytest.mark.parametrize("batch", [5, 6, 7, 9, 13, 17, 28, 40])
def test_shared_calls_measure_every_pair_as_the_isolated_design_at_any_batch(batch):
    """However the perturbed copies are cut into calls (a last call part filled with base
    copies), every pair's change is the isolated design's, to the bit."""
    iso = audit(full_context, 2, 4, H=3, W=4, bases=2, design="isolated")
    got = audit(full_context, 2, 4, H=3, W=4, bases=2, batch=batch)
    assert got.design == "per-image" and got.batch == batch
    assert np.array_equal(got.change, iso.change) and got.passed and iso.passed
    assert got.calls == 2 * max(2, -(-24 // (batch - 4))) + 1


def test_small_batches_leave_auto_isolated_and_every_call_holds_batch_images():
    sizes = []

    def fn(images):
        sizes.append(len(images))
        return causal(images)
    report = audit(fn, 1, 4, H=3, W=3, bases=1, batch=4)
    assert report.design == "isolated" and "no room" in report.design_note
    assert set(sizes) == {4}
    sizes.clear()
    audit(fn, 1, 4, H=3, W=3, bases=2, batch=7)
    assert set(sizes) == {7}
    sizes.clear()
    audit(fn, 1, 4, H=3, W=3, bases=2, design="isolated", batch=6)
    assert set(sizes) == {6}
    with pytest.raises(ValueError, match=">= 5"):
        audit(fn, 1, 4, H=3, W=3, design="per-image", batch=4)
    with pytest.raises(ValueError, match="design"):
        audit(fn, 1, 4, H=3, W=3, design="fast")


def keeps_first_batch_size():
    """A function that sizes a buffer from its first call and keeps it (PixelCNN++'s code
    keeps its border padding), with batch statistics, so the auto design falls back."""
    state = {}

    def fn(images):
        n = state.setdefault("n", len(images))
        if len(images) != n:
            raise RuntimeError(f"Sizes of tensors must match except in dimension 1. "
                               f"Expected size {len(images)} but got size {n}")
        return batch_norm(images)
    return fn


def test_a_function_sized_from_its_first_call_gets_a_one_line_hint():
    with pytest.raises(FunctionRaised) as e:
        audit(keeps_first_batch_size(), 1, 4, H=4, W=4, bases=1)
    B = shared_batch(16)
    msg = str(e.value)
    assert "\n" not in msg and f"ran on calls of {B} images and raised on the first call of " \
        f"{DEFAULT_BATCH}" in msg
    assert "padding sized from the first batch" in msg and f"--batch {B}" in msg
    # what the hint says to do works: every call then holds B images
    report = audit(keeps_first_batch_size(), 1, 4, H=4, W=4, bases=1, batch=B)
    assert report.design == "isolated" and report.batch == B and not report.passed


def test_inputs_conventions_and_the_input_layout():
    seen = {}

    def fn(images):
        seen["x"] = images
        return causal(images)
    V = 5
    for inputs, low, high in (("int", 0, 4), ("unit", 0.0, 1.0), ("signed", -1.0, 1.0)):
        audit(fn, 1, V, H=3, W=3, bases=1, inputs=inputs, design="isolated", batch=1)
        x = seen["x"]
        assert (x.dtype.kind == "i") == (inputs == "int")
        assert x.min() >= low and x.max() <= high
        ints = np.rint(x * (V - 1)) if inputs == "unit" else \
            np.rint((x + 1) * (V - 1) / 2) if inputs == "signed" else x
        assert np.array_equal(scaled(ints.astype(np.int64), inputs, V), x)
    fn.inputs = "unit"                                    # the function says what it takes
    audit(fn, 1, V, H=3, W=3, bases=1)
    assert seen["x"].dtype == np.float64 and seen["x"].max() <= 1
    with pytest.raises(ValueError, match="input convention"):
        audit(fn, 1, V, H=3, W=3, inputs="bytes")

    def nhwc(images):                                     # (N, H, W, C) in, NCHW logits out
        assert images.shape[1:] == (4, 5, 3)
        return causal(images.transpose(0, 3, 1, 2))
    a = audit(nhwc, 3, 4, H=4, W=5, bases=1, input_layout="nhwc")
    b = audit(causal, 3, 4, H=4, W=5, bases=1)
    assert np.array_equal(a.change, b.change)


def test_a_dtype_error_names_the_input_option():
    def wants_floats(images):
        if images.dtype.kind != "f":
            raise RuntimeError("Input type (long int) and bias type (double) should be the same")
        return causal(images)

    def wants_integers(images):
        if images.dtype.kind != "i":
            raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                               "following scalar types: Long, Int; but got torch.DoubleTensor")
        return causal(images)
    with pytest.raises(FunctionRaised, match="--input unit .* or --input signed"):
        audit(wants_floats, 1, 4, H=3, W=3)
    with pytest.raises(FunctionRaised, match="takes integers: --input int"):
        audit(wants_integers, 1, 4, H=3, W=3, inputs="signed")
    assert audit(wants_floats, 1, 4, H=3, W=3, inputs="signed").passed
    assert audit(wants_integers, 1, 4, H=3, W=3, inputs="int").passed


def test_progress_counts_calls_up_to_the_plan():
    seen = []
    report = audit(causal, 3, 4, H=4, W=4, bases=2, progress=lambda d, t: seen.append((d, t)))
    assert [d for d, _ in seen] == list(range(1, report.calls + 1))
    assert seen[-1] == (report.calls, report.calls)         # the plan was right
    seen.clear()
    report = audit(batch_norm, 1, 4, H=3, W=3, bases=1, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (report.calls, report.calls)         # re-planned after falling back
    assert all(d <= t for d, t in seen)


def test_progress_lines_on_stderr():
    stream = io.StringIO()
    bar = AuditProgress("audit", stream, delay=0.0, every=0.0)
    for done in (1, 50, 100):
        bar(done, 100)
    bar.done()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[1].startswith("audit: 50/100 calls (50%), ")
    assert "so far, about" in lines[1] and lines[1].endswith(" left")
    quiet = io.StringIO()
    bar = AuditProgress("audit", quiet)                     # the default waits 3 s first
    bar(1, 100)
    assert quiet.getvalue() == ""


def no_own_pixel(images):
    """Causal, but no colour ever sees its own pixel's earlier colours (the defect a second
    mask-A layer makes)."""
    x = images.astype(np.float64)
    out = np.zeros_like(x)
    out[:, :, :, 1:] += np.tanh(x[:, :, :, :-1]).sum(axis=1, keepdims=True)
    out[:, :, 1:, :] += np.sin(x[:, :, :-1, :]).sum(axis=1, keepdims=True).cumsum(axis=2)
    return out


def test_missing_inside_its_own_pixel_is_reported_apart():
    report = audit(no_own_pixel, 3, 4, H=4, W=4, bases=1)
    assert report.passed
    assert report.own_pixel_summary() == [(1, 0, 16, 16), (2, 0, 16, 16), (2, 1, 16, 16)]
    text = report.format()
    line = next(ln for ln in text.splitlines() if ln.startswith("INSIDE ITS OWN PIXEL"))
    assert "G never moved with its own pixel's R in 16 of 16 pixels" in line
    assert "B never moved with its own pixel's G in 16 of 16 pixels" in line
    assert "second mask-A layer" in line and "Not a leak" in line
    full = audit(no_own_pixel, 3, 4, H=4, W=4, bases=1, expect="full")
    text = full.format()
    assert "reaches 48 own-pixel pairs that this function does not: see INSIDE ITS OWN " \
           "PIXEL" in text
    assert "pairs outside the output's own pixel that this function does not" in text
    assert full.to_dict()["own_pixel_missing"] == [[1, 0, 16], [2, 0, 16], [2, 1, 16]]
    assert "LOW" in text.splitlines()[-1]


def full_context(images):
    """Every output moves with every earlier sub-pixel in raster order (colours inside a
    pixel): an exclusive running sum over (row, column, colour)."""
    N, C, H, W = images.shape
    x = np.sin(1.0 + images.astype(np.float64)).transpose(0, 2, 3, 1).reshape(N, -1)
    before = np.concatenate([np.zeros((N, 1)), np.cumsum(x, axis=1)[:, :-1]], axis=1)
    return np.tanh(before).reshape(N, H, W, C).transpose(0, 3, 1, 2)


def test_a_pass_with_low_coverage_says_so_in_the_verdict_line():
    report = audit(lambda im: causal_rgb(im, leak=False), 3, 4, H=5, W=5, bases=1)
    verdict = report.format().splitlines()[-1]
    assert verdict.startswith("result: PASS") and report.total_coverage < 0.5
    assert f"coverage {100 * report.total_coverage:.1f}% of the causal context, LOW " \
           f"(under 90%)" in verdict
    assert "--probe leaky" in verdict and "--expect KIND" in verdict
    # float32 rounding: faint in-context changes, and what to run for them
    def faint32(images):                        # (3, 3) moves with (0, 0) by ~5e-7
        out = causal(images)
        out[:, 0, 3, 3] += 5e-7 * images[:, 0, 0, 0]           # under float32's 1e-6
        return out.astype(np.float32)
    f32 = audit(faint32, 1, 4, H=4, W=4, bases=1)
    assert f32.dtype == "float32" and f32.passed
    assert f32.faint(True)[0] == 1 and not f32.dep[0, 3, 3, 0, 0, 0]
    assert "float32 rounding hides faint dependencies" in f32.format().splitlines()[-1]
    # the whole context reached, or exactly the expected field: nothing low
    for kw in ({}, dict(expect="full")):
        ok = audit(full_context, 3, 4, H=3, W=4, bases=1, **kw)
        assert ok.total_coverage == 1.0 and ok.low_coverage is None
        assert ok.format().splitlines()[-1] == \
            "result: PASS; coverage 100.0% of the causal context"


def test_every_leak_pattern_prints_its_usual_cause():
    for kind, (o, i) in KINDS.items():
        text = audit(planted(o, i, 1e-3), 3, 4, H=4, W=5, bases=1).format()
        line = next(ln for ln in text.splitlines() if f"sees {kind}" in ln)
        assert "usually " in line, line
    text = audit(planted(*KINDS["the same sub-pixel"], 1e-3), 3, 4, H=4, W=5, bases=1).format()
    assert "usually a first layer with mask B, or mask A's centre kept" in text


def test_cli_design_input_and_probe_flags(capsys, tmp_path):
    tiny = "minipixel.crosscheck.adapters:tiny"
    small = ["--height", "5", "--width", "5", "--bases", "1"]
    pcnn = '{"model": "pixelcnn", "channels": 1, "levels": 4, "h": 1, "layers": 2}'
    assert audit_main([tiny, "--kwargs", pcnn, *small, "--design", "isolated"]) == 0
    assert "isolated design" in capsys.readouterr().out
    # --probe both: the dead paths of a 1-unit PixelCNN against its missing wires (the
    # blind spot and the field's bounds), in one run
    assert audit_main([tiny, "--kwargs", pcnn, *small, "--probe", "both", "--expect",
                       "pixelcnn", "--layers", "2"]) == 0
    out = capsys.readouterr().out
    assert "dead paths (the copy reaches them)" in out and "missing wires" in out
    assert audit_main([tiny, "--kwargs", pcnn, *small, "--probe", "leaky", "--expect",
                       "pixelcnn", "--layers", "2"]) == 0
    out = capsys.readouterr().out
    assert "probe: a copy of the model with leaky ReLUs" in out
    assert "same field as the paper's pixelcnn (2 layers)" in out
    for bad in (["--probe", "leaky"], ["--kernels", "7,3"], ["--expect", "maskb"],
                ["--per-image", "--design", "isolated"], ["--design", "per-image", "--batch",
                                                          "4"], ["--kernels", "7,4"],
                ["--input", "bytes"], ["--input-layout", "nwhc"]):
        target = str(tmp_path / "f.py") + ":make"
        (tmp_path / "f.py").write_text("import numpy as np\ndef make():\n"
                                       "    f = lambda im: np.zeros(im.shape)\n"
                                       "    f.channels, f.levels = 1, 2\n    return f\n")
        try:
            code = audit_main([target, *small, *bad])
        except SystemExit as e:
            code = e.code
        assert code == 2, bad
        err = capsys.readouterr().err
        assert err.count("\n") == 1, (bad, err)
