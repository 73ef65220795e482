"""`minipixel audit`: load the function to audit, run audit.py, print, exit with its status.

Targets:
    package.module:FACTORY      imported as installed; the current directory is searched
                                last, so it never shadows an installed module
    path/to/file.py:FACTORY     loaded from the file; modules next to it can be imported
    path/to/checkpoint.npz      a minipixel checkpoint's model (in float64 unless --native-dtype);
                                a multi-scale one's conditional network, its small image
                                held fixed (docs/multiscale.md)
FACTORY(**kwargs) returns a function (NumPy images -> logits; int64 unless --input says
otherwise) or a torch.nn.Module (given float images in [-1, 1] unless --input says
otherwise, kept in its train/eval mode, converted to float64 when it allows unless
--native-dtype).

Progress (calls done, time left) goes to stderr once an audit takes more than a few
seconds: redrawn in place on a terminal, a line every 15 s otherwise.

Exit status: 0 pass, 1 leaks or batch coupling found (or coverage under --min-coverage,
or no output moved with any input: nothing was tested, or the probe copy of --probe both
leaks),
2 bad usage or input (a bad target, bad logits, a nondeterministic function),
3 the audited code raised (its traceback is shown).
"""
import argparse
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback

from .adapters import LAYOUTS, checkpoint_fn, is_torch_module, model_fn, torch_fn
from ..argtypes import OneLineParser, fraction, integer, number
from ..io import dumps_json
from ..progress import format_time
from .audit import (DEFAULT_BASES, DEFAULT_BATCH, DEFAULT_TOL, DESIGNS, INPUT_LAYOUTS, INPUTS,
                    MAX_SHARED_BATCH, AuditError, FunctionRaised, audit)
from .fields import DEFAULT_KERNELS, KINDS, needs_layers

COST = """\
cost: 8 bases, 8x8, float64, one torch thread, on this project's 2-core CPU shared with
other jobs (load 4-5: wall times wander, the audit's CPU time is steadier); two runs of
python demos/outside_models.py --speed, the old default (isolated) against the new one
(auto) in one run each, with their verdicts:
                                        calls  images   CPU s (wall s), run 1 / run 2
  PixelCNN++ stand-in, RGB   isolated    1569    6276   101 (112) / 136 (142)
                             auto          81    1944    30  (44) /  34  (35)
  BatchNorm PixelCNN, grey   isolated     545    2180   6.1 (6.3) / 7.6 (7.9)
                             auto          33     660   2.0 (2.0) / 2.2 (2.2)
  the same in float32        isolated     545    2180   1.4 / 1.4, coverage 70.8%
  (--native-dtype)           auto          33     660   0.3 / 0.3, coverage 71.3%
  auto: 3.4x and 4.0x less CPU time on PixelCNN++, 3.1x and 3.5x on the BatchNorm
  PixelCNN; the same verdicts, leaks and maps in float64 (in float32 the maps differ on
  21 faint pairs at the threshold, the verdict and leaks are the same).
"""
COST += """\
designs: auto (default) shares calls between perturbed copies of an image (20 of them
in a call of 24) as long as every call shows the image's logits moving with nothing
but the image itself; at the first batch coupling or change with the place in the
call it starts again in the isolated design (each perturbed copy in its own call,
beside 3 fixed companions: catches batch statistics as leaks within the image).
--design isolated and --design per-image pick one. Calls grow with C*H*W*bases.
bases (default 8): a dependency is found when some base image moves it; paths behind
dead ReLUs hide on one image. Coverage of the causal context reached by random-init
minipixel models (12x12 grey, 256 levels, plain ReLUs, float64, out_hidden 8), against
the paper's field:
  bases                       1      2      4      8      16     paper's field
  PixelCNN, 8 layers, h=1     56.3%  59.8%  62.7%  65.7%  67.5%  89.2%
  PixelCNN, 8 layers, h=2     82.5%  83.4%  84.5%  85.5%  86.2%  89.2%
  PixelCNN, 8 layers, h=8     89.2%  89.2%  89.2%  89.2%  89.2%  89.2%
  Row LSTM, 4 layers, h=1,2,8 87.0% at any number of bases        87.0%
  8 bases come within 0.7 points of 16 from h=2 up (a 1-unit PixelCNN never settles:
  its dead ReLUs need --probe leaky). In float32 at the default threshold the same
  PixelCNN (h=8) shows 55-62% from 1 to 16 bases: the faint changes are counted in the
  report; use float64 or --tol 0.
--probe leaky audits a copy with leaky ReLUs (nn.ReLU modules and functional relu
calls): every wire carries a change, so one base gives the structure, but it is the
copy's coverage, not the trained model's; --probe both audits the model and the copy
and splits the gaps into dead paths and missing wires (twice the cost).
PyTorch runs with MINIPIXEL_BLAS_THREADS threads (default 1) unless OMP_NUM_THREADS
is set: two threads made these tiny calls 17-45 times slower on a busy 2-core machine.
"""


class LoadError(ValueError):
    """The target cannot be loaded: a usage error (exit 2)."""


class UserCodeError(Exception):
    """The user's module or factory raised while loading (exit 3); __cause__ is its error."""


def _import(module_name):
    """Import a module by name; the current directory is searched after installed modules
    (`python -m` puts it first: it moves to the end)."""
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cwd)] + [cwd]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise LoadError(f"no module named {module_name!r}") from None
        raise UserCodeError(f"importing {module_name!r} raised") from e
    except Exception as e:                                          # noqa: BLE001
        raise UserCodeError(f"importing {module_name!r} raised") from e


def _load_file(path):
    """Execute a .py file as a module; its directory goes first on sys.path (as `python
    file.py` does), so modules next to it can be imported."""
    if not os.path.isfile(path):
        raise LoadError(f"no file {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = "_minipixel_audit_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:                                          # noqa: BLE001
        del sys.modules[name]
        raise UserCodeError(f"loading {path!r} raised") from e
    return module


def load_factory(target):
    """'package.module:factory' or 'path/to/file.py:factory' -> the factory."""
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise LoadError(f"expected MODULE:FACTORY, FILE.py:FACTORY or CHECKPOINT.npz "
                        f"(e.g. mypkg.models:make_fn or demo.py:make_fn), got {target!r}")
    if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
        module = _load_file(module_name)
    else:
        module = _import(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise LoadError(f"module {module_name!r} has no {attr!r}") from None


def load_object(target, kwargs):
    """What the target names: a checkpoint path (kept as its path), or what FACTORY(**kwargs)
    returns (a function, a torch module)."""
    if target.endswith(".npz") and ":" not in target:
        if kwargs:
            raise LoadError("--kwargs is for a FACTORY, not a checkpoint")
        return target
    factory = load_factory(target)
    if not callable(factory):
        raise LoadError(f"{target} is not callable")
    try:
        obj = factory(**kwargs)
    except Exception as e:                                          # noqa: BLE001
        raise UserCodeError(f"the factory {target} raised") from e
    if not callable(obj):
        raise LoadError(f"the factory {target} must return a callable, got "
                        f"{type(obj).__name__}")
    return obj


def make_function(obj, float64=True, inputs=None, probe=False):
    """The audit function for a loaded object; probe: its copy with leaky ReLUs."""
    if isinstance(obj, str):
        try:
            return checkpoint_fn(obj, float64, leaky=probe)
        except (ValueError, OSError) as e:
            raise LoadError(str(e)) from None
    if is_torch_module(obj):
        return torch_fn(obj, float64, inputs or "signed", probe="leaky" if probe else None)
    if probe:
        if getattr(obj, "model", None) is not None and hasattr(obj.model, "variant"):
            return model_fn(obj.model, leaky=True)          # adapters.model_fn / tiny
        raise LoadError("--probe needs a torch.nn.Module, a minipixel checkpoint or a "
                        "minipixel model's function (adapters.model_fn); a plain function "
                        "has no ReLUs to make leaky")
    return obj


def load_target(target, kwargs, float64=True, inputs=None):
    """The function to audit, from a target and the factory's keyword arguments."""
    return make_function(load_object(target, kwargs), float64, inputs)


class AuditProgress:
    """progress(calls done, calls planned) for audit(): a line on `stream` once the audit
    has run `delay` seconds; redrawn in place on a terminal (at most every 0.5 s), else
    a new line every `every` seconds. done() clears a terminal's line."""

    def __init__(self, desc="audit", stream=None, delay=3.0, every=15.0):
        self.desc, self.stream = desc, stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.delay, self.every = delay, every
        self.start = time.perf_counter()
        self.last = None
        self.drawn = False

    def line(self, done, total):
        elapsed = time.perf_counter() - self.start
        left = elapsed / done * (total - done) if done else None
        return (f"{self.desc}: {done}/{total} calls ({100 * done / max(total, 1):.0f}%), "
                f"{format_time(elapsed)} so far, about {format_time(left)} left")

    def __call__(self, done, total):
        now = time.perf_counter()
        if now - self.start < self.delay:
            return
        gap = 0.5 if self.tty else self.every
        if self.last is not None and now - self.last < gap and done < total:
            return
        self.last = now
        text = self.line(done, total)
        self.stream.write(("\r" + text + "\x1b[K") if self.tty else text + "\n")
        self.stream.flush()
        self.drawn = True

    def done(self):
        if self.drawn and self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def kernel_pair(text):
    """--kernels 'A,B': two odd kernel sizes (the mask-A layer, the mask-B layers)."""
    try:
        ka, kb = (int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two odd sizes A,B (e.g. 7,3), "
                                         f"got {text!r}") from None
    if ka < 1 or kb < 1 or ka % 2 == 0 or kb % 2 == 0:
        raise argparse.ArgumentTypeError(f"expected two odd sizes A,B (e.g. 7,3), got {text}")
    return ka, kb


def torch_threads():
    """Run PyTorch with MINIPIXEL_BLAS_THREADS threads (default 1) unless OMP_NUM_THREADS is
    set: the audit's many tiny calls ran 17-45x slower with 2 threads on a busy 2-core
    machine."""
    torch = sys.modules.get("torch")
    if torch is None or os.environ.get("OMP_NUM_THREADS"):
        return
    try:
        torch.set_num_threads(max(1, int(os.environ.get("MINIPIXEL_BLAS_THREADS") or 1)))
    except ValueError:
        torch.set_num_threads(1)


def _parse_show(text, C):
    """'r,c' or 'r,c,colour' (colour an index or R/G/B) -> (k, r, c); default the last colour."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        r, c = int(parts[0]), int(parts[1])
        k = C - 1
        if len(parts) == 3:
            k = "RGB".index(parts[2].upper()) if parts[2].upper() in ("R", "G", "B") \
                else int(parts[2])
    except ValueError:
        raise LoadError(f"--show expects ROW,COLUMN[,COLOUR], got {text!r}") from None
    return k, r, c


def build_parser():
    from argparse import RawDescriptionHelpFormatter
    ap = OneLineParser(
        prog="minipixel audit", formatter_class=RawDescriptionHelpFormatter,
        description="Black-box causality audit of an images -> logits function: every leak "
                    "(with its size and usual cause), batch coupling, coverage of the causal "
                    "context, and the difference from an expected field (--expect).\n\n"
                    + __doc__.split("\n", 2)[2],
        epilog=COST)
    ap.add_argument("target", help="MODULE:FACTORY, FILE.py:FACTORY or CHECKPOINT.npz")
    ap.add_argument("--kwargs", default="{}", help="JSON object passed to the factory")
    ap.add_argument("--channels", type=integer(1), help="colours C (else fn.channels)")
    ap.add_argument("--levels", type=integer(2), help="values per sub-pixel (else fn.levels)")
    ap.add_argument("--height", type=integer(1), default=8, help="default %(default)s")
    ap.add_argument("--width", type=integer(1), default=8, help="default %(default)s")
    ap.add_argument("--bases", type=integer(1), default=DEFAULT_BASES,
                    help="random base images (default %(default)s; see below)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=number(0),
                    help="change threshold relative to max |logit| (default by dtype: "
                         + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_TOL.items()) + ")")
    ap.add_argument("--design", choices=DESIGNS, default=None,
                    help="auto (default): shared calls while the function shows itself "
                         "per-image in every call, else isolated; isolated: each perturbed "
                         "copy in its own call beside fixed companions (catches batch "
                         "statistics); per-image: shared calls, never isolated")
    ap.add_argument("--per-image", action="store_true", help="the same as --design per-image")
    ap.add_argument("--batch", type=integer(1),
                    help=f"images in every call (default: {DEFAULT_BATCH} in the isolated "
                         f"design, the image and {DEFAULT_BATCH - 1} fixed companions; up to "
                         f"{MAX_SHARED_BATCH} in shared calls). Give the training batch size "
                         f"to see batch-statistics leaks at their real size, or the one size "
                         f"a model takes")
    ap.add_argument("--input", choices=sorted(INPUTS), default=None,
                    help="what the function is given for values v of 0..V-1: "
                         + "; ".join(f"{k} {v}" for k, v in INPUTS.items())
                         + " (default: signed for a torch module, else int)")
    ap.add_argument("--input-layout", choices=INPUT_LAYOUTS, default="nchw",
                    help="images as (N, C, H, W) (default) or (N, H, W, C)")
    ap.add_argument("--layout", choices=sorted(LAYOUTS), default="nchw",
                    help="logits layout: " + "; ".join(f"{k} {v}" for k, v in LAYOUTS.items()))
    ap.add_argument("--native-dtype", action="store_true",
                    help="do not convert a torch module or a checkpoint to float64")
    ap.add_argument("--probe", choices=("leaky", "both"),
                    help="leaky: audit a copy with leaky ReLUs (torch modules, checkpoints); "
                         "both: audit the model and that copy, and split the gaps into dead "
                         "paths and missing wires")
    ap.add_argument("--expect", choices=KINDS,
                    help="compare with an exact field: the paper's pixelcnn, rowlstm or "
                         "diagonal; full (the whole causal context: gated PixelCNN, "
                         "PixelCNN++); maskb (one mask-A conv, then --layers mask-B convs)")
    ap.add_argument("--layers", type=integer(1), help="its layers (pixelcnn, rowlstm, maskb)")
    ap.add_argument("--kernels", type=kernel_pair, metavar="A,B",
                    help=f"maskb: the mask-A kernel and the mask-B kernels (default "
                         f"{DEFAULT_KERNELS[0]},{DEFAULT_KERNELS[1]})")
    ap.add_argument("--show", action="append", default=[], metavar="R,C[,COLOUR]",
                    help="print this output's field as text (repeatable)")
    ap.add_argument("--png", help="write the dependency map (with a legend) here")
    ap.add_argument("--max-lines", type=integer(0), default=20,
                    help="leak lines to print (default %(default)s)")
    ap.add_argument("--min-coverage", type=fraction, default=0.0,
                    help="fail unless this fraction of the causal context is reached")
    ap.add_argument("--json", action="store_true")
    return ap


def audit_main(argv=None):
    """minipixel audit TARGET [options]; returns the exit status (module docstring)."""
    a = build_parser().parse_args(argv)
    err = sys.stderr
    design = a.design or ("per-image" if a.per_image else "auto")
    progress = []
    try:
        kwargs = json.loads(a.kwargs)
        if not isinstance(kwargs, dict):
            raise LoadError(f"--kwargs must be a JSON object, got {a.kwargs!r}")
        if a.per_image and a.design not in (None, "per-image"):
            raise LoadError(f"--per-image and --design {a.design} disagree")
        if a.expect and needs_layers(a.expect) and a.layers is None:
            raise LoadError(f"--expect {a.expect} needs --layers")
        if a.kernels and a.expect != "maskb":
            raise LoadError("--kernels is for --expect maskb")
        if design == "per-image" and a.batch is not None and a.batch < 5:
            raise LoadError(f"--design per-image needs --batch >= 5 (base, a random image, a "
                            f"copy, another, base), got {a.batch}")
        obj = load_object(a.target, kwargs)
        fn = make_function(obj, not a.native_dtype, a.input, probe=a.probe == "leaky")
        probe_fn = make_function(obj, not a.native_dtype, a.input, probe=True) \
            if a.probe == "both" else None
        torch_threads()
        channels = a.channels or getattr(fn, "channels", None)
        levels = a.levels or getattr(fn, "levels", None)
        if channels is None or levels is None:
            raise LoadError("give --channels and --levels (the function has no .channels "
                            "and .levels)")
        shows = [_parse_show(s, channels) for s in a.show]

        def run(f, desc):
            progress.append(AuditProgress(desc, err))
            try:
                return audit(f, channels, levels, a.height, a.width, a.bases, a.seed, a.tol,
                             a.batch, layout=a.layout, expect=a.expect, layers=a.layers,
                             design=design, inputs=a.input, input_layout=a.input_layout,
                             kernels=a.kernels, progress=progress[-1])
            finally:
                progress[-1].done()
        report = run(fn, "audit")
        if probe_fn is not None:
            report.probe = run(probe_fn, "audit of the probe copy")
        texts = [report.show(*s) for s in shows]
    except json.JSONDecodeError as e:
        print(f"minipixel audit: error: --kwargs is not JSON ({e})", file=err)
        return 2
    except (UserCodeError, FunctionRaised) as e:
        traceback.print_exception(type(e.__cause__), e.__cause__, e.__cause__.__traceback__,
                                  file=err)
        print(f"minipixel audit: {e} (traceback above)", file=err)
        return 3
    except (LoadError, AuditError, ValueError) as e:
        print(f"minipixel audit: {e}", file=err)
        return 2
    if a.json:
        print(dumps_json(report.to_dict()))
    else:
        print(report.format(a.max_lines))
        for text in texts:
            print(text)
    if a.png:
        report.write_png(a.png)
        if not a.json:
            print(f"map written to {a.png}")
    if not report.passed:
        return 1
    if report.total_coverage < a.min_coverage:
        if not a.json:
            print(f"coverage {report.total_coverage:.3f} below --min-coverage {a.min_coverage}")
        return 1
    return 0
