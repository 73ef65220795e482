"""minipixel sample: a PNG grid of images drawn from a checkpoint (seeded).

A Multi-Scale checkpoint draws in two stages, the small image and then the large one
given it; the grid shows each pair side by side, the small image on the left at the
large one's size: each of its pixels a k x k block whose top-left pixel is that pixel
of the large image, so the two line up block for block.
"""
import time

from ..argtypes import POSITIVE, SEED
from .common import (checkpoint_parser, add_device, add_paper_path, check_output, image_size,
                     open_for_picture, progress_printer, samples_picture)


def add_parser(sub):
    p = checkpoint_parser(sub, "sample", "draw images from a checkpoint into a PNG grid",
                          __doc__, "--n 64 --out samples.png")
    p.add_argument("--n", type=POSITIVE, default=16, help="number of images (default %(default)s)")
    p.add_argument("--seed", type=SEED, default=0, help="default %(default)s")
    p.add_argument("--size", type=POSITIVE, nargs=2, metavar=("H", "W"), default=None,
                   help="image size (default: the training images' size)")
    p.add_argument("--out", metavar="PNG", default=None,
                   help="output file (default samples.png next to the checkpoint)")
    p.add_argument("--cols", type=POSITIVE, default=None,
                   help="grid columns (a multi-scale checkpoint: pairs per row) "
                        "(default: square)")
    p.add_argument("--scale", type=POSITIVE, default=3,
                   help="upscaling factor (default %(default)s)")
    p.add_argument("--naive", action="store_true",
                   help="naive sampler (one full forward pass per sub-pixel) instead of the "
                        "exact cached one; both draw the same images")
    p.add_argument("--npy", metavar="PATH", default=None,
                   help="also save the raw images (N, C, H, W) as .npy (a multi-scale "
                        "checkpoint: the large ones; their pixels (k r, k c) are the small "
                        "images)")
    add_device(p)
    add_paper_path(p)
    p.set_defaults(run=run)
    return p


def run(args):
    from ..png import write_png
    from ..sampling import sample
    model, spec, out = open_for_picture(args, "samples.png", fast=not args.paper_path)
    if args.npy:
        check_output(args.npy, flag="--npy")
    H, W = args.size or image_size(spec)
    t = time.perf_counter()
    images = sample(model, args.n, H, W, seed=args.seed, cached=not args.naive,
                    progress=progress_printer("sampling"))
    write_png(out, samples_picture(model, images, ncols=args.cols, scale=args.scale))
    if args.npy:
        import numpy as np
        from ..io import atomic_write
        with atomic_write(args.npy) as f:
            np.save(f, images)
    print(f"wrote {out}: {args.n} samples of {H}x{W} from {model.name}, seed {args.seed} "
          f"({time.perf_counter() - t:.1f} s)")
    return 0
