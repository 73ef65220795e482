"""Module: a tree of named parameters and submodules.

Attributes that are Parameters or Modules are registered in the order they
are set, so ``named_parameters()`` and ``state_dict()`` list them with dotted
names ("layers.0.conv.weight") in a stable order.
"""
import numpy as np

from ..backend import check_device, default_device, to_device, to_numpy
from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that an optimizer updates (requires_grad=True)."""
    __slots__ = ()

    def __init__(self, data, device=None):
        super().__init__(data, requires_grad=True, device=device or default_device())


class Module:
    def __init__(self):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        # Re-assigning keeps the name's place (dict update), so parameters() order, which
        # optimizer state is indexed by, does not change when a parameter is replaced.
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            self._params[name] = value
        elif isinstance(value, Module):
            self._params.pop(name, None)
            self._modules[name] = value
        else:
            self._params.pop(name, None)
            self._modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    # ---- parameters ----------------------------------------------------------
    def named_parameters(self, prefix=""):
        for name, p in self._params.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def modules(self):
        yield self
        for m in self._modules.values():
            yield from m.modules()

    def named_modules(self, prefix=""):
        """(dotted name, module) of this module ("") and every submodule, in order."""
        yield prefix.rstrip("."), self
        for name, m in self._modules.items():
            yield from m.named_modules(prefix + name + ".")

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    # ---- state ---------------------------------------------------------------
    def state_dict(self):
        """{dotted name: NumPy copy of the parameter}, in registration order."""
        return {name: to_numpy(p.data).copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state):
        """Copy arrays into the parameters; names, shapes and dtypes must match."""
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing parameters {missing}, "
                           f"unexpected parameters {unexpected}")
        values = {}
        for name, p in own.items():   # check everything first: an error loads nothing
            value = np.asarray(to_numpy(state[name]))
            if value.shape != p.shape:
                raise ValueError(f"load_state_dict: parameter {name!r} has shape {p.shape}, "
                                 f"the state holds {value.shape}")
            if value.dtype != p.dtype:
                raise TypeError(f"load_state_dict: parameter {name!r} is {p.dtype}, "
                                f"the state holds {value.dtype}")
            values[name] = value
        for name, p in own.items():
            p.data = to_device(values[name].copy(), p.device)
            p.grad = None

    # ---- mode, device, dtype ------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def to(self, device):
        """Move every parameter (in place) and every module's arrays to `device`."""
        check_device(device)
        for p in self.parameters():
            p.data = to_device(p.data, device)
            p.grad = None if p.grad is None else to_device(p.grad, device)
        return self

    def astype(self, dtype):
        """Cast every parameter (in place) to float32 or float64."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        return self

    @property
    def device(self):
        params = self.parameters()
        return params[0].device if params else default_device()

    @property
    def dtype(self):
        params = self.parameters()
        return params[0].dtype if params else np.dtype(np.float64)


class ModuleList(Module):
    """A list of modules, registered as "0", "1", ..."""

    def __init__(self, modules=()):
        super().__init__()
        self._items = []
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self._items)), module)
        self._items.append(module)

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __getitem__(self, i):
        return self._items[i]
