"""A strict CuPy stand-in: the CuPy code paths of minipixel run on any machine.

``cupy_standin.cupy`` is a module with CuPy's names whose arrays live on a
pretend device. Installed as the array module of device 'cuda' (through
``minipixel.backend.use_cuda_module``, done by conftest's ``device`` fixture
when no GPU is usable), it makes every cuda test variant run, and it fails
where real CuPy fails:

- its ``ndarray`` wraps a NumPy array in a type of its own. Implicit
  conversion to NumPy raises TypeError, as CuPy does: ``np.asarray(x)``
  (``__array__``), a NumPy ufunc given one (``__array_ufunc__ = None``), a
  NumPy function given one (``__array_function__``), arithmetic, comparison
  or ``where``/``concatenate``... mixing it with a NumPy array. Writing a
  NumPy array into one (``x[i] = host``) raises as well (CuPy refuses it for
  basic slices; the stand-in also for advanced ones: a transfer should be
  written as one). The explicit ways work: ``cupy.asnumpy(x)``, ``x.get()``
  down, ``cupy.asarray(host)`` up. NumPy *scalars* mix freely, as in CuPy.
  Stricter than CuPy on purpose: ``np.exp(x)`` or ``np.sum(x)`` raise here,
  while CuPy would dispatch them; code must ask ``get_array_module`` instead.
- the module exposes only the names the real CuPy module has (cupy_names.py,
  generated from an installed CuPy by make_cupy_names.py and checked against
  it by test_cupy_standin.py whenever CuPy is importable; regenerate it when
  that test says it is stale). Each name delegates to NumPy on the unwrapped
  data; a CuPy name the stand-in does not model raises NotImplementedError
  and names itself, any other name is an AttributeError. Like CuPy,
  reductions and full indexing return 0-d arrays, never host scalars, and
  ``array_equal``/``allclose`` return 0-d arrays. ndarray offers CuPy's
  public attributes only; ufunc methods are limited to what CuPy supports.
- it counts host synchronisations (``count_syncs()``): reading a value on
  the host (``float``, ``int``, ``bool``, ``complex``, ``.item()``,
  ``.tolist()``, ``.get()``, ``asnumpy``, ``repr``/``str``/``format``,
  ``tobytes``), operations whose output shape depends on the data (boolean
  mask indexing, ``nonzero``, ``flatnonzero``, ``argwhere``, ``unique``...),
  and explicit device synchronisation. Host-to-device copies (``asarray`` of
  host data) are counted apart, as uploads.

What it cannot catch is listed in the README's GPU section: kernels, memory,
speed, CuPy's own numerics.
"""
import collections
import contextlib
import types

import numpy as np

import cupy_names

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")
DATA_DEPENDENT = ("nonzero", "flatnonzero", "argwhere", "unique", "extract", "compress")
RETURNS_ARRAY_IN_CUPY = ("array_equal", "array_equiv", "allclose")
# ufunc methods CuPy implements, and for which ufuncs (None: all)
UFUNC_METHODS = {"at": {"add", "maximum", "minimum", "bitwise_and", "bitwise_or", "bitwise_xor"},
                 "reduce": {"add", "multiply"}, "accumulate": {"add"}, "reduceat": {"add"},
                 "outer": None}


# ---- counting ------------------------------------------------------------------------------

class SyncCounter:
    """Host synchronisations by kind (``kinds``), their ``total``, and ``uploads``."""

    def __init__(self):
        self.kinds = collections.Counter()
        self.uploads = 0

    @property
    def total(self):
        return sum(self.kinds.values())

    def __repr__(self):
        return f"SyncCounter(total={self.total}, kinds={dict(self.kinds)}, uploads={self.uploads})"


_counters = []


@contextlib.contextmanager
def count_syncs():
    """Count the stand-in's host synchronisations inside the block."""
    counter = SyncCounter()
    _counters.append(counter)
    try:
        yield counter
    finally:
        _counters.remove(counter)


def _sync(kind):
    for c in _counters:
        c.kinds[kind] += 1


def _upload():
    for c in _counters:
        c.uploads += 1


# ---- wrapping ------------------------------------------------------------------------------

def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")


def _unwrap(x, host_ok=False):
    """Stand-in arrays -> their NumPy data; a NumPy array is refused unless host_ok."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        if not host_ok:
            raise _unsupported(x)
        return x
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, host_ok) for v in x)
    return x


def _wrap(r):
    """NumPy results -> stand-in arrays (NumPy scalars become 0-d arrays, as in CuPy)."""
    if isinstance(r, np.ndarray):
        return ndarray._new(r)
    if isinstance(r, np.generic):
        return ndarray._new(np.asarray(r))
    if isinstance(r, (tuple, list)):
        return type(r)(_wrap(v) for v in r)
    return r


def _index(index):
    """An index for the data; NumPy index arrays are allowed (CuPy uploads them)."""
    parts = index if isinstance(index, tuple) else (index,)
    for p in parts:
        if isinstance(p, np.ndarray):
            _upload()
    parts = tuple(_unwrap(p, host_ok=True) for p in parts)
    if any(getattr(p, "dtype", None) == np.bool_ for p in parts):
        _sync("boolean mask index")          # CuPy reads the mask's count to size the output
    return parts if isinstance(index, tuple) else parts[0]


def _not_modelled(what):
    return NotImplementedError(f"{what} exists in CuPy but is not modelled by the test suite's "
                               f"CuPy stand-in (reference_tests/cupy_standin.py); add it there")


# ---- ndarray -------------------------------------------------------------------------------

def _operand(other):
    """The NumPy value of an operator's other side; NotImplemented for foreign types."""
    if isinstance(other, ndarray):
        return other._a
    if isinstance(other, np.ndarray):
        raise _unsupported(other)
    if isinstance(other, (bool, int, float, complex, np.generic)):
        return other
    return NotImplemented


class ndarray:
    """An array on the pretend device: NumPy data that never leaves implicitly."""
    __slots__ = ("_a", "__weakref__")      # CuPy arrays take weak references too
    __array_ufunc__ = None           # NumPy ufuncs refuse it; NumPy operators defer to ours
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise _not_modelled("ndarray(memptr=, strides=)")
        self._a = np.empty(shape, dtype, order=order)

    @classmethod
    def _new(cls, a):
        obj = object.__new__(cls)
        obj._a = a
        return obj

    # ---- implicit conversion: refused, as in CuPy ----
    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT)

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} was given a CuPy array: call the CuPy "
                        f"function (get_array_module) or copy to the host explicitly")

    # ---- facts ----
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    T = property(lambda self: ndarray._new(self._a.T))
    mT = property(lambda self: ndarray._new(self._a.mT))
    real = property(lambda self: ndarray._new(self._a.real))
    imag = property(lambda self: ndarray._new(self._a.imag))
    base = property(lambda self: None if self._a.base is None else ndarray._new(self._a.base))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (ndarray._new(self._a[i]) for i in range(len(self._a)))

    # ---- host reads: synchronisations ----
    def get(self, stream=None, order="C", out=None, blocking=True):
        _sync("get")
        a = np.array(self._a, order=order)
        if out is not None:
            out[...] = a
            return out
        return a

    def set(self, arr, stream=None):
        """Host -> device copy into this array (CuPy's ndarray.set)."""
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError("Shape or dtype mismatch")
        _upload()
        self._a[...] = arr

    # ---- indexing ----
    def __getitem__(self, index):
        return _wrap(self._a[_index(index)])

    def __setitem__(self, index, value):
        if isinstance(value, np.ndarray):
            raise TypeError(f"cannot write a numpy.ndarray into a CuPy array ({IMPLICIT}); "
                            f"copy it to the device with cupy.asarray first")
        self._a[_index(index)] = _unwrap(value)

    # ---- methods: CuPy's names, NumPy's work ----
    def fill(self, value):
        if isinstance(value, np.ndarray) and value.shape != ():
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a.fill(_unwrap(value, host_ok=True))

    def nonzero(self):
        _sync("nonzero")
        return _wrap(self._a.nonzero())

    def scatter_add(self, slices, value):
        np.add.at(self._a, _index(slices), _unwrap(value))

    def __copy__(self):
        return ndarray._new(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray._new(self._a.copy())

    def __getattr__(self, name):
        if name not in _NDARRAY_NAMES:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        method = getattr(self._a, name, None) if name in _NDARRAY_DELEGATED else None
        if method is None:
            raise _not_modelled(f"cupy.ndarray.{name}")

        def call(*args, **kwargs):
            kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
            return _wrap(method(*_unwrap(args), **kwargs))
        call.__name__ = name
        return call


_NDARRAY_NAMES = frozenset(cupy_names.NDARRAY)
_NDARRAY_DELEGATED = frozenset((
    "all", "any", "argmax", "argmin", "argpartition", "argsort", "astype", "clip", "conj",
    "conjugate", "copy", "cumprod", "cumsum", "diagonal", "dot", "flatten", "max", "mean",
    "min", "partition", "prod", "ravel", "repeat", "reshape", "round", "searchsorted", "sort",
    "squeeze", "std", "sum", "swapaxes", "take", "trace", "transpose", "var", "view", "put",
    "choose")) & _NDARRAY_NAMES


def _binary(op, reflected=False):
    def method(self, other):
        o = _operand(other)
        if o is NotImplemented:
            return NotImplemented
        return _wrap(op(o, self._a) if reflected else op(self._a, o))
    return method


def _inplace(op):
    def method(self, other):
        o = _operand(other)
        if o is NotImplemented:
            return NotImplemented
        op(self._a, o, out=self._a)
        return self
    return method


def _host_read(kind, read):
    def method(self, *args):
        _sync(kind)
        return read(self._a, *args)
    method.__name__ = kind
    return method


for _name, _read in (("item", np.ndarray.item), ("tolist", np.ndarray.tolist),
                     ("tobytes", np.ndarray.tobytes), ("__float__", float), ("__int__", int),
                     ("__bool__", bool), ("__complex__", complex), ("__repr__", repr),
                     ("__str__", str), ("__format__", format)):
    setattr(ndarray, _name, _host_read(_name.strip("_"), _read))

for _name, _op in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                   ("truediv", np.true_divide), ("floordiv", np.floor_divide),
                   ("mod", np.remainder), ("pow", np.power), ("matmul", np.matmul),
                   ("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor),
                   ("lshift", np.left_shift), ("rshift", np.right_shift), ("divmod", np.divmod)):
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
    if _name != "divmod":
        setattr(ndarray, f"__i{_name}__", _inplace(_op))
for _name, _op in (("lt", np.less), ("le", np.less_equal), ("eq", np.equal),
                   ("ne", np.not_equal), ("gt", np.greater), ("ge", np.greater_equal)):
    setattr(ndarray, f"__{_name}__", _binary(_op))
for _name, _op in (("neg", np.negative), ("pos", np.positive), ("abs", np.absolute),
                   ("invert", np.invert)):
    setattr(ndarray, f"__{_name}__", lambda self, _op=_op: ndarray._new(_op(self._a)))


# ---- ufuncs and functions ------------------------------------------------------------------

class ufunc:
    """A NumPy ufunc on stand-in arrays; NumPy arrays are refused, as CuPy refuses them."""

    def __init__(self, np_ufunc):
        self._u = np_ufunc
        self.name, self.nin, self.nout, self.nargs = (np_ufunc.__name__, np_ufunc.nin,
                                                      np_ufunc.nout, np_ufunc.nargs)
        self.types = np_ufunc.types

    def __repr__(self):
        return f"<ufunc '{self.name}' (CuPy stand-in)>"

    def _run(self, fn, args, kwargs):
        out = kwargs.get("out")
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        result = fn(*_unwrap(args), **kwargs)
        return out if isinstance(out, ndarray) else _wrap(result)

    def __call__(self, *args, **kwargs):
        return self._run(self._u, args, kwargs)

    def __getattr__(self, name):
        if name not in cupy_names.UFUNC:
            raise AttributeError(f"'cupy.ufunc' object has no attribute {name!r}")
        supported = UFUNC_METHODS.get(name, set())
        if supported is not None and self.name not in supported:
            raise _not_modelled(f"cupy.{self.name}.{name}")
        method = getattr(self._u, name)

        def call(*args, **kwargs):
            if name != "at":
                return self._run(method, args, kwargs)
            a, index, *b = args                   # index arrays may come from the host
            if not isinstance(a, ndarray):
                raise _unsupported(a)
            method(a._a, _index(index), *_unwrap(b))
        return call


def _function(name, fn, host_ok=False):
    def call(*args, **kwargs):
        if name in DATA_DEPENDENT:
            _sync(name)
        args = _unwrap(args, host_ok)
        kwargs = {k: _unwrap(v, host_ok) for k, v in kwargs.items()}
        result = fn(*args, **kwargs)
        if name in RETURNS_ARRAY_IN_CUPY:
            result = np.asarray(result)
        return _wrap(result)
    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"cupy.{name} on the stand-in: numpy.{name} on the unwrapped data."
    return call


def asarray(a, dtype=None, order=None, *, blocking=False):
    """A stand-in array: the same one if already there (and of that dtype), else a device copy."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    return array(a, dtype=dtype, order=order)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """A new stand-in array from host data (an upload) or from stand-in arrays."""
    if not isinstance(obj, ndarray):
        _upload()
    data = _unwrap(obj, host_ok=True)
    return ndarray._new(np.array(data, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """Device -> host copy (a synchronisation); NumPy input is returned as is."""
    if isinstance(a, ndarray):
        _sync("asnumpy")
        result = np.array(a._a, order=order)
    else:
        result = np.asarray(a, order=order)
    if out is not None:
        out[...] = result
        return out
    return result


def get_array_module(*args):
    return cupy if any(isinstance(a, ndarray) for a in args) else np


def is_available():
    return True


DEVICES = [1]        # how many GPUs the stand-in shows (a test may set DEVICES[0])


def _cuda_module():
    m = types.ModuleType("cupy.cuda", "CuPy's cuda module, as far as the stand-in models it.")

    current = [0]                             # the device use() made current

    class Device:
        def __init__(self, device=None):
            self.id = current[0] if device is None else int(device)
            if not 0 <= self.id < DEVICES[0]:
                raise ValueError(f"stand-in: no device {self.id} of {DEVICES[0]}")

        def use(self):
            current[0] = self.id

        def synchronize(self):
            _sync("synchronize")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Stream:
        null = None

        def synchronize(self):
            _sync("synchronize")

    Stream.null = Stream()
    m.Device, m.Stream = Device, Stream
    m.runtime = types.ModuleType("cupy.cuda.runtime", "the device count and the current device")
    m.runtime.getDeviceCount = lambda: DEVICES[0]
    m.runtime.getDevice = lambda: current[0]
    m.get_current_stream = lambda device_id=-1: Stream.null
    m.is_available = is_available

    def missing(name):
        if name in cupy_names.CUDA:
            raise _not_modelled(f"cupy.cuda.{name}")
        raise AttributeError(f"module 'cupy.cuda' has no attribute {name!r}")
    m.__getattr__ = missing
    return m


def make_module():
    """The stand-in `cupy` module: CuPy's names only, each delegated to NumPy."""
    m = types.ModuleType("cupy", __doc__)
    m.__version__ = f"{cupy_names.CUPY_VERSION}+standin"
    special = dict(ndarray=ndarray, ufunc=ufunc, asarray=asarray, asanyarray=asarray,
                   array=array, asnumpy=asnumpy, get_array_module=get_array_module,
                   is_available=is_available, cuda=_cuda_module())
    kinds = cupy_names.MODULE
    for kind, names in kinds.items():
        for name in names:
            if name in special:
                setattr(m, name, special[name])
            elif not hasattr(np, name) or kind == "module":
                continue                          # not modelled: __getattr__ says so
            elif kind == "ufunc" and isinstance(getattr(np, name), np.ufunc):
                setattr(m, name, ufunc(getattr(np, name)))
            elif kind in ("ufunc", "function"):
                setattr(m, name, _function(name, getattr(np, name)))
            else:                                 # dtypes, scalar types, constants: NumPy's
                setattr(m, name, getattr(np, name))
    every = {n for names in kinds.values() for n in names}

    def missing(name):
        if name in every:
            raise _not_modelled(f"cupy.{name}")
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")
    m.__getattr__ = missing
    return m


# Named as CuPy's types are, for code that recognises a CuPy array by its type's module.
ndarray.__module__ = ufunc.__module__ = "cupy"
cupy = make_module()
