"""The `minipixel` command line (also `python -m minipixel`).

    minipixel                       the default main job (same as `minipixel train`)
    minipixel train ...             train; checkpoint every epoch and on Ctrl-C; --resume
    minipixel evaluate CKPT         test NLL in nats/image and bits/dim
    minipixel sample CKPT           a PNG grid of samples
    minipixel complete CKPT         completions of occluded test images (PNG)
    minipixel upscale CKPT          large images drawn given test images' small ones (PNG,
                                    a multi-scale checkpoint)
    minipixel receptive-field       the three models' receptive fields (PNG)
    minipixel plot RUN_DIR...       learning curves of training runs (PNG)
    minipixel reference|compare|audit   the cross-check toolkit (minipixel.crosscheck)

One module per subcommand; each offers add_parser(subparsers) and run(args).

Errors: every expected failure (a bad flag, a missing or damaged file, an
output that cannot be written, a locked run folder, a diverging run, a
missing GPU, memory running out) is one line on stderr,
``minipixel <command>: <what went wrong and what to do>``, and exit status 2.
A traceback means a bug in minipixel; ``--debug`` (anywhere on the command
line) shows the traceback of an expected failure too.
Exit status: 0 done, 1 a check failed, 2 a usage or input error, 130 Ctrl-C,
143 SIGTERM (training saves a checkpoint on both).
Each command computes where its --device says (the CPU if it has none), whatever
MINIPIXEL_DEVICE says.
BLAS runs single-threaded unless MINIPIXEL_BLAS_THREADS says otherwise (cli/threads.py).
"""
import argparse
import contextlib
import io
import signal
import sys
import traceback

from ..argtypes import OneLineParser
from ..backend import DeviceError, default_device_override
from ..checkpoint import CheckpointError
from ..distributed import GroupError, launched_rank, leave
from ..interrupts import interrupts
from ..runlock import RunLocked
from ..training import TrainingDiverged
from . import complete, crosscheck, evaluate, plot, receptive_field, sample, train, upscale
from .common import CLIError, describe
from .threads import configure_blas_threads

__all__ = ["main", "build_parser", "EXPECTED_ERRORS"]

SUBCOMMANDS = (train, evaluate, sample, complete, upscale, receptive_field, plot)

# Failures that are the input's or the environment's, not minipixel's: one line, exit 2.
EXPECTED_ERRORS = (CLIError, CheckpointError, DeviceError, TrainingDiverged, RunLocked, OSError,
                   MemoryError, GroupError)


def build_parser():
    from .. import __version__
    p = OneLineParser(
        prog="minipixel", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="PixelRNN (Row LSTM, Diagonal BiLSTM) and PixelCNN on a tiny NumPy/CuPy "
                    "autograd engine.\nWith no arguments: the default main job, a small "
                    "Diagonal BiLSTM on the embedded binarized digits (~3 min on 2 CPU cores).",
        epilog="`minipixel COMMAND --help` for each command's options.\n"
               "Environment: MINIPIXEL_BLAS_THREADS=N (default 1: small GEMMs run faster and "
               "never stall on a busy machine).")
    p.add_argument("--version", action="version", version=f"minipixel {__version__}")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an error (anywhere on the command line)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    crosscheck.add_parsers(sub)
    return p


def _strip_debug(argv):
    """(argv without --debug, whether it was there); arguments after "--" are kept."""
    cut = argv.index("--") if "--" in argv else len(argv)
    head = [a for a in argv[:cut] if a != "--debug"]
    return head + argv[cut:], len(head) != cut


def main(argv=None):
    """Run the command line; returns the exit status (the console script exits with it)."""
    argv, debug = _strip_debug(list(sys.argv[1:] if argv is None else argv))
    if argv and argv[0] in crosscheck.COMMANDS:
        configure_blas_threads()
        return _guarded(argv[0], debug, "cpu", crosscheck.run, argv[0], argv[1:])
    parser = build_parser()
    names = {"train", "evaluate", "sample", "complete", "upscale", "receptive-field", "plot"}
    if not argv or (argv[0] not in names and argv[0] not in ("-h", "--help", "--version")):
        argv = ["train"] + argv               # `minipixel [train flags]`: the train command
    with _quiet_unless_rank_0():              # under mpiexec: one usage error, not K
        args = parser.parse_args(argv)
    configure_blas_threads()
    return _guarded(args.command, debug, getattr(args, "device", "cpu"), args.run, args)


def _guarded(command, debug, device, fn, *args):
    """fn(*args) computing on `device`, with expected failures as one line and exit 2,
    Ctrl-C (SIGINT) as 130 and SIGTERM as 143 (a training run saves its checkpoint first).
    Under an MPI launcher only rank 0 prints what every rank knows (``distributed``)."""
    try:
        # --device alone decides where a command computes (MINIPIXEL_DEVICE is for the API)
        with interrupts(), default_device_override(device):
            return fn(*args)
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        if launched_rank() == 0:
            print(f"\nminipixel {command}: interrupted ({signal.Signals(signum).name})",
                  file=sys.stderr)
        return leave(128 + int(signum))
    except EXPECTED_ERRORS as e:
        if debug:
            raise
        cause = e.__cause__
        if isinstance(e, GroupError) and cause is not None \
                and not isinstance(cause, EXPECTED_ERRORS):     # a bug on this rank
            traceback.print_exception(type(cause), cause, cause.__traceback__)
        if launched_rank() == 0 or getattr(e, "report", False):
            print(f"minipixel {command}: {describe(e)}", file=sys.stderr)
        return leave(2)


@contextlib.contextmanager
def _quiet_unless_rank_0():
    if launched_rank() == 0:
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            yield
        except SystemExit as e:
            leave(e.code if isinstance(e.code, int) else 2)
            raise
