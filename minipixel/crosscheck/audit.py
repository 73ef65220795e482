"""Black-box causality audit of any function from integer images to logits.

    report = audit(fn, channels=3, levels=256, H=8, W=8)
    print(report.format()); report.write_png("audit.png"); report.passed

fn maps integer images (N, C, H, W) (a NumPy int64 array) to logits in one of
the layouts of adapters.LAYOUTS: a NumPy array or anything with .detach() /
.cpu() / .numpy() / .get() (PyTorch, CuPy, minipixel Tensors). No gradients
are used. For each random base image, each sub-pixel (k', r', c') in turn is
changed to another value; output (k, r, c) depends on it when one of its
logits moves by more than the threshold. The size of a dependency is the
largest such move over the values and bases, and it is kept for every pair.

Two designs:

  isolated (the default)  every evaluated call holds the image of interest
      at position 0 and the same `batch - 1` fixed companion images: the base
      image, then each perturbed copy, in its own call. What changes between
      two calls is the image of interest alone, so every change of its logits
      comes from its own pixels, whether through the wiring or through
      statistics pooled over the batch (BatchNorm in training mode leaks
      this way, at any batch size including 1). Cost per base: 1 + C*H*W calls
      of `batch` images, and 3 for the coupling check below.
  per-image (opt-in, the fast path for models known to treat each image on
      its own)  a call holds the base, up to `batch - 2` perturbed copies and
      the base again; the two base copies give the noise floor of the batch
      position. Batch statistics cancel in this design, so it only suits
      per-image models. Cost per base: C*H*W + 2 images in few calls, and 4
      calls for the base and the coupling check.

Both designs then check batch coupling directly: the base is evaluated
beside other companion images, first and last in its call, and any move of
its logits is batch coupling (its own finding, with its size). Both evaluate
one call twice (one more call): a function whose output changes with no
change of input is an error (NondeterministicError), never a pass. A function
whose outputs move with no input fails too: nothing was tested.

Threshold: tol * max|base logits|, tol by the logits' dtype (DEFAULT_TOL: 0 for
float64, any change counts), raised to 4 times the noise floor when there is
one. Changes that are non-zero but under the threshold are counted and
reported, with what to do about them.

A leak is a dependency outside the causal context (causality.context_map):
an input at or after the output in raster order (colours inside a pixel).
Coverage is the fraction of that context each output reaches. With an
expected model (expect="pixelcnn" | "rowlstm" | "diagonal", fields.py) the
report names the pixels where the two fields differ.
"""
from dataclasses import dataclass

import numpy as np

from ..causality import context_map
from .adapters import as_logits
from .fields import expected_field, pixelcnn_blind_spot

DEFAULT_TOL = {"float64": 0.0, "float32": 1e-6, "float16": 1e-3, "bfloat16": 1e-2}
DEFAULT_BASES = 8
DEFAULT_BATCH = 4                 # images per call in the isolated design
COLOUR = "RGB"


class AuditError(ValueError):
    """The function under audit returned something that is not logits of the images."""


class NondeterministicError(AuditError):
    """Two evaluations of the same images gave different logits."""


class FunctionRaised(Exception):
    """The audited function raised; __cause__ holds its exception (and traceback)."""


def colour_name(k, C):
    return COLOUR[k] if C == 3 else str(k)


def where(k, r, c, C):
    return f"(row {r}, column {c}, colour {colour_name(k, C)})"


def describe_inputs(mask):
    """'row 6 columns 1-2, row 5 column 3 (G)': the pixels of a (C, H, W) mask by row,
    newest row first; colours named when only some of a pixel's are in the mask."""
    C, H, W = mask.shape
    parts = []
    for r in range(H - 1, -1, -1):
        cols = [c for c in range(W) if mask[:, r, c].any()]
        runs = []
        for c in cols:
            colours = "".join(colour_name(k, C) for k in range(C) if mask[k, r, c])
            tag = "" if C == 1 or mask[:, r, c].all() else f" ({colours})"
            if runs and runs[-1][1] == c - 1 and runs[-1][2] == tag:
                runs[-1][1] = c
            else:
                runs.append([c, c, tag])
        if runs:
            spans = ", ".join(f"{a}-{b}{t}" if b > a else f"{a}{t}" for a, b, t in runs)
            parts.append(f"row {r} column{'s' if len(cols) > 1 else ''} {spans}")
    return "; ".join(parts) if parts else "nothing"


@dataclass
class AuditReport:
    change: np.ndarray        # (C, H, W, C, H, W) float: [output k, r, c, input k', r', c']
    coupling: object          # (C, H, W) float change of the base's logits when the other
    #                           images of its call changed; None when not checked (batch 1)
    scale: float              # max |base logits|
    threshold: float
    levels: int
    bases: int
    calls: int
    images: int
    dtype: str
    design: str               # "isolated" or "per-image"
    batch: int                # images per call
    noise_floor: float = 0.0  # per-image design: base first vs last in a call
    nondeterminism: float = 0.0   # two evaluations of the same call (under the threshold)
    nonfinite: int = 0        # perturbed images whose logits were not all finite
    dtype_note: str = ""
    expect: str = None
    layers: int = None

    # ---- what was found ------------------------------------------------------------
    @property
    def shape(self):
        return self.change.shape[:3]

    @property
    def dep(self):
        return self.change > self.threshold

    @property
    def allowed(self):
        return context_map(*self.shape)

    @property
    def leak_map(self):
        return self.dep & ~self.allowed

    @property
    def leaks(self):
        """[((k, r, c) output, (k', r', c') input)] in raster order of the output."""
        idx = np.argwhere(self.leak_map.transpose(1, 2, 0, 4, 5, 3))   # rows, columns, colours
        return [((int(k), int(r), int(c)), (int(k2), int(r2), int(c2)))
                for r, c, k, r2, c2, k2 in idx]

    def relative(self, x):
        return x / self.scale if self.scale > 0 else x

    @property
    def largest_leaks(self):
        """[(output, input, size relative to max |logit|)], largest first."""
        sized = [(o, i, float(self.relative(self.change[o + i]))) for o, i in self.leaks]
        return sorted(sized, key=lambda t: -t[2])

    @property
    def typical_change(self):
        """Median relative size of the in-context dependencies (0 when there are none)."""
        inside = self.change[self.dep & self.allowed]
        return float(self.relative(np.median(inside))) if inside.size else 0.0

    @property
    def coupled(self):
        return self.coupling is not None and bool((self.coupling > self.threshold).any())

    @property
    def saw_nothing(self):
        """No output moved with any input although there is context: nothing was tested."""
        return not self.dep.any() and bool(self.allowed.any())

    @property
    def passed(self):
        return (self.images > 0 and not self.saw_nothing and not self.leak_map.any()
                and not self.coupled)

    @property
    def coverage(self):
        """(C, H, W): fraction of each output's allowed context that moves it (1 if none
        allowed)."""
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

    def faint(self, inside):
        """(count, largest relative size) of the pairs that moved, but by no more than the
        threshold: inside (True) or outside (False) the causal context."""
        sel = (self.change > 0) & ~self.dep & (self.allowed if inside else ~self.allowed)
        n = int(sel.sum())
        return n, float(self.relative(self.change[sel].max())) if n else 0.0

    def patterns(self):
        """[(name, pairs, outputs, largest relative size, in every output that has one)] of
        the leaks, by where the input lies from the output."""
        C, H, W = self.shape
        k = np.arange(C)[:, None, None, None, None, None]
        r = np.arange(H)[None, :, None, None, None, None]
        c = np.arange(W)[None, None, :, None, None, None]
        k2 = np.arange(C)[None, None, None, :, None, None]
        r2 = np.arange(H)[None, None, None, None, :, None]
        c2 = np.arange(W)[None, None, None, None, None, :]
        same_pixel = (r2 == r) & (c2 == c)
        kinds = [("the same sub-pixel", same_pixel & (k2 == k)),
                 ("later colours of the same pixel", same_pixel & (k2 > k)),
                 ("pixels to the right on the same row", (r2 == r) & (c2 > c)),
                 ("rows below", r2 > r)]
        leak, out = self.leak_map, []
        for name, sel in kinds:
            sel = np.broadcast_to(sel, leak.shape)
            hits = leak & sel
            if hits.any():
                has = sel.reshape(C * H * W, -1).any(1)
                hit_out = hits.reshape(C * H * W, -1).any(1)
                out.append((name, int(hits.sum()), int(hit_out.sum()),
                            float(self.relative(self.change[hits].max())),
                            bool(hit_out[has].all())))
        return out

    def global_pattern(self):
        """A name for a leak that covers (nearly) everything, or None."""
        future = ~self.allowed
        n_future = int(future.sum())
        if not n_future or not self.leak_map.any():
            return None
        frac = self.leak_map.sum() / n_future
        if frac >= 0.9 and self.total_coverage >= 0.9:
            return (f"(nearly) every output depends on every input ({100 * frac:.0f}% of the "
                    f"future, "
                    f"{100 * self.total_coverage:.0f}% of the context): a global coupling, "
                    f"such as statistics pooled over the image (BatchNorm in training mode) "
                    f"or an unmasked global layer")
        if frac >= 0.9:
            return (f"(nearly) every output depends on every later input ({100 * frac:.0f}% of "
                    f"the future)")
        return None

    # ---- the paper's field -----------------------------------------------------------
    @property
    def expected(self):
        """The expected model's field (C, H, W, C, H, W), or None."""
        if self.expect is None:
            return None
        return expected_field(self.expect, *self.shape, self.layers)

    def expect_lines(self, max_lines):
        C, H, W = self.shape
        paper, dep, allowed = self.expected, self.dep, self.allowed
        name = f"the paper's {self.expect}"
        if self.layers and self.expect != "diagonal":
            name += f" ({self.layers} layer{'s' if self.layers > 1 else ''})"
        lines = [f"compared with {name}: it reaches {int(paper.sum())} of {int(allowed.sum())} "
                 f"context pairs; this function reaches {int((dep & allowed).sum())}"]
        if self.expect == "pixelcnn":
            spot = pixelcnn_blind_spot(C, H, W)
            lines.append(f"  the blind spot (context right of the field's 45-degree edge): "
                         f"{int(spot.sum())} pairs; this function reaches "
                         f"{int((spot & dep).sum())} of them")
        only_paper, extra = paper & ~dep, dep & allowed & ~paper
        for what, sel, verb in ((f"{name} reaches", only_paper, "misses"),
                                ("this function reaches", extra, "also reaches")):
            n = int(sel.sum())
            if not n:
                continue
            per_out = sel.reshape(C, H, W, -1).sum(-1)
            outs = int((per_out > 0).sum())
            other = "this function does not" if sel is only_paper else f"{name} does not"
            lines.append(f"  {what} {n} pairs that {other}, in {outs} of {C * H * W} outputs; "
                         f"largest at:")
            order = np.argsort(-per_out.transpose(1, 2, 0), axis=None, kind="stable")
            for flat in order[:max(1, min(3, max_lines))]:
                r, c, k = np.unravel_index(flat, (H, W, C))
                if per_out[k, r, c]:
                    lines.append(f"    output {where(k, r, c, C)} {verb} "
                                 f"{describe_inputs(sel[k, r, c])}")
        if len(lines) == 1 + (self.expect == "pixelcnn"):
            lines.append(f"  same field as {name}: every output reaches exactly its pixels")
        return lines

    # ---- text ------------------------------------------------------------------------
    def format(self, max_lines=20):
        C, H, W = self.shape
        P = C * H * W
        lines = [f"causality audit: {C} colour(s), {H}x{W}, {self.levels} levels, {self.bases} "
                 f"base image(s); {self.design} design, {self.images} images in {self.calls} "
                 f"call(s) of at most {self.batch}",
                 f"  logits came in {self.dtype}" + (f" ({self.dtype_note})" if self.dtype_note
                                                     else self._dtype_hint())
                 + f"; a logit moved when it changed by more than {self.threshold:.3g} "
                   f"(max |logit| {self.scale:.3g})"]
        if self.noise_floor or self.nondeterminism:
            lines.append(f"  noise: base copies in one call differ by {self.noise_floor:.3g}, "
                         f"two evaluations of one call by {self.nondeterminism:.3g}; the "
                         f"threshold is at least 4 times that")
        if self.images == 0:
            lines += ["nothing was evaluated", "result: FAIL (nothing evaluated)"]
            return "\n".join(lines)
        lines += self._coupling_lines()
        lines += self._leak_lines(max_lines)
        cov = self.coverage
        full = int((cov >= 1).sum())
        r, c, k = np.unravel_index(np.argmin(cov.transpose(1, 2, 0)), (H, W, C))
        lines.append(f"coverage of the causal context: {100 * self.total_coverage:.1f}% overall; "
                     f"{full} of {P} outputs reach all of it; lowest "
                     f"{100 * cov[k, r, c]:.1f}% at output {where(k, r, c, C)}")
        for inside in (True, False):
            n, size = self.faint(inside)
            if n:
                what = ("context pairs (counted as not reached)" if inside else
                        "pairs OUTSIDE the context (possible leaks smaller than the threshold)")
                lines.append(f"  {n} {what} moved by less than the threshold (largest "
                             f"{size:.3g} relative); to see them: --tol 0, float64 logits, "
                             f"or more --bases")
        if self.nonfinite:
            lines.append(f"  {self.nonfinite} perturbed image(s) gave non-finite logits "
                         f"(counted as moved)")
        if self.expect:
            lines += self.expect_lines(max_lines)
        faint_out, faint_size = self.faint(False)
        if self.passed and faint_out:
            lines.append(f"result: PASS at threshold {self.threshold:.3g}, but {faint_out} "
                         f"pair(s) outside the context moved by less (largest {faint_size:.3g} "
                         f"relative): rerun with --tol 0 or in float64 to tell rounding from "
                         f"a small leak")
        elif self.passed:
            lines.append("result: PASS")
        else:
            n = len(self.leaks)
            why = [f"{n} leak{'s' if n > 1 else ''}"] if n else []
            why += ["batch coupling"] if self.coupled else []
            why += ["no output moved with any input: nothing was tested; does the function "
                    "use its input?"] if self.saw_nothing else []
            lines.append(f"result: FAIL ({', '.join(why)})")
        return "\n".join(lines)

    __str__ = format

    def _dtype_hint(self):
        if self.dtype in ("float64", None) or np.dtype(self.dtype).kind != "f":
            return ""
        return " (float64 gives the sharpest audit: return float64 logits if the model allows)"

    def _coupling_lines(self):
        C, H, W = self.shape
        if self.coupling is None:
            return ["batch coupling: not checked (one image per call)"]
        moved = self.coupling > self.threshold
        size = float(self.relative(self.coupling.max()))
        if moved.any():
            return [f"BATCH COUPLING: the logits of an image moved by up to "
                    f"{self.coupling.max():.3g} ({size:.3g} relative) when the other "
                    f"images of its call changed; {int(moved.sum())} of {C * H * W} outputs "
                    f"moved. Each image's logits must depend on that image alone (BatchNorm "
                    f"in training mode pools statistics over the batch)"]
        tail = f" (they moved by {size:.3g} relative, under the threshold)" if size else ""
        return [f"no batch coupling: the logits did not move when the other images of the "
                f"call changed{tail}"]

    def _leak_lines(self, max_lines):
        C = self.shape[0]
        leaks = self.largest_leaks
        if not leaks:
            return ["no leaks: every output depends only on earlier sub-pixels"]
        outs = {o for o, _, _ in leaks}
        lines = [f"LEAKS: {len(leaks)} dependencies on the future (output <- input at or "
                 f"after it in raster order) in {len(outs)} of {int(np.prod(self.shape))} "
                 f"outputs; largest first, size relative to max |logit|:"]
        for (k, r, c), (k2, r2, c2), size in leaks[:max_lines]:
            lines.append(f"  {size:9.3g}  output {where(k, r, c, C)} <- input "
                         f"{where(k2, r2, c2, C)}")
        if len(leaks) > max_lines:
            lines.append(f"  ... and {len(leaks) - max_lines} more (smallest "
                         f"{leaks[-1][2]:.3g})")
        typical = self.typical_change
        if typical:
            lines.append(f"  typical in-context change (median): {typical:.3g}; the largest "
                         f"leak is {leaks[0][2] / typical:.3g} times that")
        glob = self.global_pattern()
        if glob:
            lines.append(f"  pattern: {glob}")
        for name, pairs, n_out, size, everywhere in self.patterns():
            every = ("every output sees" if everywhere else
                     f"{n_out} output{' sees' if n_out == 1 else 's see'}")
            lines.append(f"  pattern: {every} {name} ({pairs} pairs, largest {size:.3g})")
        return lines

    def show(self, k, r, c):
        """One output's field as text: @ the output, # reached, o context not reached,
        . future, ! leak; with an expected model, x the expected model reaches it and this
        function does not, + the reverse. RGB pixels are three characters (R, G, B)."""
        C, H, W = self.shape
        if not (0 <= k < C and 0 <= r < H and 0 <= c < W):
            raise ValueError(f"--show: output ({r}, {c}, colour {k}) is outside {C}x{H}x{W}")
        dep, allowed = self.dep[k, r, c], self.allowed[k, r, c]
        paper = self.expected[k, r, c] if self.expect else allowed & dep
        chars = np.full((C, H, W), ".")
        chars[allowed & dep & paper] = "#"
        chars[allowed & ~dep & ~paper] = "o"
        chars[allowed & ~dep & paper] = "x"
        chars[allowed & dep & ~paper] = "+"
        chars[~allowed & dep] = "!"
        if not dep[k, r, c]:
            chars[k, r, c] = "@"
        rows = [" ".join("".join(chars[:, y, x]) for x in range(W)) for y in range(H)]
        legend = "@ output  # reached  o context not reached  . future  ! leak"
        if self.expect:
            legend += (f"\nx {self.expect} reaches it, this function does not  "
                       f"+ this function reaches it, {self.expect} does not")
        return "\n".join([f"field of output {where(k, r, c, C)}:"] + rows + [legend])

    def to_dict(self):
        return {"passed": self.passed, "design": self.design,
                "leaks": [[list(o), list(i), s] for o, i, s in self.largest_leaks],
                "batch_coupling": (None if self.coupling is None
                                   else float(self.relative(self.coupling.max()))),
                "coverage": self.total_coverage, "min_coverage": float(self.coverage.min()),
                "typical_change": self.typical_change, "threshold": self.threshold,
                "scale": self.scale, "dtype": self.dtype, "noise_floor": self.noise_floor,
                "faint_inside": self.faint(True)[0], "faint_outside": self.faint(False)[0],
                "calls": self.calls, "images": self.images, "shape": list(self.shape)}

    # ---- the map -------------------------------------------------------------------
    def map_image(self, cell=3):
        """RGB uint8 map, legend below: one tile per output sub-pixel, output rows (and
        colours within a row) down and output columns across. A tile shows the H x W
        input image, each pixel C cells wide (its colours left to right), in the colours
        of figures.FIELD_COLOURS (the receptive-field figure's)."""
        from ..figures import FIELD_COLOURS, field_codes, with_legend
        C, H, W = self.shape
        palette = np.array([FIELD_COLOURS[name] for name in FIELD_COLOURS], np.uint8)
        th, tw = H * cell, W * C * cell
        img = np.empty(((th + 1) * H * C + 1, (tw + 1) * W + 1, 3), np.uint8)
        img[:] = 140
        codes = field_codes(self.allowed, self.dep)                  # (C, H, W, C, H, W)
        for r in range(H):
            for k in range(C):
                for c in range(W):
                    code = codes[k, r, c].copy()
                    if code[k, r, c] != list(FIELD_COLOURS).index("leak"):
                        code[k, r, c] = list(FIELD_COLOURS).index("pixel")
                    tile = palette[code.transpose(1, 2, 0)]         # (H, W, C, 3)
                    tile = tile.reshape(H, W * C, 3).repeat(cell, 0).repeat(cell, 1)
                    y, x = 1 + (r * C + k) * (th + 1), 1 + c * (tw + 1)
                    img[y:y + th, x:x + tw] = tile
        return with_legend(img)

    def write_png(self, path, cell=3):
        from ..png import write_png          # the project's dependency-free PNG writer
        write_png(path, self.map_image(cell))


# ---- the evaluation ---------------------------------------------------------------------
class _Evaluator:
    """Calls fn, checks and converts its logits, counts calls and images."""

    def __init__(self, fn, C, H, W, layout):
        self.fn, self.shape, self.layout = fn, (C, H, W), layout
        self.calls = self.images = 0
        self.dtype = None

    def __call__(self, images):
        self.calls += 1
        self.images += len(images)
        try:
            out = self.fn(images)
        except Exception as e:                                   # noqa: BLE001 -- reported
            raise FunctionRaised(f"the audited function raised {type(e).__name__}: {e}") from e
        try:
            logits, self.dtype = as_logits(out, len(images), *self.shape, self.layout)
        except ValueError as e:                    # not an array of numbers in a layout
            raise AuditError(str(e)) from None
        return logits


def _moved(a, b):
    """Largest |change| per sub-pixel over the logits axis: (N, V, C, H, W) -> (N, C, H, W);
    NaN (a non-finite logit on one side) counts as infinite."""
    with np.errstate(invalid="ignore"):
        d = np.abs(a - b).max(axis=1)
    return np.where(np.isnan(d), np.inf, d)


def _perturbed(base, rng, levels):
    """(P, C, H, W): copy j of base with sub-pixel j (raster index over C, H, W) changed."""
    C, H, W = base.shape[1:]
    P = C * H * W
    j = np.arange(P)
    k, r, c = np.unravel_index(j, (C, H, W))
    pert = np.repeat(base, P, axis=0)
    pert[j, k, r, c] = (pert[j, k, r, c] + rng.integers(1, levels, size=P)) % levels
    return pert


def _check_determinism(first, again, tol, dtype):
    """Largest difference of two evaluations of one call; raises when above tol * scale."""
    noise = float(_moved(first, again).max())
    scale = float(np.abs(first[np.isfinite(first)]).max(initial=0.0))
    if noise > tol * scale:
        raise NondeterministicError(
            f"the function is not deterministic: two evaluations of the same images differ "
            f"by up to {noise:.3g} ({noise / max(scale, 1e-300):.3g} relative, {dtype} logits); "
            f"an audit of it would mean nothing. Make it deterministic (eval mode for "
            f"dropout, fixed seeds, torch.use_deterministic_algorithms(True)), or, for "
            f"rounding noise only, give --tol above the relative size")
    return noise


def audit(fn, channels, levels, H=8, W=8, bases=DEFAULT_BASES, seed=0, tol=None, batch=None,
          per_image=False, layout="nchw", expect=None, layers=None):
    """Audit fn (integer images (N, C, H, W) -> logits) for causality -> AuditReport.

    bases: random base images (sizes are the largest over them); batch: images per
    call (default DEFAULT_BATCH for the isolated design, all for per-image);
    per_image: the fast design for functions known to treat images independently;
    tol: threshold relative to max |logits| (default by dtype, DEFAULT_TOL);
    expect, layers: compare with the paper's model of that kind (fields.py).
    Raises AuditError (bad logits, NondeterministicError) or FunctionRaised."""
    C, V = int(channels), int(levels)
    if C < 1 or V < 2 or H < 1 or W < 1 or bases < 1:
        raise ValueError(f"audit: need channels >= 1, levels >= 2, height, width, bases >= 1; "
                         f"got {channels}, {levels}, {H}, {W}, {bases}")
    if batch is not None and (int(batch) < 1 or (per_image and int(batch) < 3)):
        raise ValueError(f"audit: batch is the images per call: >= 1 (>= 3 for the per-image "
                         f"design: base, a perturbed copy, base), got {batch}")
    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"audit: tol must be finite and >= 0, got {tol}")
    if expect is not None:
        expected_field(expect, 1, 1, 1, layers)          # validates kind and layers
    P = C * H * W
    batch = int(batch) if batch else (P + 2 if per_image else DEFAULT_BATCH)
    rng = np.random.default_rng(seed)
    evaluate = _Evaluator(fn, C, H, W, layout)
    n_comp = (batch - 1) if not per_image else min(batch - 1, DEFAULT_BATCH - 1)
    companions = rng.integers(0, V, size=(n_comp, C, H, W), dtype=np.int64)
    change = np.zeros((P, P))                      # [input j, output] largest |change|
    coupling = np.zeros((C, H, W)) if n_comp else None
    scale = floor = nondet = 0.0
    nonfinite = 0
    tol_given = tol
    for b in range(bases):
        base = rng.integers(0, V, size=(1, C, H, W), dtype=np.int64)
        pert = _perturbed(base, rng, V)
        ref = evaluate(np.concatenate([base, companions]))
        if not np.isfinite(ref[0]).all():
            raise AuditError("the function returned non-finite logits for a base image")
        scale = max(scale, float(np.abs(ref[0]).max()))
        tol = DEFAULT_TOL.get(evaluate.dtype, 0.0) if tol_given is None else float(tol_given)
        if b == 0:
            nondet = _check_determinism(ref, evaluate(np.concatenate([base, companions])),
                                        tol, evaluate.dtype)
        if per_image:
            chunk = batch - 2
            for start in range(0, P, chunk):
                out = evaluate(np.concatenate([base, pert[start:start + chunk], base]))
                floor = max(floor, float(_moved(out[:1], out[-1:]).max()))
                d = _moved(out[1:-1], out[:1]).reshape(-1, P)
                change[start:start + chunk] = np.maximum(change[start:start + chunk], d)
                nonfinite += int((~np.isfinite(out[1:-1])).reshape(len(d), -1).any(1).sum())
        else:
            for j in range(P):
                out = evaluate(np.concatenate([pert[j:j + 1], companions]))
                change[j] = np.maximum(change[j], _moved(out[:1], ref[:1]).reshape(P))
                nonfinite += int(not np.isfinite(out[0]).all())
        if n_comp:                                 # batch coupling, the base first and last
            others = rng.integers(0, V, size=(n_comp, C, H, W), dtype=np.int64)
            last = evaluate(np.concatenate([companions, base]))[-1:]
            moved = [_moved(evaluate(np.concatenate([base, others]))[:1], ref[:1]),
                     _moved(evaluate(np.concatenate([others, base]))[-1:], last)]
            coupling = np.maximum(coupling, np.maximum(*moved)[0])
    threshold = max(tol * scale, 4 * floor, 4 * nondet)
    change = change.T.reshape(C, H, W, C, H, W)
    return AuditReport(change, coupling, scale, threshold, V, int(bases), evaluate.calls,
                       evaluate.images, evaluate.dtype, "per-image" if per_image else "isolated",
                       batch, floor, nondet, nonfinite,
                       getattr(fn, "dtype_note", ""), expect, layers)
