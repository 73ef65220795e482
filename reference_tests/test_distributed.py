"""Data-parallel training over MPI (minipixel/distributed.py): K processes train one run.

The tests marked ``mpi`` start real process groups with ``mpiexec -n 2`` and need the
mpi extra (mpi4py and an MPI library with its launcher); without it they are skipped
and the rest check that minipixel runs as before and never imports mpi4py."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, strategies as st

from bad_files import ROOT, cli
from minipixel.checkpoint import load_checkpoint
from minipixel.distributed import LocalGroup, launched_size
from minipixel.runlock import RunLock

HERE = os.path.dirname(os.path.abspath(__file__))
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")


def _have_mpi4py():
    try:
        return importlib.util.find_spec("mpi4py") is not None
    except (ImportError, ValueError):        # blocked (sys.modules["mpi4py"] = None)
        return False


HAVE_MPI = bool(MPIEXEC) and _have_mpi4py()
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="needs the mpi extra "
                               "(pip install -e '.[mpi]': mpi4py, mpich)")

# 8x8 digits, 24 training images in batches of 7 (parts of 4 and 3, the last batch 2 and 1),
# float64 so that "equal to rounding" can be tight; a Diagonal BiLSTM with h=2.
TINY = ["diagonal", "--h", "2", "--layers", "1", "--out-hidden", "4", "--crop", "8",
        "--n-train", "24", "--n-test", "9", "--batch-size", "7", "--dtype", "float64",
        "--no-progress", "--samples", "0"]


def env(**extra):
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def launcher_flags():
    """Open MPI refuses root and more ranks than cores without these; MPICH needs none."""
    version = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True).stdout
    return ["--allow-run-as-root", "--oversubscribe"] if "Open MPI" in version else []


def mpi_command(k, *argv):
    return [MPIEXEC, *launcher_flags(), "-n", str(k), sys.executable,
            os.path.join(HERE, "mpi_rank.py"), "train", *map(str, argv)]


def mpirun(k, *argv, cwd, timeout=120, **extra_env):
    return subprocess.run(mpi_command(k, *argv), capture_output=True, text=True, cwd=cwd,
                          env=env(**extra_env), timeout=timeout)


def spawn(k, *argv, cwd):
    return subprocess.Popen(mpi_command(k, *argv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=env(),
                            start_new_session=True)


def wait_for(proc, prefix):
    for line in proc.stdout:
        if line.startswith(prefix):
            return
    pytest.fail(f"the run ended before printing {prefix!r}: {proc.stderr.read()}")


def rank_pid(rank, marker):
    """The pid of the process with PMI_RANK=rank whose command line holds `marker`."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if marker.encode() in cmd and b"mpi_rank.py" in cmd \
                and (f"PMI_RANK={rank}".encode() in environ
                     or f"OMPI_COMM_WORLD_RANK={rank}".encode() in environ):
            return int(pid)
    pytest.fail(f"no process of rank {rank} for {marker}")


def end(proc, timeout):
    """The launcher's exit status and stderr; killed (and the test failed) if it hangs."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"the group did not stop within {timeout} s")
    return proc.returncode, proc.stderr.read()


def weights(out):
    return load_checkpoint(os.path.join(out, "checkpoint.npz")).model_state


def assert_bits_equal(a, b):
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def error_lines(err):
    return [line for line in err.splitlines() if line.startswith("minipixel ")]


# ---- without MPI ---------------------------------------------------------------------
@pytest.mark.mpi
def test_the_mpi_tests_run_where_ci_asks_for_them():
    """.ci/run sets MINIPIXEL_TEST_MPI=required: there a missing MPI fails, not skips."""
    if os.environ.get("MINIPIXEL_TEST_MPI") == "required":
        assert HAVE_MPI, "MINIPIXEL_TEST_MPI=required, but mpi4py or mpiexec is missing"



@given(st.integers(0, 60), st.integers(1, 9))
def test_the_ranks_parts_cover_the_batch_in_rank_order(n, size):
    slices = []
    for rank in range(size):
        group = LocalGroup()
        group.rank, group.size = rank, size
        slices.append(group.part(n))
    assert [i for s in slices for i in range(n)[s]] == list(range(n))
    lengths = [s.stop - s.start for s in slices]
    assert max(lengths) - min(lengths) <= 1


def test_without_a_launcher_minipixel_never_imports_mpi4py(tmp_path):
    code = ("import sys; from minipixel.cli import main; "
            f"rc = main({['train', *TINY, '--epochs', '1', '--out', str(tmp_path)]!r}); "
            "assert rc == 0; print('mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env(), timeout=120)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "False", out.stderr
    assert launched_size() == 1


@pytest.mark.parametrize("rank", [0, 1])
def test_a_launcher_without_mpi4py_is_one_line_from_rank_0(tmp_path, rank):
    code = ("import sys; sys.modules['mpi4py'] = None; from minipixel.cli import main; "
            f"sys.exit(main({['train', *TINY, '--out', str(tmp_path)]!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env(PMI_SIZE="2", PMI_RANK=str(rank)), timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    if rank == 0:
        assert len(lines) == 1 and "pip install 'minipixel[mpi]'" in lines[0], out.stderr
    else:
        assert lines == []


# ---- under mpiexec -n 2 ----------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Whole runs of TINY (2 epochs, 8 steps): K=2 twice, K=1 once; folder names."""
    if not HAVE_MPI:
        pytest.skip("needs the mpi extra")
    root = tmp_path_factory.mktemp("runs")
    for name, k in (("k2", 2), ("k2again", 2), ("k1", 1)):
        out = mpirun(k, *TINY, "--epochs", "2", "--out", root / name, cwd=root)
        assert out.returncode == 0, out.stderr
    return root


@pytest.mark.mpi
@needs_mpi
def test_two_processes_end_where_one_does_to_rounding_and_repeat_bit_for_bit(runs, capsys):
    k2, k1 = weights(runs / "k2"), weights(runs / "k1")
    assert_bits_equal(k2, weights(runs / "k2again"))
    for key in k1:
        np.testing.assert_allclose(k2[key], k1[key], rtol=1e-10, atol=1e-12, err_msg=key)
    assert any(not np.array_equal(k2[key], k1[key]) for key in k1)   # two sums, not one
    rc, _ = cli(capsys, "train", *TINY, "--epochs", "2", "--threads", "2",
                "--out", runs / "threads2")
    assert rc == 0
    assert_bits_equal(k2, weights(runs / "threads2"))     # the same two parts, added alike
    metrics = json.loads((runs / "k2" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["global_step"] == 8
    assert sorted(os.listdir(runs / "k2")) == ["checkpoint.npz", "curves.png", "metrics.json"]


@pytest.mark.mpi
@needs_mpi
@pytest.mark.parametrize("first,then", [(2, 2), (2, 1), (1, 2)])
def test_resume_with_the_same_k_is_bit_exact_and_with_another_k_goes_on(runs, first, then):
    out = runs / f"cut{first}{then}"
    assert mpirun(first, *TINY, "--epochs", "2", "--max-steps", "3", "--out", out,
                  cwd=runs).returncode == 0
    done = mpirun(then, "--resume", out / "checkpoint.npz", "--no-progress", "--samples", "0",
                  cwd=runs)
    assert done.returncode == 0, done.stderr
    resumed, whole = weights(out), weights(runs / f"k{then}")
    if first == then:
        assert_bits_equal(resumed, whole)
    for key in whole:
        np.testing.assert_allclose(resumed[key], whole[key], rtol=1e-10, atol=1e-12)
    assert load_checkpoint(out / "checkpoint.npz").train["global_step"] == 8


# ---- faults ------------------------------------------------------------------------------
LONG = [*TINY, "--epochs", "1000"]


@pytest.mark.mpi
@needs_mpi
@pytest.mark.parametrize("target,sig", [("launcher", signal.SIGINT), ("rank 1", signal.SIGTERM),
                                        ("rank 0", signal.SIGTERM)])
def test_a_signal_to_the_launcher_or_one_rank_stops_every_rank_and_rank_0_saves(
        tmp_path, target, sig):
    out = tmp_path / "run"
    proc = spawn(2, *LONG, "--out", out, cwd=tmp_path)
    try:
        wait_for(proc, "epoch 2/")                     # epoch 1 is saved by now
        pid = proc.pid if target == "launcher" else rank_pid(int(target[-1]), str(out))
        os.kill(pid, sig)
        rc, err = end(proc, 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert rc == 128 + sig and "Traceback" not in err, err
    assert error_lines(err) == [f"minipixel train: interrupted ({signal.Signals(sig).name})"]
    ckpt = load_checkpoint(out / "checkpoint.npz")
    t = ckpt.train
    assert t["status"] == "interrupted" and t["global_step"] >= 4
    assert (t["epoch"], t["step"]) in (divmod(t["global_step"], 4), (t["global_step"] // 4 - 1, 4))


@pytest.mark.mpi
@needs_mpi
def test_a_killed_rank_ends_the_group_without_a_hang(tmp_path):
    out = tmp_path / "run"
    proc = spawn(2, *LONG, "--out", out, cwd=tmp_path)
    try:
        wait_for(proc, "epoch 2/")
        os.kill(rank_pid(1, str(out)), signal.SIGKILL)
        rc, err = end(proc, 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert rc != 0 and "Traceback" not in err, err
    assert load_checkpoint(out / "checkpoint.npz").train["epoch"] >= 1    # epoch 1's, intact


@pytest.mark.mpi
@needs_mpi
def test_a_stalled_rank_is_named_in_one_line_once_the_timeout_passes(tmp_path):
    out = tmp_path / "run"
    proc = spawn(2, *LONG, "--peer-timeout", "2", "--out", out, cwd=tmp_path)
    stopped = None
    try:
        wait_for(proc, "epoch 2/")
        stopped = rank_pid(1, str(out))
        os.kill(stopped, signal.SIGSTOP)
        t = time.monotonic()
        rc, err = end(proc, 60)
        took = time.monotonic() - t
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if stopped:
            for s in (signal.SIGKILL, signal.SIGCONT):
                try:
                    os.kill(stopped, s)
                except ProcessLookupError:
                    pass
    assert rc == 2 and "Traceback" not in err and took < 30, err
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("minipixel train: rank 1 of 2 did not "
                                                   "complete a step within 2 s"), err


@pytest.mark.mpi
@needs_mpi
def test_an_error_on_one_rank_mid_step_is_one_line_naming_it(tmp_path):
    out = mpirun(2, *TINY, "--epochs", "2", "--out", tmp_path / "run", cwd=tmp_path,
                 MPI_TEST_FAIL="1:3:memory")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert error_lines(out.stderr) == ["minipixel train: rank 1 of 2: out of memory (injected); "
                                       "try smaller sizes, fewer images or a smaller batch"]


@pytest.mark.mpi
@needs_mpi
def test_a_data_folder_only_rank_0_can_read_is_one_line_naming_rank_1(tmp_path):
    from test_data_readers import grey_images, write_mnist
    write_mnist(tmp_path / "mnist", grey_images(20, 8, 8), grey_images(6, 8, 8, seed=1))
    (tmp_path / "elsewhere").mkdir()
    out = mpirun(2, "pixelcnn", "--h", "2", "--layers", "1", "--mnist-dir", "mnist",
                 "--dataset", "grey", "--no-progress", "--samples", "0", "--out", "run",
                 cwd=tmp_path, MPI_TEST_CWD=f"1:{tmp_path / 'elsewhere'}")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and lines[0].startswith(
        "minipixel train: rank 1 of 2: cannot load the dataset"), out.stderr
    assert not (tmp_path / "run").exists() or os.listdir(tmp_path / "run") == []


@pytest.mark.mpi
@needs_mpi
def test_the_run_lock_holds_for_the_whole_group(tmp_path):
    with RunLock(tmp_path):
        out = mpirun(2, *TINY, "--out", tmp_path, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = error_lines(out.stderr)
    assert len(lines) == 1 and "another minipixel run" in lines[0], out.stderr
    assert not (tmp_path / "checkpoint.npz").exists()


@pytest.mark.mpi
@needs_mpi
def test_a_folder_holding_a_run_is_refused_by_rank_0_in_one_line(tmp_path, capsys):
    from bad_files import file_bytes
    out = tmp_path / "run"
    assert cli(capsys, "train", *TINY, "--epochs", "1", "--out", out)[0] == 0
    before = {name: file_bytes(out / name) for name in os.listdir(out)}
    done = mpirun(2, *TINY, "--out", out, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"minipixel train: {out} already holds a "
                                                   "run"), done.stderr
    finished = mpirun(2, "--resume", out / "checkpoint.npz", "--no-progress", cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.count("the run finished its 1 epoch") == 1, finished.stdout
    assert {name: file_bytes(out / name) for name in os.listdir(out)} == before


@pytest.mark.mpi
@needs_mpi
def test_a_usage_error_under_the_launcher_is_one_line(tmp_path):
    out = mpirun(2, "--h", "x", cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr


# ---- GPUs (on the CuPy stand-in) -----------------------------------------------------------
@pytest.mark.mpi
@needs_mpi
@pytest.mark.parametrize("devices,expected", [(2, [0, 1]), (1, [0, 0])])
def test_each_rank_takes_local_rank_modulo_the_visible_gpus(runs, devices, expected):
    out = runs / f"standin{devices}"
    done = mpirun(2, *TINY, "--epochs", "2", "--device", "cuda", "--out", out, cwd=runs,
                  MPI_TEST_STANDIN=str(devices))
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "metrics.json").read_text())["gpus"] == expected
    assert_bits_equal(weights(out), weights(runs / "k2"))  # via host memory: the CPU's bits
