"""The `minipixel` command line (also `python -m minipixel`).

    minipixel                       the default main job (same as `minipixel train`)
    minipixel train ...             train; checkpoint every epoch and on Ctrl-C; --resume
    minipixel evaluate CKPT         test NLL in nats/image and bits/dim
    minipixel sample CKPT           a PNG grid of samples
    minipixel complete CKPT         completions of occluded test images (PNG)
    minipixel receptive-field       the three models' receptive fields (PNG)
    minipixel plot RUN_DIR...       learning curves of training runs (PNG)
    minipixel reference|compare|audit   the cross-check toolkit (minipixel.crosscheck)

One module per subcommand; each offers add_parser(subparsers) and run(args).
Exit status: 0 done, 1 a check failed, 2 a usage or input error, 130 Ctrl-C.
BLAS runs single-threaded unless MINIPIXEL_BLAS_THREADS says otherwise (cli/threads.py).
"""
import argparse
import sys

from . import complete, crosscheck, evaluate, plot, receptive_field, sample, train
from .common import CLIError
from .threads import configure_blas_threads

__all__ = ["main", "build_parser"]

SUBCOMMANDS = (train, evaluate, sample, complete, receptive_field, plot)


def build_parser():
    from .. import __version__
    p = argparse.ArgumentParser(
        prog="minipixel", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="PixelRNN (Row LSTM, Diagonal BiLSTM) and PixelCNN on a tiny NumPy/CuPy "
                    "autograd engine.\nWith no arguments: the default main job, a small "
                    "Diagonal BiLSTM on the embedded binarized digits (~8 min on 2 CPU cores).",
        epilog="`minipixel COMMAND --help` for each command's options.\n"
               "Environment: MINIPIXEL_BLAS_THREADS=N (default 1: small GEMMs run faster and "
               "never stall on a busy machine).")
    p.add_argument("--version", action="version", version=f"minipixel {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    crosscheck.add_parsers(sub)
    return p


def main(argv=None):
    """Run the command line; returns the exit status (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in crosscheck.COMMANDS:
        configure_blas_threads()
        return crosscheck.run(argv[0], argv[1:])
    parser = build_parser()
    names = {"train", "evaluate", "sample", "complete", "receptive-field", "plot"}
    if not argv or (argv[0] not in names and argv[0] not in ("-h", "--help", "--version")):
        argv = ["train"] + argv               # `minipixel [train flags]`: the train command
    args = parser.parse_args(argv)
    configure_blas_threads()
    try:
        return args.run(args)
    except CLIError as e:
        print(f"minipixel {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nminipixel {args.command}: interrupted", file=sys.stderr)
        return 130
