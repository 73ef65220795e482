"""Compare a second implementation's arrays with a reference file (format: reference.py).

Every array the second file holds is compared with the reference's array of
the same key. Errors are relative to the reference array's scale:

    scale   = max |ref|                       (1 if the array is all zeros)
    max_abs = max |theirs - ref|
    max_rel = max_abs / scale
    an element diverges when |theirs - ref| > rtol * scale; the array passes
    when none does (max_rel <= rtol). Integer arrays must match exactly.

rtol depends on the less precise dtype of the two (RTOL below) unless given;
an absolute tolerance atol (default 0) can be added: an element diverges when
|theirs - ref| > rtol * scale + atol. Normwise, not elementwise: gradients and
logits hold many near-zero entries whose elementwise relative error says nothing.

Non-finite values: a NaN or an infinity anywhere in either file is a failure
(also in a reference array the second file does not hold), unless
allow_nan=True and both files hold the same non-finite value at the same place,
whatever the tolerances; tolerances whose rtol * scale + atol is not finite
are refused (ValueError, exit 2) rather than compared with. --json output is
strict JSON: an infinite error is written as null.
Arrays of strings or booleans pass when equal. A shape mismatch fails and
counts as an infinite error.

For logits and the layer outputs (layer/*, hidden/*, skip, out_hidden) the
report gives the first diverging element in raster order: image, row,
column, colour (a feature channel's colour group, masks.py), then channel or
value; and the first array of the forward pass that diverges.
"""
import math
import sys
from dataclasses import dataclass, field

import numpy as np

from ..layers.masks import channel_groups
from ..io import dumps_json
from ..validate import finite
from .reference import Reference, ReferenceFormatError, check_arrays, read_reference

RTOL = {"float64": 1e-9, "float32": 1e-4, "float16": 1e-2}
FEATURE_MAPS = ("layer", "hidden", "skip", "out_hidden")
CONDITIONING = ("upsampler/embed", "upsampler/up", "condition")   # a multi-scale model's
COLOUR = "RGB"


def _order(key):
    """Forward-pass order of the keys: inputs, parameters, (a multi-scale model's small
    network, upsampler and conditioning map,) layers, head, gradients."""
    head, _, tail = key.partition("/")
    if key in ("images", "small/images"):
        return (0, key != "images")
    if head in ("param", "mask"):
        return (1,)
    if head == "small":
        return (2,) + _network_order(tail)
    if key in CONDITIONING:
        return (3, CONDITIONING.index(key))
    if head == "grad":
        return (5,)
    return (4,) + _network_order(key)


def _network_order(key):
    """One network's forward keys in order: layer/0, hidden/1, layer/1, ..., skip, ..., nll."""
    head, _, tail = key.partition("/")
    if head in ("layer", "hidden") and tail.isdigit():
        return (0, int(tail), 0 if head == "hidden" else 1)
    fixed = {"skip": 1, "out_hidden": 2, "logits": 3, "nll": 4}
    return (fixed[key],) if key in fixed else (5,)


def is_input(key):
    """Keys a second implementation is given rather than computes."""
    return key in ("images", "config") or key.partition("/")[0] in ("param", "mask")


def is_forward(key):
    if key.startswith("small/"):
        key = key[len("small/"):]
    return key.partition("/")[0] in FEATURE_MAPS or key in ("logits", "nll") + CONDITIONING


@dataclass
class ArrayResult:
    key: str
    shape: tuple
    dtypes: tuple                 # (reference, theirs)
    max_abs: float = 0.0
    max_rel: float = 0.0
    rtol: float = 0.0
    passed: bool = True
    n_bad: int = 0
    first: dict = None            # first diverging element: position and both values
    note: str = ""
    numeric: bool = True          # False: no error sizes, the note says it all

    def line(self):
        status = "PASS" if self.passed else "FAIL"
        s = f"{status}  {self.key:<44} {str(self.shape):<18} "
        if not self.numeric:
            return s + self.note
        s += f"max abs {self.max_abs:.3g}  rel {self.max_rel:.3g}  (rtol {self.rtol:g})"
        if self.note:
            s += f"; {self.note}"
        if self.first is not None:
            s += f"\n      {self.n_bad} element(s) diverge; first at {self.first['where']}: " \
                 f"ref {self.first['ref']:.10g}, theirs {self.first['theirs']:.10g}"
        return s


@dataclass
class CompareReport:
    ref_name: str
    their_name: str
    results: list = field(default_factory=list)
    not_compared: list = field(default_factory=list)   # reference keys the second file lacks

    @property
    def passed(self):
        return all(r.passed for r in self.results) and bool(self.results)

    @property
    def failures(self):
        return [r for r in self.results if not r.passed]

    @property
    def first_diverging(self):
        """The first array of the forward pass (layer/0 .. logits, nll) that fails, or None."""
        for r in self.results:
            if not r.passed and is_forward(r.key):
                return r
        return None

    def result(self, key):
        return next(r for r in self.results if r.key == key)

    def worst_rel(self, keys=None):
        rels = [r.max_rel for r in self.results if keys is None or r.key in keys]
        return max(rels, default=0.0)

    @property
    def not_compared_inputs(self):
        """Reference inputs (images, parameters, masks) the second file does not repeat."""
        return [k for k in self.not_compared if is_input(k)]

    @property
    def not_compared_outputs(self):
        """Reference outputs (layers, logits, nll, gradients) the second file does not hold."""
        return [k for k in self.not_compared if not is_input(k)]

    def format(self, verbose=True, first_only=False):
        """The report; first_only: the first divergence (forward order) and the result."""
        lines = [] if first_only else [
            f"compare {self.their_name} against reference {self.ref_name}",
            "  (errors relative to each reference array's max |value|)"]
        failures = self.failures
        shown = self.results if verbose and not first_only else failures
        if first_only:
            shown = [self.first_diverging or failures[0]] if failures else []
        for r in shown:
            lines.append("  " + r.line().replace("\n", "\n  "))
        if not first_only:
            for what, keys in (("inputs not repeated in the second file (fine: they are "
                                "given)", self.not_compared_inputs),
                               ("outputs not in the second file (NOT compared)",
                                self.not_compared_outputs)):
                if keys:
                    lines.append(f"  {what}: {len(keys)} key(s): {', '.join(keys[:8])}"
                                 f"{' ...' if len(keys) > 8 else ''}")
            first = self.first_diverging
            if first is not None:
                where = f" at {first.first['where']}" if first.first else ""
                lines.append(f"first diverging layer: {first.key}{where}")
        if not self.results:
            lines.append("result: FAIL (nothing to compare)")
            return "\n".join(lines)
        if not first_only:
            shapes = [r.key for r in self.results if r.note.startswith("shape differs")]
            extra = f" ({len(shapes)} shape mismatch(es): {', '.join(shapes[:4])})" \
                if shapes else ""
            lines.append(f"worst relative error: {self.worst_rel():.3g}{extra}")
        lines.append("result: PASS" if self.passed else
                     f"result: FAIL ({len(failures)} of {len(self.results)} arrays differ)")
        return "\n".join(lines)

    __str__ = format

    def to_dict(self):
        return {"passed": self.passed,
                "first_diverging": getattr(self.first_diverging, "key", None),
                "results": [{k: (list(v) if isinstance(v, tuple) else v)
                             for k, v in r.__dict__.items()} for r in self.results],
                "not_compared": self.not_compared}


# ---- positions -------------------------------------------------------------------
def _colour(g, colours):
    return COLOUR[g] if colours == 3 else str(g)


def _first_position(key, bad, colours):
    """(description, index into the array) of the first diverging element in raster order."""
    nd = bad.ndim
    if key.startswith("small/"):                       # a multi-scale model's small network
        key = key[len("small/"):]
    if key == "logits" and nd == 5:                      # (N, V, C, H, W) -> n, r, c, k, v
        n, r, c, k, v = np.argwhere(bad.transpose(0, 3, 4, 2, 1))[0]
        return (f"image {n}, row {r}, column {c}, colour {_colour(k, colours)}, value {v}",
                (n, v, k, r, c))
    if key in ("logits", "images") and nd == 4:          # (N, C, H, W) -> n, r, c, k
        n, r, c, k = np.argwhere(bad.transpose(0, 2, 3, 1))[0]
        return f"image {n}, row {r}, column {c}, colour {_colour(k, colours)}", (n, k, r, c)
    if key.partition("/")[0] in FEATURE_MAPS and nd == 4:  # (N, M, H, W) by colour group
        groups = channel_groups(bad.shape[1], colours)
        perm = np.argsort(groups, kind="stable")
        n, r, c, j = np.argwhere(bad.transpose(0, 2, 3, 1)[..., perm])[0]
        m = perm[j]
        return (f"image {n}, row {r}, column {c}, colour {_colour(groups[m], colours)} "
                f"(channel {m})", (n, m, r, c))
    idx = tuple(np.argwhere(bad)[0])
    if key == "nll":
        return f"image {idx[0]}", idx
    return f"index {tuple(int(i) for i in idx)}", idx


def _nonfinite(a):
    return ~np.isfinite(a) if a.dtype.kind == "f" else np.zeros(a.shape, bool)


def compare_arrays(key, ref, theirs, rtol=None, colours=1, atol=0.0, allow_nan=False):
    """One ArrayResult for one key."""
    res = ArrayResult(key, tuple(ref.shape), (ref.dtype.name, theirs.dtype.name))
    if ref.shape != theirs.shape:
        res.passed, res.max_abs, res.max_rel, res.numeric = False, math.inf, math.inf, False
        res.note = f"shape differs: theirs {tuple(theirs.shape)}"
        return res
    kinds = {ref.dtype.kind, theirs.dtype.kind}
    if kinds <= set("USb") and len(kinds) == 1 and ref.dtype.kind in "US":
        res.passed, res.numeric = bool(np.array_equal(ref, theirs)), False
        res.note = "equal" if res.passed else "differs"
        res.max_rel = 0.0 if res.passed else math.inf
        return res
    if kinds <= set("iub"):
        bad = ref != theirs
        res.rtol = 0.0
        if bad.any():
            res.max_abs = float(np.abs(ref.astype(np.int64) - theirs.astype(np.int64)).max())
            res.max_rel = math.inf
    elif kinds <= set("iubf"):
        floats = [a.dtype for a in (ref, theirs) if a.dtype.kind == "f"]
        least = min(floats, key=lambda d: d.itemsize).name
        res.rtol = float(rtol) if rtol is not None else RTOL.get(least, 1e-4)
        r64, t64 = ref.astype(np.float64), theirs.astype(np.float64)
        finite = np.isfinite(r64)
        scale = float(np.abs(r64[finite]).max()) if finite.any() else 0.0
        scale = scale if scale > 0 else 1.0
        with np.errstate(invalid="ignore"):
            diff = np.abs(t64 - r64)
        nonfinite = ~np.isfinite(r64) | ~np.isfinite(t64)
        same = (r64 == t64) | (np.isnan(r64) & np.isnan(t64))
        diff = np.where(nonfinite, np.where(allow_nan & same, 0.0, np.inf), diff)
        res.max_abs = float(diff.max()) if diff.size else 0.0
        res.max_rel = res.max_abs / scale
        limit = res.rtol * scale + atol
        if not math.isfinite(limit):
            raise ValueError(f"{key}: rtol {res.rtol:g} times the reference's scale "
                             f"{scale:.6g}, plus atol {atol:g}, is not a finite tolerance; "
                             f"give smaller --rtol / --atol")
        # a non-finite value fails whatever the tolerance (inf > inf is False), unless
        # allow_nan and both files hold the same one there
        bad = (diff > limit) | (nonfinite & ~(allow_nan & same))
        n_ref, n_their = int((~np.isfinite(r64)).sum()), int((~np.isfinite(t64)).sum())
        if n_ref or n_their:
            res.note = (f"non-finite values: {n_ref} in the reference, {n_their} in theirs"
                        + (" (same places: --allow-nan)" if not bad.any() else ""))
    else:
        res.passed, res.note = False, f"cannot compare dtypes {ref.dtype} and {theirs.dtype}"
        res.max_rel, res.numeric = math.inf, False
        return res
    res.n_bad = int(bad.sum())
    if res.n_bad:
        res.passed = False
        where, idx = _first_position(key, bad, colours)
        res.first = {"where": where, "index": [int(i) for i in idx],
                     "ref": float(ref[idx]), "theirs": float(theirs[idx])}
    return res


def _as_reference(x, strict):
    if isinstance(x, Reference):
        return x
    if isinstance(x, dict):
        return check_arrays(dict(x), None, strict=False)
    return read_reference(x, strict=strict)


def _finite_check(key, a, side):
    """A failing ArrayResult when float array `a` (not compared) holds NaN or infinity."""
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return ArrayResult(key, tuple(a.shape), (a.dtype.name, "-"), passed=False,
                           max_rel=math.inf, numeric=False,
                           note=f"{int((~np.isfinite(a)).sum())} NaN or infinite value(s) in "
                                f"the {side} file (not compared)")
    return None


def compare(ref, theirs, rtol=None, atol=0.0, allow_nan=False):
    """Compare every array of `theirs` with `ref` -> CompareReport.

    ref, theirs: paths, Reference objects or {key: array} dicts. rtol: one
    relative tolerance for all float arrays (default: RTOL by dtype); atol: an
    absolute tolerance added to it; allow_nan: NaN and infinities pass where both
    files hold the same value at the same place (else any is a failure)."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None:
            finite(name, value, 0)
    ref_name = ref if isinstance(ref, str) else getattr(ref, "path", None) or "<reference>"
    their_name = theirs if isinstance(theirs, str) else getattr(theirs, "path", None) or "<theirs>"
    ref, theirs = _as_reference(ref, strict=False), _as_reference(theirs, strict=False)
    report = CompareReport(str(ref_name), str(their_name))
    colours = int(ref.config.get("channels", 1))
    if ref.config and theirs.config:
        keys = ("model", "channels", "levels", "h", "layers", "out_hidden", "kind", "factor",
                "condition_maps")
        diff = {k: (ref.config.get(k), theirs.config.get(k)) for k in keys
                if theirs.config.get(k, ref.config.get(k)) != ref.config.get(k)}
        if diff:
            report.results.append(ArrayResult("config", (), ("json", "json"), passed=False,
                                              max_rel=math.inf, numeric=False,
                                              note=f"config differs (ref, theirs): {diff}"))
    for key in sorted(theirs.arrays, key=lambda k: (_order(k), k)):
        if key not in ref.arrays:
            a = theirs.arrays[key]
            report.results.append(ArrayResult(key, tuple(a.shape), ("-", a.dtype.name),
                                              passed=False, max_rel=math.inf, numeric=False,
                                              note="not in the reference file"))
            continue
        report.results.append(compare_arrays(key, ref.arrays[key], theirs.arrays[key], rtol,
                                             colours, atol or 0.0, allow_nan))
    report.not_compared = sorted((k for k in ref.arrays if k not in theirs.arrays),
                                 key=lambda k: (_order(k), k))
    for key in report.not_compared:
        bad = _finite_check(key, ref.arrays[key], "reference")
        if bad is not None:
            report.results.append(bad)
    return report


def compare_main(argv=None):
    """minipixel compare REF.npz THEIRS.npz [--rtol X] [--atol X] [--allow-nan] [--quiet]
    [--json]. Exit 0 when every array of THEIRS matches REF, 1 when one differs, 2 on bad
    usage or unreadable input."""
    from ..argtypes import OneLineParser, number
    ap = OneLineParser(prog="minipixel compare",
                       description="Compare a second implementation's arrays with a reference "
                                   "file (format: minipixel/crosscheck/reference.py).")
    ap.add_argument("reference", help="the reference .npz (e.g. written by minipixel)")
    ap.add_argument("theirs", help="the .npz to check: any subset of the reference's keys")
    ap.add_argument("--rtol", type=number(0, above=True), default=None,
                    help="relative tolerance for all float arrays, finite > 0 (default: by "
                         "dtype, " + ", ".join(f"{k} {v:g}" for k, v in RTOL.items()) + ")")
    ap.add_argument("--atol", type=number(0, above=True), default=None,
                    help="absolute tolerance added to rtol * scale, finite > 0 (default 0)")
    ap.add_argument("--allow-nan", action="store_true",
                    help="NaN / infinity pass where both files hold the same one at the same "
                         "place (otherwise any NaN or infinity in either file fails)")
    ap.add_argument("--quiet", action="store_true",
                    help="print the first divergence only (and the result)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    a = ap.parse_args(argv)
    try:
        report = compare(a.reference, a.theirs, a.rtol, a.atol or 0.0, a.allow_nan)
    except (ReferenceFormatError, OSError, ValueError) as e:
        print(f"minipixel compare: {e}", file=sys.stderr)
        return 2
    print(dumps_json(report.to_dict(), indent=1) if a.json
          else report.format(first_only=a.quiet))
    return 0 if report.passed else 1
