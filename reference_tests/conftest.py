"""Shared test setup: hypothesis profiles and the backend fixture.

Under CI=true the "ci" profile runs few, derandomized examples so the whole
suite fits in minutes on 2 cores; locally "dev" explores more
(HYPOTHESIS_PROFILE=thorough for a long run).

Every test that takes the ``device`` fixture runs once on NumPy ("cpu") and
once on CuPy ("cuda"); the cuda run skips, saying why, when no GPU is usable.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from minipixel.backend import cuda_unavailable_reason

_common = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                     HealthCheck.too_slow,
                                                     HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=8, derandomize=True, **_common)
settings.register_profile("dev", max_examples=20, **_common)
settings.register_profile("thorough", max_examples=200, **_common)
settings.load_profile("ci" if os.environ.get("CI") == "true"
                      else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    if request.param == "cuda":
        reason = cuda_unavailable_reason()
        if reason:
            pytest.skip(f"no GPU backend here: {reason}")
    return request.param


def random_array(rng, shape, device="cpu", dtype=np.float64, low=-1.0, high=1.0):
    """Uniform random values (never zeros) as a NumPy or CuPy array."""
    a = rng.uniform(low, high, size=shape).astype(dtype)
    if device == "cuda":
        import cupy
        return cupy.asarray(a)
    return a
