"""Benchmark: minipixel against a PyTorch peer, and against this machine's matrix-product rate.

    python demos/benchmark.py                       # 1 and 2 threads, 3 processes each (long)
    python demos/benchmark.py --threads 1 --settings binary --models diagonal
    python demos/benchmark.py --settings cifar --reps 1 --no-paper   # the paper's CIFAR-10 size
    python demos/benchmark.py --sampling-only       # cached against naive sampling
    python demos/benchmark.py --baseline DIR        # also time the fast path of another checkout
    python demos/benchmark.py --oracle              # also time the cross-check oracle's port
    python demos/benchmark.py --device cuda --no-torch --settings all   # on a GPU (in-process)

Every timing runs in a fresh process with the thread count set before NumPy
and torch load (OMP/OPENBLAS/MKL_NUM_THREADS and torch.set_num_threads); for
each model and setting, the frameworks' processes are interleaved (round 1:
minipixel, paper path, PyTorch, ...; round 2 rotated; --processes rounds), and
a process runs warm-up steps, then --reps timed training steps (forward,
backward, RMSProp step, float32, batch 16, same weights and images). Printed per
model, setting and thread count:

- the median step over all processes' timed steps, and the spread: the lowest
  and highest of the per-process medians;
- fast: minipixel's default path, one Python thread (BLAS at the thread count);
  workers (at 2+ threads): the same, with each batch split across that many threads
  (minipixel.parallel; Trainer(workers=...), `--threads`), BLAS single-threaded in
  each; paper: the paper path (fast=False, the layers
  written from engine ops); torch: the PyTorch peer (demos/torch_peer.py: what a
  competent PyTorch user writes; eager, masked weights multiplied in each
  forward); oracle (--oracle): the cross-check oracle's port
  (reference_tests/torch_oracle.py), to show the peer is not slower; base
  (--baseline DIR): minipixel's fast path from another checkout (before/after);
- BLAS bound: the step's multiply-adds (every conv, including the recurrent
  state-to-state products, dense kernels, x3 for forward and both gradients)
  over the float32 matrix-product rate measured in the same run, in its own
  processes interleaved with the others, at the same thread count;
- peak memory: the rise of the process's resident-set peak (Linux VmHWM, reset
  just before) over its steps.

A minipixel process first does what a training run does (Trainer.run): it has the C
library keep freed host memory for the next arrays (backend.keep_freed_host_memory),
instead of fresh pages from the operating system for every large array of every
step. The PyTorch processes run with the allocator as it comes, unless
--peer-keeps-memory.

Sampling (--sampling-only, or after the steps unless --no-sampling): naive (a
forward pass per sub-pixel) against the cached sampler, same seed, same images,
binary 28x28 and RGB 32x32 with 256 levels, one thread; both warmed up on a 4 x 4
image first, the cached one timed 7 times (median) in each of --processes processes
(median of those), the naive one once; with --baseline, the other checkout's cached
sampler in as many processes, interleaved.
No timing here is asserted anywhere; the README quotes this script's table.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "reference_tests"))

from minipixel.backend import DeviceError, check_device, cuda_module, to_device  # noqa: E402
from minipixel.models import build                      # noqa: E402
from minipixel.nn import RMSProp                       # noqa: E402
from minipixel.sampling import sample                  # noqa: E402

SETTINGS = {
    "binary 28x28 h16 L7": dict(channels=1, levels=2, h=16, layers=7, out_hidden=32, size=28),
    "rgb 32x32 256 h32 L4": dict(channels=3, levels=256, h=32, layers=4, out_hidden=64, size=32),
    # the paper's CIFAR-10 size; not in the default run (slow on a CPU): --settings cifar
    "cifar 32x32 256 h128 L12": dict(channels=3, levels=256, h=128, layers=12, out_hidden=1024,
                                     size=32),
}
DEFAULT_SETTINGS = list(SETTINGS)[:2]
SETTING_NAMES = {"default": DEFAULT_SETTINGS, "all": list(SETTINGS), "binary": list(SETTINGS)[:1],
                 "rgb": list(SETTINGS)[1:2], "cifar": list(SETTINGS)[2:]}
# a few seconds anywhere: checks that the script runs (--settings smoke), measures nothing
SMOKE = {"smoke 6x6 h4 L2": dict(channels=3, levels=256, h=4, layers=2, out_hidden=8, size=6)}
MODELS = ["pixelcnn", "rowlstm", "diagonal"]
BATCH, LR = 16, 1e-3


def config(model, setting):
    s = dict({**SETTINGS, **SMOKE}[setting])
    size = s.pop("size")
    return dict(model=model, **s), size


def images_for(cfg, size, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, cfg["levels"], size=(BATCH, cfg["channels"], size, size))


def minipixel_step_fn(cfg, images, device="cpu", fast=True, workers=1):
    """A minipixel training step; workers > 1: the batch split across that many threads
    (minipixel.parallel, as Trainer(workers=...) and `--threads` do)."""
    model = build(**cfg, seed=0, dtype=np.float32, fast=fast).to(device)
    images = to_device(images, device)
    opt = RMSProp(model.parameters(), lr=LR)
    if workers > 1:                     # (a --baseline checkout may have no minipixel.parallel)
        from minipixel.parallel import BatchWorkers
        loss_and_backward = BatchWorkers(workers).loss_and_backward
    else:
        loss_and_backward = lambda model, images: model.loss(images).backward()  # noqa: E731

    def step():
        opt.zero_grad()
        loss_and_backward(model, images)
        opt.step()
        synchronize(device)
    return step, model


def synchronize(device):
    """Wait for the GPU to finish, so a timing covers the work and not just its launch."""
    if device == "cuda":
        cuda_module().cuda.Device().synchronize()


def torch_step_fn(cfg, images, model, oracle=False):
    """A training step of the PyTorch peer (demos/torch_peer.py), or with oracle=True of
    the cross-check oracle's port (reference_tests/torch_oracle.py), on model's weights."""
    import torch
    import torch_oracle
    sys.path.insert(0, os.path.join(ROOT, "demos"))
    import torch_peer
    torch.manual_seed(0)
    params = {k: torch.tensor(to_device(v, "cpu"), requires_grad=True)
              for k, v in model.state_dict().items()}
    images = to_device(images, "cpu")
    masks = {k: m.float() for k, m in torch_oracle.model_masks(cfg).items()}
    opt = torch.optim.RMSprop(list(params.values()), lr=LR, alpha=0.95, eps=1e-8)
    timages = torch.tensor(images, dtype=torch.int64)
    if oracle:
        net = torch_oracle.Net(cfg, params, masks)
        loss = lambda: net.forward(timages)["nll"].mean()  # noqa: E731
    else:
        peer = torch_peer.Peer(cfg, params, masks)
        loss = lambda: peer.loss(timages)  # noqa: E731

    def step():
        opt.zero_grad()
        loss().backward()
        opt.step()
    return step


def step_macs(cfg, size):
    """Multiply-adds of one training step's convolutions and recurrent products."""
    C, h, L, F = cfg["channels"], cfg["h"], cfg["layers"], cfg["out_hidden"]
    V = 1 if cfg["levels"] == 2 else cfg["levels"]
    P = BATCH * size * size                                    # output positions
    fwd = P * 2 * h * C * 49                                   # first layer
    per_layer = {"pixelcnn": 2 * h * h + h * h * 9 + h * 2 * h,
                 "rowlstm": 4 * h * 2 * h * 3 + 4 * h * h * 3 + 2 * h * h,
                 "diagonal": 2 * (4 * h * 2 * h + 4 * h * h * 2) + 2 * h * h}[cfg["model"]]
    fwd += P * L * per_layer + P * (L * 2 * h * F + F * F + F * C * V)
    return 3 * fwd - P * 2 * h * C * 49                        # no input gradient for the image


def gemm_rate():
    """float32 multiply-adds per second of one large matrix product, median of 5."""
    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    times = []
    for _ in range(6):
        t = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t)
    return 1024 ** 3 / np.median(times[1:])


def timed_interleaved(fns, reps, warmup=2):
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [float(np.median(ts)) for ts in times]


# ---- one process: one framework's timed steps ---------------------------------------------

def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])


def worker(job):
    """In a fresh process: job = dict(kind, model, setting, threads, reps, warmup)
    -> dict(times=[s...], peak_mb) for a training step, or dict(rate) for kind 'gemm',
    or dict(naive_s, cached_s, same) for kind 'sampling'."""
    if job["kind"] == "gemm":
        return dict(rate=gemm_rate())
    if job["kind"] == "sampling":
        return sampling_times(job)
    if job["kind"] in ("torch", "oracle"):
        import torch
        torch.set_num_threads(job["threads"])
    if job["kind"] not in ("torch", "oracle") or job.get("peer_keeps_memory"):
        keep_host_memory()
    cfg, size = config(job["model"], job["setting"])
    images = images_for(cfg, size)
    step, net = minipixel_step_fn(cfg, images, fast=job["kind"] != "paper",
                                  workers=job["threads"] if job["kind"] == "workers" else 1)
    if job["kind"] in ("torch", "oracle"):
        step = torch_step_fn(cfg, images, net, oracle=job["kind"] == "oracle")
    del net
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:      # Linux: reset the peak (VmHWM) to now
        f.write("5")
    for _ in range(job["warmup"]):
        step()
    times = []
    for _ in range(job["reps"]):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return dict(times=times, peak_mb=(_status_kb("VmHWM") - before) / 1024)


def keep_host_memory():
    """What a minipixel training run does first (Trainer.run): keep freed host memory
    for the next arrays. A checkout without the function (a --baseline) runs without."""
    import minipixel.backend
    if hasattr(minipixel.backend, "keep_freed_host_memory"):
        minipixel.backend.keep_freed_host_memory()


def sampling_times(job):
    """Cached and naive sampling of job['n'] images, same seed: seconds and whether equal.

    Both samplers first draw one 4 x 4 image untimed, so that neither pays the process's
    start-up costs (first products, the CPU coming up to speed); the cached sampler, a
    fraction of a second, is then timed 7 times (the median, which one pass caught by a
    busy moment does not move), the naive one once (not with job['naive'] False: then
    naive_s and same are None)."""
    cfg, size = config(job["model"], job["setting"])
    net = build(**cfg, seed=0, dtype=np.float32)
    size = job.get("size") or size
    for cached in (True, False):
        sample(net, job["n"], 4, 4, seed=1, cached=cached)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        cached = sample(net, job["n"], size, size, seed=1, cached=True)
        times.append(time.perf_counter() - t)
    if not job.get("naive", True):
        return dict(cached_s=float(np.median(times)), naive_s=None, same=None)
    t = time.perf_counter()
    naive = sample(net, job["n"], size, size, seed=1, cached=False)
    t_naive = time.perf_counter() - t
    return dict(cached_s=float(np.median(times)), naive_s=t_naive,
                same=bool((cached == naive).all()))


def spawn(job, pythonpath=None):
    """Run worker(job) in a fresh process with the job's thread count; its result."""
    env = dict(os.environ)
    blas = 1 if job["kind"] == "workers" else job.get("threads", 1)    # its threads: workers
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(blas)
    paths = [pythonpath or ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(job)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark worker {job} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(results):
    """Per-process results -> median of all timed steps, lowest and highest process median (ms)."""
    steps = [t for r in results for t in r["times"]]
    medians = [float(np.median(r["times"])) for r in results]
    return dict(ms=1e3 * float(np.median(steps)), lo=1e3 * min(medians), hi=1e3 * max(medians),
                peak_mb=float(np.median([r["peak_mb"] for r in results])), processes=len(results))


def orchestrate(args, kinds, settings, models):
    """Every (threads, setting, model): --processes rounds of one process per framework,
    rotated; a GEMM-rate process in each round. Prints a table; returns its rows."""
    rows = []
    print(f"{os.cpu_count()} cores; batch {BATCH}; float32; per framework {args.processes} "
          f"processes x {args.reps} timed steps (after {args.warmup} warm-up), interleaved; "
          f"ms: median step [lowest..highest process median]", flush=True)
    for threads in args.threads:
        timed = [k for k in kinds if threads > 1 or k != "workers"]   # workers: 2+ threads
        for setting in settings:
            for model in models:
                jobs = {k: dict(kind=k, model=model, setting=setting, threads=threads,
                                reps=args.paper_reps or args.reps if k == "paper" else args.reps,
                                warmup=args.warmup, peer_keeps_memory=args.peer_keeps_memory)
                        for k in timed}
                results = {k: [] for k in timed}
                rates = []
                for rnd in range(args.processes):
                    order = timed[rnd % len(timed):] + timed[:rnd % len(timed)]
                    for k in order:
                        base = args.baseline if k == "base" else None
                        job = dict(jobs[k], kind="fast") if k == "base" else jobs[k]
                        results[k].append(spawn(job, base))
                    rates.append(spawn(dict(kind="gemm", threads=threads))["rate"])
                rate = float(np.median(rates))
                cfg, size = config(model, setting)
                bound = 1e3 * step_macs(cfg, size) / rate
                row = dict(threads=threads, setting=setting, model=model,
                           gemm_gflops=2 * rate / 1e9, bound_ms=bound)
                for k in timed:
                    row[k] = summarize(results[k])
                for k in ("fast", "workers"):
                    if k in row and "torch" in row:
                        row[f"{k}_over_torch"] = row[k]["ms"] / row["torch"]["ms"]
                    if k in row:
                        row[f"{k}_over_bound"] = row[k]["ms"] / bound
                rows.append(row)
                print_row(row, timed)
    return rows


def print_row(row, kinds):
    parts = [f"{row['threads']}T {row['setting']:24} {row['model']:9}"]
    for k in kinds:
        r = row[k]
        parts.append(f"{k} {r['ms']:7.0f} [{r['lo']:.0f}..{r['hi']:.0f}] {r['peak_mb']:.0f}MB")
    for k in ("fast", "workers"):
        if f"{k}_over_torch" in row:
            parts.append(f"{k}/torch {row[f'{k}_over_torch']:.2f}")
    parts.append(f"bound {row['bound_ms']:.1f}ms ({row['gemm_gflops']:.0f} GFLOP/s) " + " ".join(
        f"{k}/bound {row[f'{k}_over_bound']:.1f}" for k in ("fast", "workers")
        if f"{k}_over_bound" in row))
    print(" | ".join(parts), flush=True)


def sampling_rows(args, models):
    """Cached against naive sampling, one thread, in fresh processes: the naive sampler in
    one (tens of seconds, which even out this machine's moments), the cached one in each
    of --processes (the median of their medians: a fresh process here is now and then
    twice as slow for the whole of its life)."""
    rows = []
    print(f"\nsampling {args.sample_n} images, one thread, same seed: naive (a forward pass "
          f"per sub-pixel) against cached", flush=True)
    for setting, size in (("binary 28x28 h16 L7", args.sample_size or 28),
                          ("rgb 32x32 256 h32 L4", args.sample_size or 32)):
        for model in models:
            job = dict(kind="sampling", model=model, setting=setting, size=size,
                       n=args.sample_n, threads=1)
            r = spawn(job)
            cached, base = [r["cached_s"]], []
            for i in range(args.processes):          # --baseline: its processes interleaved
                if args.baseline:
                    base.append(spawn(dict(job, naive=False), args.baseline)["cached_s"])
                if i < args.processes - 1:
                    cached.append(spawn(dict(job, naive=False))["cached_s"])
            r.update(setting=setting, model=model, size=size, cached_s=float(np.median(cached)),
                     cached_processes=cached, speedup=r["naive_s"] / float(np.median(cached)))
            line = (f"{setting:24} {size}x{size} {model:9} naive {r['naive_s']:7.2f}s "
                    f"cached {r['cached_s']:6.2f}s [{min(cached):.2f}..{max(cached):.2f}]  "
                    f"{r['speedup']:6.1f}x  same images: {r['same']}")
            if base:
                r.update(base_cached_s=float(np.median(base)), base_processes=base,
                         cached_over_base=r["cached_s"] / float(np.median(base)))
                line += (f"  base cached {r['base_cached_s']:.2f}s "
                         f"[{min(base):.2f}..{max(base):.2f}] new/base {r['cached_over_base']:.3f}")
            rows.append(r)
            print(line, flush=True)
    return rows


# ---- in one process (a GPU, or the CuPy stand-in) ------------------------------------------

def in_process(args, settings, models, device):
    """All frameworks in this process, repetitions interleaved (the GPU check uses this)."""
    reps, use_torch = args.reps, not args.no_torch
    rate = gemm_rate()
    print(f"float32 matrix-product rate here: {2 * rate / 1e9:.0f} GFLOP/s; "
          f"{os.cpu_count()} cores; batch {BATCH}; medians of {reps}")
    rows = []
    print(f"{'setting':22} {'model':9} {'minipixel':>10} {'paper':>9} {'PyTorch':>9} "
          f"{'ratio':>6} {'BLAS bound':>10} {'mp/bound':>8} {'pt/bound':>8}")
    for setting in settings:
        for model in models:
            cfg, size = config(model, setting)
            images = images_for(cfg, size)
            mp_step, net = minipixel_step_fn(cfg, images, device)
            steps = {"mp": mp_step}
            if not args.no_paper:
                steps["paper"] = minipixel_step_fn(cfg, images, device, fast=False)[0]
            if use_torch:
                steps["pt"] = torch_step_fn(cfg, images, net)
            t = dict(zip(steps, timed_interleaved(list(steps.values()), reps)))
            t_mp, t_paper, t_pt = t["mp"], t.get("paper", float("nan")), t.get("pt", float("nan"))
            bound = step_macs(cfg, size) / rate
            row = dict(setting=setting, model=model, minipixel_ms=1e3 * t_mp,
                       paper_path_ms=1e3 * t_paper, torch_ms=1e3 * t_pt,
                       ratio=t_mp / t_pt, bound_ms=1e3 * bound, mp_over_bound=t_mp / bound,
                       torch_over_bound=t_pt / bound)
            rows.append(row)
            print(f"{setting:22} {model:9} {row['minipixel_ms']:8.0f}ms "
                  f"{row['paper_path_ms']:7.0f}ms {row['torch_ms']:7.0f}ms "
                  f"{row['ratio']:6.2f} {row['bound_ms']:8.1f}ms {row['mp_over_bound']:8.1f} "
                  f"{row['torch_over_bound']:8.1f}", flush=True)
    if not args.no_sampling:
        size = args.sample_size or 28
        print(f"\nsampling 16 images of {size}x{size} (binary, h=16, 7 layers)")
        print(f"{'model':9} {'naive':>9} {'cached':>9} {'speed-up':>8} same images")
        for model in models:
            net = build(model, channels=1, levels=2, h=16, layers=7, out_hidden=32,
                        dtype=np.float32).to(device)
            t = time.perf_counter()
            cached = sample(net, 16, size, size, seed=1, cached=True)
            t_cached = time.perf_counter() - t
            t = time.perf_counter()
            naive = sample(net, 16, size, size, seed=1, cached=False)
            t_naive = time.perf_counter() - t
            same = bool((cached == naive).all())
            rows.append(dict(sampling=model, size=size, naive_s=t_naive, cached_s=t_cached,
                             speedup=t_naive / t_cached, same=same))
            print(f"{model:9} {t_naive:8.2f}s {t_cached:8.2f}s {t_naive / t_cached:7.1f}x {same}",
                  flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2 (default)")
    ap.add_argument("--processes", type=int, default=3, help="processes per framework (rounds)")
    ap.add_argument("--reps", type=int, default=3, help="timed steps per process")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per process first")
    ap.add_argument("--paper-reps", type=int, default=None,
                    help="timed steps per paper-path process (default: --reps)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--settings", default="default",
                    help="'default' (binary and rgb), 'binary', 'rgb', 'cifar' (the paper's "
                         "CIFAR-10 size: 12 layers, h=128), 'all', or 'smoke' (tiny: checks it runs)")
    ap.add_argument("--no-paper", action="store_true", help="do not time the paper path")
    ap.add_argument("--no-workers", action="store_true",
                    help="at 2+ threads, do not time minipixel's batch split across threads")
    ap.add_argument("--no-torch", action="store_true", help="time minipixel alone")
    ap.add_argument("--oracle", action="store_true",
                    help="also time the cross-check oracle's PyTorch port")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also time the fast path of the minipixel checkout in DIR")
    ap.add_argument("--peer-keeps-memory", action="store_true",
                    help="the PyTorch processes, too, keep freed host memory for reuse as "
                         "minipixel's do (glibc malloc, no mmap or trimming)")
    ap.add_argument("--no-sampling", action="store_true")
    ap.add_argument("--sampling-only", action="store_true")
    ap.add_argument("--sample-n", type=int, default=1, help="images per sampling run")
    ap.add_argument("--sample-size", type=int, default=None,
                    help="sampling image size (default: the setting's, 28 and 32)")
    ap.add_argument("--no-memory", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="where minipixel runs; cuda runs in this process (PyTorch on the CPU)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    models = args.models.split(",")
    try:
        device = check_device(args.device)
    except DeviceError as e:
        sys.exit(f"benchmark: {e}")
    settings = list(SMOKE) if args.settings == "smoke" else SETTING_NAMES[args.settings]
    if device == "cuda":
        rows = in_process(args, settings, models, device)
    else:
        args.threads = [int(t) for t in args.threads.split(",")]
        kinds = ["fast"] + ([] if args.no_workers else ["workers"]) + \
            ([] if args.no_paper else ["paper"]) + \
            ([] if args.no_torch else ["torch"]) + (["oracle"] if args.oracle else []) + \
            (["base"] if args.baseline else [])
        rows = [] if args.sampling_only else orchestrate(args, kinds, settings, models)
        if args.sampling_only or not args.no_sampling:
            rows += sampling_rows(args, models)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
