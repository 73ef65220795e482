"""minipixel plot: learning curves (train and test NLL per epoch) of one or more runs, as PNG.

Each RUN_DIR is a folder written by `minipixel train` (it holds metrics.json).
Runs are overlaid in one figure, one colour each, with a legend: test NLL solid,
training NLL dashed, and the data the runs were measured on. Runs on different data
(binary and binary-threshold digits, the digits and MNIST, two crops) or in different
units (a binary run's nats and an RGB run's) do not compare and are refused in one line;
--allow-mixed overlays them anyway, each run's data beside its label.
"""
import math

from .common import CLIError, HelpFormatter, check_output

EXAMPLE = """example:
  minipixel plot runs/main runs/mnist-diagonal --labels "2 layers" "7 layers" \
      --reference 88.33 NADE --out curves.png
"""


def add_parser(sub):
    p = sub.add_parser("plot", help="learning curves of training runs (PNG)",
                       description=__doc__, epilog=EXAMPLE, formatter_class=HelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders with metrics.json")
    p.add_argument("--out", metavar="PNG", default="curves.png",
                   help="output file (default %(default)s)")
    p.add_argument("--labels", nargs="+", metavar="LABEL", default=None,
                   help="one legend label per run (default: the folder names)")
    p.add_argument("--title", default=None, help="a title above the plot")
    p.add_argument("--reference", nargs=2, action="append", metavar=("NATS", "LABEL"),
                   default=[], help="a dotted line at NATS labelled LABEL (e.g. a published "
                                    "result); may be repeated")
    p.add_argument("--allow-mixed", action="store_true",
                   help="overlay runs on different data or in different units anyway")
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=(640, 400),
                   help="picture size in pixels (default 640 400)")
    p.set_defaults(run=run)
    return p


def run(args):
    from ..curves import write_curves_png
    width, height = args.size
    if not (200 <= width <= 4000 and 150 <= height <= 4000):
        raise CLIError(f"--size: expected a width in 200..4000 and a height in 150..4000, "
                       f"got {width} {height}")
    references = []
    for value, label in args.reference:
        try:
            nats = float(value)
        except ValueError:
            nats = math.nan
        if not math.isfinite(nats):
            raise CLIError(f"--reference: expected a finite number of nats, got {value!r}")
        references.append((nats, label))
    check_output(args.out)
    try:
        path = write_curves_png(args.out, args.runs, labels=args.labels, title=args.title,
                                width=width, height=height, references=references,
                                allow_mixed=args.allow_mixed)
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(str(e)) from None
    except OSError as e:
        raise CLIError(f"cannot write {args.out}: {e.strerror or e}") from None
    print(f"wrote {path} ({len(args.runs)} run(s))")
    return 0
