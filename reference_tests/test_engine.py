"""The autograd engine: accumulation, depth, graph release, no_grad, dtypes, memory."""
import gc
import sys
import time
import tracemalloc
import weakref

import numpy as np
import pytest

from minipixel import Tensor, no_grad, ops
from minipixel.backend import to_device, to_numpy
from minipixel.nn import Adam, Parameter
from minipixel.tensor import Node, is_grad_enabled


@pytest.fixture(autouse=True)
def _cpu_default_device(monkeypatch):
    """Parameters made without a device go to MINIPIXEL_DEVICE; these tests pick devices
    explicitly, so run them with the default (cpu) whatever the environment says."""
    monkeypatch.delenv("MINIPIXEL_DEVICE", raising=False)


def leaf(x, device, dtype=np.float64, requires_grad=True):
    return Tensor(to_device(np.asarray(x, dtype=dtype), device), requires_grad=requires_grad)


def grad(t):
    return to_numpy(t.grad)


# ---- reused nodes accumulate ---------------------------------------------------------------

def test_reused_nodes_accumulate(device):
    a = leaf([1.5, -2.0], device)
    (a + a).sum().backward()
    np.testing.assert_array_equal(grad(a), [2.0, 2.0])

    a = leaf([1.5, -2.0], device)
    (a * a).sum().backward()
    np.testing.assert_array_equal(grad(a), [3.0, -4.0])          # 2a

    # diamond: b = 2a feeds both c = 3b and d = b^2; e = c + d; de/da = 2 (3 + 2b)
    a = leaf([0.5, -1.0], device)
    b = a * 2.0
    e = (b * 3.0 + b * b).sum()
    e.backward()
    np.testing.assert_allclose(grad(a), 2 * (3 + 2 * (2 * np.array([0.5, -1.0]))), rtol=1e-15)


def test_leaves_accumulate_across_backward_calls(device):
    a = leaf([1.0, 2.0], device)
    (a * 3.0).sum().backward()
    (a * a).sum().backward()
    np.testing.assert_array_equal(grad(a), [3.0 + 2.0, 3.0 + 4.0])


def test_broadcast_gradients_are_summed_to_the_input_shape(device):
    a = leaf(np.full((3, 1), 0.5), device)
    b = leaf(np.full((4,), 2.0), device)
    c = leaf(1.25, device)                           # 0-d
    (a * b + c).sum().backward()
    assert grad(a).shape == (3, 1) and grad(b).shape == (4,) and grad(c).shape == ()
    np.testing.assert_array_equal(grad(a), np.full((3, 1), 4 * 2.0))
    np.testing.assert_array_equal(grad(b), np.full((4,), 3 * 0.5))
    np.testing.assert_array_equal(grad(c), 12.0)


# ---- depth ---------------------------------------------------------------------------------

def test_a_100000_op_chain_runs_backward_without_recursion(device):
    """backward orders the graph with an iterative DFS: depth is bounded by memory, not by
    the interpreter's recursion limit (1000 here), as an unrolled RNN needs."""
    assert sys.getrecursionlimit() < 100_000
    x = leaf([0.5, -1.5], device)
    start = time.perf_counter()
    y = x
    for _ in range(50_000):
        y = ops.tanh(y) + y                  # 2 recorded ops each: 100,000 deep
    y.sum().backward()
    elapsed = time.perf_counter() - start
    g = grad(x)
    assert np.all(np.isfinite(g)) and np.all(g > 1.0)   # d/dy (tanh y + y) is in (1, 2]
    assert elapsed < 60, f"100,000-op chain took {elapsed:.1f} s"


def test_dropping_a_deep_unreleased_graph_does_not_crash():
    x = leaf([1.0], "cpu")
    y = x
    for _ in range(100_000):
        y = -y
    del y                                    # 100,000 nested tensors freed without recursion
    gc.collect()


# ---- graph release and retain_graph --------------------------------------------------------

def test_second_backward_after_release_raises(device):
    """After backward() the graph is released (parents and closures dropped) unless
    retain_graph=True; a second backward() through it raises a RuntimeError that says so."""
    a = leaf([1.0, 2.0], device)
    z = (a * a).sum()
    z.backward()
    with pytest.raises(RuntimeError, match="already released.*retain_graph=True"):
        z.backward()
    np.testing.assert_array_equal(grad(a), [2.0, 4.0])            # unchanged by the failed call


def test_retain_graph_allows_a_second_backward_that_accumulates(device):
    """backward(retain_graph=True) keeps the graph: the next backward() runs it again and,
    since leaves accumulate, the gradient doubles. That second call (without retain_graph)
    releases the graph, so a third one raises."""
    a = leaf([1.0, 2.0], device)
    z = (a * a).sum()
    z.backward(retain_graph=True)
    np.testing.assert_array_equal(grad(a), [2.0, 4.0])
    z.backward()
    np.testing.assert_array_equal(grad(a), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="released"):
        z.backward()


def test_new_graph_on_a_released_intermediate_raises(device):
    """h = f(x) was freed by loss1.backward(); a loss2 built on h must not stop there silently
    (x would miss loss2's gradient). detach() is the explicit way to cut the graph."""
    x = leaf([1.0, 2.0], device)
    h = x * 3.0
    h.sum().backward()
    with pytest.raises(RuntimeError, match="released"):
        (h * h).sum().backward()
    np.testing.assert_array_equal(grad(x), [3.0, 3.0])
    d = h.detach()
    assert not d.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        (d * 2.0).sum().backward()


def test_backward_argument_errors(device):
    a = leaf(np.ones((2, 2)), device)
    with pytest.raises(RuntimeError, match="scalar output"):
        (a * 2.0).backward()
    with pytest.raises(ValueError, match=r"gradient shape \(3,\).*\(2, 2\)"):
        (a * 2.0).backward(to_device(np.ones(3), device))
    (a * 2.0).backward(to_device(np.full((2, 2), 0.5), device))     # explicit seed gradient
    np.testing.assert_array_equal(grad(a), np.ones((2, 2)))
    with pytest.raises(TypeError, match="float32/float64"):
        Tensor(np.arange(3), requires_grad=True)


def test_graph_is_released_so_intermediates_are_freed_without_gc(device):
    """No reference cycles: with the cyclic collector off, everything dies as soon as its
    last reference goes. The graph holds nodes, not tensors: a dropped intermediate tensor
    dies at once, and only the arrays that a backward closure saved live on (y's array,
    saved by y * y), until backward releases the graph."""
    gc.collect()
    gc.disable()
    try:
        a, b = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
        y = ops.tanh(a * b)
        z = (y * y).sum()
        ref, saved = weakref.ref(y), weakref.ref(y.data)
        del y
        assert ref() is None                 # the tensor itself is not kept by the graph
        assert saved() is not None           # its array is: the backward of y * y needs it
        z.backward()
        assert saved() is None               # released: nothing else pointed to it

        # with retain_graph the saved array lives as long as the output...
        y = ops.tanh(a * b)
        z = (y * y).sum()
        saved = weakref.ref(y.data)
        del y
        z.backward(retain_graph=True)
        assert saved() is not None
        del z                                # ...and dies with it, again without gc
        assert saved() is None

        # an unused graph is freed by refcounting alone too (closures hold arrays, not outputs)
        out = ops.conv2d(leaf(np.ones((1, 1, 4, 4)), device), leaf(np.ones((2, 1, 3, 3)), device),
                         padding=1)
        ref = weakref.ref(out)
        del out
        assert ref() is None
    finally:
        gc.enable()


# ---- no_grad -------------------------------------------------------------------------------

def test_no_grad_records_nothing(device):
    a = leaf([1.0, 2.0], device)
    with no_grad():
        assert not is_grad_enabled()
        y = ops.tanh(a * 2.0) @ a
        assert not y.requires_grad and y.op is None and y._node is None
        with no_grad():
            pass
        assert not is_grad_enabled()          # nested blocks restore the outer state
    assert is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    assert a.grad is None
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert is_grad_enabled()                  # restored after an exception too
    z = a * 2.0
    assert z.requires_grad and z.op == "mul"


# ---- dtypes --------------------------------------------------------------------------------

MASK = np.ones((2, 2, 3, 3))
MASK[:, :, 2, :] = 0
MASK[:, :, 1, 2] = 0

FLOAT_OPS = {  # name: (function, input shapes); inputs are positive, so log/pow are defined
    "add": (ops.add, [(2, 3), (3,)]),
    "sub": (ops.sub, [(2, 3), (2, 1)]),
    "mul": (ops.mul, [(2, 3), (2, 3)]),
    "div": (ops.div, [(2, 3), (3,)]),
    "neg": (ops.neg, [(2, 3)]),
    "pow scalar": (lambda a: a ** 2.5, [(2, 3)]),
    "pow tensor": (ops.pow, [(2, 3), (2, 3)]),
    "matmul": (ops.matmul, [(2, 2, 3), (3, 4)]),
    "matmul 1-D": (ops.matmul, [(3,), (3,)]),
    "sum": (lambda a: ops.sum(a), [(2, 3)]),
    "sum axis": (lambda a: ops.sum(a, axis=1, keepdims=True), [(2, 3)]),
    "mean": (lambda a: ops.mean(a), [(2, 3)]),
    "mean axis": (lambda a: ops.mean(a, axis=0), [(2, 3)]),
    "max": (lambda a: ops.max(a), [(2, 3)]),
    "max axis": (lambda a: ops.max(a, axis=(0, 1), keepdims=True), [(2, 3)]),
    "reshape": (lambda a: ops.reshape(a, (3, 2)), [(2, 3)]),
    "transpose": (lambda a: ops.transpose(a), [(2, 3)]),
    "getitem int": (lambda a: a[1, 2], [(2, 3)]),
    "getitem slice": (lambda a: a[:, 1:], [(2, 3)]),
    "getitem array": (lambda a: a[to_device(np.array([1, 1, 0]), a.device)], [(2, 3)]),
    "pad": (lambda a: ops.pad(a, ((1, 0), (0, 2))), [(2, 3)]),
    "concat": (lambda a, b: ops.concat([a, b], axis=0), [(2, 3), (1, 3)]),
    "stack": (lambda a, b: ops.stack([a, b], axis=1), [(2, 3), (2, 3)]),
    "flip": (lambda a: ops.flip(a, 1), [(2, 3)]),
    "exp": (ops.exp, [(2, 3)]),
    "log": (ops.log, [(2, 3)]),
    "sigmoid": (ops.sigmoid, [(2, 3)]),
    "tanh": (ops.tanh, [(2, 3)]),
    "relu": (ops.relu, [(2, 3)]),
    "leaky_relu": (lambda a: ops.leaky_relu(-a, 0.2), [(2, 3)]),
    "logsumexp": (lambda a: ops.logsumexp(a, axis=None), [(2, 3)]),
    "logsumexp axis": (lambda a: ops.logsumexp(a, axis=0), [(2, 3)]),
    "log_softmax": (lambda a: ops.log_softmax(a, axis=1), [(2, 3)]),
    "where": (lambda a, b: ops.where(to_device(np.array([True, False, True]), a.device), a, b),
              [(2, 3), (2, 3)]),
    "where scalar": (lambda a: ops.where(to_device(np.array([True, False, True]), a.device), a, 0.0),
                     [(2, 3)]),
    "conv2d": (lambda x, w, b: ops.conv2d(x, w, b, padding=((1, 1), (2, 0)), mask=MASK),
               [(1, 2, 4, 4), (2, 2, 3, 3), (2,)]),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(FLOAT_OPS))
def test_dtype_in_is_dtype_out_and_grads(device, name, dtype):
    fn, in_shapes = FLOAT_OPS[name]
    rng = np.random.default_rng(0)
    args = [leaf(rng.uniform(0.5, 1.5, s), device, dtype) for s in in_shapes]
    out = fn(*args)
    assert out.dtype == dtype, f"{name}: {dtype.__name__} in, {out.dtype} out"
    loss = out.sum()
    assert loss.dtype == dtype
    loss.backward()
    for k, a in enumerate(args):
        assert a.grad is not None and a.grad.dtype == dtype, (name, k, a.grad.dtype)
        assert a.grad.shape == a.shape


MIXING = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: b - a,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: b / a,
    "pow": lambda a, b: ops.pow(a, b),
    "matmul": lambda a, b: a.reshape(2, 3) @ b.reshape(3, 2),
    "where": lambda a, b: ops.where(np.array([True] * 6).reshape(2, 3), a, b),
    "concat": lambda a, b: ops.concat([a, b]),
    "stack": lambda a, b: ops.stack([b, a]),
    "conv2d": lambda a, b: ops.conv2d(a.reshape(1, 1, 2, 3), b.reshape(3, 1, 1, 2)),
}


@pytest.mark.parametrize("name", list(MIXING))
def test_mixing_float32_and_float64_raises(name):
    a = leaf(np.full((2, 3), 1.5), "cpu", np.float32)
    b = leaf(np.full((2, 3), 0.5), "cpu", np.float64)
    with pytest.raises(TypeError, match="mixed dtypes.*float32.*float64"):
        MIXING[name](a, b)
    with pytest.raises(TypeError, match="mixed dtypes"):
        MIXING[name](a, np.full((2, 3), 0.5))     # a float64 NumPy array is no exception


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_python_and_numpy_scalars_take_the_tensor_dtype(device, dtype):
    t = leaf([1.0, 2.0], device, dtype)
    forms = [t + 1.5, 1.5 + t, t - 2, 2 - t, t * 3, 3 * t, t / 7.0, 7.0 / t, t ** 2, t ** 0.5,
             ops.where(to_device(np.array([True, False]), device), t, 0.0),
             np.float64(2.0) * t, t * np.float32(2.0), -t]
    for k, out in enumerate(forms):
        assert out.dtype == dtype, (k, out.dtype)
    sum(forms[1:], forms[0]).sum().backward()
    assert t.grad.dtype == dtype
    np.testing.assert_allclose((t * 0.1).numpy(), np.array([0.1, 0.2], dtype=dtype), rtol=0)


# ---- memory over training steps ------------------------------------------------------------

def _live_tensors():
    """Live graph objects: Tensors and the graph's Nodes."""
    # type(), not isinstance(): isinstance reads __class__, which on a lazily loaded module
    # (importlib.util.LazyLoader) imports it, megabytes that would count as growth
    return sum(1 for o in gc.get_objects() if issubclass(type(o), (Tensor, Node)))


def test_memory_does_not_grow_over_optimizer_steps():
    """50 Adam steps of conv -> relu -> conv -> mean: each step's graph is freed by the next,
    so traced memory and the number of live Tensors are flat between step 10 and step 50."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.uniform(-1, 1, (4, 2, 12, 12)).astype(np.float32))
    params = [Parameter(rng.normal(0, 0.3, s).astype(np.float32))
              for s in [(8, 2, 3, 3), (8,), (4, 8, 3, 3), (4,)]]
    w1, b1, w2, b2 = params
    opt = Adam(params, lr=1e-2)
    mask = np.ones((4, 8, 3, 3), np.float32)
    mask[:, :, 2, :] = 0

    def step():
        opt.zero_grad()
        h = ops.relu(ops.conv2d(x, w1, b1, padding=1))
        loss = (ops.conv2d(h, w2, b2, padding=1, mask=mask) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    step()
    gc.collect()
    _live_tensors()
    tracemalloc.start()
    try:
        losses = []
        for k in range(1, 51):
            losses.append(step())
            if k == 10:
                gc.collect()
                mem10, tensors10 = tracemalloc.get_traced_memory()[0], _live_tensors()
        gc.collect()
        mem50, tensors50 = tracemalloc.get_traced_memory()[0], _live_tensors()
    finally:
        tracemalloc.stop()
    assert losses[-1] < losses[0]                          # it did train
    assert tensors50 == tensors10, (tensors10, tensors50)
    assert mem50 - mem10 < 1_000_000, f"traced memory grew {mem50 - mem10} bytes in 40 steps"


def test_memory_check_can_fail():
    """The same measurement sees a leak of one graph per step (kept alive by a list)."""
    kept = []
    a = Parameter(np.ones((128, 128), np.float32))
    gc.collect()
    tracemalloc.start()
    try:
        for k in range(1, 51):
            y = ops.tanh(a @ a)
            kept.append(y)                    # the leak: each graph (and its arrays) stays alive
            if k == 10:
                mem10, tensors10 = tracemalloc.get_traced_memory()[0], _live_tensors()
        mem50, tensors50 = tracemalloc.get_traced_memory()[0], _live_tensors()
    finally:
        tracemalloc.stop()
    assert tensors50 - tensors10 >= 80
    assert mem50 - mem10 > 1_000_000


def test_leaf_grad_is_a_writable_array_of_its_own(device):
    """sum's backward broadcasts (a read-only view) and a seed gradient is the caller's
    array: the leaf's .grad must be neither, so updating it in place is safe."""
    a = leaf([[1.0, 2.0], [3.0, 4.0]], device)
    a.sum().backward()
    a.grad += 1.0                                  # would raise on a read-only view
    np.testing.assert_array_equal(grad(a), np.full((2, 2), 2.0))
    b = leaf([1.0, 2.0], device)
    seed = to_device(np.array([0.5, 0.25]), device)
    b.backward(seed)                               # the seed reaches the leaf unchanged
    b.grad *= 2
    np.testing.assert_array_equal(to_device(seed, "cpu"), [0.5, 0.25])


def test_integer_and_float_tensors_do_not_mix_silently(device):
    a = leaf([1.0, 2.0], device, np.float32)
    ints = Tensor(to_device(np.array([1, 2]), device))
    with pytest.raises(TypeError, match="mixed dtypes.*int64"):
        a + ints
