"""The audit's report: its findings, its verdict, and their text, JSON and map.

    report = audit(fn, channels=3, levels=256)         # audit.py measures
    report.passed; report.leaks; report.coupling; report.position
    print(report.format()); report.to_dict(); report.write_png("audit.png")

An AuditReport holds what audit.py measured (the largest change of every output
for every input, the batch coupling, the position-in-the-call change, the noise
of the calls) and the thresholds; everything else is worked out from those:

    dep        change > threshold               (an output moved with an input)
    leak       dep outside the causal context   (causality.context_map)
    own pixel  the earlier colours of an output's own pixel that it never moved with
               (the colour order: G should see its R, B its R and G), reported apart
               from every other gap: a second mask-A layer hides them
    coupled    coupling > coupling_threshold    (the other images of a call moved it)
    position   the base's change when it moved from first to last in its call, the
               same images around it; in the per-image design it is the noise floor,
               and beyond rounding (ROUNDING) it is a failure of that design, since a
               leak smaller than 4 times it would not be seen
    passed     something was tested, no leak, no coupling, no unexplained position
               change

Nothing here calls the audited function.
"""
from dataclasses import dataclass

import numpy as np

from ..causality import context_map
from .fields import blind_spot, expected_field, field_name

COLOUR = "RGB"
LABEL_INK = (70, 70, 70)  # the map's labels: not black, which is the leaks' colour
LOW_COVERAGE = 0.9        # without --expect, a PASS under this coverage says so

# The usual cause of each leak pattern (report.patterns), printed beside it.
CAUSES = {
    "the same sub-pixel": "a first layer with mask B, or mask A's centre kept",
    "later colours of the same pixel":
        "colour groups that differ between layers (contiguous in one, interleaved in "
        "another), or a mask that ignores them (one over all 4h gate maps at once, a "
        "centre tap left unmasked)",
    "pixels to the right on the same row":
        "a kernel not masked right of its centre, a flipped kernel (a true convolution) "
        "under a cross-correlation mask, or a horizontal stack or state padded on the "
        "wrong side",
    "rows below":
        "kernel rows below the centre kept, a vertical stack that reaches the horizontal "
        "one unshifted (its current row), a 2x1 state convolution padded at the bottom, "
        "or the right-to-left LSTM not shifted down a row",
}
OWN_PIXEL_CAUSE = ("usually a second mask-A layer (mask A after the first layer), colour "
                   "groups that differ between layers, or a mask that drops the centre tap; "
                   "or a dead path: --probe leaky tells")


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
    position: object = None   # (C, H, W) change of the base's logits from first to last in
    #                           a call of the same images; None when not checked (batch 1)
    coupling_threshold: float = None   # what coupling is judged against (None: threshold)
    rounding: float = None    # the largest position change rounding explains (absolute)
    kernels: tuple = None     # the maskb field's kernel sizes (first, others)
    design_note: str = ""     # the auto design: which design it kept, and why
    inputs: str = "int"       # what the function was given (audit.INPUTS)
    probe_note: str = ""      # a probe copy (leaky ReLUs): what was changed
    seconds: float = 0.0      # wall time of the audit
    probe: object = None      # the AuditReport of the function's probe copy (--probe both)

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
    def coupling_limit(self):
        return self.threshold if self.coupling_threshold is None else self.coupling_threshold

    @property
    def coupled(self):
        return self.coupling is not None and bool((self.coupling > self.coupling_limit).any())

    @property
    def position_unexplained(self):
        """Per-image design: the floor (the position change) is more than rounding, so a
        leak under 4 times it would pass unseen."""
        return (self.design == "per-image" and self.rounding is not None
                and self.noise_floor > self.rounding)

    @property
    def saw_nothing(self):
        """No output moved with any input although there is context: nothing was tested."""
        return not self.dep.any() and bool(self.allowed.any())

    @property
    def probe_leaks(self):
        """Leaks the probe copy shows that this function does not (structural wires to
        the future that dead units hide on these bases)."""
        if self.probe is None:
            return np.zeros(self.change.shape, bool)
        return self.probe.leak_map & ~self.leak_map

    @property
    def passed(self):
        return (self.images > 0 and not self.saw_nothing and not self.leak_map.any()
                and not self.coupled and not self.position_unexplained
                and (self.probe is None or self.probe.passed))

    @property
    def own_pixel(self):
        """(C, H, W, C, H, W): the earlier colours of each output's own pixel."""
        C, H, W = self.shape
        k = np.arange(C)
        same = np.zeros(self.change.shape, bool)
        for r in range(H):
            for c in range(W):
                same[:, r, c, :, r, c] = k[None] < k[:, None]
        return same

    @property
    def own_pixel_missing(self):
        """Own-pixel context pairs (earlier colours of the pixel) the function never moved
        with (for an expected field: those that field reaches)."""
        miss = self.own_pixel & ~self.dep
        return miss & self.expected if self.expect else miss

    def own_pixel_summary(self):
        """[(colour k, earlier colour k', pixels missing it, pixels)]."""
        C, H, W = self.shape
        miss = self.own_pixel_missing
        out = []
        for k in range(C):
            for k2 in range(k):
                n = int(sum(miss[k, r, c, k2, r, c] for r in range(H) for c in range(W)))
                if n:
                    out.append((k, k2, n, H * W))
        return out

    @property
    def low_coverage(self):
        """A reason the coverage is low, or None: with an expected field, pairs it reaches
        that this function does not; else coverage under LOW_COVERAGE; or own-pixel gaps."""
        if self.expect:
            n = int((self.expected & ~self.dep).sum())
            if n:
                return f"{n} pairs that {self.expected_name} reaches are not reached"
            return None
        if self.total_coverage < LOW_COVERAGE:
            return f"under {100 * LOW_COVERAGE:.0f}%"
        if self.own_pixel_summary():
            return "colours inside their own pixel are not reached"
        return None

    def coverage_advice(self):
        """What to run to tell a real gap from one the audit's settings make."""
        tips = []
        if self.dtype and self.dtype != "float64" and self.faint(True)[0]:
            tips.append(f"{self.dtype} rounding hides faint dependencies (counted as not "
                        f"reached): run in float64 (without --native-dtype) or with --tol 0")
        if self.probe is None and not self.probe_note:
            tips.append("--probe leaky (a copy with leaky ReLUs) or more --bases tell dead "
                        "paths from missing wires")
        if not self.expect:
            tips.append("--expect KIND compares with the field the architecture should have "
                        "(a blind spot is not a gap)")
        return "; ".join(tips)

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
        return expected_field(self.expect, *self.shape, self.layers, self.kernels)

    @property
    def expected_name(self):
        return field_name(self.expect, self.layers, self.kernels) if self.expect else None

    def expect_lines(self, max_lines):
        C, H, W = self.shape
        paper, dep, allowed = self.expected, self.dep, self.allowed
        name = self.expected_name
        lines = [f"compared with {name}: it reaches {int(paper.sum())} of {int(allowed.sum())} "
                 f"context pairs; this function reaches {int((dep & allowed).sum())}"]
        spot = blind_spot(self.expect, C, H, W, self.kernels)
        if spot is not None:
            lines.append(f"  the blind spot (context right of the field's 45-degree edge): "
                         f"{int(spot.sum())} pairs; this function reaches "
                         f"{int((spot & dep).sum())} of them")
        own = self.own_pixel
        n_own = int((paper & ~dep & own).sum())
        if n_own:
            lines.append(f"  {name} reaches {n_own} own-pixel pairs that this function does "
                         f"not: see INSIDE ITS OWN PIXEL")
        only_paper, extra = paper & ~dep & ~own, dep & allowed & ~paper
        for what, sel, verb in ((f"{name} reaches", only_paper, "misses"),
                                ("this function reaches", extra, "also reaches")):
            n = int(sel.sum())
            if not n:
                continue
            per_out = sel.reshape(C, H, W, -1).sum(-1)
            outs = int((per_out > 0).sum())
            other = "this function does not" if sel is only_paper else f"{name} does not"
            what_pairs = "pairs outside the output's own pixel" if sel is only_paper \
                else "pairs"
            lines.append(f"  {what} {n} {what_pairs} that {other}, in {outs} of {C * H * W} "
                         f"outputs; largest at:")
            order = np.argsort(-per_out.transpose(1, 2, 0), axis=None, kind="stable")
            for flat in order[:max(1, min(3, max_lines))]:
                r, c, k = np.unravel_index(flat, (H, W, C))
                if per_out[k, r, c]:
                    lines.append(f"    output {where(k, r, c, C)} {verb} "
                                 f"{describe_inputs(sel[k, r, c])}")
        if len(lines) == 1 + (spot is not None):
            lines.append(f"  same field as {name}: every output reaches exactly its pixels")
        return lines

    def own_pixel_lines(self):
        summary = self.own_pixel_summary()
        if not summary:
            return []
        C = self.shape[0]
        parts = [f"{colour_name(k, C)} never moved with its own pixel's {colour_name(k2, C)} "
                 f"in {n} of {total} pixels" for k, k2, n, total in summary]
        return [f"INSIDE ITS OWN PIXEL (the colour order: each colour should see the earlier "
                f"colours of its pixel): {'; '.join(parts)}. Not a leak; "
                f"{OWN_PIXEL_CAUSE}"]

    def probe_lines(self):
        """--probe both: the plain function's gaps, split by what its leaky copy reaches."""
        if self.probe is None:
            return []
        p, allowed = self.probe, self.allowed
        gaps = allowed & ~self.dep
        dead, wires = gaps & p.dep, gaps & ~p.dep
        lines = [f"probe ({p.probe_note or 'a copy with leaky ReLUs'}): coverage "
                 f"{100 * p.total_coverage:.1f}% against {100 * self.total_coverage:.1f}% here; "
                 f"of the {int(gaps.sum())} context pairs not reached here, {int(dead.sum())} "
                 f"are dead paths (the copy reaches them) and {int(wires.sum())} missing "
                 f"wires (the copy does not either)"]
        C, H, W = self.shape
        for what, sel in (("dead paths", dead), ("missing wires", wires)):
            per_out = sel.reshape(C, H, W, -1).sum(-1)
            if per_out.any():
                r, c, k = np.unravel_index(np.argmax(per_out.transpose(1, 2, 0)), (H, W, C))
                lines.append(f"  most {what} at output {where(k, r, c, C)}: "
                             f"{describe_inputs(sel[k, r, c])}")
        extra = self.probe_leaks
        if extra.any():
            lines.append(f"  PROBE LEAKS: the copy with leaky ReLUs leaks on {int(extra.sum())} "
                         f"pairs this function does not show: wires to the future that dead "
                         f"units hide on these bases (largest at output "
                         f"{where(*p.largest_leaks[0][0], C)} <- input "
                         f"{where(*p.largest_leaks[0][1], C)})")
        elif p.leak_map.any():
            lines.append("  the copy leaks where this function does")
        return lines

    # ---- text ------------------------------------------------------------------------
    def format(self, max_lines=20):
        C, H, W = self.shape
        P = C * H * W
        seconds = f", {self.seconds:.1f} s" if self.seconds else ""
        lines = [f"causality audit: {C} colour(s), {H}x{W}, {self.levels} levels, {self.bases} "
                 f"base image(s); {self.design} design, {self.images} images in {self.calls} "
                 f"call(s) of {self.batch}{seconds}; inputs {self.inputs}",
                 f"  logits came in {self.dtype}" + (f" ({self.dtype_note})" if self.dtype_note
                                                     else self._dtype_hint())
                 + f"; a logit moved when it changed by more than {self.threshold:.3g} "
                   f"(max |logit| {self.scale:.3g})"
                 + (f"; batch coupling when by more than {self.coupling_limit:.3g}"
                    if self.coupling_limit != self.threshold else "")]
        if self.design_note:
            lines.append(f"  {self.design_note}")
        if self.probe_note:
            lines.append(f"  probe: {self.probe_note}")
        if self.noise_floor or self.nondeterminism:
            lines.append(f"  noise: base copies in one call differ by {self.noise_floor:.3g}, "
                         f"two evaluations of one call by {self.nondeterminism:.3g}; the "
                         f"threshold for leaks is at least 4 times that")
        if self.images == 0:
            lines += ["nothing was evaluated", "result: FAIL (nothing evaluated)"]
            return "\n".join(lines)
        lines += self._coupling_lines() + self._position_lines()
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
        lines += self.own_pixel_lines()
        if self.expect:
            lines += self.expect_lines(max_lines)
        lines += self.probe_lines()
        faint_out, faint_size = self.faint(False)
        if self.passed:
            verdict = "result: PASS"
            if faint_out:
                verdict += (f" at threshold {self.threshold:.3g}, but {faint_out} pair(s) "
                            f"outside the context moved by less (largest {faint_size:.3g} "
                            f"relative): rerun with --tol 0 or in float64 to tell rounding "
                            f"from a small leak;")
            low = self.low_coverage
            verdict += f"{'' if faint_out else ';'} coverage {100 * self.total_coverage:.1f}% " \
                       f"of the causal context"
            if low:
                advice = self.coverage_advice()
                verdict += f", LOW ({low})" + (f": {advice}" if advice else "")
            lines.append(verdict)
        else:
            n = len(self.leaks)
            why = [f"{n} leak{'s' if n > 1 else ''}"] if n else []
            why += ["batch coupling"] if self.coupled else []
            why += ["position in the call beyond rounding: the per-image design cannot "
                    "audit this function"] if self.position_unexplained else []
            why += ["no output moved with any input: nothing was tested; does the function "
                    "use its input?"] if self.saw_nothing else []
            why += ["its copy with leaky ReLUs leaks (see PROBE LEAKS)"] \
                if self.probe is not None and not self.probe.passed else []
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
        moved = self.coupling > self.coupling_limit
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

    def _position_lines(self):
        if self.position is None:
            return []
        size, rel = float(self.position.max()), float(self.relative(self.position.max()))
        moved = (f"the logits of an image moved by up to {size:.3g} ({rel:.3g} relative) "
                 f"when it moved from first to last in a call of the same images")
        what = f"position in the call: {moved}"
        if self.position_unexplained:
            return [f"POSITION IN THE CALL: {moved}, more than rounding explains "
                    f"({self.rounding:.3g}); the per-image design takes this as its noise "
                    f"floor and would not see a leak under 4 times it: audit in the "
                    f"isolated design (--design isolated; the default, auto, does so itself)"]
        if self.design == "per-image" and not size:
            return ["position in the call: the base's copies in each call agree exactly (no "
                    "noise floor)"]
        if self.design == "per-image":
            return [f"{what}: rounding, the per-image design's noise floor"]
        if size:
            return [f"{what} (not a leak: this design holds the image of interest first in "
                    f"every call)"]
        return ["position in the call: the logits did not move when the image moved from "
                "first to last in its call"]

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
            lines.append(f"  pattern: {every} {name} ({pairs} pairs, largest {size:.3g}): "
                         f"usually {CAUSES[name]}")
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
                "position": (None if self.position is None
                             else float(self.relative(self.position.max()))),
                "coupling_threshold": self.coupling_limit,
                "batch_coupling": (None if self.coupling is None
                                   else float(self.relative(self.coupling.max()))),
                "coverage": self.total_coverage, "min_coverage": float(self.coverage.min()),
                "typical_change": self.typical_change, "threshold": self.threshold,
                "scale": self.scale, "dtype": self.dtype, "noise_floor": self.noise_floor,
                "faint_inside": self.faint(True)[0], "faint_outside": self.faint(False)[0],
                "calls": self.calls, "images": self.images, "shape": list(self.shape),
                "batch": self.batch, "design_note": self.design_note, "inputs": self.inputs,
                "seconds": self.seconds,
                "own_pixel_missing": [[k, k2, n] for k, k2, n, _ in self.own_pixel_summary()],
                "low_coverage": self.low_coverage,
                "probe": None if self.probe is None else {
                    "passed": self.probe.passed, "coverage": self.probe.total_coverage,
                    "leaks": [[list(o), list(i), v] for o, i, v in self.probe.largest_leaks]}}

    # ---- the map -------------------------------------------------------------------
    def _map_grid(self, cell):
        """The map's tiles, unlabelled: (H*C) x W tiles of H x (W*C) cells, 1-pixel frames."""
        from ..figures import FIELD_COLOURS, field_codes
        C, H, W = self.shape
        palette = np.array([FIELD_COLOURS[name] for name in FIELD_COLOURS], np.uint8)
        th, tw = H * cell, W * C * cell
        grid = np.empty(((th + 1) * H * C + 1, (tw + 1) * W + 1, 3), np.uint8)
        grid[:] = 140
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
                    grid[y:y + th, x:x + tw] = tile
        return grid

    def _row_label(self, r, k):
        C = self.shape[0]
        return f"r{r}" + (f" {colour_name(k, C)}" if C > 1 else "")

    def _map_margins(self):
        """(top, left): the rows of the caption and column labels, the columns of the row
        labels, before the grid of map_image."""
        from ..font import text_size
        C, H = self.shape[:2]
        return 2 * (text_size("Ag")[0] + 4), text_size(self._row_label(H - 1, C - 1))[1] + 6

    def map_image(self, cell=3):
        """RGB uint8 map, labelled, legend below: one tile per output sub-pixel, output
        rows (and colours within a row) down and output columns across, each labelled
        (r0 .. and R, G, B at the left, c0 .. on top). A tile shows the H x W input
        image, each pixel C cells wide (its colours left to right), in the colours of
        figures.FIELD_COLOURS (the receptive-field figure's)."""
        from ..figures import LEGEND_BG, with_legend
        from ..font import draw_text, text_size
        C, H, W = self.shape
        th, tw = H * cell, W * C * cell
        grid = self._map_grid(cell)
        caption = "output row r (down), column c (across); a tile: that output's inputs"
        text_h = text_size("Ag")[0]
        top, left = self._map_margins()
        img = np.full((grid.shape[0] + top, max(grid.shape[1] + left,
                                                text_size(caption)[1] + 4), 3),
                      LEGEND_BG, np.uint8)
        img[top:, left:left + grid.shape[1]] = grid
        draw_text(img, caption, 2, 2, LABEL_INK)
        for c in range(W):
            label = f"c{c}"
            x = left + 1 + c * (tw + 1) + max((tw - text_size(label)[1]) // 2, 0)
            draw_text(img, label, x, text_h + 6, LABEL_INK)
        for r in range(H):
            for k in range(C):
                y = top + 1 + (r * C + k) * (th + 1) + max((th - text_h) // 2, 0)
                draw_text(img, self._row_label(r, k), 2, y, LABEL_INK)
        return with_legend(img)

    def map_origin(self):
        """(row, column) of the first tile's top-left cell in map_image."""
        top, left = self._map_margins()
        return top + 1, left + 1

    def write_png(self, path, cell=3):
        from ..png import write_png          # the project's dependency-free PNG writer
        write_png(path, self.map_image(cell))
