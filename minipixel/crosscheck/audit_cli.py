"""`minipixel audit`: load the function to audit, run audit.py, print, exit with its status.

Targets:
    package.module:FACTORY      imported as installed; the current directory is searched
                                last, so it never shadows an installed module
    path/to/file.py:FACTORY     loaded from the file; modules next to it can be imported
    path/to/checkpoint.npz      a minipixel checkpoint's model (in float64 unless --native-dtype)
FACTORY(**kwargs) returns a function (NumPy int64 images -> logits) or a torch.nn.Module
(called with an int64 tensor, kept in its train/eval mode, converted to float64 when it
allows unless --native-dtype).

Exit status: 0 pass, 1 leaks or batch coupling found (or coverage under --min-coverage,
or no output moved with any input: nothing was tested),
2 bad usage or input (a bad target, bad logits, a nondeterministic function),
3 the audited code raised (its traceback is shown).
"""
import importlib
import importlib.util
import json
import os
import sys
import traceback

from .adapters import LAYOUTS, checkpoint_fn, is_torch_module, torch_fn
from ..argtypes import OneLineParser, fraction, integer, number
from ..io import dumps_json
from .audit import (DEFAULT_BASES, DEFAULT_BATCH, DEFAULT_TOL, AuditError, FunctionRaised,
                    audit)
from .fields import KINDS

COST = """\
cost, measured on this project's 2-core CPU (shared, load ~5): a 12x12 grey PyTorch
PixelCNN (7x7 mask A, 4 layers of 16 maps, 256 levels), 8 bases, one torch thread:
  isolated design (default; catches batch statistics and batch coupling):
      1185 calls of 4 images (4740 images), 10 s
  --per-image (fast path for models known to treat each image on its own; batch
  coupling is still checked directly, batch statistics within an image are not):
      41 calls (1300 images), 5 s
  Calls grow with C*H*W*bases: an 8x8 RGB image costs 4/3 of a 12x12 grey one.
bases (default 8): a dependency is found when some base image moves it; paths behind
dead ReLUs hide on one image. Coverage of the causal context reached by random-init
minipixel models (12x12 grey, plain ReLUs, float64), against the paper's field:
  bases                       1      2      4      8      16     paper's field
  PixelCNN, 8 layers, h=1     60.1%  63.0%  66.8%  69.2%  70.8%  89.2%
  PixelCNN, 8 layers, h=2     82.5%  84.3%  85.5%  86.3%  86.6%  89.2%
  PixelCNN, 8 layers, h=8     89.2%  89.2%  89.2%  89.2%  89.2%  89.2%
  Row LSTM, 4 layers, h=1,2,8 87.0% at any number of bases        87.0%
  8 bases come within 0.3 points of 16 from h=2 up (a 1-unit PixelCNN never settles:
  its dead ReLUs need a leaky probe, adapters.model_fn(leaky=True)). In float32 at the
  default threshold the same PixelCNN (h=8) shows 60-65% at any number of bases: the
  faint changes are counted in the report; use float64 or --tol 0.
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


def load_target(target, kwargs, float64=True):
    """The function to audit, from a target and the factory's keyword arguments."""
    if target.endswith(".npz") and ":" not in target:
        if kwargs:
            raise LoadError("--kwargs is for a FACTORY, not a checkpoint")
        try:
            return checkpoint_fn(target, float64)
        except (ValueError, OSError) as e:
            raise LoadError(str(e)) from None
    factory = load_factory(target)
    if not callable(factory):
        raise LoadError(f"{target} is not callable")
    try:
        fn = factory(**kwargs)
    except Exception as e:                                          # noqa: BLE001
        raise UserCodeError(f"the factory {target} raised") from e
    if is_torch_module(fn):
        fn = torch_fn(fn, float64)
    if not callable(fn):
        raise LoadError(f"the factory {target} must return a callable, got "
                        f"{type(fn).__name__}")
    return fn


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
                    "(with its size), batch coupling, coverage of the causal context, and the "
                    "difference from the paper's receptive fields (--expect).\n\n"
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
    ap.add_argument("--batch", type=integer(1),
                    help=f"images per call (default {DEFAULT_BATCH}: the image and "
                         f"{DEFAULT_BATCH - 1} fixed companions; give the training batch size "
                         f"to see batch-statistics leaks at their real size; with "
                         f"--per-image, default all)")
    ap.add_argument("--per-image", action="store_true",
                    help="fast path for models known to treat each image on its own: many "
                         "perturbed copies per call (batch statistics cancel there; batch "
                         "coupling is still checked directly)")
    ap.add_argument("--layout", choices=sorted(LAYOUTS), default="nchw",
                    help="logits layout: " + "; ".join(f"{k} {v}" for k, v in LAYOUTS.items()))
    ap.add_argument("--native-dtype", action="store_true",
                    help="do not convert a torch module or a checkpoint to float64")
    ap.add_argument("--expect", choices=KINDS,
                    help="compare with the exact field of the paper's model of this kind")
    ap.add_argument("--layers", type=integer(1), help="its layers (pixelcnn, rowlstm)")
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
    try:
        kwargs = json.loads(a.kwargs)
        if not isinstance(kwargs, dict):
            raise LoadError(f"--kwargs must be a JSON object, got {a.kwargs!r}")
        if a.expect in ("pixelcnn", "rowlstm") and a.layers is None:
            raise LoadError(f"--expect {a.expect} needs --layers")
        if a.per_image and a.batch is not None and a.batch < 3:
            raise LoadError(f"--per-image needs --batch >= 3 (base, a copy, base), got {a.batch}")
        fn = load_target(a.target, kwargs, float64=not a.native_dtype)
        torch_threads()
        channels = a.channels or getattr(fn, "channels", None)
        levels = a.levels or getattr(fn, "levels", None)
        if channels is None or levels is None:
            raise LoadError("give --channels and --levels (the function has no .channels "
                            "and .levels)")
        shows = [_parse_show(s, channels) for s in a.show]
        report = audit(fn, channels, levels, a.height, a.width, a.bases, a.seed, a.tol,
                       a.batch, a.per_image, a.layout, a.expect, a.layers)
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
