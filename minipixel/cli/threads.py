"""BLAS threads for the command line.

NumPy's OpenBLAS starts one thread per core. The GEMMs of these models are
small (a scan step multiplies (4h x h) by (h x N*H)), and on a 2-core machine
its threads, spinning while they wait, made a Diagonal BiLSTM training step
5 to 100 times slower whenever any other process used a core (measured:
0.05 s single-threaded vs 0.4-5 s with two threads). So the command line runs
OpenBLAS single-threaded unless told otherwise: ``MINIPIXEL_BLAS_THREADS=N``
sets N; ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` set in the environment
are respected. Best effort: other BLAS builds are left alone.
"""
import ctypes
import glob
import os

__all__ = ["set_blas_threads", "configure_blas_threads"]

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")


def set_blas_threads(n):
    """Set NumPy's OpenBLAS thread count now; returns True if a setter was found."""
    import numpy
    root = os.path.dirname(numpy.__file__)
    candidates = glob.glob(os.path.join(root, "..", "numpy.libs", "*openblas*"))
    candidates += glob.glob(os.path.join(root, ".dylibs", "*openblas*"))
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(int(n))
                return True
    return False


def configure_blas_threads():
    """Apply MINIPIXEL_BLAS_THREADS (default 1) unless the BLAS variables are already set."""
    wanted = os.environ.get("MINIPIXEL_BLAS_THREADS")
    if wanted is None and (os.environ.get("OPENBLAS_NUM_THREADS")
                           or os.environ.get("OMP_NUM_THREADS")):
        return None
    try:
        n = max(1, int(wanted or 1))
    except ValueError:
        n = 1
    return n if set_blas_threads(n) else None
