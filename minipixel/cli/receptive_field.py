"""minipixel receptive-field: which input pixels one output pixel's logits depend on.

For each model (small random float64 models, ReLUs made leaky so no path is
hidden by a dead unit) the exact gradient of the chosen pixel's logits with
respect to every input pixel (causality.dependency_map) is drawn side by
side, left to right in the order of --models:

    red     the pixel itself
    blue    context it reaches (a non-zero gradient)
    amber   context it does not reach (PixelCNN's blind spot and limited depth,
            the Row LSTM's triangle)
    grey    the future (not part of the context)
    black   a dependency on the future: a causality bug (never expected)
"""
import numpy as np

from ..argtypes import NON_NEGATIVE, POSITIVE, SEED, integer
from .common import CLIError, HelpFormatter, check_output


def add_parser(sub):
    p = sub.add_parser("receptive-field", help="PNG of the three models' receptive fields",
                       description=__doc__, formatter_class=HelpFormatter,
                       epilog="example:\n  minipixel receptive-field --out receptive_field.png")
    p.add_argument("--size", type=integer(2), default=16, help="image size S x S (default %(default)s)")
    p.add_argument("--pixel", type=NON_NEGATIVE, nargs=2, metavar=("ROW", "COL"), default=None,
                   help="the output pixel (default: row S-4, column S//3)")
    p.add_argument("--models", nargs="+", choices=("pixelcnn", "rowlstm", "diagonal"),
                   default=["pixelcnn", "rowlstm", "diagonal"], help="default: all three")
    p.add_argument("--layers", type=POSITIVE, default=3, help="layers per model (default %(default)s)")
    p.add_argument("--h", type=POSITIVE, default=4, help="hidden units (default %(default)s)")
    p.add_argument("--seed", type=SEED, default=0, help="default %(default)s")
    p.add_argument("--no-leaky", action="store_true",
                   help="keep plain ReLUs (dead units may then hide some paths)")
    p.add_argument("--out", metavar="PNG", default="receptive_field.png",
                   help="output file (default %(default)s)")
    p.add_argument("--scale", type=integer(2), default=14, help="pixels per cell (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="do not print the maps as text")
    p.set_defaults(run=run)
    return p


def run(args):
    from ..figures import receptive_field_figure, receptive_field_maps, receptive_field_text
    from ..models import build
    from ..png import write_png
    S = args.size
    pixel = tuple(args.pixel) if args.pixel else (max(S - 4, 0), S // 3)
    if not (0 <= pixel[0] < S and 0 <= pixel[1] < S):
        raise CLIError(f"--pixel {pixel} is outside the {S} x {S} image")
    check_output(args.out)
    models = [build(name, channels=1, levels=2, h=args.h, layers=args.layers, out_hidden=8,
                    seed=args.seed, dtype=np.float64) for name in args.models]
    maps = receptive_field_maps(models, S, S, pixel, seed=args.seed, leaky=not args.no_leaky)
    names = {"pixelcnn": "PixelCNN", "rowlstm": "Row LSTM", "diagonal": "Diagonal BiLSTM"}
    titles = [f"{names[name]}, {args.layers} layer{'s' if args.layers > 1 else ''}"
              for name in args.models]
    write_png(args.out, receptive_field_figure(maps, scale=args.scale, titles=titles))
    if not args.quiet:
        for name, code in zip(args.models, maps):
            reached = int((code == 1).sum())
            context = reached + int((code == 2).sum())
            print(receptive_field_text(code, f"{name} ({args.layers} layers): pixel {pixel} "
                                             f"reaches {reached} of {context} context pixels"))
            print()
        print("@ pixel   # context reached   o context not reached   . future   ! leak")
    leaks = [name for name, code in zip(args.models, maps) if (code == 4).any()]
    print(f"wrote {args.out}" + (f"; LEAK in {', '.join(leaks)}" if leaks else ""))
    return 1 if leaks else 0
