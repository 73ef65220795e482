"""Black-box causality audit of any function from integer images to logits.

    report = audit(fn, channels=3, levels=256, H=8, W=8)
    print(report.format()); report.write_png("audit.png"); report.passed

fn maps integer images (N, C, H, W) (a NumPy int64 array) to logits
(N, C, H, W) or (N, V, C, H, W) (any V): a NumPy array or anything with
.detach() / .cpu() / .numpy() / .get() (PyTorch, CuPy, minipixel Tensors) or
that np.asarray takes. No gradients are used: for each random base image,
one call evaluates the base and C*H*W copies, each with one sub-pixel (k', r', c')
changed to another value (split into calls of at most `batch` copies). Output
(k, r, c) depends on input (k', r', c') when any of its logits moves by more
than the threshold in any base (several bases OR-ed: a dependency that one
image hides behind a dead ReLU shows in another).

A leak is a dependency outside the causal context (minipixel.causality.context_map):
an earlier row, or the same row further left, or the same pixel and an
earlier colour. Coverage is the fraction of that context each output reaches.

Threshold: tol * max|base logits|, tol 0 for float64 outputs (any change),
1e-6 for float32. Every call also evaluates the base image first and last in
the batch; if those two differ (batch-position rounding, nondeterminism) the
threshold is raised to 4 times that noise floor and the report says so.
"""
import argparse
import importlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass

import numpy as np

from ..causality import context_map

DEFAULT_TOL = {"float64": 0.0, "float32": 1e-6, "float16": 1e-3}
COLOUR = "RGB"


class AuditError(ValueError):
    """The function under audit returned something that is not logits of the images."""


def to_array(out):
    """A NumPy array from a NumPy, PyTorch, CuPy or minipixel result."""
    for attr in ("detach", "cpu"):
        if hasattr(out, attr) and callable(getattr(out, attr)):
            out = getattr(out, attr)()
    if hasattr(out, "numpy") and callable(out.numpy):
        out = out.numpy()
    elif hasattr(out, "get") and callable(out.get) and type(out).__module__.startswith("cupy"):
        out = out.get()
    return np.asarray(out)


def _logits(fn, images, C, H, W):
    """fn(images) as float64 (N, V, C, H, W), and its original dtype."""
    out = to_array(fn(images))
    N = len(images)
    if out.ndim == 4 and out.shape == (N, C, H, W):
        out = out[:, None]
    elif not (out.ndim == 5 and out.shape[0] == N and out.shape[2:] == (C, H, W)):
        raise AuditError(f"audit: for images {images.shape} the function must return logits "
                         f"(N, C, H, W) or (N, levels, C, H, W), got {out.shape}")
    if out.dtype.kind not in "fiu":
        raise AuditError(f"audit: logits must be numbers, got dtype {out.dtype}")
    return out.astype(np.float64), out.dtype


def _where(k, r, c, C):
    colour = COLOUR[k] if C == 3 else str(k)
    return f"(row {r}, column {c}, colour {colour})"


@dataclass
class AuditReport:
    dep: np.ndarray          # (C, H, W, C, H, W): [output k, r, c, input k', r', c']
    levels: int
    bases: int
    calls: int
    images: int
    dtype: str
    threshold: float
    noise_floor: float

    @property
    def shape(self):
        return self.dep.shape[:3]

    @property
    def allowed(self):
        return context_map(*self.shape)

    @property
    def leak_map(self):
        return self.dep & ~self.allowed

    @property
    def leaks(self):
        """[((k, r, c) output, (k', r', c') input)] in raster order of the output."""
        C = self.shape[0]
        idx = np.argwhere(self.leak_map.transpose(1, 2, 0, 4, 5, 3))   # rows, columns, colours
        return [((int(k), int(r), int(c)), (int(k2), int(r2), int(c2)))
                for r, c, k, r2, c2, k2 in idx] if C else []

    @property
    def passed(self):
        return not self.leak_map.any()

    @property
    def coverage(self):
        """(C, H, W): fraction of each output's allowed context that moves it (1 if none allowed)."""
        C, H, W = self.shape
        allowed = self.allowed.reshape(C, H, W, -1).sum(-1)
        reached = (self.dep & self.allowed).reshape(C, H, W, -1).sum(-1)
        return np.where(allowed > 0, reached / np.maximum(allowed, 1), 1.0)

    @property
    def total_coverage(self):
        a = self.allowed
        return float((self.dep & a).sum() / max(a.sum(), 1))

    def missing(self, k, r, c):
        """Allowed inputs (k', r', c') that output (k, r, c) never moved with."""
        gaps = self.allowed[k, r, c] & ~self.dep[k, r, c]
        return [tuple(int(i) for i in g) for g in np.argwhere(gaps)]

    def format(self, max_lines=40):
        C, H, W = self.shape
        lines = [f"causality audit: {C} colour(s), {H}x{W}, {self.levels} levels, {self.bases} "
                 f"base image(s), {self.images} images in {self.calls} call(s)",
                 f"  logits {self.dtype}; a logit moved when it changed by more than "
                 f"{self.threshold:.3g} (noise floor between two copies of the base: "
                 f"{self.noise_floor:.3g})"]
        leaks = self.leaks
        if leaks:
            lines.append(f"LEAKS: {len(leaks)} dependencies on the future "
                         f"(output <- input at or after it in raster order):")
            for (k, r, c), (k2, r2, c2) in leaks[:max_lines]:
                lines.append(f"  output {_where(k, r, c, C)} <- input {_where(k2, r2, c2, C)}")
            if len(leaks) > max_lines:
                lines.append(f"  ... and {len(leaks) - max_lines} more")
            outs = {o for o, _ in leaks}
            lines.append(f"  {len(outs)} of {C * H * W} outputs leak")
        else:
            lines.append("no leaks: every output depends only on earlier sub-pixels")
        cov = self.coverage
        full = int((cov >= 1).sum())
        r, c, k = np.unravel_index(np.argmin(cov.transpose(1, 2, 0)), (H, W, C))  # raster order
        lines.append(f"coverage of the causal context: {100 * self.total_coverage:.1f}% overall; "
                     f"{full} of {C * H * W} outputs reach all of it; lowest "
                     f"{100 * cov[k, r, c]:.1f}% at output {_where(k, r, c, C)}")
        lines.append("result: PASS" if self.passed else f"result: FAIL ({len(leaks)} leaks)")
        return "\n".join(lines)

    __str__ = format

    def to_dict(self):
        return {"passed": self.passed, "leaks": self.leaks, "coverage": self.total_coverage,
                "min_coverage": float(self.coverage.min()), "threshold": self.threshold,
                "noise_floor": self.noise_floor, "shape": list(self.shape)}

    # ---- the map -------------------------------------------------------------
    PALETTE = {"reached": (40, 170, 60), "gap": (90, 80, 20), "leak": (230, 30, 30),
               "future": (25, 25, 25), "self": (70, 120, 255), "border": (140, 140, 140)}

    def map_image(self, cell=3):
        """RGB uint8 map: one tile per output sub-pixel, laid out with output rows
        (and colours within a row) down and output columns across. A tile shows
        the H x W input image, each pixel C cells wide (its colours left to right):
        green reached context, olive context never reached, red leak, near-black
        future (correctly unused), blue the output's own sub-pixel."""
        C, H, W = self.shape
        P = self.PALETTE
        th, tw = H * cell, W * C * cell
        img = np.empty(((th + 1) * H * C + 1, (tw + 1) * W + 1, 3), np.uint8)
        img[:] = P["border"]
        allowed, dep = self.allowed, self.dep
        for r in range(H):
            for k in range(C):
                for c in range(W):
                    a, d = allowed[k, r, c], dep[k, r, c]          # (C, H, W)
                    tile = np.empty((H, W, C, 3), np.uint8)
                    for name, sel in (("future", ~a & ~d), ("gap", a & ~d),
                                      ("reached", a & d), ("leak", ~a & d)):
                        tile[sel.transpose(1, 2, 0)] = P[name]
                    if not d[k, r, c]:
                        tile[r, c, k] = P["self"]
                    tile = tile.reshape(H, W * C, 3).repeat(cell, 0).repeat(cell, 1)
                    y, x = 1 + (r * C + k) * (th + 1), 1 + c * (tw + 1)
                    img[y:y + th, x:x + tw] = tile
        return img

    def write_png(self, path, cell=3):
        from ..png import write_png          # the project's dependency-free PNG writer
        write_png(path, self.map_image(cell))


def audit(fn, channels, levels, H=8, W=8, bases=2, seed=0, tol=None, batch=None):
    """Audit fn (integer images (N, C, H, W) -> logits) for causality -> AuditReport.

    bases: random base images OR-ed; batch: at most this many perturbed copies
    per call (default all C*H*W); tol: threshold relative to max|logits|
    (default by the logits' dtype, DEFAULT_TOL)."""
    C = int(channels)
    if C < 1 or levels < 2 or H < 1 or W < 1 or bases < 1:
        raise ValueError(f"audit: need channels >= 1, levels >= 2, H, W, bases >= 1; got "
                         f"{channels}, {levels}, {H}, {W}, {bases}")
    P = C * H * W
    chunk = int(batch) if batch else P
    rng = np.random.default_rng(seed)
    moved = np.zeros((bases, P, P))         # [base, input j, output] max |change| over values
    floor, scale, calls, n_images, dtype = 0.0, 0.0, 0, 0, None
    j = np.arange(P)
    k, r, c = np.unravel_index(j, (C, H, W))
    for b in range(bases):
        base = rng.integers(0, levels, size=(1, C, H, W), dtype=np.int64)
        pert = np.repeat(base, P, axis=0)
        pert[j, k, r, c] = (pert[j, k, r, c] + rng.integers(1, levels, size=P)) % levels
        for start in range(0, P, chunk):
            images = np.concatenate([base, pert[start:start + chunk], base])
            out, dtype = _logits(fn, images, C, H, W)
            calls += 1
            n_images += len(images)
            if not np.isfinite(out[0]).all():
                raise AuditError("audit: the function returned non-finite logits for a base image")
            floor = max(floor, float(np.abs(out[0] - out[-1]).max()))
            scale = max(scale, float(np.abs(out[0]).max()))
            with np.errstate(invalid="ignore"):
                d = np.abs(out[1:-1] - out[0]).max(axis=1).reshape(len(images) - 2, P)
            moved[b, start:start + chunk] = np.where(np.isnan(d), np.inf, d)
    tol = DEFAULT_TOL.get(np.dtype(dtype).name, 0.0) if tol is None else float(tol)
    threshold = max(tol * scale, 4 * floor)
    dep = (moved > threshold).any(axis=0)                 # [input, output]
    dep = dep.T.reshape(C, H, W, C, H, W)
    return AuditReport(dep, int(levels), int(bases), calls, n_images,
                       np.dtype(dtype).name, threshold, floor)


# ---- command line ----------------------------------------------------------------
def load_factory(target):
    """'package.module:factory' or 'path/to/file.py:factory' -> the factory."""
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected MODULE:FACTORY (e.g. mypkg.models:make_fn or "
                         f"demo.py:make_fn), got {target!r}")
    if module_name.endswith(".py") or os.sep in module_name:
        if not os.path.exists(module_name):
            raise ValueError(f"no file {module_name!r}")
        spec = importlib.util.spec_from_file_location(
            os.path.splitext(os.path.basename(module_name))[0], module_name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no {attr!r}") from None


def audit_main(argv=None):
    """minipixel audit MODULE:FACTORY [--kwargs JSON] [--channels C] [--levels V]
    [--height 8] [--width 8] [--bases 2] [--seed 0] [--tol X] [--batch N]
    [--png MAP.png] [--max-lines 40] [--min-coverage F] [--json]
    Exit 0: no leak (and coverage >= --min-coverage); 1: leaks; 2: usage error."""
    ap = argparse.ArgumentParser(
        prog="minipixel audit",
        description="Black-box causality audit. FACTORY(**kwargs) must return a callable "
                    "mapping int64 images (N, C, H, W) to logits (N, C, H, W) or "
                    "(N, levels, C, H, W); it may carry .channels and .levels attributes "
                    "(else give --channels/--levels).")
    ap.add_argument("target", help="MODULE:FACTORY, e.g. minipixel.crosscheck.adapters:tiny "
                                   "or path/to/file.py:make_fn")
    ap.add_argument("--kwargs", default="{}", help="JSON object passed to the factory")
    ap.add_argument("--channels", type=int)
    ap.add_argument("--levels", type=int)
    ap.add_argument("--height", type=int, default=8)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--bases", type=int, default=2, help="random base images, OR-ed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, help="change threshold relative to max |logit|")
    ap.add_argument("--batch", type=int, help="perturbed images per call (default all)")
    ap.add_argument("--png", help="write the dependency map here")
    ap.add_argument("--max-lines", type=int, default=40, help="leak lines to print")
    ap.add_argument("--min-coverage", type=float, default=0.0,
                    help="fail unless this fraction of the causal context is reached")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        kwargs = json.loads(a.kwargs)
        if not isinstance(kwargs, dict):
            raise ValueError("--kwargs must be a JSON object")
        fn = load_factory(a.target)(**kwargs)
        channels = a.channels or getattr(fn, "channels", None)
        levels = a.levels or getattr(fn, "levels", None)
        if not callable(fn) or channels is None or levels is None:
            raise ValueError("the factory must return a callable; give --channels and --levels "
                             "unless it has .channels and .levels")
        report = audit(fn, channels, levels, a.height, a.width, a.bases, a.seed, a.tol, a.batch)
    except (ValueError, ImportError, TypeError) as e:
        print(f"minipixel audit: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report.format(a.max_lines))
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
