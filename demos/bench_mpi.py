"""Benchmark: a training step on K MPI processes against one process and against K threads.

    python demos/bench_mpi.py                        # the six rows of benchmark.py, K = 2
    python demos/bench_mpi.py --settings binary --models diagonal --rounds 5
    python demos/bench_mpi.py --settings smoke --rounds 1 --reps 1   # checks that it runs

The models, images and optimizer are benchmark.py's (same settings, batch 16, RMSProp,
float32, one BLAS thread per process or thread). For each row, --rounds rounds of three
fresh runs, interleaved: one process; one process splitting the batch across K threads
(``--threads K``); K processes under ``mpiexec -n K``, each taking its part of the same
16 images, the gradients summed by ``minipixel.distributed`` (one Iallreduce per step).
Each run does --warmup untimed steps, then --reps timed ones. Printed per row: the
median step (ms) over all timed steps, the throughput of K processes and of K threads
relative to one process (same global batch, so the ratio of step times), and the
allreduce's share of the K-process step: the time rank 0 spends in the step's
collective (waiting for the other rank included), and the allreduce alone (the same
buffer after a barrier, median of 20: the transfer without the wait).
No timing here is asserted anywhere; docs/distributed.md quotes this script's table.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchmark as bench                                   # noqa: E402

SMOKE = list(bench.SMOKE)


def rank_run(job):
    """Under mpiexec: job's timed steps on this process's part of the batch; rank 0 prints
    dict(times, comm, alone) as JSON (seconds)."""
    from minipixel.distributed import process_group
    from minipixel.parallel import BatchWorkers
    bench.keep_host_memory()
    group = process_group()
    cfg, size = bench.config(job["model"], job["setting"])
    images = bench.images_for(cfg, size)
    model = bench.build(**cfg, seed=0, dtype=np.float32)
    opt = bench.RMSProp(model.parameters(), lr=bench.LR)
    workers = BatchWorkers(1)

    def step():
        opt.zero_grad()
        group.loss_and_backward(model, images, workers)
        opt.step()
    for _ in range(job["warmup"]):
        step()
    times, comm = [], []
    for _ in range(job["reps"]):
        t, c = time.perf_counter(), group.reduce_s
        step()
        times.append(time.perf_counter() - t)
        comm.append(group.reduce_s - c)
    alone = allreduce_alone(group, sum(p.data.size for p in model.parameters()) + 1 + group.size)
    if group.is_root:
        print(json.dumps(dict(times=times, comm=comm, alone=alone)), flush=True)


def allreduce_alone(group, length, reps=20):
    """Median seconds of one Allreduce of `length` float32 after a barrier."""
    buf, out, times = np.ones(length, np.float32), np.empty(length, np.float32), []
    for _ in range(reps + 1):
        group.comm.Barrier()
        t = time.perf_counter()
        group.comm.Allreduce(buf, out)
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def run_mpi(job, k):
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or "mpiexec"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (bench.ROOT, os.environ.get("PYTHONPATH"))
                                         if p)}
    out = subprocess.run([mpiexec, "-n", str(k), sys.executable, os.path.abspath(__file__),
                          "--rank", json.dumps(job)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"mpi run {job} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(setting, model, args):
    """--rounds rounds of (one process, K threads, K processes), interleaved."""
    job = dict(model=model, setting=setting, reps=args.reps, warmup=args.warmup)
    one, threads, procs = [], [], []
    for _ in range(args.rounds):
        one.append(bench.spawn(dict(job, kind="fast", threads=1)))
        threads.append(bench.spawn(dict(job, kind="workers", threads=args.k)))
        procs.append(run_mpi(job, args.k))
    med = lambda runs, key="times": float(np.median([t for r in runs for t in r[key]]))  # noqa
    t1, tt, tk = med(one), med(threads), med(procs)
    comm, alone = med(procs, "comm"), float(np.median([r["alone"] for r in procs]))
    cfg, _ = bench.config(model, setting)
    params = bench.build(**cfg, seed=0, dtype=np.float32).num_parameters()
    return dict(setting=setting, model=model, params=params, one_ms=1e3 * t1,
                threads_ms=1e3 * tt, procs_ms=1e3 * tk, procs_vs_one=t1 / tk,
                threads_vs_one=t1 / tt, procs_vs_threads=tt / tk, comm_ms=1e3 * comm,
                comm_share=comm / tk, alone_ms=1e3 * alone, k=args.k)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=2, help="processes (and threads) (default 2)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--models", default=",".join(bench.MODELS))
    ap.add_argument("--settings", default="default", help="default, binary, rgb or smoke")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--rank", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rank:
        return rank_run(json.loads(args.rank))
    settings = SMOKE if args.settings == "smoke" else bench.SETTING_NAMES[args.settings]
    print(f"{os.cpu_count()} cores; batch {bench.BATCH}; float32; K={args.k}; {args.rounds} "
          f"rounds x {args.reps} timed steps; ms: median step", flush=True)
    print(f"{'setting':24} {'model':9} {'params':>7} {'1 proc':>8} {'K thr':>8} {'K proc':>8} "
          f"{'proc/1':>6} {'thr/1':>6} {'proc/thr':>8} {'in coll':>8} {'share':>6} "
          f"{'alone':>7}")
    rows = []
    for setting in settings:
        for model in args.models.split(","):
            r = row(setting, model, args)
            rows.append(r)
            print(f"{setting:24} {model:9} {r['params']:7d} {r['one_ms']:8.1f} "
                  f"{r['threads_ms']:8.1f} {r['procs_ms']:8.1f} {r['procs_vs_one']:6.2f} "
                  f"{r['threads_vs_one']:6.2f} {r['procs_vs_threads']:8.2f} "
                  f"{r['comm_ms']:8.2f} {100 * r['comm_share']:5.1f}% {r['alone_ms']:7.3f}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
