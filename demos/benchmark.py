"""Benchmark: minipixel against a straightforward PyTorch port, in the same run.

    python demos/benchmark.py            # everything (~10 min on 2 cores)
    python demos/benchmark.py --quick    # fewer repetitions, smaller sampling
    python demos/benchmark.py --device cuda --no-torch --settings all   # on a GPU

The PyTorch peer is reference_tests/torch_oracle.py (torch's conv2d, its
autograd, a Python loop over the recurrence), loaded with the same weights;
both train with RMSProp on the same images, float32, after warm-up, with the
repetitions interleaved. Printed per model and setting:

- train step: median ms of (forward, backward, optimizer step) for each, and
  the ratio minipixel / PyTorch;
- BLAS bound: the step's multiply-adds (every conv, including the recurrent
  state-to-state products, dense kernels, x3 for forward and both gradients)
  over this machine's float32 matrix-product rate measured in this run; the
  ratio says how far each step is from pure matrix-product time;
- peak memory: the rise of the resident set's peak (Linux VmHWM, reset just
  before) over two steps, each framework in a fresh subprocess;
- sampling 16 images of 28x28: naive (a forward pass per sub-pixel) against
  the cached sampler (minipixel/sampling/cached.py), same seed, same images.
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


def minipixel_step_fn(cfg, images, device="cpu"):
    model = build(**cfg, seed=0, dtype=np.float32).to(device)
    images = to_device(images, device)
    opt = RMSProp(model.parameters(), lr=LR)

    def step():
        opt.zero_grad()
        model.loss(images).backward()
        opt.step()
        synchronize(device)
    return step, model


def synchronize(device):
    """Wait for the GPU to finish, so a timing covers the work and not just its launch."""
    if device == "cuda":
        cuda_module().cuda.Device().synchronize()


def torch_step_fn(cfg, images, model):
    import torch
    import torch_oracle
    torch.manual_seed(0)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in model.state_dict().items()}
    images = to_device(images, "cpu")
    masks = {k: m.float() for k, m in torch_oracle.model_masks(cfg).items()}
    net = torch_oracle.Net(cfg, params, masks)
    opt = torch.optim.RMSprop(list(params.values()), lr=LR, alpha=0.95, eps=1e-8)
    timages = torch.tensor(images, dtype=torch.int64)

    def step():
        opt.zero_grad()
        net.forward(timages)["nll"].mean().backward()
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


def memory_probe(framework, model, setting):
    """In a fresh process: rise of max RSS (MB) over two training steps."""
    cfg, size = config(model, setting)
    images = images_for(cfg, size)
    step, net = minipixel_step_fn(cfg, images)
    if framework == "torch":
        step = torch_step_fn(cfg, images, net)
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:      # Linux: reset the peak (VmHWM) to now
        f.write("5")
    step()
    step()
    return (_status_kb("VmHWM") - before) / 1024


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])


def peak_mb(framework, model, setting):
    out = subprocess.run([sys.executable, __file__, "--memory-probe", framework, model, setting],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 repetitions, 14x14 sampling")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--no-sampling", action="store_true")
    ap.add_argument("--sample-size", type=int, default=None,
                    help="sampling image size (default 28, 14 with --quick)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--settings", default="default",
                    help="'default' (the two settings above), 'all', 'cifar' (the paper's "
                         "CIFAR-10 size, 12 layers, h=128), or 'smoke' (tiny: checks it runs)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="where minipixel runs (PyTorch always runs on the CPU)")
    ap.add_argument("--no-torch", action="store_true", help="time minipixel alone")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--memory-probe", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_probe:
        print(memory_probe(*args.memory_probe))
        return
    reps = 3 if args.quick else args.reps
    models = args.models.split(",")
    try:
        device = check_device(args.device)
    except DeviceError as e:
        sys.exit(f"benchmark: {e}")
    settings = {"default": DEFAULT_SETTINGS, "all": list(SETTINGS),
                "cifar": [s for s in SETTINGS if s.startswith("cifar")],
                "smoke": list(SMOKE)}[args.settings]
    use_torch = not args.no_torch
    if device == "cuda":        # host RSS says nothing of GPU memory
        args.no_memory = True
    rate = gemm_rate()
    print(f"float32 matrix-product rate here: {2 * rate / 1e9:.0f} GFLOP/s; "
          f"{os.cpu_count()} cores; batch {BATCH}; medians of {reps}")
    rows = []
    header = (f"{'setting':22} {'model':9} {'minipixel':>10} {'PyTorch':>9} {'ratio':>6} "
              f"{'BLAS bound':>10} {'mp/bound':>8} {'pt/bound':>8} {'mem mp':>7} {'mem pt':>7}")
    print(header)
    for setting in settings:
        for model in models:
            cfg, size = config(model, setting)
            images = images_for(cfg, size)
            mp_step, net = minipixel_step_fn(cfg, images, device)
            if use_torch:
                t_mp, t_pt = timed_interleaved([mp_step, torch_step_fn(cfg, images, net)], reps)
            else:
                t_mp, t_pt = timed_interleaved([mp_step], reps)[0], float("nan")
            bound = step_macs(cfg, size) / rate
            mem = ("", "") if args.no_memory else (
                peak_mb("minipixel", model, setting),
                peak_mb("torch", model, setting) if use_torch else float("nan"))
            row = dict(setting=setting, model=model, minipixel_ms=1e3 * t_mp, torch_ms=1e3 * t_pt,
                       ratio=t_mp / t_pt, bound_ms=1e3 * bound, mp_over_bound=t_mp / bound,
                       torch_over_bound=t_pt / bound, mem_mp_mb=mem[0], mem_torch_mb=mem[1])
            rows.append(row)
            memtxt = "" if args.no_memory else f" {mem[0]:6.0f}M {mem[1]:6.0f}M"
            print(f"{setting:22} {model:9} {row['minipixel_ms']:8.0f}ms {row['torch_ms']:7.0f}ms "
                  f"{row['ratio']:6.2f} {row['bound_ms']:8.1f}ms {row['mp_over_bound']:8.1f} "
                  f"{row['torch_over_bound']:8.1f}{memtxt}", flush=True)
    if not args.no_sampling:
        size = args.sample_size or (14 if args.quick else 28)
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
