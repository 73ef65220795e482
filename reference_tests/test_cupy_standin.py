"""The CuPy stand-in fails where CuPy fails, offers only CuPy's names, and counts syncs;
the backend seam installs and removes it."""
import importlib.util
import operator
import sys
import types

import numpy as np
import pytest

import cupy_names
import cupy_standin
import make_cupy_names
from conftest import standin_cuda
from minipixel import Tensor, backend, ops

cp = cupy_standin.cupy


def dev(a):
    return cp.asarray(np.asarray(a, dtype=np.float64))


# ---- implicit conversion is refused, as in CuPy -------------------------------------------

IMPLICIT = {
    "np.asarray": lambda x, h: np.asarray(x),
    "np.array of a list": lambda x, h: np.array([x, x]),
    "NumPy ufunc": lambda x, h: np.exp(x),
    "NumPy function": lambda x, h: np.sum(x),
    "NumPy function, mixed": lambda x, h: np.concatenate([h, x]),
    "device + host": lambda x, h: x + h,
    "host + device": lambda x, h: h + x,
    "host * device": lambda x, h: h * x,
    "host < device": lambda x, h: h < x,
    "host @ device": lambda x, h: h @ x,
    "host += device": lambda x, h: operator.iadd(h, x),
    "device += host": lambda x, h: operator.iadd(x, h),
    "cupy function given a host array": lambda x, h: cp.where(h > 0, x, x),
    "cupy concatenate, mixed": lambda x, h: cp.concatenate([x, h]),
    "cupy ufunc given a host array": lambda x, h: cp.maximum(x, h),
    "write a host array in": lambda x, h: x.__setitem__(slice(None), h),
    "NumPy dtype cast of a device array": lambda x, h: np.float32(x),
}


@pytest.mark.parametrize("case", list(IMPLICIT))
def test_implicit_conversion_to_numpy_raises_type_error(case):
    x, h = dev([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])
    with pytest.raises(TypeError):
        IMPLICIT[case](x, h)
    np.testing.assert_array_equal(cp.asnumpy(x), [1.0, 2.0, 3.0])


def test_explicit_transfers_work_and_copy():
    h = np.array([1.0, 2.0])
    x = cp.asarray(h)
    h[0] = 99.0                                     # the device copy does not follow
    assert type(x) is cp.ndarray and not isinstance(x, np.ndarray)
    with standin_cuda():
        through_the_backend = backend.to_numpy(x)
    for back in (x.get(), cp.asnumpy(x), through_the_backend):
        assert type(back) is np.ndarray
        np.testing.assert_array_equal(back, [1.0, 2.0])
    back = x.get()
    back[1] = -1.0                                  # nor does the device follow the host copy
    assert float(x[1]) == 2.0
    assert cp.asarray(x) is x and cp.asnumpy(h) is h


def test_numpy_and_python_scalars_mix_freely_and_results_stay_on_the_device():
    x = dev([1.0, 2.0])
    for y in (np.float64(2.0) * x, x * np.float32(2.0), 2 * x, x ** 2, -x, abs(x), x >= 1.5,
              cp.exp(x), x.sum(), x.max(axis=0), x[0], cp.where(x > 1, x, 0.0)):
        assert type(y) is cp.ndarray
    assert x.sum().shape == () and x[0].shape == ()          # 0-d arrays, not host scalars
    assert type(cp.array_equal(x, x)) is cp.ndarray


def test_indexing_takes_host_index_arrays_and_add_at_adds_repeats():
    x = dev(np.arange(6.0))
    np.testing.assert_array_equal(cp.asnumpy(x[np.array([5, 0])]), [5.0, 0.0])
    t = cp.zeros(3)
    cp.add.at(t, np.array([0, 0, 2]), dev([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(t.get(), [3.0, 0.0, 3.0])
    with pytest.raises(TypeError):
        cp.add.at(np.zeros(3), [0], dev([1.0]))


# ---- only CuPy's names ---------------------------------------------------------------------

def test_the_module_offers_only_cupy_names():
    every = {n for names in cupy_names.MODULE.values() for n in names}
    offered = {n for n in vars(cp) if not n.startswith("_")}
    assert offered <= every, sorted(offered - every)
    assert {"zeros", "asarray", "asnumpy", "add", "pad", "take_along_axis", "float32"} <= offered


@pytest.mark.parametrize("name", ["errstate", "insert", "ndenumerate", "datetime64", "matrix"])
def test_numpy_names_that_cupy_lacks_are_missing(name):
    assert hasattr(np, name)
    assert all(name not in names for names in cupy_names.MODULE.values())
    with pytest.raises(AttributeError, match=name):
        getattr(cp, name)


@pytest.mark.parametrize("name", ["resize", "ctypes", "setflags", "to_device"])
def test_numpy_array_attributes_that_cupy_lacks_are_missing(name):
    x = dev([1.0])
    assert hasattr(x.get(), name)
    with pytest.raises(AttributeError, match=name):
        getattr(x, name)


def test_cupy_names_the_stand_in_does_not_model_say_so():
    with pytest.raises(NotImplementedError, match="cupy.random .*stand-in"):
        cp.random.default_rng(0)
    with pytest.raises(NotImplementedError, match="cupy.ndarray.flat"):
        dev([1.0]).flat
    with pytest.raises(NotImplementedError, match="cupy.exp.at"):
        cp.exp.at(dev([1.0]), [0])


def test_committed_cupy_names_match_the_installed_cupy():
    """cupy_names.py is make_cupy_names.py's output for the CuPy it names. For that CuPy
    version it must be exactly current; for another version every committed name must
    still exist (the stand-in never offers what the installed CuPy lacks)."""
    if importlib.util.find_spec("cupy") is None:
        pytest.skip("CuPy is not installed here: nothing to check the committed names against")
    installed = make_cupy_names.names()
    committed = {k: getattr(cupy_names, k) for k in installed}
    stale = "reference_tests/cupy_names.py is stale: run python reference_tests/make_cupy_names.py"
    if installed["CUPY_VERSION"] == committed["CUPY_VERSION"]:
        assert make_cupy_names.render(installed) == make_cupy_names.render(committed), stale
    else:
        for key in ("NDARRAY", "UFUNC", "CUDA"):
            assert set(committed[key]) <= set(installed[key]), (key, stale)
        have = {n for names in installed["MODULE"].values() for n in names}
        for names in committed["MODULE"].values():
            assert set(names) <= have, stale


# ---- counting synchronisations -------------------------------------------------------------

SYNCS = {
    "float": lambda x: float(x[0]), "int": lambda x: int(x[0]), "bool": lambda x: bool(x[0]),
    "item": lambda x: x[0].item(), "get": lambda x: x.get(), "asnumpy": lambda x: cp.asnumpy(x),
    "tolist": lambda x: x.tolist(), "format": lambda x: f"{x[0]:.2f}",
    "boolean mask index": lambda x: x[x > 1], "nonzero": lambda x: cp.nonzero(x),
    "synchronize": lambda x: cp.cuda.Device().synchronize(),
}


@pytest.mark.parametrize("kind", list(SYNCS))
def test_each_host_read_counts_one_sync(kind):
    x = dev([1.0, 2.0, 3.0])
    with cupy_standin.count_syncs() as outer:
        with cupy_standin.count_syncs() as inner:
            SYNCS[kind](x)
    assert inner.kinds == {kind: 1} and outer.total == 1


def test_device_work_and_uploads_are_not_syncs():
    with cupy_standin.count_syncs() as c:
        x = cp.asarray(np.ones((3, 3)))
        y = (cp.tanh(x) @ x.T).sum(axis=0) * 2 + 1
        y[np.array([0, 2])] = 0.0
        len(y), y.shape, y.dtype
    assert c.total == 0 and c.uploads == 2


# ---- the seam ------------------------------------------------------------------------------

def test_use_cuda_module_installs_and_restores(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)           # no CuPy at all
    assert backend.cuda_unavailable_reason() is not None
    with standin_cuda():
        assert backend.cuda_unavailable_reason() is None and backend.cuda_module() is cp
        t = Tensor(np.ones(2), requires_grad=True).to("cuda")
        assert t.device == "cuda" and t.xp is cp and type(t.data) is cp.ndarray
        (ops.exp(t) * 2).sum().backward()
        assert backend.device_of(t.grad) == "cuda"
        np.testing.assert_allclose(backend.to_numpy(t.grad), 2 * np.e)
        assert backend.device_of(np.ones(1)) == "cpu"
    assert backend.cuda_unavailable_reason() is not None
    with pytest.raises(backend.DeviceError, match="not installed"):
        Tensor(np.ones(2)).to("cuda")


def test_a_numpy_call_on_device_data_is_caught():
    """What the stand-in is for: a NumPy call slipped into an op fails on every machine."""
    with standin_cuda():
        t = Tensor(np.ones(3)).to("cuda")
        with pytest.raises(TypeError):
            np.tanh(t.data)
        with pytest.raises(TypeError):
            t.data * np.ones(3)
        assert isinstance(ops.tanh(t).data, cp.ndarray)


def test_the_module_is_named_like_cupy():
    assert isinstance(cp, types.ModuleType) and cp.__name__ == "cupy"
    assert type(dev([1.0])).__module__ == "cupy" and cp.__version__.endswith("+standin")
