"""Functions for the black-box audit (audit.py): the result layouts, and adapters.

    to_array(out)                     NumPy from NumPy, PyTorch, CuPy, minipixel results
    as_logits(out, N, C, H, W, layout)   -> (N, V, C, H, W) float64 and the original dtype
    model_fn(model)                   a minipixel model as images -> NumPy logits
    torch_fn(module, float64=True)    a torch.nn.Module as images -> NumPy logits
    checkpoint_fn(path)               a minipixel checkpoint's model, in float64
    tiny(model="diagonal")            a small float64 model's fn, for `minipixel audit`:
        minipixel audit minipixel.crosscheck.adapters:tiny --kwargs '{"model": "rowlstm"}'

Layouts of the logits, for images (N, C, H, W) and V values per sub-pixel:

    nchw   (N, C, H, W)          one logit per sub-pixel
           (N, V, C, H, W)       V logits per sub-pixel
           (N, V, H, W)          V logits, one-colour images only (PyTorch's
                                 cross-entropy layout)
    nhwc   (N, H, W, C)          one logit per sub-pixel (JAX, TensorFlow)
           (N, H, W, C, V)       V logits per sub-pixel
           (N, H, W, V)          V logits, one-colour images only
"""
import numpy as np

from ..backend import to_numpy
from ..causality import probe_model
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
    fn.dtype_note = f"a minipixel model in {np.dtype(model.dtype).name}"
    return fn


def is_torch_module(obj):
    import sys                                   # torch only if the caller imported it
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def torch_fn(module, float64=True):
    """A torch.nn.Module (int64 images (N, C, H, W) as a tensor -> logits) as a NumPy function.

    The module keeps its mode (train or eval: a module audited in train mode is
    audited as it trains). float64=True converts its parameters and buffers to
    float64 (module.double()) at the first call; when the module then fails (e.g.
    it casts its input with .float()), it goes back to float32 and fn.dtype_note
    says why."""
    import torch
    state = {"try_double": bool(float64)}

    def call(images):
        with torch.no_grad():
            return to_array(module(torch.from_numpy(np.ascontiguousarray(images))))

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
    for attr in ("channels", "levels"):
        if hasattr(module, attr):
            setattr(fn, attr, getattr(module, attr))
    fn.module = module
    return fn


def checkpoint_fn(path, float64=True):
    """The model of a minipixel checkpoint as an audit function (float64 copy by default).

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
    return model_fn(model)


def tiny(model="pixelcnn", channels=3, levels=16, h=4, layers=2, out_hidden=8, seed=0,
         dtype="float64", leaky=False):
    """model_fn of a small freshly initialised model (defaults: RGB, 16 levels, float64)."""
    m = build(model, channels=channels, levels=levels, h=h, layers=layers, out_hidden=out_hidden,
              seed=seed, dtype=np.dtype(dtype))
    return model_fn(m, leaky)
