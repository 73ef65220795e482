"""What does the Multi-Scale model's conditioning cost a recurrent layer?

Times a fast Row LSTM and a fast Diagonal BiLSTM layer, forward and backward, with
and without a conditioning map (h=16 hidden units, c=16 conditioning maps, 16 images
of 28x28, float32). With the map, each layer's bias V (*) cond rides in the scan's one
product per step (minipixel/fast/layers.py, ``with_condition``): c more input rows.
The two are interleaved rep by rep and the medians of process CPU time are reported
with their ratio.

    OPENBLAS_NUM_THREADS=1 python demos/bench_conditioning.py [--reps 9] [--device cpu]
"""
import argparse
import time

import numpy as np

from minipixel import Tensor
from minipixel.fast import FastDiagonalBiLSTMLayer, FastRowLSTMLayer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = ap.parse_args(argv)
    N, h, c, H, W = 16, 16, 16, 28, 28
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((N, 2 * h, H, W)).astype(np.float32)).to(args.device)
    cond = Tensor(rng.standard_normal((N, c, H, W)).astype(np.float32)).to(args.device)
    for cls in (FastRowLSTMLayer, FastDiagonalBiLSTMLayer):
        runs = {"plain": (cls(h, 1, np.random.default_rng(0), np.float32).to(args.device), None),
                "conditioned": (cls(h, 1, np.random.default_rng(0), np.float32,
                                    condition_maps=c).to(args.device), cond)}
        times = {name: [] for name in runs}
        for _ in range(args.reps):
            for name, (layer, cnd) in runs.items():
                t = time.process_time()
                layer(x, cond=cnd).sum().backward()
                times[name].append(time.process_time() - t)
        plain, conditioned = (float(np.median(times[k])) for k in ("plain", "conditioned"))
        print(f"{cls.__name__:<24} plain {plain * 1e3:6.1f} ms   conditioned "
              f"{conditioned * 1e3:6.1f} ms   ratio {conditioned / plain:.2f}")


if __name__ == "__main__":
    main()
