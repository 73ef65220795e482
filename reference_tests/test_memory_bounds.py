"""Small files that would cost gigabytes: each reader bounds its memory before allocating.

Each case runs the reader in a subprocess whose address space is limited
(resource.RLIMIT_AS) to what the imports took plus a budget far below what the
unbounded reader needed: the reader must refuse in one line, or (the .amat
file) read within the budget. Without the bound, each of these ran out of
memory (a MemoryError) or took the gigabytes the issue measured.
"""
import gzip
import io
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minipixel.checkpoint import save_checkpoint
from minipixel.models import build

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="measures the address space through /proc and rlimit")

PRELUDE = """
import resource, sys
import numpy as np
import minipixel.checkpoint, minipixel.crosscheck.compare, minipixel.data, minipixel.models
vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + {budget}, vm + {budget}))
"""


def run_limited(code, budget_mb):
    """(exit status, stdout, stderr) of `code` run with `budget_mb` MB of address space
    beyond what importing minipixel took."""
    script = PRELUDE.format(budget=budget_mb << 20) + textwrap.dedent(code)
    env = {"PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MINIPIXEL_BLAS_THREADS": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env=env, timeout=120)
    return r.returncode, r.stdout, r.stderr


def npy_header(shape, dtype):
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(dtype).str,
                                             "fortran_order": False, "shape": shape})
    return f.getvalue()


def add_inflated_member(path, name, shape, dtype, held=8 << 20):
    """Append a deflated member to the .npz at `path` whose .npy header and zip directory
    both declare `shape` of `dtype`, at a ratio under the 200:1 zip-bomb limit, while it
    holds only `held` incompressible bytes after its header."""
    header = npy_header(shape, dtype)
    declared = len(header) + int(np.prod(shape)) * np.dtype(dtype).itemsize
    assert declared < 200 * held and declared < 1 << 32
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name + ".npy", header + np.random.default_rng(0).bytes(held))
    raw = bytearray(Path(path).read_bytes())
    entry = raw.rindex(b"PK\x01\x02")                 # the central directory record
    assert raw[entry + 46:entry + 46 + len(name) + 4] == (name + ".npy").encode()
    raw[entry + 24:entry + 28] = struct.pack("<I", declared)
    local = struct.unpack("<I", raw[entry + 42:entry + 46])[0]
    raw[local + 22:local + 26] = struct.pack("<I", declared)
    Path(path).write_bytes(bytes(raw))
    return declared


def one_line_error(code, err, status=2):
    lines = err.strip().splitlines()
    assert code == status and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_checkpoint_declaring_gigabytes_is_refused_within_a_small_budget(tmp_path):
    """A 9 MB checkpoint under the 200:1 ratio limit declared 1.5 GB and was allocated
    before any refusal: checkpoints are bounded to 16 times their size, and the small
    entries and the config are checked before any array is read."""
    model = build("pixelcnn", channels=1, levels=2, h=2, layers=1, out_hidden=4)
    path = save_checkpoint(tmp_path / "c.npz", model, None, {"epoch": 0})
    add_inflated_member(path, "optim/huge", (375_000_000,), np.float32)
    code, out, err = run_limited(f"""
        from minipixel.cli import main
        sys.exit(main(["evaluate", {str(path)!r}]))
        """, budget_mb=300)
    line = one_line_error(code, err)
    assert "c.npz" in line and "would expand" in line


def test_reference_file_declaring_gigabytes_is_refused_within_a_small_budget(tmp_path):
    """compare's reader had none of the checkpoint reader's checks (np.load allocated a
    member's declared size): it is the same reader now, which reads what a member holds
    in chunks and refuses when it ends early."""
    from minipixel.crosscheck.reference import write_reference
    ref = tmp_path / "ref.npz"
    write_reference(ref, dict(model="pixelcnn", channels=1, levels=2, h=2, layers=1,
                              out_hidden=4, seed=0), batch=1, H=3, W=3)
    theirs = tmp_path / "theirs.npz"
    theirs.write_bytes(ref.read_bytes())
    add_inflated_member(theirs, "layer/9", (225_000_000,), np.float32)   # 900 MB declared
    code, out, err = run_limited(f"""
        from minipixel.crosscheck.compare import compare_main
        sys.exit(compare_main([{str(ref)!r}, {str(theirs)!r}]))
        """, budget_mb=300)
    line = one_line_error(code, err)
    assert "theirs.npz" in line and "member 'layer/9.npy'" in line


def test_mnist_gz_with_one_huge_image_is_refused_from_its_header(tmp_path):
    """A gzip IDX file of 400 KB holding one 20000x20000 image fitted the byte budget and
    cost gigabytes to read and binarize: image sides are bounded from the header."""
    side = 20000
    chunk = gzip.compress(bytes(16_000_000), compresslevel=1)      # concatenated gzip
    images = gzip.compress(struct.pack(">IIII", 0x803, 1, side, side)) + chunk * 25
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(images)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(struct.pack(">II", 0x801, 1) + b"\x03"))
    code, out, err = run_limited(f"""
        from minipixel.data import load_mnist_dir
        try:
            load_mnist_dir({str(tmp_path)!r}, "train", "binary")
        except ValueError as e:
            print(e, file=sys.stderr)
            sys.exit(2)
        """, budget_mb=250)
    line = one_line_error(code, err)
    assert f"{side}x{side}" in line and "at most 256x256" in line


def test_amat_file_is_read_within_a_small_multiple_of_its_size(tmp_path):
    """The .amat reader held about 10 bytes per byte of the file: it streams now, so a
    39 MB file (25,000 images) reads in a budget of about 4 bytes per byte."""
    bits = np.random.default_rng(1).integers(0, 2, size=(4, 784))
    lines = [" ".join(map(str, row)).encode() + b"\n" for row in bits]
    n = 25_000
    path = tmp_path / "binarized_mnist_train.amat"
    path.write_bytes(b"".join(lines) * (n // 4))
    assert path.stat().st_size > 39e6
    code, out, err = run_limited(f"""
        from minipixel.data.amat import read_amat
        images = read_amat({str(path)!r})
        print(images.shape, int(images[:4].sum()))
        """, budget_mb=160)
    assert code == 0, err
    assert out.split() == ["(25000,", "1,", "28,", "28)", str(int(bits.sum()))]
