"""Shared test setup: hypothesis profiles and the backend fixture.

Under CI=true the "ci" profile runs few, derandomized examples so the whole
suite fits in minutes on 2 cores; locally "dev" explores more
(HYPOTHESIS_PROFILE=thorough for a long run).

Every test that takes the ``device`` fixture runs once on NumPy ("cpu") and
once on device "cuda": on real CuPy when a GPU is usable, otherwise on the
strict CuPy stand-in (cupy_standin.py), installed for that test through
``minipixel.backend.use_cuda_module``. So no cuda variant is ever skipped.
MINIPIXEL_TEST_CUDA picks the cuda backend: ``auto`` (the default, as said),
``real`` (real CuPy or fail: the GPU check, .ci/gpu_check.py) or ``standin``
(the stand-in even where a GPU is usable). Tests make device arrays with
``backend.to_device`` (or ``random_array``), never by importing cupy: the
stand-in is reached only through the backend.
"""
import contextlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import cupy_standin
from minipixel import backend

_common = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                     HealthCheck.too_slow,
                                                     HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=8, derandomize=True, **_common)
settings.register_profile("dev", max_examples=20, **_common)
settings.register_profile("thorough", max_examples=200, **_common)
settings.load_profile("ci" if os.environ.get("CI") == "true"
                      else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


CUDA_MODES = ("auto", "real", "standin")


def cuda_mode():
    mode = os.environ.get("MINIPIXEL_TEST_CUDA", "auto").strip().lower() or "auto"
    if mode not in CUDA_MODES:
        raise pytest.UsageError(f"MINIPIXEL_TEST_CUDA must be one of {CUDA_MODES}, got {mode!r}")
    return mode


@contextlib.contextmanager
def standin_cuda():
    """Device 'cuda' is the CuPy stand-in inside the block."""
    previous = backend.use_cuda_module(cupy_standin.cupy)
    try:
        yield cupy_standin.cupy
    finally:
        backend.use_cuda_module(previous)


@contextlib.contextmanager
def cuda_backend():
    """Device 'cuda' inside the block: real CuPy or the stand-in (see MINIPIXEL_TEST_CUDA)."""
    mode = cuda_mode()
    reason = None if mode == "standin" else backend.cuda_unavailable_reason()
    if mode == "real" and reason:
        pytest.fail(f"MINIPIXEL_TEST_CUDA=real, but {reason}", pytrace=False)
    if mode == "standin" or reason:
        with standin_cuda() as xp:
            yield xp
    else:
        yield backend.cuda_module()


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    if request.param == "cpu":
        yield "cpu"
        return
    with cuda_backend():
        yield "cuda"


@pytest.fixture
def standin():
    """The CuPy stand-in as device 'cuda' (for what only it can tell: synchronisations)."""
    with standin_cuda() as xp:
        yield xp


def random_array(rng, shape, device="cpu", dtype=np.float64, low=-1.0, high=1.0):
    """Uniform random values (never zeros) as an array on `device`."""
    a = rng.uniform(low, high, size=shape).astype(dtype)
    return backend.to_device(a, device)
