"""Helpers of the bad-input and fault tests: a tiny run, damaged copies of its files,
and the one-line error check."""
import json
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from minipixel.cli import main

# A run that trains in a fraction of a second: Row LSTM, h=2, 8x8 crops, 3 steps per epoch.
TINY = ["--h", "2", "--layers", "1", "--out-hidden", "4", "--crop", "8", "--n-train", "24",
        "--n-test", "8", "--batch-size", "8", "--no-progress", "--samples", "0"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(capsys, *argv):
    """(exit status, stderr) of `minipixel argv` run in this process."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:             # argparse's usage errors
        rc = e.code
    return rc, capsys.readouterr().err


def assert_one_line_error(rc, err, command, *fragments):
    """Exit status 2, no traceback, and the error as the last line: `minipixel <command>: ...`."""
    assert rc == 2, f"exit status {rc}, stderr: {err}"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"minipixel {command}: "), err
    for fragment in fragments:
        assert fragment.lower() in lines[-1].lower(), (fragment, lines[-1])
    return lines[-1]


def train_tiny(out, *extra, epochs=2):
    rc = main(["train", "rowlstm", *TINY, "--epochs", str(epochs), "--out", str(out), *extra])
    assert rc == 0
    return os.path.join(str(out), "checkpoint.npz")


def spawn_train(out, *extra, epochs=1000):
    """`python -m minipixel train` on the tiny run in a subprocess (stdout piped)."""
    cmd = [sys.executable, "-m", "minipixel", "train", "rowlstm", *TINY, "--epochs", str(epochs),
           "--out", str(out), *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.abspath(str(out))), env=env)


def wait_for_line(proc, prefix):
    for line in proc.stdout:
        if line.startswith(prefix):
            return line
    pytest.fail(f"the run ended before printing {prefix!r}: {proc.stderr.read()}")


# ---- damaged files ---------------------------------------------------------------------
def read_npz(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def rewrite(src, dst, change):
    """A copy of the .npz `src` at `dst` with change(arrays) applied."""
    arrays = read_npz(src)
    change(arrays)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    return str(dst)


def edit_json(key, edit):
    """A change for rewrite(): edit(obj) on the JSON entry `key` (config or train)."""
    def change(arrays):
        obj = json.loads(str(arrays[key]))
        edit(obj)
        arrays[key] = np.array(json.dumps(obj))
    return change


def npy_bytes(shape, descr="<f4", data=b""):
    """An .npy file whose header declares `shape` and `descr`, followed by `data`."""
    header = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


def write_zip(dst, members, compression=zipfile.ZIP_STORED):
    """An .npz from raw member bytes {name: bytes} (names without .npy)."""
    with zipfile.ZipFile(dst, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)
    return str(dst)


def raw_members(path):
    with zipfile.ZipFile(path) as zf:
        return {info.filename[:-4]: zf.read(info) for info in zf.infolist()}


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()
