"""Bad input: every wrong flag or damaged file is refused before any work, as one line
(`minipixel <command>: ...`, exit status 2, no traceback), and never costs a good file.

Classes: non-finite numbers (weights, NLL, JSON); numeric flags; resources spent
before a file is refused (huge configs, lying .npy headers, zip bombs); damaged
training state on --resume; outputs that cannot be written; dtypes of saved models.
"""
import errno
import math
import os
import shutil
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bad_files import (TINY, assert_one_line_error, cli, edit_json, file_bytes, npy_bytes,
                       raw_members, read_npz, rewrite, train_tiny, write_zip)
from minipixel.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minipixel.cli import build_parser
from minipixel.io import NpzError, dumps_json, inspect_npz, loads_json, write_json
from minipixel.models import build
from minipixel.nn import Adam, make_optimizer
from minipixel.training import Trainer


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A finished tiny run's checkpoint (never modified: tests copy it)."""
    return train_tiny(tmp_path_factory.mktemp("good"))


def copy(good, tmp_path, name="checkpoint.npz"):
    dst = tmp_path / name
    shutil.copyfile(good, dst)
    return str(dst)


def tiny_model(dtype="float32"):
    return build("rowlstm", channels=1, levels=2, h=2, layers=1, out_hidden=4, dtype=dtype)


# ---- 1. finiteness ----------------------------------------------------------------------
def test_nan_weights_are_refused_on_load_by_every_command(good, tmp_path, capsys):
    def poison(a):
        key = next(k for k in a if k.startswith("model/"))
        a[key] = a[key].copy()
        a[key].flat[0] = np.nan
    bad = rewrite(good, tmp_path / "nan.npz", poison)
    with pytest.raises(CheckpointError, match="non-finite"):
        load_checkpoint(bad)
    for argv in (["evaluate", bad], ["sample", bad, "--out", tmp_path / "s.png"],
                 ["complete", bad, "--out", tmp_path / "c.png"],
                 ["train", "--resume", bad, "--no-progress"]):
        assert_one_line_error(*cli(capsys, *argv), argv[0], "non-finite")
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "c.png").exists()


def test_nan_optimizer_state_is_refused_on_load(good, tmp_path):
    def poison(a):
        key = next(k for k in a if k.startswith("optim/m."))
        a[key] = np.full_like(a[key], np.inf)
    with pytest.raises(CheckpointError, match="non-finite optimizer state"):
        load_checkpoint(rewrite(good, tmp_path / "inf.npz", poison))


def test_saving_non_finite_weights_is_refused_and_keeps_the_old_file(good, tmp_path):
    path = copy(good, tmp_path)
    before = file_bytes(path)
    model = load_checkpoint(path).model
    model.parameters()[0].data[...] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        save_checkpoint(path, model)
    assert file_bytes(path) == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]


def test_evaluate_refuses_a_non_finite_nll_instead_of_printing_nan(good, tmp_path, capsys):
    """Finite but enormous weights: the logits overflow, the NLL is not finite."""
    def huge(a):
        for k in a:
            if k.startswith("model/"):
                a[k] = np.full_like(a[k], 3e38)
    bad = rewrite(good, tmp_path / "huge.npz", huge)
    json_out = tmp_path / "e.json"
    line = assert_one_line_error(*cli(capsys, "evaluate", bad, "--json", json_out), "evaluate")
    assert "nll" in line.lower() and not json_out.exists()


def test_json_is_strict_everywhere(good, tmp_path, capsys):
    path = tmp_path / "m.json"
    write_json(path, {"a": float("nan"), "b": [np.float32(np.inf), np.int64(3)], "c": 1.5})
    assert loads_json(path.read_text()) == {"a": None, "b": [None, 3], "c": 1.5}
    for text in ('{"a": NaN}', '[Infinity]', '[-Infinity]'):
        with pytest.raises(ValueError):
            loads_json(text)
    assert dumps_json(float("-inf")) == "null"
    metrics = os.path.join(os.path.dirname(good), "metrics.json")
    loads_json(open(metrics).read())                            # a real run's metrics parse
    assert cli(capsys, "evaluate", good, "--json", tmp_path / "e.json")[0] == 0
    loads_json((tmp_path / "e.json").read_text())


# ---- 2. numeric flags -------------------------------------------------------------------
BAD_FLAGS = [
    ("train", ["--clip", "-1"]), ("train", ["--clip", "nan"]), ("train", ["--clip", "inf"]),
    ("train", ["--lr", "-1"]), ("train", ["--lr", "0"]), ("train", ["--lr", "nan"]),
    ("train", ["--n-train", "-5"]), ("train", ["--n-train", "0"]), ("train", ["--n-test", "0"]),
    ("train", ["--batch-size", "-1"]), ("train", ["--batch-size", "0"]),
    ("train", ["--epochs", "0"]), ("train", ["--max-steps", "0"]), ("train", ["--seed", "-1"]),
    ("train", ["--h", "0"]), ("train", ["--layers", "0"]), ("train", ["--out-hidden", "-3"]),
    ("train", ["--crop", "0"]), ("train", ["--eval-batch-size", "0"]),
    ("train", ["--samples", "-1"]), ("train", ["--lr", "fast"]), ("train", ["--h", "2.5"]),
    ("evaluate", ["CKPT", "--batch-size", "0"]), ("evaluate", ["CKPT", "--n-test", "-1"]),
    ("sample", ["CKPT", "--size", "0", "5"]), ("sample", ["CKPT", "--cols", "-2"]),
    ("sample", ["CKPT", "--n", "0"]), ("sample", ["CKPT", "--seed", "-1"]),
    ("sample", ["CKPT", "--scale", "0"]),
    ("complete", ["CKPT", "--scale", "0"]), ("complete", ["CKPT", "--images", "0"]),
    ("complete", ["CKPT", "--completions", "-1"]), ("complete", ["CKPT", "--first", "-1"]),
    ("complete", ["CKPT", "--keep-rows", "-2"]), ("complete", ["CKPT", "--seed", "-1"]),
    ("receptive-field", ["--size", "1"]), ("receptive-field", ["--h", "0"]),
    ("receptive-field", ["--scale", "1"]), ("receptive-field", ["--pixel", "-1", "2"]),
]


@pytest.mark.parametrize("command,flags", BAD_FLAGS,
                         ids=[f"{c} {' '.join(f)}" for c, f in BAD_FLAGS])
def test_bad_numeric_flags_are_one_line_errors_before_any_work(good, tmp_path, capsys, command,
                                                              flags):
    flags = [good if f == "CKPT" else f for f in flags]
    t = time.perf_counter()
    rc, err = cli(capsys, command, *flags, "--out", tmp_path / "out.png")
    assert_one_line_error(rc, err, command, next(f for f in flags if f.startswith("--")))
    assert time.perf_counter() - t < 2 and os.listdir(tmp_path) == []


def test_debug_shows_the_traceback_of_an_expected_failure(tmp_path, capsys):
    from minipixel.cli import main
    missing = str(tmp_path / "missing.npz")
    assert_one_line_error(*cli(capsys, "evaluate", missing), "evaluate", "not found")
    for argv in (["--debug", "evaluate", missing], ["evaluate", missing, "--debug"]):
        with pytest.raises(Exception, match="not found"):
            main(argv)


# flag -> (float or int, is this value valid?), for the parser, checked on random values
FLAG_RULES = {
    ("train", "--clip"): (float, lambda v: v >= 0), ("train", "--lr"): (float, lambda v: v > 0),
    ("train", "--batch-size"): (int, lambda v: v >= 1),
    ("train", "--n-train"): (int, lambda v: v >= 1),
    ("train", "--seed"): (int, lambda v: 0 <= v < 2 ** 63),
    ("train", "--epochs"): (int, lambda v: v >= 1),
    ("sample", "--cols"): (int, lambda v: v >= 1), ("complete", "--scale"): (int, lambda v: v >= 1),
}
NUMBER_TEXT = st.one_of(st.integers(-10 ** 20, 10 ** 20).map(str),
                        st.floats(allow_nan=True, allow_infinity=True).map(repr),
                        st.sampled_from(["nan", "inf", "-inf", "1e400", "", "0x10", "1_000",
                                         "one", "--", "-0", "3.0", "-0.0", "1e-400"]))


@settings(suppress_health_check=list(HealthCheck))
@given(flag=st.sampled_from(sorted(FLAG_RULES)), text=NUMBER_TEXT)
def test_random_flag_values_are_accepted_exactly_when_valid(flag, text):
    """The parser alone (no work): a value passes if and only if it is a finite number of
    the flag's kind inside the flag's range."""
    command, name = flag
    kind, rule = FLAG_RULES[flag]
    try:
        value = kind(text)
        valid = math.isfinite(value) and rule(value)
    except ValueError:
        valid = False
    argv = [command] + (["CKPT"] if command != "train" else []) + [name, text]
    try:
        build_parser().parse_args(argv)
        accepted = True
    except SystemExit as e:
        assert e.code == 2
        accepted = False
    assert accepted == valid, (argv, accepted)


# ---- 3. resources spent before a file is refused ----------------------------------------
def refused_cheaply(path, *fragments, seconds=2.0, megabytes=20):
    """load_checkpoint(path) raises CheckpointError fast and without a big allocation."""
    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t < seconds
    assert peak < megabytes * 2 ** 20, f"{peak / 2 ** 20:.0f} MB allocated before refusing"
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("h", [3000, 10 ** 9, 10 ** 30])
def test_a_config_asking_for_a_huge_model_is_refused_before_building_it(good, tmp_path, h):
    bad = rewrite(good, tmp_path / "huge.npz", edit_json("config", lambda c: c.update(h=h)))
    refused_cheaply(bad, "needs at least", "parameters")


@pytest.mark.parametrize("edit,fragment", [
    (lambda c: c.update(h=1e9), "h must be an integer"),
    (lambda c: c.update(h="16"), "h must be an integer"),
    (lambda c: c.update(layers=0), "layers must be"),
    (lambda c: c.update(levels=10 ** 12), "levels must be"),
    (lambda c: c.update(channels=2), "channels must be"),
    (lambda c: c.update(dtype="float16"), "dtype must be"),
    (lambda c: c.pop("h"), "h must be"),
    (lambda c: c.update(model="gan"), "model must be"),
])
def test_a_config_with_wrong_types_or_ranges_is_refused_before_building(good, tmp_path, edit,
                                                                        fragment):
    refused_cheaply(rewrite(good, tmp_path / "bad.npz", edit_json("config", edit)), fragment)


def test_an_npy_header_claiming_terabytes_is_refused_before_reading(good, tmp_path):
    members = raw_members(good)
    key = next(k for k in members if k.startswith("model/"))
    members[key] = npy_bytes((1 << 40,), "<f4", b"\0" * 16)          # 4 TiB declared, 16 B held
    refused_cheaply(write_zip(tmp_path / "lying.npz", members), "header declares")
    members[key] = npy_bytes((1 << 40,), "<f4")
    path = write_zip(tmp_path / "lying_zip.npz", members)
    with zipfile.ZipFile(path, "a") as zf:                             # the directory lies too
        zf.getinfo(key + ".npy").file_size = 1 << 42
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


@settings(max_examples=30, suppress_health_check=list(HealthCheck))
@given(shape=st.lists(st.integers(0, 1 << 40), max_size=4),
       descr=st.sampled_from(["<f4", "<f8", "<i8", "|u1", "|O"]),
       held=st.integers(0, 256), compressed=st.booleans())
def test_random_lying_npy_headers_are_refused_from_the_header(tmp_path_factory, shape, descr,
                                                              held, compressed):
    """Whatever a header claims, inspect_npz believes it only if the member holds exactly
    that many bytes, and never allocates what it claims."""
    path = write_zip(tmp_path_factory.mktemp("npy") / "a.npz",
                     {"x": npy_bytes(shape, descr, bytes(held))},
                     zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED)
    claimed = math.prod(shape) * np.dtype(descr).itemsize
    honest = descr != "|O" and claimed == held
    tracemalloc.start()
    try:
        found = inspect_npz(path)
        assert honest and found["x"] == (tuple(shape), np.dtype(descr))
    except NpzError:
        assert not honest
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_zip_bomb_is_refused_before_decompressing(good, tmp_path):
    members = raw_members(good)
    key = next(k for k in members if k.startswith("model/"))
    n = 64 << 20                                                       # 64 MiB of zeros
    members[key] = npy_bytes((n // 4,), "<f4", bytes(n))
    path = write_zip(tmp_path / "bomb.npz", members, zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 1 << 20
    refused_cheaply(path, "zip bomb")
    members = raw_members(good)                       # many members, each under 1 MiB
    for k in range(40):
        members[f"model/extra{k}"] = npy_bytes((200_000,), "<f4", bytes(800_000))
    path = write_zip(tmp_path / "bombs.npz", members, zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 1 << 20
    refused_cheaply(path, "zip bomb")


@settings(suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(["rowlstm", "diagonal", "pixelcnn"]),
       colour=st.sampled_from([(1, 2), (1, 256), (3, 256)]), h=st.integers(3, 12),
       layers=st.integers(1, 3), out_hidden=st.integers(3, 12))
def test_the_size_bound_never_refuses_a_real_model(kind, colour, h, layers, out_hidden):
    """min_parameters is a lower bound of the true count (so no honest checkpoint is
    refused), and within a factor 3 of it (so a file's weights bound the build)."""
    from minipixel.checkpoint import min_parameters
    C, levels = colour
    config = dict(model=kind, channels=C, levels=levels, h=h, layers=layers,
                  out_hidden=out_hidden)
    n = build(kind, channels=C, levels=levels, h=h, layers=layers,
              out_hidden=out_hidden).num_parameters()
    assert min_parameters(config) <= n <= 3 * min_parameters(config)


def test_pickled_members_are_never_loaded(tmp_path):
    np.savez(tmp_path / "p.npz", format=np.array([{"a": 1}], dtype=object))
    with pytest.raises(NpzError, match="pickled"):
        inspect_npz(tmp_path / "p.npz")
    with pytest.raises(CheckpointError, match="pickled"):
        load_checkpoint(tmp_path / "p.npz")


def test_a_byte_budget_bounds_what_is_read(good):
    with pytest.raises(CheckpointError, match="allowed"):
        load_checkpoint(good, max_bytes=1000)


@settings(max_examples=25, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_corrupted_checkpoint_bytes_load_finite_or_fail_with_one_line(good, tmp_path_factory,
                                                                      capsys, data):
    """Flipped bytes, truncation or garbage anywhere: a CheckpointError, or (if the damage
    missed everything that matters, e.g. a zip comment) a loadable, finite checkpoint."""
    blob = bytearray(file_bytes(good))
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if kind == "flip":
        for i in data.draw(st.lists(st.integers(0, len(blob) - 1), min_size=1, max_size=8)):
            blob[i] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
    else:
        i = data.draw(st.integers(0, len(blob)))
        blob[i:i] = data.draw(st.binary(min_size=1, max_size=64))
    path = tmp_path_factory.mktemp("corrupt") / "c.npz"
    path.write_bytes(bytes(blob))
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        assert_one_line_error(*cli(capsys, "evaluate", path), "evaluate")
    else:
        assert all(np.isfinite(v).all() for v in ckpt.model_state.values())


# ---- 4. damaged training state on --resume ----------------------------------------------
def optim(change):
    def apply(a):
        change(a)
    return apply


def _set(key, value):
    return lambda a: a.__setitem__(key, value)


DAMAGED_STATE = {
    "buffer of the wrong shape": optim(lambda a: a.__setitem__("optim/m.0", np.zeros((2, 2),
                                                                                     np.float32))),
    "negative step count": _set("optim/t", np.array(-3)),
    "fractional step count": _set("optim/t", np.array(2.5)),
    "string step count": _set("optim/t", np.array("six")),
    "missing buffer": lambda a: a.pop("optim/s.1"),
    "extra buffer": _set("optim/velocity.0", np.zeros(3, np.float32)),
    "negative lr in the optimizer": _set("optim/lr", np.array(-0.1)),
    "negative second moment": lambda a: a.__setitem__("optim/s.0", -np.abs(a["optim/s.0"]) - 1),
    "integer buffer": lambda a: a.__setitem__("optim/m.0", a["optim/m.0"].astype(np.int32)),
    "negative step in the epoch": edit_json("train", lambda t: t.update(step=-1)),
    "step past the epoch's end": edit_json("train", lambda t: t.update(step=99, global_step=99,
                                                                       loss_images=24)),
    "string step": edit_json("train", lambda t: t.update(step="3")),
    "missing epoch": edit_json("train", lambda t: t.pop("epoch")),
    "missing batch size": edit_json("train", lambda t: t.pop("batch_size")),
    "batch size 0": edit_json("train", lambda t: t.update(batch_size=0)),
    "unknown optimizer": edit_json("train", lambda t: t.update(optimizer="lbfgs")),
    "negative seed": edit_json("train", lambda t: t.update(seed=-1)),
    "boolean epochs": edit_json("train", lambda t: t.update(epochs=True)),
    "history not a list": edit_json("train", lambda t: t.update(history="none")),
    "image count not matching the step": edit_json("train", lambda t: t.update(step=1,
                                                                               loss_images=5)),
    "global step below the step": edit_json("train", lambda t: t.update(step=2, global_step=1)),
    "clip of -1": edit_json("train", lambda t: t.update(clip=-1)),
    "unknown dataset setting": edit_json("train", lambda t: t["dataset"].update(colour="red")),
    "train state not an object": _set("train", np.array("[1, 2]")),
    # a field a resumed run reads only at the end of an epoch: it trained a whole epoch,
    # then died with a traceback
    "CPU time the string nan": edit_json("train", lambda t: t.update(train_cpu_s="nan")),
    "CPU time negative": edit_json("train", lambda t: t.update(train_cpu_s=-1.0)),
    "thread count 0": edit_json("train", lambda t: t.update(threads=0)),
    "history entry's test NLL a string": edit_json(
        "train", lambda t: t["history"][0].update(test_nll_nats="nan")),
}


@pytest.fixture(scope="module")
def midway(tmp_path_factory):
    """A tiny run stopped after 4 steps (inside epoch 2): a resumable checkpoint."""
    out = tmp_path_factory.mktemp("midway")
    return train_tiny(out, "--max-steps", "4")


@pytest.mark.parametrize("name", sorted(DAMAGED_STATE))
def test_damaged_training_state_is_refused_before_the_first_step(midway, tmp_path, capsys, name,
                                                                 monkeypatch):
    bad = rewrite(midway, tmp_path / "checkpoint.npz", DAMAGED_STATE[name])
    before = file_bytes(bad)
    steps = []
    monkeypatch.setattr(Trainer, "train_step", lambda self, batch: steps.append(1))
    rc, err = cli(capsys, "train", "--resume", bad, "--no-progress", "--samples", "0")
    assert_one_line_error(rc, err, "train", str(bad))
    assert steps == [] and file_bytes(bad) == before
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]


# ---- 6. outputs that cannot be written --------------------------------------------------
def test_out_pointing_at_a_file_is_refused_before_training(tmp_path, capsys, monkeypatch):
    target = tmp_path / "file"
    target.write_text("keep me")
    started = []
    monkeypatch.setattr(Trainer, "run", lambda self: started.append(1))
    for out, fragment in ((target, "is a file"), (target / "sub", "file is a file")):
        rc, err = cli(capsys, "train", "rowlstm", *TINY, "--out", out)
        assert_one_line_error(rc, err, "train", fragment)
    assert started == [] and target.read_text() == "keep me"


def test_sample_and_evaluate_outputs_are_checked_before_the_work(good, tmp_path, capsys,
                                                                 monkeypatch):
    import minipixel.sampling as sampling
    import minipixel.training as training
    monkeypatch.setattr(sampling, "sample", lambda *a, **k: pytest.fail("sampled"))
    monkeypatch.setattr(training, "evaluate_nll", lambda *a, **k: pytest.fail("evaluated"))
    (tmp_path / "file").write_text("x")
    for argv in (["sample", good, "--out", tmp_path],
                 ["sample", good, "--out", tmp_path / "file" / "s.png"],
                 ["sample", good, "--out", tmp_path / "s.png", "--npy", tmp_path],
                 ["complete", good, "--out", tmp_path], ["evaluate", good, "--json", tmp_path],
                 ["receptive-field", "--out", tmp_path / "file" / "rf.png"]):
        assert_one_line_error(*cli(capsys, *argv), argv[0], "cannot write")


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES])
def test_read_only_or_full_output_is_found_before_training(tmp_path, capsys, monkeypatch, code):
    """The write check really writes (and fsyncs) a probe file; an OS that refuses it
    stops the command before any work."""
    started = []
    monkeypatch.setattr(Trainer, "run", lambda self: started.append(1))
    real_fsync = os.fsync

    def failing_fsync(fd):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(os, "fsync", failing_fsync)
    rc, err = cli(capsys, "train", "rowlstm", *TINY, "--out", tmp_path / "run")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert_one_line_error(rc, err, "train", os.strerror(code))
    assert started == [] and os.listdir(tmp_path / "run") == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_folder_is_found_before_training(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert_one_line_error(*cli(capsys, "train", "rowlstm", *TINY, "--out", ro), "train",
                              "cannot write")
    finally:
        ro.chmod(0o700)


def test_a_write_failing_later_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys,
                                                                        monkeypatch):
    """The disk fills up after epoch 1's checkpoint: epoch 2's save fails, epoch 1's stays."""
    import minipixel.training as training
    real, calls = training.save_checkpoint, []

    def save_then_fill_the_disk(path, *args):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, *args)
    monkeypatch.setattr(training, "save_checkpoint", save_then_fill_the_disk)
    rc, err = cli(capsys, "train", "rowlstm", *TINY, "--epochs", "3", "--out", tmp_path)
    assert_one_line_error(rc, err, "train", "No space left on device", "checkpoint.npz")
    ckpt = load_checkpoint(tmp_path / "checkpoint.npz")
    assert ckpt.train["epoch"] == 1 and ckpt.train["status"] == "running"
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f or f.endswith(".lock")]


# ---- 8. the library's dtypes ------------------------------------------------------------
def test_a_model_cast_to_float64_saves_and_loads_as_float64(tmp_path):
    model = tiny_model("float32")
    opt = Adam(model.parameters(), lr=1e-3)
    model.astype(np.float64)
    x = np.random.default_rng(0).integers(0, 2, (2, 1, 5, 5))
    opt.zero_grad()
    model.loss(x).backward()
    opt.step()
    path = save_checkpoint(tmp_path / "c.npz", model, opt, {"epoch": 0})
    ckpt = load_checkpoint(path)
    assert ckpt.config["dtype"] == "float64" and ckpt.model.dtype == np.float64
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(ckpt.model_state[name], value)
    assert {v.dtype for k, v in read_npz(path).items() if k.startswith("optim/")
            and "." in k} == {np.dtype(np.float64)}
    opt2 = make_optimizer("adam", ckpt.model.parameters())
    opt2.load_state_dict(ckpt.optimizer_state)
    np.testing.assert_array_equal(ckpt.model(x).numpy(), model(x).numpy())


def test_a_model_with_mixed_dtypes_is_refused_clearly(tmp_path):
    model = tiny_model()
    model.parameters()[0].data = model.parameters()[0].data.astype(np.float64)
    with pytest.raises(ValueError, match="astype"):
        save_checkpoint(tmp_path / "c.npz", model)
    assert os.listdir(tmp_path) == []


def test_optimizer_settings_are_validated():
    params = tiny_model().parameters()
    for lr in (-1.0, 0.0, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(ValueError, match="learning rate"):
            Adam(params, lr=lr)
    with pytest.raises(ValueError, match="beta"):
        Adam(params, betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("lbfgs", params)
    from minipixel.nn import clip_grad_norm
    for bad in (-1.0, 0.0, float("nan")):
        with pytest.raises(ValueError, match="max_norm"):
            clip_grad_norm(params, bad)
