"""How far is minipixel's conv2d from the matrix products it is made of?

Times conv2d forward + backward (input, weight and bias gradients) for a batch
of 16, 32 -> 32 channels, 3x3 kernel, padding 1, 28x28, float32, against the
same three GEMMs alone, with the same shapes:

    forward  W (32, 288) @ col (288, 12544)
    dW       g (32, 12544) @ col^T (12544, 288)
    dcol     W^T (288, 32) @ g (32, 12544)

(288 = 32 channels x 9 taps, 12544 = 16 x 28 x 28). The two are interleaved,
rep by rep, after a warm-up, and the medians are reported with their ratio:
everything above 1.0 is im2col / col2im copies, transposes, padding, the bias
and the autograd bookkeeping. im2col and col2im are also timed on their own.

    python demos/bench_conv.py [--reps 20] [--warmup 3] [--device cpu]

On a machine with few cores, OpenBLAS's worker threads keep spinning for a while
after each GEMM and compete with the single-threaded NumPy copies that follow
(col2im right after the dcol product); compare with OPENBLAS_NUM_THREADS=1.
"""
import argparse
import os
import platform
import statistics
import time

import numpy as np

from minipixel import Tensor, ops
from minipixel.backend import get_array_module, to_device
from minipixel.ops.conv import col2im, im2col, kept_taps

N, C, OC, H, W, K, PAD = 16, 32, 32, 28, 28, 3, 1


def sync(xp):
    if xp is not np:
        xp.cuda.Stream.null.synchronize()


def timed(fn, xp):
    sync(xp)
    t0 = time.perf_counter()
    fn()
    sync(xp)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    dev = args.device
    x_np = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w_np = (rng.standard_normal((OC, C, K, K)) * 0.1).astype(np.float32)
    b_np = rng.standard_normal(OC).astype(np.float32)
    g_np = rng.standard_normal((N, OC, H, W)).astype(np.float32)
    x = Tensor(to_device(x_np, dev), requires_grad=True)
    w = Tensor(to_device(w_np, dev), requires_grad=True)
    b = Tensor(to_device(b_np, dev), requires_grad=True)
    g = to_device(g_np, dev)
    xp = get_array_module(g)

    # The GEMM operands, laid out as conv2d lays them out.
    T = K * K
    taps = kept_taps(None, K, K)
    w_flat = xp.ascontiguousarray(w.data.reshape(OC, C * T))
    xpad_t = xp.pad(x.data.transpose(1, 0, 2, 3), ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)))
    col = im2col(xpad_t, taps, H, W)              # (288, 12544): one column per output
    g_flat = xp.ascontiguousarray(g.transpose(1, 0, 2, 3).reshape(OC, N * H * W))
    assert w_flat.shape == (32, 288) and col.shape == (288, 12544) and \
        g_flat.shape == (32, 12544)

    def engine():
        x.grad = w.grad = b.grad = None
        out = ops.conv2d(x, w, b, padding=PAD)
        out.backward(g)

    def gemms():
        w_flat @ col                # forward
        g_flat @ col.T              # dW
        w_flat.T @ g_flat                 # dcol

    def im2col_only():
        im2col(xp.pad(x.data.transpose(1, 0, 2, 3), ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD))),
               taps, H, W)

    dcol = w_flat.T @ g_flat

    def col2im_only():
        col2im(dcol, taps, C, N, H + 2 * PAD, W + 2 * PAD, H, W)

    # sanity: the engine's forward is the GEMM plus bias
    with_bias = (w_flat @ col).reshape(OC, N, H, W).transpose(1, 0, 2, 3) \
        + b.data[None, :, None, None]
    out = ops.conv2d(x, w, b, padding=PAD)
    np.testing.assert_allclose(np.asarray(out.numpy()), np.asarray(with_bias.get() if xp is not np
                                                                    else with_bias), rtol=1e-4, atol=1e-4)

    for _ in range(args.warmup):
        engine(), gemms(), im2col_only(), col2im_only()
    t_engine, t_gemm, t_im2col, t_col2im = [], [], [], []
    for _ in range(args.reps):              # interleaved, so drifts hit both alike
        t_engine.append(timed(engine, xp))
        t_gemm.append(timed(gemms, xp))
        t_im2col.append(timed(im2col_only, xp))
        t_col2im.append(timed(col2im_only, xp))

    med = {k: statistics.median(v) * 1e3 for k, v in
           [("engine", t_engine), ("gemm", t_gemm), ("im2col", t_im2col), ("col2im", t_col2im)]}
    flops = 3 * 2 * OC * C * T * N * H * W
    print(f"conv2d fwd+bwd: N={N} C={C}->{OC} {K}x{K} pad {PAD} {H}x{W} float32 on {dev} "
          f"({platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}); "
          f"{args.reps} reps after {args.warmup} warm-up, medians")
    print(f"  engine conv2d forward+backward : {med['engine']:8.2f} ms")
    print(f"  the three GEMMs alone          : {med['gemm']:8.2f} ms  "
          f"({flops / med['gemm'] / 1e6:.1f} GFLOP/s)")
    print(f"  ratio engine / GEMMs           : {med['engine'] / med['gemm']:8.2f}")
    print(f"  (im2col with padding alone     : {med['im2col']:8.2f} ms;"
          f" col2im alone: {med['col2im']:.2f} ms)")


if __name__ == "__main__":
    main()
