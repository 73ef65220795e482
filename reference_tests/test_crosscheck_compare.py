"""compare (minipixel/crosscheck/compare.py): pass on identical files, exact first divergence."""
import json

import numpy as np
import pytest

from minipixel.crosscheck.compare import RTOL, compare, compare_main
from minipixel.crosscheck.reference import read_reference, write_reference

CONFIG = dict(model="diagonal", channels=3, levels=8, h=4, layers=2, out_hidden=6, seed=2)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmp")
    write_reference(d / "ref.npz", CONFIG, seed=0, batch=2, H=5, W=7)
    return d


def save(path, ref, **changes):
    arrays = dict(ref.arrays, config=np.array(json.dumps(ref.config)), **changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


def test_identical_files_pass(files, capsys):
    report = compare(str(files / "ref.npz"), str(files / "ref.npz"))
    assert report.passed and report.first_diverging is None and not report.not_compared
    assert report.worst_rel() == 0.0
    assert len(report.results) > 50
    assert compare_main([str(files / "ref.npz"), str(files / "ref.npz")]) == 0
    assert "result: PASS" in capsys.readouterr().out


def test_perturbed_layer_reports_first_position_and_layer(files, capsys):
    ref = read_reference(files / "ref.npz")
    layer1 = ref["layer/1"].copy()              # 2h = 8 maps: groups R 0-2, G 3-5, B 6-7
    layer1[1, 4, 2, 3] += 1e-3                  # image 1, row 2, column 3, channel 4 (G)
    layer1[1, 0, 2, 4] += 1e-3                  # later in raster order, earlier in memory
    layer1[1, 7, 2, 3] += 1e-3                  # same pixel, colour B: after G
    layer1[0, 0, 0, 0] += 1e-14                 # below float64 tolerance: not a divergence
    logits = ref["logits"].copy()
    logits[0, 5, 2, 1, 4] += 0.5                # image 0, value 5, colour B, row 1, column 4
    layer2 = ref["layer/2"] + 1e-3
    theirs = save(files / "theirs.npz", ref, **{"layer/1": layer1, "layer/2": layer2,
                                                "logits": logits})
    report = compare(str(files / "ref.npz"), theirs)
    assert not report.passed
    first = report.first_diverging
    assert first.key == "layer/1"
    assert first.first["where"] == "image 1, row 2, column 3, colour G (channel 4)"
    assert first.first["index"] == [1, 4, 2, 3] and first.n_bad == 3
    assert report.result("logits").first["where"] == "image 0, row 1, column 4, colour B, value 5"
    assert report.result("layer/0").passed and report.result("hidden/1").passed
    assert {r.key for r in report.failures} == {"layer/1", "layer/2", "logits"}
    assert compare_main([str(files / "ref.npz"), theirs]) == 1
    out = capsys.readouterr().out
    assert "first diverging layer: layer/1 at image 1, row 2, column 3, colour G (channel 4)" in out
    assert "result: FAIL (3 of" in out


def test_grey_logits_and_nll_positions(tmp_path):
    write_reference(tmp_path / "g.npz", dict(CONFIG, channels=1, levels=2, model="pixelcnn"),
                    batch=2, H=4, W=5)
    ref = read_reference(tmp_path / "g.npz")
    logits, nll = ref["logits"].copy(), ref["nll"].copy()
    logits[1, 0, 3, 2] = np.nan
    nll[1] *= 1 + 1e-6
    report = compare(ref, save(tmp_path / "t.npz", ref, logits=logits, nll=nll))
    assert report.first_diverging.key == "logits"
    assert report.result("logits").first["where"] == "image 1, row 3, column 2, colour 0"
    assert report.result("nll").first["where"] == "image 1"


def test_partial_file_extra_keys_and_shapes(files):
    ref = read_reference(files / "ref.npz")
    only = {"logits": ref["logits"], "nll": ref["nll"].astype(np.float32)}
    report = compare(ref, only)
    assert report.passed and report.result("nll").rtol == RTOL["float32"]
    assert "layer/0" in report.not_compared
    report = compare(ref, {"logits": ref["logits"][:1], "mystery": np.zeros(3)})
    assert not report.passed
    assert "shape differs" in report.result("logits").note
    assert "not in the reference" in report.result("mystery").note
    assert not compare(ref, {}).passed                 # nothing compared is not a pass


def test_config_and_images_must_match(files, tmp_path):
    ref = read_reference(files / "ref.npz")
    images = ref["images"].copy()
    images[0, 1, 2, 3] = (images[0, 1, 2, 3] + 1) % 8
    report = compare(ref, {"images": images})
    assert report.result("images").first["where"] == "image 0, row 2, column 3, colour G"
    other = dict(ref.arrays, config=np.array(json.dumps(dict(ref.config, h=5))))
    report = compare(ref, other)
    assert not report.passed and "config differs" in report.result("config").note


def test_rtol_and_exit_codes(files, tmp_path, capsys):
    ref = read_reference(files / "ref.npz")
    theirs = save(tmp_path / "t.npz", ref, logits=ref["logits"] * (1 + 1e-7))
    assert compare_main([str(files / "ref.npz"), theirs]) == 1
    assert compare_main([str(files / "ref.npz"), theirs, "--rtol", "1e-6", "--quiet"]) == 0
    capsys.readouterr()
    assert compare_main([str(files / "ref.npz"), theirs, "--json"]) == 1
    as_json = json.loads(capsys.readouterr().out)
    assert as_json["passed"] is False and as_json["first_diverging"] == "logits"
    (tmp_path / "bad.npz").write_bytes(b"junk")
    assert compare_main([str(files / "ref.npz"), str(tmp_path / "bad.npz")]) == 2
    assert "not a readable" in capsys.readouterr().err


def exit_code(main, argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_nan_fails_unless_both_sides_have_it_and_allow_nan(files, tmp_path, capsys):
    ref = read_reference(files / "ref.npz")
    logits = ref["logits"].copy()
    logits[0, 1, 0, 2, 3] = np.nan
    nan_ref = dict(ref.arrays, logits=logits)
    # NaN on both sides at the same place: a failure by default, a pass with allow_nan
    report = compare(nan_ref, {"logits": logits})
    assert not report.passed and "non-finite values: 1 in the reference, 1 in theirs" in \
        report.result("logits").line()
    assert compare(nan_ref, {"logits": logits}, allow_nan=True).passed
    # at another place, or on one side only: a failure even with allow_nan
    moved = ref["logits"].copy()
    moved[0, 1, 0, 2, 4] = np.nan
    assert not compare(nan_ref, {"logits": moved}, allow_nan=True).passed
    assert not compare(ref, {"logits": logits}, allow_nan=True).passed
    # a NaN in a reference array the second file does not hold still fails
    report = compare(nan_ref, {"nll": ref["nll"]}, allow_nan=True)
    assert not report.passed and "NaN or infinite" in report.result("logits").note
    a = save(tmp_path / "a.npz", ref, logits=logits)
    assert compare_main([a, a]) == 1 and compare_main([a, a, "--allow-nan"]) == 0
    capsys.readouterr()


def test_tolerances_must_be_finite_and_positive(files, tmp_path, capsys):
    ref = str(files / "ref.npz")
    for bad in (["--rtol", "nan"], ["--rtol", "0"], ["--rtol", "-1"], ["--atol", "inf"],
                ["--atol=-1e-3"], ["--rtol", "x"]):
        assert exit_code(compare_main, [ref, ref, *bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("finite number > 0" in err or "a number" in err), err
    with pytest.raises(ValueError):
        compare(ref, ref, rtol=float("nan"))
    logits = read_reference(ref)["logits"]
    shifted = save(tmp_path / "s.npz", read_reference(ref), logits=logits + 1e-3)
    assert compare_main([ref, shifted]) == 1
    assert compare_main([ref, shifted, "--atol", "2e-3"]) == 0


def test_identical_files_with_string_entries_pass(files, tmp_path):
    ref = read_reference(files / "ref.npz")
    path = save(tmp_path / "s.npz", ref, notes=np.array("made by hand"),
                names=np.array(["a", "b"]))
    report = compare(path, path)
    assert report.passed, report.format()
    assert report.result("notes").passed and report.result("names").passed
    other = save(tmp_path / "o.npz", ref, notes=np.array("made by machine"),
                 names=np.array(["a", "b"]))
    assert not compare(path, other).result("notes").passed


def test_not_compared_separates_inputs_from_outputs(files):
    ref = read_reference(files / "ref.npz")
    report = compare(ref, {"logits": ref["logits"]})
    text = report.format()
    assert "images" in report.not_compared_inputs and "nll" in report.not_compared_outputs
    assert not any(k.startswith("param/") for k in report.not_compared_outputs)
    assert "inputs not repeated in the second file (fine: they are given)" in text
    assert "outputs not in the second file (NOT compared)" in text


def test_shape_mismatch_counts_in_the_worst_error_and_quiet_shows_the_first(files, tmp_path,
                                                                             capsys):
    ref = read_reference(files / "ref.npz")
    report = compare(ref, {"logits": ref["logits"][:1], "nll": ref["nll"]})
    assert report.worst_rel() == float("inf")
    assert "worst relative error: inf (1 shape mismatch(es): logits)" in report.format()
    layer1 = ref["layer/1"] + 1e-3
    theirs = save(tmp_path / "t.npz", ref, **{"layer/1": layer1, "logits": ref["logits"] + 1})
    assert compare_main([str(files / "ref.npz"), theirs, "--quiet"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 3 and out[0].lstrip().startswith("FAIL  layer/1")
    assert out[-1].startswith("result: FAIL")


def test_reference_size_flags_are_checked(tmp_path, capsys):
    from minipixel.cli import main
    for flag in ("--h", "--layers", "--batch", "--height", "--width", "--out-hidden"):
        argv = ["reference", str(tmp_path / "r.npz"), "--model", "pixelcnn", flag, "0"]
        assert main(argv) == 2, flag
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"argument {flag}: expected an integer >= 1" in err
    assert main(["reference", str(tmp_path / "r.npz"), "--model", "pixelcnn", "--levels",
                 "1"]) == 2
    assert not (tmp_path / "r.npz").exists()


def test_relative_error_is_against_the_reference_scale(files):
    """Twice the reference is off by the reference's own size (exactly 1.0), half of it by
    0.5: the scale is the reference's max |value|, not the second file's."""
    ref = read_reference(files / "ref.npz")
    for factor, rel in ((2.0, 1.0), (0.5, 0.5)):
        report = compare(ref, {"logits": ref["logits"] * factor, "nll": ref["nll"] * factor})
        assert report.result("logits").max_rel == rel and report.result("nll").max_rel == rel
        assert not report.passed


@pytest.mark.parametrize("flags", [["--rtol", "1e307"], ["--rtol", "1e308"], ["--atol", "1e308"],
                                   ["--rtol", "1e307", "--atol", "1e308"], ["--rtol", "1e300"]])
def test_all_nan_output_fails_whatever_the_tolerance(files, tmp_path, capsys, flags):
    """rtol * scale overflowed to infinity (nll's scale is about 200) and inf <= inf passed
    an all-NaN output: a non-finite value fails unless --allow-nan, and a tolerance whose
    product with the scale is not finite is refused as a flag (exit 2, one line)."""
    ref = read_reference(files / "ref.npz")
    nan = {"nll": np.full_like(ref["nll"], np.nan)}              # the largest scale
    path = save(tmp_path / "nan.npz", ref, **nan)
    code = compare_main([str(files / "ref.npz"), path, *flags])
    out, err = capsys.readouterr()
    rtol = float(flags[flags.index("--rtol") + 1]) if "--rtol" in flags else 1e-9
    atol = float(flags[flags.index("--atol") + 1]) if "--atol" in flags else 0.0
    with np.errstate(over="ignore"):
        limit = rtol * np.abs(ref["nll"]).max() + atol
    if np.isfinite(limit):
        assert code == 1 and "result: FAIL" in out
    else:
        assert code == 2 and err.count("\n") == 1 and "not a finite tolerance" in err
    with pytest.raises(ValueError, match="not a finite tolerance"):
        compare(ref, {"nll": ref["nll"]}, rtol=1e307)
    report = compare(ref, nan, rtol=1e300, atol=1e300)
    assert not report.passed and report.result("nll").n_bad == ref["nll"].size


def test_json_output_is_strict_json(files, tmp_path, capsys):
    """--json printed Infinity (an infinite error), which is not JSON."""
    ref = read_reference(files / "ref.npz")
    inf = save(tmp_path / "inf.npz", ref, logits=np.full_like(ref["logits"], np.inf))
    assert compare_main([str(files / "ref.npz"), inf, "--json"]) == 1
    text = capsys.readouterr().out
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in --json"))
    assert report["passed"] is False and "Infinity" not in text and "NaN" not in text
