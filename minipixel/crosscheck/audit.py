"""Black-box causality audit of any function from images to logits.

    report = audit(fn, channels=3, levels=256, H=8, W=8)
    print(report.format()); report.write_png("audit.png"); report.passed

fn maps images (N, C, H, W) to logits in one of the layouts of adapters.LAYOUTS:
a NumPy array or anything with .detach() / .cpu() / .numpy() / .get() (PyTorch,
CuPy, minipixel Tensors). No gradients are used. For each random base image,
each sub-pixel (k', r', c') in turn is changed to another value; output
(k, r, c) depends on it when one of its logits moves by more than the
threshold. The size of a dependency is the largest such move over the values
and bases, and it is kept for every pair.

Inputs (`inputs`): what fn is given for images of values v in 0..V-1,

    int      int64 v                          (plain functions, minipixel models)
    unit     float v / (V - 1), in [0, 1]      (torchvision's ToTensor)
    signed   float v * 2 / (V - 1) - 1         (minipixel's scaling, PixelCNN++; the
             in [-1, 1]                         default of adapters.torch_fn)

(float64 arrays; adapters.torch_fn hands them to a module in its own dtype)

by default fn.inputs, else int; input_layout="nhwc" hands fn (N, H, W, C) instead.
When fn raises, the message says what it was given and, where the error looks like
a dtype or a batch-size problem, which option to try (FunctionRaised).

Three designs. Every call of one design holds the same number of images, so a
function that keeps a buffer sized from its first batch (PixelCNN++'s code keeps
its border padding) is called as it expects:

  isolated  every evaluated call holds the image of interest at position 0 and the
      same `batch - 1` fixed companion images: the base image, then each perturbed
      copy, in its own call. What changes between two calls is the image of interest
      alone, so every change of its logits comes from its own pixels, whether through
      the wiring or through statistics pooled over the batch (BatchNorm in training
      mode leaks this way, at any batch size including 1). Cost per base: 1 + C*H*W
      calls of `batch` (default 4) images, and 3 for the coupling check below.
  per-image  for functions that treat each image on its own: a call holds
      [base, a random image, up to batch - 4 perturbed copies (base copies fill the
      rest), another random image, base]. A perturbed copy is compared with the base
      copy of its own call, so batch statistics cancel in this design: it is sound
      only for a function whose logits for an image do not move with the other images
      of the call, and every call checks exactly that: the base's logits at the first
      (and the last) place of each call, beside other random images and other copies,
      must equal those of the base's first call (batch coupling below). The two base
      copies, and the filling ones, give the noise floor of the place in the call; a
      change of place beyond rounding (``rounding(dtype)``) fails it, since a leak
      under 4 times the floor would not be seen. Cost per base: max(2, ceil(C*H*W /
      (batch - 4))) calls of `batch` images (default ``shared_batch``: at most 24).
  auto (the default)  the per-image design, as long as nothing it checks says the
      function is not per-image: the first batch coupling above the coupling
      threshold, or change of place beyond rounding, in any call, starts the audit
      again in the isolated design (with `batch` images per call if given, else 4),
      and the report says why. So auto's report is the per-image design's exactly
      when the function showed neither, and the isolated design's otherwise: its
      per-image calls are only kept for a function whose logits, at the threshold,
      moved with nothing but their own image in every call.

Both the isolated design and the coupling checks of the others look at the base at
the same place in two calls that differ in their other images: any move of its
logits is batch coupling (its own finding, with its size). Position in the call: the
base first vs last beside the same images (isolated design: [base, companions] vs
[companions, base]; per-image: the base copies of each call); reported with its
size, never as coupling. Every design evaluates one call twice (one more call): a
function whose output changes with no change of input is an error
(NondeterministicError), never a pass. A function whose outputs move with no input
fails too: nothing was tested.

Thresholds: coupling_threshold = max(tol * max|base logits|, 4 * the noise of one
call evaluated twice), tol by the logits' dtype (DEFAULT_TOL: 0 for float64, any
change counts). Coupling is judged against it alone: a floor measured in calls whose
other images could move the logits would let the coupling raise its own threshold.
Leaks: threshold = max(coupling_threshold, 4 * the per-image noise floor). Changes
that are non-zero but under the threshold are counted and reported, with what to do.

Why not fewer perturbed images: several sub-pixels changed in one image can tell
apart only outputs that no two of them reach, and an output's own sub-pixel (the
commonest leak, a first layer with mask B) is seen only in an image whose earliest
change is that sub-pixel: a leak check needs one perturbed image per sub-pixel and
base, whatever the grouping. And a float32 pass with float64 only near the threshold
re-runs every future pair (a leak hides exactly where the float32 change is zero):
no saving. The designs above share calls between images instead, never changes
inside one image.

A leak is a dependency outside the causal context (causality.context_map): an input
at or after the output in raster order (colours inside a pixel). Coverage is the
fraction of that context each output reaches. With an expected field (expect =
"pixelcnn" | "rowlstm" | "diagonal" | "full" | "maskb", fields.py) the report names
the pixels where the two fields differ.
"""
import re
import time

import numpy as np

from .adapters import as_logits
from .fields import expected_field
from .report import AuditReport

DEFAULT_TOL = {"float64": 0.0, "float32": 1e-6, "float16": 1e-3, "bfloat16": 1e-2}
DEFAULT_BASES = 8
DEFAULT_BATCH = 4                 # images per call in the isolated design
MAX_SHARED_BATCH = 24             # images per call of the per-image design, by default
MIN_SHARED_BATCH = 5              # base, a random image, a perturbed copy, another, base
DESIGNS = ("auto", "isolated", "per-image")
INPUTS = {"int": "integers v (int64)",
          "unit": "floats v/(V-1) in [0, 1]",
          "signed": "floats v*2/(V-1) - 1 in [-1, 1]"}
INPUT_LAYOUTS = ("nchw", "nhwc")


class AuditError(ValueError):
    """The function under audit returned something that is not logits of the images."""


class NondeterministicError(AuditError):
    """Two evaluations of the same images gave different logits."""


class FunctionRaised(Exception):
    """The audited function raised; __cause__ holds its exception (and traceback)."""


class _NotPerImage(Exception):
    """Auto design: the per-image calls saw coupling or a change of place (the reason)."""


def shared_batch(P):
    """Images per call of the per-image design for P sub-pixels: at least two calls per
    base (so each base checks coupling), at most MAX_SHARED_BATCH images, calls balanced."""
    calls = max(2, -(-P // (MAX_SHARED_BATCH - 4)))
    return -(-P // calls) + 4


def scaled(images, inputs, levels):
    """Integer images -> what the function is given (INPUTS)."""
    if inputs == "int":
        return images
    x = images.astype(np.float64)
    return x / (levels - 1) if inputs == "unit" else x * (2.0 / (levels - 1)) - 1


# ---- the evaluation ---------------------------------------------------------------------
_INT_TROUBLE = re.compile(r"\b(long|int|integer)\b|LongTensor|IntTensor|scalar type", re.I)
_FLOAT_TROUBLE = re.compile(r"indices|embedding|\bLong\b|\bInt\b|index", re.I)
_SIZE_TROUBLE = re.compile(r"size|shape|dimension", re.I)


class _Evaluator:
    """Calls fn, checks and converts its logits, counts calls and images, reports
    progress(calls done, calls planned)."""

    def __init__(self, fn, C, H, W, layout, inputs, input_layout, levels, progress=None):
        self.fn, self.shape, self.layout = fn, (C, H, W), layout
        self.inputs, self.input_layout, self.levels = inputs, input_layout, levels
        self.calls = self.images = 0
        self.planned = 0
        self.dtype = None
        self.sizes = []                  # call sizes that returned, in order of first use
        self.progress = progress

    def __call__(self, images):
        self.calls += 1
        self.images += len(images)
        x = scaled(images, self.inputs, self.levels)
        if self.input_layout == "nhwc":
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        try:
            out = self.fn(x)
        except Exception as e:                                   # noqa: BLE001 -- reported
            raise FunctionRaised(f"the audited function raised {type(e).__name__}: {e}"
                                 + self.hint(e, len(images))) from e
        try:
            logits, self.dtype = as_logits(out, len(images), *self.shape, self.layout)
        except ValueError as e:                    # not an array of numbers in a layout
            raise AuditError(str(e)) from None
        if len(images) not in self.sizes:
            self.sizes.append(len(images))
        if self.progress is not None:
            self.progress(self.calls, max(self.planned, self.calls))
        return logits

    def hint(self, error, n):
        """What to try, from the error's text and the calls that worked before it."""
        text, hints = f"{type(error).__name__}: {error}", []
        if self.sizes and n not in self.sizes:
            first = self.sizes[0]
            hints.append(f"it ran on calls of {' and '.join(map(str, self.sizes))} images and "
                         f"raised on the first call of {n}: it depends on the number of images "
                         f"per call (for example a padding sized from the first batch and "
                         f"kept, as PixelCNN++'s code does): build such tensors from each "
                         f"input's shape, or give --batch {first} so that every call of the "
                         f"audit holds {first} images")
        elif not self.sizes and _SIZE_TROUBLE.search(text):
            hints.append(f"this first call held {n} images of {self.shape[1]}x{self.shape[2]}: "
                         f"if the model takes only one batch size or image size, give it "
                         f"(--batch, --height, --width)")
        given = INPUTS[self.inputs] + (", as (N, H, W, C)" if self.input_layout == "nhwc"
                                       else "")
        if self.inputs == "int" and _INT_TROUBLE.search(text):
            hints.append(f"the images came as {given} (--input int); a model that starts with "
                         f"a convolution takes floats: --input unit (v/(V-1)) or --input "
                         f"signed ([-1, 1])")
        elif self.inputs != "int" and _FLOAT_TROUBLE.search(text):
            hints.append(f"the images came as {given} (--input {self.inputs}); a model that "
                         f"looks its input up in an embedding takes integers: --input int")
        return "".join(f"; {h}" for h in hints)


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


class _Measured:
    """What one design measured (the report's raw material)."""

    def __init__(self, C, H, W, design, batch, checks_coupling):
        P = C * H * W
        self.design, self.batch = design, batch
        self.change = np.zeros((P, P))             # [input j, output] largest |change|
        self.coupling = np.zeros((C, H, W)) if checks_coupling else None
        self.position = np.zeros((C, H, W)) if checks_coupling else None
        self.scale = self.nondet = 0.0
        self.nonfinite = 0
        self.tol = 0.0

    def base_logits(self, logits, evaluate, tol_given):
        if not np.isfinite(logits).all():
            raise AuditError("the function returned non-finite logits for a base image")
        self.scale = max(self.scale, float(np.abs(logits).max()))
        self.tol = (DEFAULT_TOL.get(evaluate.dtype, 0.0) if tol_given is None
                    else float(tol_given))


def _generators(seed):
    """(bases and their perturbed values, the other images of the calls): two streams, so
    every design audits the same base images with the same perturbed values."""
    return np.random.default_rng(seed), np.random.default_rng([seed, 1])


def _isolated(evaluate, C, H, W, V, bases, seed, tol_given, batch):
    """The isolated design (module docstring)."""
    rng, side = _generators(seed)
    P = C * H * W
    n_comp = batch - 1
    m = _Measured(C, H, W, "isolated", batch, n_comp > 0)
    evaluate.planned = evaluate.calls + bases * (1 + P + (3 if n_comp else 0)) + 1
    companions = side.integers(0, V, size=(n_comp, C, H, W), dtype=np.int64)
    for b in range(bases):
        base = rng.integers(0, V, size=(1, C, H, W), dtype=np.int64)
        pert = _perturbed(base, rng, V)
        ref = evaluate(np.concatenate([base, companions]))
        m.base_logits(ref[0], evaluate, tol_given)
        if b == 0:
            m.nondet = _check_determinism(ref, evaluate(np.concatenate([base, companions])),
                                          m.tol, evaluate.dtype)
        for j in range(P):
            out = evaluate(np.concatenate([pert[j:j + 1], companions]))
            m.change[j] = np.maximum(m.change[j], _moved(out[:1], ref[:1]).reshape(P))
            m.nonfinite += int(not np.isfinite(out[0]).all())
        if n_comp:                                 # batch coupling, the base first and last
            others = side.integers(0, V, size=(n_comp, C, H, W), dtype=np.int64)
            last = evaluate(np.concatenate([companions, base]))[-1:]
            m.position = np.maximum(m.position, _moved(last, ref[:1])[0])
            moved = [_moved(evaluate(np.concatenate([base, others]))[:1], ref[:1]),
                     _moved(evaluate(np.concatenate([others, base]))[-1:], last)]
            m.coupling = np.maximum(m.coupling, np.maximum(*moved)[0])
    return m


def _per_image(evaluate, C, H, W, V, bases, seed, tol_given, batch, strict):
    """The per-image design (module docstring); strict=False raises _NotPerImage at the
    first coupling or change of place that the auto design must not build on."""
    rng, side = _generators(seed)
    P = C * H * W
    room = batch - 4                               # perturbed copies per call
    calls = max(2, -(-P // room))
    m = _Measured(C, H, W, "per-image", batch, True)
    evaluate.planned = evaluate.calls + bases * calls + 1
    for b in range(bases):
        base = rng.integers(0, V, size=(1, C, H, W), dtype=np.int64)
        pert = _perturbed(base, rng, V)
        for i in range(calls):
            chunk = pert[i * room:(i + 1) * room]
            n = len(chunk)
            others = side.integers(0, V, size=(2, C, H, W), dtype=np.int64)
            call = np.concatenate([base, others[:1], chunk, np.repeat(base, room - n, axis=0),
                                   others[1:], base])
            out = evaluate(call)
            if i == 0:
                m.base_logits(out[0], evaluate, tol_given)
                if b == 0:
                    m.nondet = _check_determinism(out, evaluate(call), m.tol, evaluate.dtype)
                first, last = out[:1], out[-1:]
            else:                                  # the base beside other images
                m.coupling = np.maximum(m.coupling, np.maximum(_moved(out[:1], first),
                                                               _moved(out[-1:], last))[0])
            copies = np.concatenate([out[2 + n:2 + room], out[-1:]])      # base copies
            m.position = np.maximum(m.position, _moved(copies, out[:1]).max(axis=0))
            if n:
                d = _moved(out[2:2 + n], out[:1]).reshape(n, P)
                rows = slice(i * room, i * room + n)
                m.change[rows] = np.maximum(m.change[rows], d)
                m.nonfinite += int((~np.isfinite(out[2:2 + n])).reshape(n, -1).any(1).sum())
            if not strict:
                coupling_threshold = max(m.tol * m.scale, 4 * m.nondet)
                if m.coupling.max() > coupling_threshold:
                    raise _NotPerImage(
                        f"the base's logits moved by {m.coupling.max():.3g} with the other "
                        f"images of its call (batch coupling)")
                if m.position.max() > max(m.tol, rounding(evaluate.dtype)) * m.scale:
                    raise _NotPerImage(
                        f"the base's logits moved by {m.position.max():.3g} with its place "
                        f"in the call, more than rounding")
    return m


def audit(fn, channels, levels, H=8, W=8, bases=DEFAULT_BASES, seed=0, tol=None, batch=None,
          per_image=False, layout="nchw", expect=None, layers=None, *, design=None,
          inputs=None, input_layout="nchw", kernels=None, progress=None):
    """Audit fn (images (N, C, H, W) -> logits) for causality -> AuditReport.

    bases: random base images (sizes are the largest over them); design: "auto" (the
    default), "isolated" or "per-image" (per_image=True is the last); batch: images per
    call, every call (default 4 isolated, shared_batch(C*H*W) per-image; auto uses it
    for both); tol: threshold relative to max |logits| (default by dtype, DEFAULT_TOL);
    inputs: "int" | "unit" | "signed" (default fn.inputs, else "int"), input_layout:
    "nchw" | "nhwc"; expect, layers, kernels: compare with that field (fields.py);
    progress(calls done, calls planned) after each call.
    Raises AuditError (bad logits, NondeterministicError) or FunctionRaised."""
    C, V = int(channels), int(levels)
    if C < 1 or V < 2 or H < 1 or W < 1 or bases < 1:
        raise ValueError(f"audit: need channels >= 1, levels >= 2, height, width, bases >= 1; "
                         f"got {channels}, {levels}, {H}, {W}, {bases}")
    design = design or ("per-image" if per_image else "auto")
    if design not in DESIGNS:
        raise ValueError(f"audit: unknown design {design!r}; expected one of "
                         f"{', '.join(DESIGNS)}")
    if batch is not None and (int(batch) < 1 or (design == "per-image"
                                                 and int(batch) < MIN_SHARED_BATCH)):
        raise ValueError(f"audit: batch is the images per call: >= 1 (>= {MIN_SHARED_BATCH} "
                         f"for the per-image design: base, a random image, a perturbed copy, "
                         f"another random image, base), got {batch}")
    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"audit: tol must be finite and >= 0, got {tol}")
    inputs = inputs or getattr(fn, "inputs", None) or "int"
    if inputs not in INPUTS:
        raise ValueError(f"audit: unknown input convention {inputs!r}; expected one of "
                         f"{', '.join(INPUTS)}")
    if input_layout not in INPUT_LAYOUTS:
        raise ValueError(f"audit: input layout must be one of {', '.join(INPUT_LAYOUTS)}, "
                         f"got {input_layout!r}")
    if expect is not None:
        expected_field(expect, 1, 1, 1, layers, kernels)      # validates kind and layers
    P = C * H * W
    start = time.perf_counter()
    evaluate = _Evaluator(fn, C, H, W, layout, inputs, input_layout, V, progress)
    args = (evaluate, C, H, W, V, int(bases), seed, tol)
    note = ""
    if design == "isolated":
        m = _isolated(*args, int(batch or DEFAULT_BATCH))
    elif design == "per-image":
        m = _per_image(*args, int(batch or shared_batch(P)), strict=True)
    elif batch is not None and int(batch) < MIN_SHARED_BATCH:
        m = _isolated(*args, int(batch))
        note = (f"auto: {batch} image(s) per call leave no room to share calls "
                f"({MIN_SHARED_BATCH} needed), so each perturbed copy had its own call")
    else:
        try:
            m = _per_image(*args, int(batch or shared_batch(P)), strict=False)
            note = ("auto: the base's logits moved with nothing but its own image in every "
                    "call, so perturbed copies shared calls")
        except _NotPerImage as e:
            spent = evaluate.calls
            m = _isolated(*args, int(batch or DEFAULT_BATCH))
            note = (f"auto: {e}, so the audit started again in the isolated design (each "
                    f"perturbed copy in its own call; {spent} calls spent before)")
    # Coupling is judged against the noise of one call evaluated twice, never against a
    # floor measured in calls whose other images could themselves move the logits.
    coupling_threshold = max(m.tol * m.scale, 4 * m.nondet)
    floor = float(m.position.max()) if m.design == "per-image" else 0.0
    threshold = max(coupling_threshold, 4 * floor)
    change = m.change.T.reshape(C, H, W, C, H, W)
    return AuditReport(change, m.coupling, m.scale, threshold, V, int(bases), evaluate.calls,
                       evaluate.images, evaluate.dtype, m.design, m.batch, floor, m.nondet,
                       m.nonfinite, getattr(fn, "dtype_note", ""), expect, layers,
                       position=m.position, coupling_threshold=coupling_threshold,
                       rounding=max(m.tol, rounding(evaluate.dtype)) * m.scale,
                       kernels=kernels, design_note=note, inputs=inputs,
                       probe_note=getattr(fn, "probe_note", ""),
                       seconds=time.perf_counter() - start)
