"""Functions for the black-box audit (audit.py): the result layouts, and adapters.

    to_array(out)                     NumPy from NumPy, PyTorch, CuPy, minipixel results
    as_logits(out, N, C, H, W, layout)   -> (N, V, C, H, W) float64 and the original dtype
    model_fn(model, leaky=False)      a minipixel model as images -> NumPy logits
    torch_fn(module, float64=True, inputs="signed", probe=None)
                                      a torch.nn.Module as images -> NumPy logits
    torch_probe(module)               a copy whose ReLUs are leaky (the probe below)
    checkpoint_fn(path)               a minipixel checkpoint's model, in float64
    tiny(model="diagonal")            a small float64 model's fn, for `minipixel audit`:
        minipixel audit minipixel.crosscheck.adapters:tiny --kwargs '{"model": "rowlstm"}'

Probes: a dependency hidden behind a dead ReLU (one whose input is negative on every
base image tried) looks like a missing wire. A probe runs a copy of the model with
leaky ReLUs (slope causality.PROBE_SLOPE), so every wire carries a change and one
base gives the exact structure. Trade-off: it audits the copy, not the model (its
coverage is the wiring's, not what the trained model uses), and it only changes
ReLUs: nn.ReLU modules, and F.relu / torch.relu / Tensor.relu (and their in-place
forms) called during the forward; clamp(min=0), ReLU6, hardtanh or a hand-written
maximum stay as they are. Several random bases OR-ed (--bases) audit the model
itself, but a path dead on every base stays hidden and the cost grows with each.

Layouts of the logits, for images (N, C, H, W) and V values per sub-pixel:

    nchw   (N, C, H, W)          one logit per sub-pixel
           (N, V, C, H, W)       V logits per sub-pixel
           (N, V, H, W)          V logits, one-colour images only (PyTorch's
                                 cross-entropy layout)
    nhwc   (N, H, W, C)          one logit per sub-pixel (JAX, TensorFlow)
           (N, H, W, C, V)       V logits per sub-pixel
           (N, H, W, V)          V logits, one-colour images only
"""
import contextlib
import copy

import numpy as np

from ..backend import to_numpy
from ..causality import PROBE_SLOPE, probe_model
from ..models import build
from ..tensor import no_grad

LAYOUTS = {
    "nchw": "(N, C, H, W), (N, levels, C, H, W), or (N, levels, H, W) when C == 1",
    "nhwc": "(N, H, W, C), (N, H, W, C, levels), or (N, H, W, levels) when C == 1",
}


class LayoutError(ValueError):
    """The function returned an array that is not logits of the images in the layout."""


def to_array(out):
    """A NumPy array from a NumPy, PyTorch, CuPy or minipixel result."""
    if hasattr(out, "data") and type(out).__module__.startswith("minipixel"):
        out = out.data                                   # a minipixel Tensor
    for attr in ("detach", "cpu"):
        if hasattr(out, attr) and callable(getattr(out, attr)):
            out = getattr(out, attr)()
    if hasattr(out, "numpy") and callable(out.numpy):
        out = out.numpy()
    elif hasattr(out, "get") and callable(out.get) and type(out).__module__.startswith("cupy"):
        out = out.get()
    return np.asarray(out)


def as_logits(out, N, C, H, W, layout="nchw"):
    """fn's result for N images (N, C, H, W) -> ((N, V, C, H, W) float64, its dtype name)."""
    try:
        out = to_array(out)
    except (ValueError, TypeError) as e:
        raise LayoutError(f"the function returned a {type(out).__name__} that is not an array "
                          f"of logits ({e})") from None
    shape = out.shape
    x = None
    if layout == "nchw":
        if out.ndim == 4 and shape == (N, C, H, W):
            x = out[:, None]
        elif out.ndim == 5 and shape[0] == N and shape[2:] == (C, H, W):
            x = out
        elif out.ndim == 4 and C == 1 and shape[0] == N and shape[2:] == (H, W):
            x = out[:, :, None]
    elif layout == "nhwc":
        if out.ndim == 4 and shape == (N, H, W, C):
            x = out.transpose(0, 3, 1, 2)[:, None]
        elif out.ndim == 5 and shape[:4] == (N, H, W, C):
            x = out.transpose(0, 4, 3, 1, 2)
        elif out.ndim == 4 and C == 1 and shape[:3] == (N, H, W):
            x = out.transpose(0, 3, 1, 2)[:, :, None]
    else:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if x is None:
        raise LayoutError(f"for images ({N}, {C}, {H}, {W}) the function returned shape "
                          f"{tuple(shape)}; expected logits {LAYOUTS[layout]}"
                          + ("" if layout == "nhwc" else " (or --layout nhwc: "
                             + LAYOUTS["nhwc"] + ")"))
    if out.dtype.kind not in "fiu":
        raise LayoutError(f"logits must be numbers, got dtype {out.dtype}")
    return x.astype(np.float64), out.dtype.name


def model_fn(model, leaky=False):
    """A NumPy function images -> logits for a minipixel model, with .channels and .levels.

    leaky=True runs a copy with leaky ReLUs (causality.probe_model) so no
    path hides behind a dead unit: exact coverage, same causal structure."""
    net = probe_model(model) if leaky else model

    def fn(images):
        with no_grad():
            return to_numpy(net(np.asarray(images)).data)
    fn.channels, fn.levels, fn.model = model.channels, model.levels, model
    fn.inputs = "int"
    fn.dtype_note = f"a minipixel model in {np.dtype(model.dtype).name}"
    if leaky:
        fn.probe_note = (f"a copy of the model with leaky ReLUs (slope {net.relu_slope:g}): "
                         f"every wire carries a change")
    return fn


def is_torch_module(obj):
    import sys                                   # torch only if the caller imported it
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _torch_dtype(module):
    import torch
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.get_default_dtype(), torch.device("cpu")


class _LeakyRelus:
    """While active, F.relu, torch.relu, Tensor.relu and their in-place forms are leaky
    ReLUs; counts the calls."""
    NAMES = (("functional", "relu"), ("functional", "relu_"), ("torch", "relu"),
             ("torch", "relu_"), ("Tensor", "relu"), ("Tensor", "relu_"))

    def __init__(self, slope):
        self.slope, self.calls = slope, 0

    @contextlib.contextmanager
    def active(self):
        import torch
        import torch.nn.functional as F
        owners = {"functional": F, "torch": torch, "Tensor": torch.Tensor}
        saved = [(owners[o], n, getattr(owners[o], n)) for o, n in self.NAMES]

        def leaky(x, inplace=False):
            self.calls += 1
            return F.leaky_relu(x, self.slope, inplace=inplace)

        def leaky_(x):
            self.calls += 1
            return F.leaky_relu(x, self.slope, inplace=True)
        try:
            for owner, name, _ in saved:
                setattr(owner, name, leaky_ if name.endswith("_") else leaky)
            yield
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)


def torch_probe(module, slope=PROBE_SLOPE):
    """A deep copy of `module` with every nn.ReLU swapped for nn.LeakyReLU(slope) ->
    (copy, number swapped). The functional ReLUs are made leaky while torch_fn calls it
    (probe="leaky"); the module itself is not changed."""
    import torch.nn as nn
    twin = copy.deepcopy(module)
    swapped = 0
    for parent in twin.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.ReLU:
                setattr(parent, name, nn.LeakyReLU(slope, inplace=child.inplace))
                swapped += 1
    return twin, swapped


def torch_fn(module, float64=True, inputs="signed", probe=None):
    """A torch.nn.Module (images (N, C, H, W) as a tensor -> logits) as a NumPy function.

    inputs: what the module is given (audit.INPUTS): "signed" floats in [-1, 1] (the
    default: a module that starts with a convolution takes floats), "unit" floats in
    [0, 1], or "int" (int64, e.g. for an nn.Embedding). Float images come in the
    module's dtype, on its device. The module keeps its mode (train or eval: a module
    audited in train mode is audited as it trains). float64=True converts its
    parameters and buffers to float64 (module.double()) at the first call; when the
    module then fails (e.g. it casts its input with .float()), it goes back to float32
    and fn.dtype_note says why. probe="leaky" audits torch_probe(module) instead, its
    functional ReLUs made leaky during each call (fn.probe_note says what changed)."""
    import torch
    state = {"try_double": bool(float64)}
    relus = None
    if probe == "leaky":
        module, swapped = torch_probe(module)
        relus = _LeakyRelus(PROBE_SLOPE)
    elif probe is not None:
        raise ValueError(f"unknown probe {probe!r}; expected 'leaky'")

    def call(images):
        x = torch.from_numpy(np.ascontiguousarray(images))
        dtype, device = _torch_dtype(module)
        x = x.to(device=device, dtype=dtype if x.is_floating_point() else None)
        if relus is not None:
            relus.calls = 0
        with torch.no_grad(), (relus.active() if relus else contextlib.nullcontext()):
            out = to_array(module(x))
        if relus is not None:
            fn.probe_note = (f"a copy of the module with leaky ReLUs (slope {PROBE_SLOPE:g}): "
                             f"{swapped} nn.ReLU module(s) swapped, {relus.calls} functional "
                             f"relu call(s) per forward made leaky; clamp(min=0), ReLU6, "
                             f"hardtanh and hand-written maximums are left as they are")
        return out

    def fn(images):
        if state["try_double"]:
            state["try_double"] = False
            module.double()
            try:
                out = call(images)
                fn.dtype_note = "module.double(): parameters and buffers in float64"
                return out
            except Exception as e:                        # noqa: BLE001 -- any failure
                module.float()
                fn.dtype_note = (f"float64 failed ({type(e).__name__}: {e}); the module "
                                 f"runs in float32")
        return call(images)

    fn.dtype_note = "the module's own dtype"
    fn.inputs = inputs
    if relus is not None:
        fn.probe_note = f"a copy of the module with leaky ReLUs ({swapped} nn.ReLU swapped)"
    for attr in ("channels", "levels"):
        if hasattr(module, attr):
            setattr(fn, attr, getattr(module, attr))
    fn.module = module
    return fn


def checkpoint_fn(path, float64=True, leaky=False):
    """The model of a minipixel checkpoint as an audit function (float64 copy by default;
    leaky: its probe, causality.probe_model).

    A Multi-Scale checkpoint is audited as its conditional network with the small image
    held fixed (a seeded random one per image size, ``MultiScalePixelRNN.given_small``):
    the function of the large image that must be causal. The small image's own pixels
    are pixels of the large one, so taking it from the audited image would show them as
    dependencies on the future: they are given, not predicted."""
    from ..checkpoint import load_checkpoint
    ckpt = load_checkpoint(path)
    model = ckpt.model if ckpt.model is not None else ckpt.build_model()
    if float64 and np.dtype(model.dtype) != np.float64:
        config = dict(ckpt.config, dtype=np.float64)
        model = build(config.pop("model"), **config)
        model.load_state_dict({k: np.asarray(to_numpy(v), np.float64)
                               for k, v in ckpt.model_state.items()})
    if model.name == "multiscale":
        model = model.given_small()
    return model_fn(model, leaky)


def tiny(model="pixelcnn", channels=3, levels=16, h=4, layers=2, out_hidden=8, seed=0,
         dtype="float64", leaky=False):
    """model_fn of a small freshly initialised model (defaults: RGB, 16 levels, float64)."""
    m = build(model, channels=channels, levels=levels, h=h, layers=layers, out_hidden=out_hidden,
              seed=seed, dtype=np.dtype(dtype))
    return model_fn(m, leaky)
