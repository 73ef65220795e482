"""Devices: MINIPIXEL_DEVICE, device names, CUDA availability errors, mixing devices, .to().

"CuPy not installed" and "CuPy installed but no GPU" are both simulated (a None
entry in sys.modules, a blocking import hook, a fake cupy module), so both
errors are covered on every machine; the real CuPy is checked as well where it
is importable.
"""
import builtins
import sys
import types

import numpy as np
import pytest

from minipixel import DeviceError, Tensor, backend, default_device, nn, ops
from minipixel.backend import check_device, cuda_unavailable_reason, to_device, to_numpy


@pytest.fixture(autouse=True)
def _cpu_default_device(monkeypatch):
    """Parameters made without a device go to MINIPIXEL_DEVICE; these tests pick devices
    explicitly, so run them with the default (cpu) whatever the environment says."""
    monkeypatch.delenv("MINIPIXEL_DEVICE", raising=False)


# ---- MINIPIXEL_DEVICE ----------------------------------------------------------------------

def test_default_device_is_cpu_when_unset(monkeypatch):
    monkeypatch.delenv("MINIPIXEL_DEVICE", raising=False)
    assert default_device() == "cpu"
    monkeypatch.setenv("MINIPIXEL_DEVICE", "")
    assert default_device() == "cpu"


@pytest.mark.parametrize("value,expected", [("cpu", "cpu"), (" CPU ", "cpu"), ("cuda", "cuda"),
                                            ("Cuda\n", "cuda")])
def test_default_device_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("MINIPIXEL_DEVICE", value)
    assert default_device() == expected


def test_new_tensors_and_parameters_follow_the_default_device(monkeypatch):
    monkeypatch.setenv("MINIPIXEL_DEVICE", "cpu")
    assert Tensor([1.0, 2.0]).device == "cpu"
    assert nn.Parameter(np.ones(2)).device == "cpu"


def test_default_cuda_without_a_gpu_fails_when_a_tensor_is_made(monkeypatch):
    monkeypatch.setenv("MINIPIXEL_DEVICE", "cuda")
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert default_device() == "cuda"              # the name is valid...
    with pytest.raises(DeviceError, match="not installed"):
        Tensor([1.0, 2.0])                         # ...but nothing can be put there
    with pytest.raises(DeviceError, match="not installed"):
        nn.Parameter(np.ones(2))


@pytest.mark.parametrize("value", ["gpu", "cuda:0", "tpu", "0"])
def test_invalid_environment_value_names_it(monkeypatch, value):
    monkeypatch.setenv("MINIPIXEL_DEVICE", value)
    with pytest.raises(DeviceError, match="MINIPIXEL_DEVICE") as info:
        default_device()
    assert repr(value) in str(info.value)
    with pytest.raises(DeviceError):
        Tensor([1.0])


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:0", "mps"])
def test_invalid_device_names_raise_and_name_the_device(name):
    calls = {"check_device": lambda: check_device(name),
             "to_device": lambda: to_device(np.ones(2), name),
             "Tensor(device=)": lambda: Tensor([1.0], device=name),
             "Tensor.to": lambda: Tensor(np.ones(2)).to(name),
             "Parameter(device=)": lambda: nn.Parameter(np.ones(2), device=name),
             "Module.to": lambda: _TwoLayer().to(name)}
    for where, call in calls.items():
        with pytest.raises(DeviceError) as info:
            call()
        assert repr(name) in str(info.value) and "'cpu', 'cuda'" in str(info.value), where


@pytest.mark.parametrize("name", ["", None])
def test_empty_device_names_are_rejected_by_check_device(name):
    with pytest.raises(DeviceError, match=repr(name)):
        check_device(name)
    with pytest.raises(DeviceError, match=repr(name)):
        Tensor(np.ones(2)).to(name)


# ---- CUDA unavailable ----------------------------------------------------------------------

def _no_cupy_via_sys_modules(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)       # `import cupy` -> ImportError


def _no_cupy_via_import_hook(monkeypatch):
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    real_import = builtins.__import__

    def blocking_import(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", blocking_import)


@pytest.mark.parametrize("hide", [_no_cupy_via_sys_modules, _no_cupy_via_import_hook])
def test_cuda_without_cupy_says_not_installed(monkeypatch, hide):
    hide(monkeypatch)
    reason = cuda_unavailable_reason()
    assert "not installed" in reason and "minipixel[cuda12]" in reason
    for call in (lambda: check_device("cuda"),
                 lambda: Tensor(np.ones(2)).to("cuda"),
                 lambda: Tensor([1.0], device="cuda"),
                 lambda: to_device(np.ones(2), "cuda")):
        with pytest.raises(DeviceError, match="not installed"):
            call()
    model = _TwoLayer()
    before = model.state_dict()
    with pytest.raises(DeviceError, match="not installed"):
        model.to("cuda")
    assert model.device == "cpu"
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # the CPU keeps working
    assert check_device("cpu") == "cpu"


def _fake_cupy(is_available):
    fake = types.ModuleType("cupy")
    fake.__version__ = "99.0-fake"
    fake.is_available = is_available
    return fake


def test_cupy_installed_but_no_gpu_mentions_is_available(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: False))
    reason = cuda_unavailable_reason()
    assert "is_available" in reason and "99.0-fake" in reason and "not installed" not in reason
    with pytest.raises(DeviceError, match=r"is_available\(\) is False"):
        check_device("cuda")
    with pytest.raises(DeviceError, match="is_available"):
        Tensor(np.ones(2)).to("cuda")


def test_cupy_whose_is_available_raises_reports_the_error(monkeypatch):
    def broken():
        raise RuntimeError("cudaErrorInsufficientDriver: driver too old")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(broken))
    with pytest.raises(DeviceError, match="is_available.*RuntimeError: cudaErrorInsufficientDriver"):
        check_device("cuda")


def test_cupy_that_finds_a_gpu_is_accepted(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: True))
    assert cuda_unavailable_reason() is None
    assert check_device("cuda") == "cuda"


def test_real_cupy_without_a_gpu():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed here")
    try:
        available = cupy.is_available()
    except Exception:  # noqa: BLE001  (a broken driver counts as no GPU)
        available = False
    if available:
        pytest.skip("a CUDA GPU is usable here; the no-GPU error cannot occur")
    with pytest.raises(DeviceError, match="is_available"):
        check_device("cuda")
    with pytest.raises(DeviceError, match="is_available"):
        Tensor(np.ones(2)).to("cuda")


# ---- mixing devices ------------------------------------------------------------------------

class FakeCudaArray:
    """Stands in for a cupy.ndarray: the backend tells devices apart by the array type's
    module ("cupy..."), so this is seen as living on 'cuda' without any GPU or CuPy."""
    __module__ = "cupy._core.core"

    def __init__(self, a):
        self._a = np.asarray(a)
        self.shape, self.dtype, self.ndim, self.size = self._a.shape, self._a.dtype, self._a.ndim, self._a.size


def test_fake_array_is_seen_on_cuda():
    assert backend.device_of(FakeCudaArray(np.ones(2))) == "cuda"
    assert Tensor(FakeCudaArray(np.ones(2))).device == "cuda"
    assert backend.device_of(np.ones(2)) == "cpu"


MIXED = {
    "add": lambda c, g: c + g,
    "sub": lambda c, g: g - c,
    "mul": lambda c, g: c * g,
    "div": lambda c, g: ops.div(g, c),
    "pow": lambda c, g: ops.pow(c, g),
    "matmul": lambda c, g: ops.matmul(c, g),
    "where": lambda c, g: ops.where(np.ones((2, 2), bool), c, g),
    "concat": lambda c, g: ops.concat([c, g]),
    "stack": lambda c, g: ops.stack([g, c]),
}


@pytest.mark.parametrize("name", list(MIXED))
def test_mixing_devices_in_an_op_raises(name):
    cpu = Tensor(np.ones((2, 2)), requires_grad=True)
    gpu = Tensor(FakeCudaArray(np.ones((2, 2))))
    with pytest.raises(DeviceError, match=r"different devices \['cpu', 'cuda'\].*\.to\(device\)"):
        MIXED[name](cpu, gpu)


def test_mixing_devices_in_conv2d_raises():
    x = Tensor(np.ones((1, 1, 4, 4)))
    w = Tensor(FakeCudaArray(np.ones((1, 1, 3, 3))))
    with pytest.raises(DeviceError, match="conv2d: inputs are on different devices"):
        ops.conv2d(x, w)
    with pytest.raises(DeviceError, match="conv2d"):
        ops.conv2d(x, Tensor(np.ones((1, 1, 3, 3))), Tensor(FakeCudaArray(np.ones(1))))


# ---- moving tensors and modules ------------------------------------------------------------

def test_tensor_to_round_trip(device):
    data = np.random.default_rng(0).uniform(-1, 1, (3, 4))
    t = Tensor(data, requires_grad=True)
    assert t.to("cpu") is t                       # already there: no copy
    moved = t.to(device)
    assert moved.device == device and moved.requires_grad and moved.dtype == np.float64
    back = moved.to("cpu")
    assert back.device == "cpu" and isinstance(back.data, np.ndarray)
    np.testing.assert_array_equal(back.numpy(), data)
    f32 = Tensor(data.astype(np.float32)).to(device).to("cpu")
    assert f32.dtype == np.float32 and not f32.requires_grad
    # numpy() returns a copy, never a view of the tensor's data
    n = back.numpy()
    n[0, 0] = 99.0
    assert back.data[0, 0] == data[0, 0]


class _TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w1 = nn.Parameter(rng.normal(size=(3, 4)))
        self.inner = nn.Module()
        self.inner.w2 = nn.Parameter(rng.normal(size=(4,)))

    def forward(self, x):
        return ops.tanh(x @ self.w1) @ self.inner.w2


def test_module_to(device):
    model = _TwoLayer()
    x = Tensor(np.ones((2, 3)))
    expected = model(x).numpy()
    model(x).sum().backward()
    grads = {k: to_numpy(p.grad) for k, p in model.named_parameters()}
    assert model.to(device) is model
    assert model.device == device
    assert all(p.device == device for p in model.parameters())
    assert all(p.grad is not None and backend.device_of(p.grad) == device for p in model.parameters())
    np.testing.assert_allclose(model(x.to(device)).numpy(), expected, rtol=1e-15)
    model.to("cpu")
    assert all(isinstance(p.data, np.ndarray) for p in model.parameters())
    for k, p in model.named_parameters():
        np.testing.assert_array_equal(to_numpy(p.grad), grads[k])
    np.testing.assert_array_equal(model(x).numpy(), expected)


def test_get_array_module_and_scatter_add_on_numpy():
    assert backend.get_array_module(np.ones(2), np.ones(3)) is np
    target = np.zeros(4)
    backend.scatter_add(target, np.array([0, 2, 0, 0]), np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(target, [8.0, 0.0, 2.0, 0.0])


def test_keep_freed_host_memory_reuses_a_freed_arrays_pages():
    """After keep_freed_host_memory, a large array made after another was freed takes
    the freed memory: writing all of it costs (almost) no fresh pages. Without it,
    glibc maps fresh pages for it (some 500 page faults for these 16 MB on the machine
    this was written on: the kernel maps a few 4 KB pages per fault)."""
    import resource
    if not backend.keep_freed_host_memory():
        pytest.skip("not glibc: the C library's allocator is left as it is")
    assert backend.keep_freed_host_memory()                  # once per process; again: True
    np.ones(2 ** 22, dtype=np.float32)                       # 16 MB, made and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(2 ** 22, dtype=np.float32)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert a.sum() == 2 ** 22
    assert faults < 200
