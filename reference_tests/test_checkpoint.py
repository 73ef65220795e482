"""Checkpoints: exact round trip; every wrong or damaged file is a clear error."""
import json
import os

import numpy as np
import pytest

from minipixel.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minipixel.models import build
from minipixel.nn import make_optimizer


def trained(kind="rowlstm", C=1, levels=2, optimizer="adam"):
    model = build(kind, channels=C, levels=levels, h=2 if C == 1 else 3, layers=1,
                  out_hidden=4, seed=1)
    opt = make_optimizer(optimizer, model.parameters())
    x = np.random.default_rng(0).integers(0, levels, size=(2, C, 5, 5))
    for _ in range(2):
        opt.zero_grad()
        model.loss(x).backward()
        opt.step()
    return model, opt, x


@pytest.mark.parametrize("kind,C,levels,optimizer", [("rowlstm", 1, 2, "adam"),
                                                     ("diagonal", 3, 4, "rmsprop"),
                                                     ("pixelcnn", 1, 2, "sgd")])
def test_round_trip_is_exact(tmp_path, kind, C, levels, optimizer):
    model, opt, x = trained(kind, C, levels, optimizer)
    train = {"epoch": 1, "step": 3, "history": [{"test_nll_nats": 1.5}]}
    path = save_checkpoint(tmp_path / "c.npz", model, opt, train)
    ckpt = load_checkpoint(path)
    assert ckpt.config == model.config and ckpt.train == train
    for name, value in model.state_dict().items():
        got = ckpt.model.state_dict()[name]
        assert got.dtype == value.dtype
        np.testing.assert_array_equal(got, value)
    np.testing.assert_array_equal(ckpt.model(x).numpy(), model(x).numpy())
    opt2 = make_optimizer(optimizer, ckpt.model.parameters())
    opt2.load_state_dict(ckpt.optimizer_state)
    for key, value in opt.state_dict().items():
        np.testing.assert_array_equal(opt2.state_dict()[key], value)
    with np.load(path, allow_pickle=False) as z:        # plain arrays only
        assert str(z["format"]) == "minipixel-checkpoint"
        assert json.loads(str(z["config"])) == model.config


def test_model_only_checkpoint(tmp_path):
    model, _, _ = trained()
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "m.npz", model))
    assert ckpt.train is None and ckpt.optimizer_state == {}


def _rewrite(src, dst, change):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(dst, **arrays)
    return dst


def test_wrong_and_corrupt_files_are_clear_errors(tmp_path):
    model, opt, _ = trained()
    good = str(save_checkpoint(tmp_path / "good.npz", model, opt, {"epoch": 0}))
    blob = open(good, "rb").read()
    cases = {}
    (tmp_path / "trunc.npz").write_bytes(blob[:len(blob) // 2])
    cases["trunc.npz"] = "corrupt or truncated"
    (tmp_path / "text.npz").write_text('{"not": "a checkpoint"}')
    cases["text.npz"] = "expected an .npz"
    flipped = bytearray(blob)
    i = blob.index(b"model/") + 200                # inside a weight array's bytes
    flipped[i] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    cases["flipped.npz"] = "corrupt or truncated"
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    cases["other.npz"] = "no 'format'"
    _rewrite(good, tmp_path / "version.npz", lambda a: a.update(version=np.array(99)))
    cases["version.npz"] = "version 99"
    _rewrite(good, tmp_path / "json.npz", lambda a: a.update(config=np.array("{oops")))
    cases["json.npz"] = "not valid JSON"
    def wrong_shape(a):
        key = next(k for k in a if k.startswith("model/"))
        a[key] = np.zeros((1,) + a[key].shape, a[key].dtype)
    _rewrite(good, tmp_path / "shape.npz", wrong_shape)
    cases["shape.npz"] = "do not fit"
    _rewrite(good, tmp_path / "config.npz",
             lambda a: a.update(config=np.array(json.dumps({**model.config, "h": 3}))))
    cases["config.npz"] = "do not fit"
    _rewrite(good, tmp_path / "kind.npz",
             lambda a: a.update(config=np.array(json.dumps({**model.config, "model": "gan"}))))
    cases["kind.npz"] = "does not build"
    np.savez(tmp_path / "pickled.npz", format=np.array([{"a": 1}], dtype=object))
    cases["pickled.npz"] = "corrupt or truncated|pickled"
    for name, message in cases.items():
        path = str(tmp_path / name)
        with pytest.raises(ValueError, match=message) as info:
            load_checkpoint(path)
        assert isinstance(info.value, CheckpointError)
        assert path in str(info.value), name
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_checkpoint(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="directory"):
        load_checkpoint(tmp_path)


def test_saving_is_atomic(tmp_path, monkeypatch):
    model, opt, _ = trained()
    path = str(save_checkpoint(tmp_path / "c.npz", model, opt, {"epoch": 1}))
    before = open(path, "rb").read()

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, opt, {"epoch": 2})
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["c.npz"]                # no temporary file left behind


# ---- damaged .npy headers in realistically sized members ---------------------------------
def _realistic(tmp_path):
    """The default main job's model (h=16, 2 layers, out_hidden 32) with Adam state: members
    over 8 KB, so the zip reader hands out a header before it has checked the CRC."""
    model = build("diagonal", channels=1, levels=2, h=16, layers=2, out_hidden=32, seed=0)
    opt = make_optimizer("adam", model.parameters())
    path = save_checkpoint(tmp_path / "big.npz", model, opt, {"epoch": 0})
    import zipfile
    with zipfile.ZipFile(path) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)
        raw = open(path, "rb").read()
    at = info.header_offset                  # the local header: name and extra lengths
    start = at + 30 + int.from_bytes(raw[at + 26:at + 28], "little") \
        + int.from_bytes(raw[at + 28:at + 30], "little")
    assert info.file_size > 4 << 10 and raw[start:start + 6] == b"\x93NUMPY"
    return path, raw, info, start


def test_a_flipped_header_byte_in_a_large_member_is_a_checkpoint_error(tmp_path):
    """A byte changed in the header of a member over 4 KB gave tokenize.TokenError (the
    header was parsed by Python's tokenizer before the CRC was checked)."""
    path, raw, info, start = _realistic(tmp_path)
    header_len = int.from_bytes(raw[start + 8:start + 10], "little")
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.npz"
    for offset in range(10, 10 + header_len, 2):
        for value in (rng.integers(0, 256), ord("("), ord("'"), ord("{"), 0):
            data = bytearray(raw)
            data[start + offset] = value
            bad.write_bytes(bytes(data))
            try:
                load_checkpoint(bad)
            except CheckpointError as e:
                assert "\n" not in str(e)


def test_an_edited_header_with_valid_checksums_is_a_checkpoint_error(tmp_path):
    """The same edits written with fresh CRCs: NumPy's header parser raised TokenError or
    SyntaxError; this module's own reader can only refuse with the format error."""
    import zipfile
    path, raw, info, start = _realistic(tmp_path)
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    body = members[info.filename]
    header_len = int.from_bytes(body[8:10], "little")
    edits = [b"'", b"(", b")", b"{", b"}", b",", b":", b"\\", b"\x00", b"9", b" ", b"\n"]
    bad = tmp_path / "edited.npz"
    refused = 0
    for offset in range(10, 10 + header_len):
        for edit in edits[offset % len(edits):] [:3]:
            member = bytearray(body)
            member[offset:offset + 1] = edit
            with zipfile.ZipFile(bad, "w") as zf:
                for name, data in members.items():
                    zf.writestr(name, bytes(member) if name == info.filename else data)
            try:
                load_checkpoint(bad)
            except CheckpointError as e:
                refused += 1
                assert "\n" not in str(e)
    assert refused > header_len            # most edits break the header
