#!/usr/bin/env python3
"""The GPU check: what a CUDA GPU has to confirm, in one run, written to one report.

    pip install -e ".[test,cuda12]"          # or [cuda13]
    python .ci/gpu_check.py --out gpu_report.md

1. The whole test suite with device 'cuda' on real CuPy (MINIPIXEL_TEST_CUDA=real:
   a cuda variant fails instead of falling back to the stand-in): every cuda
   variant must pass and none may be skipped.
2. The benchmark's training-step and sampling rows on CUDA
   (demos/benchmark.py --device cuda --no-torch).
3. A training step at the paper's CIFAR-10 size, Row LSTM and Diagonal BiLSTM:
   12 layers, h=128, 1024 output maps, batch 16, 32x32 RGB, 256-way softmax
   (the benchmark's cifar setting), with the GPU memory pool's size after it.

Exit status 0 when the suite passed with no cuda variant skipped and every
benchmark ran. The suite runs under CI=true (the small derandomized hypothesis
profile) unless CI is set otherwise.

``--stand-in`` runs all of it on the test suite's CuPy stand-in
(reference_tests/cupy_standin.py) instead of a GPU; with ``--small`` the
benchmarks shrink to a smoke setting and ``--tests`` picks the test files. That
is how the project's own suite checks this script on machines without a GPU;
its timings mean nothing.
"""
import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from minipixel import backend  # noqa: E402

CUDA_VARIANT = re.compile(r"\[(?:.*-)?cuda(?:-.*)?\]$")


# ---- 1. the suite ------------------------------------------------------------------------

def summarize_junit(path):
    """Counts of passed / failed / skipped tests, all and cuda variants, from a JUnit file;
    and the names of the cuda variants that did not pass."""
    counts = {group: dict(passed=0, failed=0, skipped=0) for group in ("all", "cuda")}
    not_passed = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped" and outcome == "passed":
                outcome = "skipped"
        name = case.get("name", "")
        counts["all"][outcome] += 1
        if CUDA_VARIANT.search(name):
            counts["cuda"][outcome] += 1
            if outcome != "passed":
                not_passed.append(f"{case.get('classname')}::{name} ({outcome})")
    return counts, not_passed


def run_suite(tests, mode):
    env = dict(os.environ, MINIPIXEL_TEST_CUDA=mode)
    env.setdefault("CI", "true")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as tmp:
        junit = os.path.join(tmp, "junit.xml")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                               "-rfEs", f"--junitxml={junit}", *tests], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        counts, not_passed = summarize_junit(junit) if os.path.exists(junit) else (None, [])
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    ok = (proc.returncode == 0 and counts is not None and counts["cuda"]["passed"] > 0
          and counts["cuda"]["skipped"] == 0 and counts["cuda"]["failed"] == 0)
    return dict(ok=ok, returncode=proc.returncode, seconds=seconds, counts=counts,
                not_passed=not_passed, tail=tail)


# ---- 2 and 3. the benchmarks ----------------------------------------------------------------

def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark",
                                                  os.path.join(ROOT, "demos", "benchmark.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_benchmark(bench, argv):
    """benchmark.main(argv) on device cuda: (ok, printed table, JSON rows)."""
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = os.path.join(tmp, "rows.json")
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                bench.main(["--device", "cuda", "--no-torch", "--no-memory", "--json", rows_path,
                            *argv])
            with open(rows_path) as f:
                rows = json.load(f)
            ok = True
        except Exception as e:  # noqa: BLE001  (reported, and the check fails)
            rows, ok = [], False
            printed.write(f"\nFAILED: {type(e).__name__}: {e}\n")
    return ok, printed.getvalue(), rows


def memory_pool_bytes(reset=False):
    """Bytes CuPy's memory pool holds (None on the stand-in): after a run, about its peak."""
    xp = backend.cuda_module()
    if "standin" in xp.__version__:
        return None
    pool = xp.get_default_memory_pool()
    if reset:
        pool.free_all_blocks()
    return pool.total_bytes()


def cifar_steps(bench, small):
    """One training-step benchmark per model at the paper's CIFAR-10 size."""
    rows, text, ok = [], [], True
    for model in ("rowlstm", "diagonal"):
        memory_pool_bytes(reset=True)
        setting = ["--settings", "smoke", "--reps", "1"] if small else ["--settings", "cifar",
                                                                        "--reps", "5"]
        done, printed, got = run_benchmark(bench, [*setting, "--models", model, "--no-sampling"])
        ok &= done
        text.append(printed)
        for row in got:
            row["gpu_pool_bytes"] = memory_pool_bytes()
            rows.append(row)
    return ok, "".join(text), rows


# ---- the report ---------------------------------------------------------------------------

def environment(stand_in):
    import numpy as np
    xp = backend.cuda_module()
    lines = [f"- python {platform.python_version()}, numpy {np.__version__}, "
             f"{os.cpu_count()} CPU cores, {platform.platform()}",
             f"- array module of device 'cuda': {xp.__name__} {xp.__version__}"
             + (" (the test suite's CuPy stand-in: NumPy underneath, no GPU)" if stand_in else "")]
    if not stand_in:
        try:
            props = xp.cuda.runtime.getDeviceProperties(0)
            lines.append(f"- GPU: {props['name'].decode()}, "
                         f"{props['totalGlobalMem'] / 2**30:.0f} GiB; CUDA runtime "
                         f"{xp.cuda.runtime.runtimeGetVersion()}, driver "
                         f"{xp.cuda.runtime.driverGetVersion()}")
        except Exception as e:  # noqa: BLE001
            lines.append(f"- GPU properties unavailable: {type(e).__name__}: {e}")
    return lines


def suite_section(suite):
    c = suite["counts"]
    lines = ["## 1. The test suite on device 'cuda'", ""]
    if c is None:
        lines.append(f"pytest wrote no result file (exit status {suite['returncode']}).")
    else:
        lines += [f"- all tests: {c['all']['passed']} passed, {c['all']['failed']} failed, "
                  f"{c['all']['skipped']} skipped ({suite['seconds']:.0f} s, pytest exit status "
                  f"{suite['returncode']})",
                  f"- cuda variants: {c['cuda']['passed']} passed, {c['cuda']['failed']} failed, "
                  f"{c['cuda']['skipped']} skipped"]
    lines += [f"- cuda variant not passed: {name}" for name in suite["not_passed"][:50]]
    lines += ["", "```", suite["tail"], "```", ""]
    return lines


def cifar_table(rows):
    lines = ["| model | setting | ms per step | GPU memory pool after |", "|---|---|---|---|"]
    for r in rows:
        pool = r.get("gpu_pool_bytes")
        pool = "n/a" if pool is None else f"{pool / 2**30:.2f} GiB"
        lines.append(f"| {r['model']} | {r['setting']} | {r['minipixel_ms']:.1f} | {pool} |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="gpu_report.md", help="the report (Markdown)")
    ap.add_argument("--stand-in", action="store_true",
                    help="run on the test suite's CuPy stand-in instead of a GPU")
    ap.add_argument("--small", action="store_true", help="smoke-sized benchmarks")
    ap.add_argument("--tests", nargs="+", default=["reference_tests"],
                    help="test files or folders for pytest (default: the whole suite)")
    args = ap.parse_args(argv)

    if args.stand_in:
        sys.path.insert(0, os.path.join(ROOT, "reference_tests"))
        import cupy_standin
        backend.use_cuda_module(cupy_standin.cupy)
    reason = backend.cuda_unavailable_reason()
    if reason:
        print(f"gpu_check: no usable GPU: {reason}", file=sys.stderr)
        return 2

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    suite = run_suite(args.tests, "standin" if args.stand_in else "real")
    print(f"suite: {'ok' if suite['ok'] else 'FAILED'} {suite['counts']}", flush=True)
    bench = load_benchmark()
    sampling = ["--settings", "smoke", "--reps", "1", "--sample-size", "2"] if args.small \
        else ["--reps", "5"]
    bench_ok, bench_text, _ = run_benchmark(bench, sampling)
    print(f"benchmark: {'ok' if bench_ok else 'FAILED'}", flush=True)
    cifar_ok, cifar_text, cifar_rows = cifar_steps(bench, args.small)
    print(f"CIFAR-size step: {'ok' if cifar_ok else 'FAILED'}", flush=True)

    ok = suite["ok"] and bench_ok and cifar_ok
    lines = ["# minipixel GPU check", "",
             f"{'PASSED' if ok else 'FAILED'} ({started}; `python .ci/gpu_check.py "
             f"{' '.join(argv if argv is not None else sys.argv[1:])}`)", ""]
    lines += environment(args.stand_in) + [""]
    lines += suite_section(suite)
    lines += ["## 2. Benchmark on CUDA: training steps and sampling", "", "```",
              bench_text.strip(), "```", ""]
    lines += ["## 3. A training step at the paper's CIFAR-10 size", "",
              "12 layers, h=128, 1024 output maps, batch 16, 32x32 RGB, 256-way softmax; "
              "median of the repetitions, after warm-up."
              + (" (--small: the smoke setting instead)" if args.small else ""), ""]
    lines += cifar_table(cifar_rows) + ["", "```", cifar_text.strip(), "```", ""]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.out}: {'PASSED' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
