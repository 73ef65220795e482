"""minipixel complete: the paper's completions figure.

Test images with the lower half occluded; each row shows the occluded image,
several completions drawn by the model, and the original. A Multi-Scale
checkpoint completes in its two stages: the small image's occluded pixels
first, then the large image's others given it.
"""
import time

import numpy as np

from ..argtypes import NON_NEGATIVE, POSITIVE, SEED
from .common import (CLIError, checkpoint_parser, add_dataset, add_device, check_fits,
                     dataset_spec, load_data, open_for_picture, progress_printer)


def add_parser(sub):
    p = checkpoint_parser(sub, "complete", "complete occluded test images (the paper's figure)",
                          __doc__, "--images 6 --completions 5 --out completions.png")
    add_test_image_flags(p, "completions.png")
    p.add_argument("--completions", type=POSITIVE, default=4,
                   help="completions per image (default %(default)s)")
    p.add_argument("--keep-rows", type=NON_NEGATIVE, default=None,
                   help="rows kept from the top (default: half the image)")
    p.set_defaults(run=run)
    return p


def add_test_image_flags(p, picture):
    """The flags of a figure drawn from test images (`complete`, `upscale`)."""
    p.add_argument("--images", type=POSITIVE, default=6,
                   help="test images (rows) (default %(default)s)")
    p.add_argument("--first", type=NON_NEGATIVE, default=0,
                   help="index of the first test image used (default %(default)s)")
    p.add_argument("--seed", type=SEED, default=0, help="default %(default)s")
    p.add_argument("--out", metavar="PNG", default=None,
                   help=f"output file (default {picture} next to the checkpoint)")
    p.add_argument("--scale", type=POSITIVE, default=3,
                   help="upscaling factor (default %(default)s)")
    p.add_argument("--naive", action="store_true", help="naive sampler instead of the cached one")
    add_dataset(p)
    add_device(p)


def test_images(args, picture, check=None):
    """(model, its test images --first.. (n, C, H, W), the PNG path) for a figure drawn
    from test images; check(model): a one-line CLIError for a model that cannot draw it."""
    model, spec, out = open_for_picture(args, picture)
    if check is not None:
        check(model)
    spec = dataset_spec(args, dict(spec, n_train=None))
    spec.update(n_test=None)
    data = load_data(spec, splits=("test",))   # only the test images are needed
    check_fits(model, data)
    if not 0 <= args.first <= len(data.test) - args.images:
        raise CLIError(f"--first {args.first} with --images {args.images}: the test set has "
                       f"{len(data.test)} images")
    return model, data.test[args.first:args.first + args.images], out


def run(args):
    from ..figures import completions_figure, occlusion_mask
    from ..png import write_png
    from ..sampling import sample
    model, originals, out = test_images(args, "completions.png")
    n, k = len(originals), args.completions
    C, H, W = originals.shape[1:]
    keep = H // 2 if args.keep_rows is None else args.keep_rows
    if not 0 <= keep <= H:
        raise CLIError(f"--keep-rows must be in 0..{H}, got {keep}")
    given = np.repeat(originals, k, axis=0)                        # (n*k, C, H, W)
    t = time.perf_counter()
    drawn = sample(model, n * k, H, W, seed=args.seed, cached=not args.naive, given=given,
                   given_mask=occlusion_mask(H, W, keep), progress=progress_printer("completing"))
    write_png(out, completions_figure(originals, drawn.reshape(n, k, C, H, W), model.levels,
                                      keep, scale=args.scale))
    print(f"wrote {out}: {n} test images (from #{args.first}), {k} completions each of the "
          f"lower {H - keep} rows ({time.perf_counter() - t:.1f} s)")
    return 0
