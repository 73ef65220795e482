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
      position (the position finding below). Batch statistics cancel in this
      design, so it only suits per-image models; a position change beyond
      rounding (``rounding(dtype)``) fails it, since a leak under 4 times the
      floor would not be seen. Cost per base: C*H*W + 2 images in few calls,
      and 4 calls for the base and the coupling check.

Both designs then check batch coupling directly, each pair of evaluations
holding the base at the same place in its call:

    base first beside the fixed companions   vs  base first beside new ones
    base last  beside the fixed companions   vs  base last  beside new ones

and any move of its logits is batch coupling (its own finding, with its
size). Position in the call: the base first vs last beside the same images
(isolated design: [base, companions] vs [companions, base]; per-image: the
two base copies of each call); reported with its size, never as coupling.
Both designs evaluate one call twice (one more call): a function whose output
changes with no change of input is an error (NondeterministicError), never a
pass. A function whose outputs move with no input fails too: nothing was tested.

Thresholds: coupling_threshold = max(tol * max|base logits|, 4 * the noise of
one call evaluated twice), tol by the logits' dtype (DEFAULT_TOL: 0 for
float64, any change counts). Coupling is judged against it alone: a floor
measured in calls whose other images could move the logits would let the
coupling raise its own threshold. Leaks: threshold = max(coupling_threshold,
4 * the per-image noise floor). Changes that are non-zero but under the
threshold are counted and reported, with what to do about them.

A leak is a dependency outside the causal context (causality.context_map):
an input at or after the output in raster order (colours inside a pixel).
Coverage is the fraction of that context each output reaches. With an
expected model (expect="pixelcnn" | "rowlstm" | "diagonal", fields.py) the
report names the pixels where the two fields differ.
"""
import numpy as np

from .adapters import as_logits
from .fields import expected_field
from .report import AuditReport

DEFAULT_TOL = {"float64": 0.0, "float32": 1e-6, "float16": 1e-3, "bfloat16": 1e-2}
DEFAULT_BASES = 8
DEFAULT_BATCH = 4                 # images per call in the isolated design


class AuditError(ValueError):
    """The function under audit returned something that is not logits of the images."""


class NondeterministicError(AuditError):
    """Two evaluations of the same images gave different logits."""


class FunctionRaised(Exception):
    """The audited function raised; __cause__ holds its exception (and traceback)."""


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
    an equal value (the same infinity included) did not move, and NaN (a non-finite logit
    on one side, or both) counts as infinite."""
    with np.errstate(invalid="ignore"):
        d = np.where(a == b, 0.0, np.abs(a - b)).max(axis=1)
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


def rounding(dtype):
    """The largest change, relative to max |logit|, that rounding alone explains between two
    places of one call: the dtype's default threshold, or 64 units of its last place."""
    try:
        eps = float(np.finfo(dtype).eps)
    except (TypeError, ValueError):
        eps = 0.0
    return max(DEFAULT_TOL.get(dtype, 0.0), 64 * eps)


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
    position = np.zeros((C, H, W)) if n_comp else None
    scale = nondet = 0.0
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
                position = np.maximum(position, _moved(out[-1:], out[:1])[0])
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
            if not per_image:                      # the same images, the base moved last
                position = np.maximum(position, _moved(last, ref[:1])[0])
            moved = [_moved(evaluate(np.concatenate([base, others]))[:1], ref[:1]),
                     _moved(evaluate(np.concatenate([others, base]))[-1:], last)]
            coupling = np.maximum(coupling, np.maximum(*moved)[0])
    # Coupling is judged against the noise of one call evaluated twice, never against a
    # floor measured in calls whose other images could themselves move the logits.
    coupling_threshold = max(tol * scale, 4 * nondet)
    floor = float(position.max()) if per_image else 0.0
    threshold = max(coupling_threshold, 4 * floor)
    change = change.T.reshape(C, H, W, C, H, W)
    return AuditReport(change, coupling, scale, threshold, V, int(bases), evaluate.calls,
                       evaluate.images, evaluate.dtype, "per-image" if per_image else "isolated",
                       batch, floor, nondet, nonfinite,
                       getattr(fn, "dtype_note", ""), expect, layers, position=position,
                       coupling_threshold=coupling_threshold,
                       rounding=max(tol, rounding(evaluate.dtype)) * scale)
