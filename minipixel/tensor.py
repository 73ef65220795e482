"""Tensor: an array, its gradient, and the op that made it.

How the engine works, in five lines:
- An op computes its output array and calls ``record(out, parents, backward)``.
- ``backward(g)`` is a closure that maps the output's gradient ``g`` to one
  gradient per parent (or None). It holds only the arrays it needs.
- The graph is made of small ``Node`` objects (parents, closure), not of the
  tensors: an intermediate tensor's array is freed as soon as the program drops
  it, unless a closure saved it. Leaves are reached through a weak reference,
  so there are no reference cycles.
- ``Tensor.backward()`` orders the nodes with an iterative depth-first search
  (no recursion: an unrolled RNN is tens of thousands of nodes deep), walks
  them from the output back, and *adds* each gradient into what is already
  there, so a node used twice gets the sum of both paths.
- After backward the graph is released (closures dropped), unless
  ``retain_graph=True``. A second backward through a released graph raises.

``gradients(output, leaves)`` is the same walk returning the leaves' gradients
instead of adding them into ``.grad`` (threads sharing a model's parameters keep
theirs apart: minipixel/parallel.py). Recording on or off (``no_grad``) is a
setting of each thread.
"""
import contextlib
import threading
import weakref

import numpy as np

from . import backend

class _GradMode(threading.local):
    enabled = True              # per thread: a new thread starts with recording on


_grad_mode = _GradMode()


def no_grad():
    """Record no graph inside this block (evaluation, sampling, updates); this thread only."""
    return grad_mode(False)


def is_grad_enabled():
    return _grad_mode.enabled


@contextlib.contextmanager
def grad_mode(enabled):
    """Record a graph in this block or not, as `enabled` says (to carry a thread's mode into
    a worker thread); this thread only."""
    previous, _grad_mode.enabled = _grad_mode.enabled, bool(enabled)
    try:
        yield
    finally:
        _grad_mode.enabled = previous


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Node:
    """One recorded op (or a leaf that needs grad) in the graph."""
    __slots__ = ("parents", "backward", "op", "leaf", "released")

    def __init__(self, parents=(), backward=None, op=None, leaf=None):
        self.parents = parents          # a Node or None per input of the op
        self.backward = backward        # g -> one gradient (or None) per parent
        self.op = op
        self.leaf = leaf                # weakref to the leaf Tensor that keeps .grad
        self.released = False


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "_node", "__weakref__")
    __array_priority__ = 1000  # numpy_scalar * tensor -> Tensor.__rmul__

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.data
        if isinstance(data, np.generic):
            # A NumPy scalar, e.g. what a full reduction of a NumPy array returns: keep its
            # dtype (np.float32(2) is not Python data; float32.sum() must stay float32).
            data = np.asarray(data)
        if not (isinstance(data, np.ndarray) or backend.is_cupy_array(data)):
            # Python data: float64 unless told, on the default device.
            data = np.asarray(data, dtype=dtype or np.float64)
            device = device or backend.default_device()
        if dtype is not None and data.dtype != np.dtype(dtype):
            data = data.astype(dtype)
        if device is not None and backend.device_of(data) != device:
            data = backend.to_device(data, device)
        if requires_grad and data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"only float32/float64 tensors can require grad, got {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._node = None               # made by record(), or on first use as a leaf

    # ---- array facts -------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    device = property(lambda self: backend.device_of(self.data))
    xp = property(lambda self: backend.get_array_module(self.data))
    op = property(lambda self: self._node.op if self._node is not None else None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self.op}" if self.op else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}, device={self.device}{grad}{op})"

    def numpy(self):
        """A NumPy copy of the data (from the GPU if need be)."""
        return backend.to_numpy(self.data).copy()

    def item(self):
        return self.data.item()

    def detach(self):
        return Tensor(self.data)

    def to(self, device):
        """This tensor on `device` ('cpu' or 'cuda'); a leaf keeps requires_grad."""
        if backend.device_of(self.data) == backend.check_device(device):
            return self
        return Tensor(backend.to_device(self.data, device), requires_grad=self.requires_grad)

    # ---- backward ----------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` defaults to ones for a scalar output. Leaves accumulate across
        calls (zero them with ``Optimizer.zero_grad``). The graph is released
        afterwards unless ``retain_graph``; backward through it again raises.
        """
        def add_to_leaf(leaf, g):             # a fresh, writable array of its own
            leaf.grad = g.copy() if leaf.grad is None else leaf.grad + g
        _backprop(self, grad, retain_graph, add_to_leaf, "backward()")

    def node(self):
        """This tensor's graph node (a leaf node is made on first use); None if no grad."""
        if self._node is None and self.requires_grad:
            self._node = Node(leaf=weakref.ref(self))
        return self._node

    # The Python operators (a + b, a @ b, t.sum(), t.reshape(...), ...) are the ops of
    # minipixel/ops, attached to this class by minipixel/ops/operators.py: this module
    # imports no op, and the ops import it (one direction, no cycle).


def gradients(output, leaves, grad=None, retain_graph=False):
    """d(output)/d(leaf) for each of `leaves`, as arrays (None where output does not
    depend on a leaf), leaving every ``.grad`` as it is: backward() into a list of one's
    own, so that threads working on parts of one batch keep their gradients apart."""
    found = {id(leaf): None for leaf in leaves}

    def keep(leaf, g):
        if id(leaf) in found:
            found[id(leaf)] = g.copy() if found[id(leaf)] is None else found[id(leaf)] + g
    _backprop(output, grad, retain_graph, keep, "gradients()")
    return [found[id(leaf)] for leaf in leaves]


def _backprop(output, grad, retain_graph, to_leaf, what):
    """The walk behind backward() and gradients(): each leaf's gradient goes to to_leaf."""
    if not output.requires_grad:
        raise RuntimeError(f"{what} on a tensor that does not require grad "
                           "(no input had requires_grad=True, or it was made under no_grad)")
    if grad is None:
        if output.size != 1:
            raise RuntimeError(f"{what} without a gradient needs a scalar output, "
                               f"got shape {output.shape}")
        grad = output.xp.ones_like(output.data)
    grad = grad.data if isinstance(grad, Tensor) else grad
    if grad.shape != output.shape:
        raise ValueError(f"gradient shape {grad.shape} does not match output shape {output.shape}")

    root = output.node()
    grads = {id(root): grad}
    order = _toposort(root)
    if any(node.released for node in order):
        # Not only the root: a new graph built on a released intermediate (h = f(x);
        # loss1.backward(); loss2 = g(h); loss2.backward()) would otherwise stop at h
        # silently, as if h were a leaf, and x would miss loss2's gradient.
        raise RuntimeError("backward() through a graph that was already released; "
                           "pass retain_graph=True to the first backward() to run it twice, "
                           "or detach() the reused tensor")
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if node.leaf is not None:           # a leaf: keep the sum
            leaf = node.leaf()
            if g is not None and leaf is not None:
                to_leaf(leaf, g)
            continue
        if g is not None:
            for parent, pg in zip(node.parents, node.backward(g)):
                if pg is None or parent is None:
                    continue
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg
        if not retain_graph:
            node.parents, node.backward, node.released = (), None, True


def _toposort(root):
    """Nodes reachable from root, every parent before its children (iterative DFS)."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for parent in node.parents:
            if parent is not None and id(parent) not in seen:
                stack.append((parent, False))
    return order


def as_tensor(x, like=None):
    """A Tensor from x; Python numbers take the dtype and device of `like`."""
    if isinstance(x, Tensor):
        return x
    if like is not None and np.isscalar(x):
        return Tensor(like.xp.asarray(x, dtype=like.dtype))
    return Tensor(x)


def check_same(*tensors, op="op"):
    """Inputs of one op must share a device and a float dtype (no silent promotion)."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise backend.DeviceError(f"{op}: inputs are on different devices {sorted(devices)}; "
                                  f"move them with .to(device) first")
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1 and dtypes & set(FLOAT_DTYPES):
        raise TypeError(f"{op}: mixed dtypes {sorted(map(str, dtypes))}; "
                        f"minipixel never promotes silently: cast one side with astype")


def record(data, parents, backward, op):
    """The output tensor of an op; remembers `backward` if any parent needs grad."""
    out = Tensor(data)
    if _grad_mode.enabled and any(p.requires_grad for p in parents):
        out.requires_grad = True
        out._node = Node(tuple(p.node() for p in parents), backward, op)
    return out
