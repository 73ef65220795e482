"""minipixel upscale: a Multi-Scale checkpoint's large images drawn given test images'
small ones.

Each row: a test image's small image (the pixel (k r, k c) of each k x k block, shown
as those blocks), several large images drawn by the conditional network given it
(their pixels (k r, k c) are the small image's, the others drawn), and the original.
A command of its own, not a mode of `complete`: `complete` occludes rows of the large
image and works for every checkpoint, a multi-scale one included.
"""
import time

import numpy as np

from ..argtypes import POSITIVE
from .common import CLIError, checkpoint_parser, progress_printer
from .complete import add_test_image_flags, test_images


def add_parser(sub):
    p = checkpoint_parser(sub, "upscale", "draw large images given test images' small ones "
                                          "(a multi-scale checkpoint)",
                          __doc__, "--images 6 --draws 4 --out upscaled.png")
    add_test_image_flags(p, "upscaled.png")
    p.add_argument("--draws", type=POSITIVE, default=4,
                   help="large images drawn per small image (default %(default)s)")
    p.set_defaults(run=run)
    return p


def check_multiscale(model):
    from ..sampling.multiscale import is_multiscale
    if not is_multiscale(model):
        raise CLIError(f"upscale needs a multi-scale checkpoint (e.g. one trained with "
                       f"--preset mnist-multiscale); this one holds a {model.name} model")


def run(args):
    from ..figures import upscale_figure
    from ..png import write_png
    from ..sampling import upscale
    model, originals, out = test_images(args, "upscaled.png", check=check_multiscale)
    n, m = len(originals), args.draws
    C, H, W = originals.shape[1:]
    small = model.subsample(originals)
    t = time.perf_counter()
    drawn = upscale(model, np.repeat(small, m, axis=0), H, W, seed=args.seed,
                    cached=not args.naive, progress=progress_printer("upscaling"))
    write_png(out, upscale_figure(originals, small, drawn.reshape(n, m, C, H, W), model.levels,
                                  model.factor, scale=args.scale))
    sH, sW = small.shape[2:]
    print(f"wrote {out}: {n} test images (from #{args.first}), {m} large {H}x{W} images drawn "
          f"given each one's {sH}x{sW} small image ({time.perf_counter() - t:.1f} s)")
    return 0
