"""Array backend: NumPy on the CPU, CuPy on a CUDA GPU.

Every op takes its array module from its inputs' data (``get_array_module``),
so each op is written once and runs on either device. A tensor's device is
simply where its array lives. ``MINIPIXEL_DEVICE`` (``cpu`` or ``cuda``)
sets the default device for new parameters and tensors built from Python data.
"""
import os

import numpy as np

DEVICES = ("cpu", "cuda")


class DeviceError(RuntimeError):
    """A device was asked for that cannot be used, or devices were mixed."""


def _is_cupy_array(a):
    # Checked by the type's module name, so CuPy is never imported on its own.
    return type(a).__module__.split(".")[0] == "cupy"


def get_array_module(*arrays):
    """numpy or cupy, from the arrays given (all must live on one device)."""
    for a in arrays:
        if _is_cupy_array(a):
            import cupy
            return cupy
    return np


def device_of(array):
    return "cuda" if _is_cupy_array(array) else "cpu"


def cuda_unavailable_reason():
    """None when CUDA works; otherwise a sentence that says why not."""
    try:
        import cupy
    except ImportError:
        return ("device 'cuda' needs CuPy, which is not installed: "
                "pip install 'minipixel[cuda12]' (or [cuda13])")
    try:
        ok = bool(cupy.is_available())
    except Exception as e:  # a broken driver install can raise here
        ok, detail = False, f" ({type(e).__name__}: {e})"
    else:
        detail = ""
    if not ok:
        return (f"device 'cuda' asked for: CuPy {cupy.__version__} is installed "
                f"but finds no usable CUDA GPU (cupy.is_available() is False){detail}")
    return None


def check_device(device):
    """Validate a device name and, for 'cuda', that a GPU is usable."""
    if device not in DEVICES:
        raise DeviceError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda":
        reason = cuda_unavailable_reason()
        if reason:
            raise DeviceError(reason)
    return device


def default_device():
    """The device named by MINIPIXEL_DEVICE, 'cpu' when unset."""
    name = os.environ.get("MINIPIXEL_DEVICE", "cpu").strip().lower() or "cpu"
    if name not in DEVICES:
        raise DeviceError(f"MINIPIXEL_DEVICE must be one of {DEVICES}, got {name!r}")
    return name


def to_device(array, device):
    """Copy an array to 'cpu' (NumPy) or 'cuda' (CuPy); no copy if already there."""
    check_device(device)
    if device == "cpu":
        return array.get() if _is_cupy_array(array) else np.asarray(array)
    import cupy
    return cupy.asarray(array)


def to_numpy(array):
    return to_device(array, "cpu")


def scatter_add(target, index, values):
    """target[index] += values, adding repeated indices (np.add.at on both)."""
    xp = get_array_module(target)
    if xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx
        cupyx.scatter_add(target, index, values)
