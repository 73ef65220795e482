"""Reference files (minipixel/crosscheck/reference.py): round trip, contents, clear errors."""
import json
import struct
import zipfile

import numpy as np
import pytest

from minipixel.crosscheck.reference import (ReferenceFormatError, compute_arrays,
                                            model_from_reference, read_reference,
                                            reference_arrays, reference_main, write_reference)
from minipixel.models import build

CONFIG = dict(model="rowlstm", channels=3, levels=16, h=4, layers=2, out_hidden=7, seed=3)


@pytest.fixture(scope="module")
def ref_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "rowlstm.npz"
    arrays = write_reference(path, CONFIG, seed=1, batch=2, H=5, W=7, dtype="float64")
    return path, arrays


def test_round_trip_keeps_every_array(ref_file):
    path, arrays = ref_file
    ref = read_reference(path)
    assert set(ref.keys()) == set(arrays) - {"config"}
    for k, v in arrays.items():
        if k != "config":
            assert ref[k].dtype == v.dtype and np.array_equal(ref[k], v), k
    assert ref.config["model"] == "rowlstm" and ref.config["dtype"] == "float64"
    assert (ref.config["height"], ref.config["width"], ref.config["batch"]) == (5, 7, 2)
    assert ref.config["gate_order"] == "ifgo" and ref.config["channel_groups"] == "contiguous"


def test_contents_shapes_and_layouts(ref_file):
    ref = read_reference(ref_file[0])
    N, C, H, W, V, h, L, F = 2, 3, 5, 7, 16, 4, 2, 7
    assert ref["images"].shape == (N, C, H, W) and ref["images"].dtype == np.int64
    assert ref["logits"].shape == (N, V, C, H, W) and ref["nll"].shape == (N,)
    for i in range(L + 1):
        assert ref[f"layer/{i}"].shape == (N, 2 * h, H, W)
    for i in range(1, L + 1):
        assert ref[f"hidden/{i}"].shape == (N, h, H, W)
    assert ref["skip"].shape == ref["out_hidden"].shape == (N, F, H, W)
    params, masks, grads = ref.group("param"), ref.group("mask"), ref.group("grad")
    assert set(grads) == set(params)
    assert params["layers.0.state_to_state"].shape == (4 * h, h, 1, 3)
    assert params["layers.1.input_to_state.weight"].shape == (4 * h, 2 * h, 1, 3)
    assert set(masks) == {n for n in params if n.endswith(".weight")}
    for name, m in masks.items():
        assert set(np.unique(m)) <= {0.0, 1.0}
        assert not np.any(grads[name][m == 0]), f"gradient where {name}'s mask is 0"
    # mask A: R of the first layer sees nothing of its own pixel, B sees R and G
    first = masks["first.weight"][:, :, 3, 3]
    assert not first[0].any() and first[-1].tolist() == [1, 1, 0]


def test_values_match_the_model(ref_file):
    ref = read_reference(ref_file[0])
    model = model_from_reference(ref)
    nll = model.nll(ref["images"]).numpy()
    assert np.array_equal(nll, ref["nll"])
    again = compute_arrays(model, ref["images"])
    for k in ("logits", "layer/2", "grad/first.weight"):
        assert np.array_equal(again[k], ref[k]), k


def test_float32_and_model_input():
    model = build("pixelcnn", channels=1, levels=2, h=3, layers=1, out_hidden=4, seed=0,
                  dtype=np.float64)
    a32 = reference_arrays(model, seed=0, batch=1, H=4, W=4, dtype="float32")
    assert a32["logits"].dtype == np.float32 and a32["logits"].shape == (1, 1, 4, 4)
    assert json.loads(str(a32["config"]))["dtype"] == "float32"
    assert model.dtype == np.float64          # the caller's model is not changed
    a64 = reference_arrays(model, seed=0, batch=1, H=4, W=4)
    assert np.allclose(a32["logits"], a64["logits"], rtol=1e-4, atol=1e-5)


def test_written_atomically_no_temp_left(tmp_path):
    write_reference(tmp_path / "a.npz", dict(CONFIG, model="pixelcnn"), batch=1, H=4, W=4)
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_corrupt_file_gives_clear_error(ref_file, tmp_path):
    data = ref_file[0].read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReferenceFormatError, match="truncated.npz"):
        read_reference(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ReferenceFormatError, match="not a readable"):
        read_reference(garbage)
    with zipfile.ZipFile(ref_file[0]) as z:                        # damage a member's data
        members = [z.getinfo(n) for n in ("logits.npy", "param/first.weight.npy", "config.npy")]
    for info in members:
        head = info.header_offset
        name_len, extra_len = struct.unpack("<HH", data[head + 26:head + 30])
        start = head + 30 + name_len + extra_len                          # the member's data
        for at in (start + 2, start + info.compress_size // 2, start + info.compress_size * 3 // 4):
            flipped = bytearray(data)
            flipped[at] ^= 0xFF
            bad = tmp_path / "flipped.npz"
            bad.write_bytes(bytes(flipped))
            with pytest.raises(ReferenceFormatError, match="flipped.npz"):
                read_reference(bad)


def test_missing_keys_and_bad_config(ref_file, tmp_path):
    ref = read_reference(ref_file[0])
    arrays = dict(ref.arrays, config=np.array(json.dumps(ref.config)))
    no_logits = {k: v for k, v in arrays.items() if k != "logits"}
    np.savez(tmp_path / "no_logits.npz", **no_logits)
    with pytest.raises(ReferenceFormatError, match="missing key.*logits"):
        read_reference(tmp_path / "no_logits.npz")
    np.savez(tmp_path / "bad_json.npz", **dict(arrays, config=np.array("{nope")))
    with pytest.raises(ReferenceFormatError, match="not valid JSON"):
        read_reference(tmp_path / "bad_json.npz")
    np.savez(tmp_path / "pickled.npz", **dict(arrays, logits=np.array([{"a": 1}], dtype=object)))
    with pytest.raises(ReferenceFormatError, match="pickle"):
        read_reference(tmp_path / "pickled.npz")
    wrong = dict(arrays, **{"grad/first.bias": np.zeros(3)})
    np.savez(tmp_path / "wrong_shape.npz", **wrong)
    with pytest.raises(ReferenceFormatError, match="grad/first.bias"):
        read_reference(tmp_path / "wrong_shape.npz")
    # a partial file (another implementation's output) reads with strict=False
    np.savez(tmp_path / "partial.npz", logits=arrays["logits"])
    assert set(read_reference(tmp_path / "partial.npz", strict=False).keys()) == {"logits"}
    with pytest.raises(FileNotFoundError):
        read_reference(tmp_path / "absent.npz")


def test_model_from_reference_checks_masks(ref_file, tmp_path):
    ref = read_reference(ref_file[0])
    arrays = dict(ref.arrays, config=np.array(json.dumps(ref.config)))
    arrays["mask/first.weight"] = np.ones_like(arrays["mask/first.weight"])
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(ReferenceFormatError, match="mask/first.weight"):
        model_from_reference(tmp_path / "m.npz")


def test_reference_main(tmp_path, capsys):
    out = tmp_path / "d.npz"
    assert reference_main([str(out), "--model", "diagonal", "--channels", "3", "--levels", "4",
                           "--h", "3", "--layers", "1", "--height", "4", "--width", "3"]) == 0
    ref = read_reference(out)
    assert ref.config["model"] == "diagonal" and ref["logits"].shape == (2, 4, 3, 4, 3)
    assert zipfile.is_zipfile(out)
    line = capsys.readouterr().out.strip()
    n = len(ref.arrays) + 1                                  # and the config
    params = len(ref.group("param"))
    assert line == (f"wrote {out}: diagonal, RGB, 4 levels (softmax), h=3, 1 layer(s), "
                    f"out_hidden 8, parameter seed 0; 2 image(s) 4x3 (image seed 0); float64; "
                    f"{n} arrays: the config, the images, {params} parameters, "
                    f"{len(ref.group('mask'))} masks, {params} gradients, 5 layer outputs, "
                    f"the logits and the NLL")
    # layer/0, layer/1, hidden/1, skip, out_hidden
    assert n == 2 + 2 * params + len(ref.group("mask")) + 5 + 2


def test_reference_help_gives_every_default_and_meaning(capsys):
    with pytest.raises(SystemExit) as e:
        reference_main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--channels", "1"), ("--levels", "2"), ("--h", "4"),
                          ("--layers", "2"), ("--out-hidden", "8"), ("--seed", "0"),
                          ("--image-seed", "0"), ("--batch", "2"), ("--height", "5"),
                          ("--width", "6"), ("--dtype", "float64")):
        part = text.split(f"{flag} ", 2)[-1].split(" --", 1)[0]
        assert f"(default {default})" in part, (flag, part)
    assert "which of minipixel's models (required)" in text
    assert "gradient of every parameter" in text and "docs/porting.md" in text
    assert "minipixel reference ref.npz --model diagonal" in text
    with pytest.raises(SystemExit) as e:                      # one line, exit 2
        reference_main(["x.npz", "--model", "gan"])
    assert e.value.code == 2 and capsys.readouterr().err.count("\n") == 1
