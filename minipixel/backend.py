"""Array backend: NumPy on the CPU, CuPy on a CUDA GPU.

Every op takes its array module from its inputs' data (``get_array_module``),
so each op is written once and runs on either device. A tensor's device is
simply where its array lives. ``MINIPIXEL_DEVICE`` (``cpu`` or ``cuda``)
sets the default device for new parameters and tensors built from Python data;
``default_device_override`` sets it for a block (the CLI's ``--device``).

The array module of device 'cuda' is CuPy, imported when first needed.
``use_cuda_module`` installs another module with CuPy's API in its place: the
one seam through which the test suite runs every CuPy code path on a strict
CuPy stand-in when no GPU is present. Nothing else knows about it.
"""
import contextlib
import ctypes
import ctypes.util
import os
import sys

import numpy as np

DEVICES = ("cpu", "cuda")


class DeviceError(RuntimeError):
    """A device was asked for that cannot be used, or devices were mixed."""


_cuda_module = None          # what use_cuda_module installed; None: CuPy itself
_default_override = None     # what default_device_override set; None: MINIPIXEL_DEVICE


def use_cuda_module(module):
    """Make `module` the array module of device 'cuda' (None: CuPy again); returns the
    previous one, to restore it.

    `module` offers CuPy's API (``asarray``, ``asnumpy``, ufuncs...), and its arrays
    are instances of ``module.ndarray``. While one is installed, 'cuda' counts as
    usable. The test suite installs its strict CuPy stand-in here
    (reference_tests/cupy_standin.py)."""
    global _cuda_module
    previous, _cuda_module = _cuda_module, module
    return previous


def cuda_module():
    """The array module of device 'cuda': CuPy, or the module use_cuda_module installed."""
    if _cuda_module is not None:
        return _cuda_module
    import cupy
    return cupy


def is_cupy_array(a):
    """Whether a is an array of the CUDA module (CuPy, or the installed stand-in)."""
    if _cuda_module is not None:
        return isinstance(a, _cuda_module.ndarray)
    # Checked by the type's module name, so CuPy is never imported on its own.
    return type(a).__module__.split(".")[0] == "cupy"


def get_array_module(*arrays):
    """numpy or cupy, from the arrays given (all must live on one device)."""
    for a in arrays:
        if is_cupy_array(a):
            return cuda_module()
    return np


def device_of(array):
    return "cuda" if is_cupy_array(array) else "cpu"


def cuda_unavailable_reason():
    """None when CUDA works; otherwise a sentence that says why not."""
    if _cuda_module is not None:
        return None
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
    """The device of default_device_override, else MINIPIXEL_DEVICE's, 'cpu' when unset."""
    if _default_override is not None:
        return _default_override
    name = os.environ.get("MINIPIXEL_DEVICE", "cpu").strip().lower() or "cpu"
    if name not in DEVICES:
        raise DeviceError(f"MINIPIXEL_DEVICE must be one of {DEVICES}, got {name!r}")
    return name


@contextlib.contextmanager
def default_device_override(device):
    """Inside the block, new parameters and tensors from Python data go to `device`
    whatever MINIPIXEL_DEVICE says (None: no change). The CLI runs a command with
    ``--device`` inside one, so the flag alone decides where it computes."""
    global _default_override
    previous = _default_override
    if device is not None and device not in DEVICES:
        raise DeviceError(f"device must be one of {DEVICES}, got {device!r}")
    if device is not None:
        _default_override = device
    try:
        yield
    finally:
        _default_override = previous


def to_device(array, device):
    """Copy an array to 'cpu' (NumPy) or 'cuda' (CuPy); no copy if already there."""
    check_device(device)
    if device == "cpu":
        return cuda_module().asnumpy(array) if is_cupy_array(array) else np.asarray(array)
    return cuda_module().asarray(array)


def to_numpy(array):
    return to_device(array, "cpu")


def read_scalars(*values):
    """Python floats of 0-d arrays (or numbers) living on one device, read back to the
    host in one transfer: on a GPU, one synchronisation for all of them."""
    xp = get_array_module(*values)
    stacked = xp.stack([xp.asarray(v).astype(np.float64).reshape(()) for v in values])
    return tuple(float(v) for v in to_numpy(stacked))


def scatter_add(target, index, values):
    """target[index] += values, adding repeated indices (ufunc.at: NumPy, CuPy >= 12)."""
    get_array_module(target).add.at(target, index, values)


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
_host_memory_kept = False


def keep_freed_host_memory():
    """Have the C library keep the host memory that freed arrays leave, for the next ones.

    A training step makes and drops the same large arrays every time. By default
    glibc's malloc serves each array of more than ~128 KB to a few MB with fresh
    pages from the operating system (mmap) and gives them back when it is freed, so
    every step pays page faults for all of its arrays' memory anew (measured: about
    a third of the binary PixelCNN's step, in kernel time).
    This makes malloc serve them from its heap and keep what is freed there (no
    mmap, no trimming), as a caching allocator does; the process's memory stays at
    its peak instead of shrinking between steps. Once per process, for a training
    run (Trainer.run) or a benchmark; a no-op where the C library is not glibc.
    Returns whether it took effect."""
    global _host_memory_kept
    if _host_memory_kept:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):          # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _host_memory_kept = bool(mallopt(M_MMAP_MAX, 0)) and \
        bool(mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))
    return _host_memory_kept
