"""Every op: its gradient against central finite differences, its forward against NumPy.

Gradients are checked in float64 with ``minipixel.gradcheck`` (every element of
every input). Hypothesis draws the shapes, axes, broadcasts, indices and a seed
for the values; values are drawn away from each op's kinks and domain edges:
never zero (relu / leaky_relu switch at 0, div needs a non-zero divisor), a
positive base for log and pow, and distinct values (no ties) for max. Every
test runs through the ``device`` fixture: on NumPy, and on CuPy when a GPU is
usable (skipped with the reason otherwise).
"""
import numpy as np
import pytest
import scipy.special
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minipixel import Tensor, gradcheck, ops
from minipixel.backend import to_device, to_numpy

seeds = st.integers(0, 2**32 - 1)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)
shapes0 = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)


def values(seed, shape, kind="signed", scale=1.0):
    """NumPy float64 values of `shape`, never 0.

    signed    |x| in [0.2, 1.2] * scale with a random sign (away from 0)
    positive  x in [0.5, 2.0] (a safe domain for log and pow's base)
    distinct  all values different, neighbours at least 0.05 apart (no ties)
    """
    rng = np.random.default_rng(seed)
    if kind == "signed":
        x = rng.uniform(0.2, 1.2, size=shape) * rng.choice([-1.0, 1.0], size=shape) * scale
    elif kind == "positive":
        x = rng.uniform(0.5, 2.0, size=shape)
    elif kind == "distinct":
        n = int(np.prod(shape, dtype=int))
        x = (rng.permutation(n) * 0.1 + rng.uniform(0.0, 0.05, size=n) - 0.05 * n + 0.013)
        x = x.reshape(shape)
    else:
        raise ValueError(kind)
    x = np.asarray(x, dtype=np.float64)
    assert np.all(x != 0)
    return x


def leaf(x, device, requires_grad=True):
    return Tensor(to_device(np.asarray(x), device), requires_grad=requires_grad)


def on(index, device):
    """An index with its NumPy arrays moved to `device` (CuPy indexes with CuPy arrays)."""
    if isinstance(index, tuple):
        return tuple(on(i, device) for i in index)
    return to_device(index, device) if isinstance(index, np.ndarray) else index


def grad(t):
    return to_numpy(t.grad)


def close(t, expected, rtol=1e-12, atol=1e-12):
    assert isinstance(t, Tensor)
    assert t.shape == np.shape(expected), (t.shape, np.shape(expected))
    np.testing.assert_allclose(t.numpy(), expected, rtol=rtol, atol=atol)


# ---- broadcasting arithmetic ------------------------------------------------------------

BINARY = {  # name: (op, numpy reference, value kind of a, value kind of b)
    "add": (ops.add, np.add, "signed", "signed"),
    "sub": (ops.sub, np.subtract, "signed", "signed"),
    "mul": (ops.mul, np.multiply, "signed", "signed"),
    "div": (ops.div, np.divide, "signed", "signed"),           # |b| >= 0.2
    "pow": (ops.pow, np.power, "positive", "signed"),          # tensor exponent, base > 0
}


@pytest.mark.parametrize("name", list(BINARY))
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       seed=seeds, which=st.sampled_from(["both", "a", "b"]))
def test_binary_broadcast(device, name, shapes, seed, which):
    op, ref, ka, kb = BINARY[name]
    sa, sb = shapes.input_shapes
    xa, xb = values(seed, sa, ka), values(seed + 1, sb, kb)
    a = leaf(xa, device, which in ("both", "a"))
    b = leaf(xb, device, which in ("both", "b"))
    out = op(a, b)
    close(out, ref(xa, xb))
    assert out.shape == shapes.result_shape
    assert gradcheck(op, a, b)


SCALAR_FORMS = {  # name: (engine expression, numpy expression, value kind)
    "t + 2.5": (lambda t: t + 2.5, lambda x: x + 2.5, "signed"),
    "2.5 + t": (lambda t: 2.5 + t, lambda x: 2.5 + x, "signed"),
    "t - 0.75": (lambda t: t - 0.75, lambda x: x - 0.75, "signed"),
    "0.75 - t": (lambda t: 0.75 - t, lambda x: 0.75 - x, "signed"),
    "t * -1.5": (lambda t: t * -1.5, lambda x: x * -1.5, "signed"),
    "-1.5 * t": (lambda t: -1.5 * t, lambda x: -1.5 * x, "signed"),
    "t / 1.7": (lambda t: t / 1.7, lambda x: x / 1.7, "signed"),
    "1.7 / t": (lambda t: 1.7 / t, lambda x: 1.7 / x, "signed"),
    "-t": (lambda t: -t, lambda x: -x, "signed"),
    "neg(t)": (ops.neg, np.negative, "signed"),
    "t ** 2": (lambda t: t ** 2, lambda x: x ** 2, "signed"),
    "t ** 3": (lambda t: t ** 3, lambda x: x ** 3, "signed"),
    "t ** 0.5": (lambda t: t ** 0.5, np.sqrt, "positive"),
    "t ** -1.5": (lambda t: t ** -1.5, lambda x: x ** -1.5, "positive"),
    "pow(t, 2.5)": (lambda t: ops.pow(t, 2.5), lambda x: x ** 2.5, "positive"),
}


@pytest.mark.parametrize("name", list(SCALAR_FORMS))
@given(shape=shapes0, seed=seeds)
def test_python_scalar_operand(device, name, shape, seed):
    fn, ref, kind = SCALAR_FORMS[name]
    x = values(seed, shape, kind)
    t = leaf(x, device)
    close(fn(t), ref(x))
    assert gradcheck(fn, t)


# ---- matrix product ----------------------------------------------------------------------

@st.composite
def matmul_shapes(draw):
    """(a shape, b shape): batched and broadcast (..., M, K) @ (..., K, P), or 1-D operands."""
    kind = draw(st.sampled_from(["1d@1d", "1d@nd", "nd@1d", "nd@nd"]))
    m, k, p = (draw(st.integers(1, 3)) for _ in range(3))
    batch_a, batch_b = draw(hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=2, max_side=2)).input_shapes
    a = (k,) if kind.startswith("1d") else batch_a + (m, k)
    b = (k,) if kind.endswith("1d") else batch_b + (k, p)
    return a, b


@given(ab=matmul_shapes(), seed=seeds)
def test_matmul(device, ab, seed):
    xa, xb = values(seed, ab[0]), values(seed + 1, ab[1])
    a, b = leaf(xa, device), leaf(xb, device)
    close(ops.matmul(a, b), np.matmul(xa, xb))
    close(a @ b, xa @ xb)
    assert gradcheck(ops.matmul, a, b)


# ---- reductions --------------------------------------------------------------------------

@st.composite
def shape_and_axes(draw):
    """A shape and an axis argument: None, an int (maybe negative) or a tuple of axes."""
    shape = draw(shapes)
    nd = len(shape)
    return shape, draw(st.one_of(st.none(), st.integers(-nd, nd - 1),
                                 hnp.valid_tuple_axes(nd, min_size=1)))


REDUCTIONS = {  # name: (op, numpy reference, value kind)
    "sum": (ops.sum, np.sum, "signed"),
    "mean": (ops.mean, np.mean, "signed"),
    "max": (ops.max, np.max, "distinct"),     # distinct values: the argmax is unique
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@given(sa=shape_and_axes(), keepdims=st.booleans(), seed=seeds)
def test_reduction(device, name, sa, keepdims, seed):
    op, ref, kind = REDUCTIONS[name]
    shape, axis = sa
    x = values(seed, shape, kind)
    t = leaf(x, device)
    close(op(t, axis, keepdims), ref(x, axis=axis, keepdims=keepdims))
    assert gradcheck(lambda u: op(u, axis, keepdims), t)


def test_tensor_reduction_methods(device):
    x = values(3, (2, 3, 2))
    t = leaf(x, device)
    close(t.sum(), x.sum())
    close(t.mean(axis=(0, 2)), x.mean(axis=(0, 2)))
    close(t.max(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True))


def test_max_shares_the_gradient_between_ties(device):
    """Documented choice: tied maxima split the gradient equally (not differentiable there)."""
    t = leaf(np.array([[1.0, 3.0, 3.0], [2.0, 0.5, -1.0]]), device)
    ops.max(t, axis=1).sum().backward()
    np.testing.assert_array_equal(grad(t), [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


@given(sa=shape_and_axes(), keepdims=st.booleans(), seed=seeds)
def test_logsumexp(device, sa, keepdims, seed):
    shape, axis = sa
    x = values(seed, shape, scale=3.0)
    t = leaf(x, device)
    close(ops.logsumexp(t, axis, keepdims),
          scipy.special.logsumexp(x, axis=axis, keepdims=keepdims), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda u: ops.logsumexp(u, axis, keepdims), t)


@given(shape=shapes, seed=seeds, data=st.data())
def test_log_softmax(device, shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = values(seed, shape, scale=3.0)
    t = leaf(x, device)
    close(ops.log_softmax(t, axis), scipy.special.log_softmax(x, axis=axis))
    assert gradcheck(lambda u: ops.log_softmax(u, axis), t)


def test_logsumexp_and_log_softmax_stay_finite_for_huge_inputs(device):
    x = np.array([[1000.0, 1000.0, 999.0], [-1000.0, 0.0, 1000.0], [-1000.0, -1000.5, -999.0]])
    t = leaf(x, device)
    lse = ops.logsumexp(t, axis=1)
    assert np.all(np.isfinite(lse.numpy()))
    close(lse, scipy.special.logsumexp(x, axis=1))
    np.testing.assert_allclose(lse.numpy()[0], 1000.0 + np.log(2.0 + np.exp(-1.0)), rtol=1e-15)
    lsm = ops.log_softmax(t, axis=1)
    assert np.all(np.isfinite(lsm.numpy()))
    close(lsm, scipy.special.log_softmax(x, axis=1))
    # backward: the gradient of sum(logsumexp) is the softmax, finite as well
    lse.sum().backward()
    np.testing.assert_allclose(grad(t), scipy.special.softmax(x, axis=1), rtol=1e-12, atol=1e-15)
    # and the hand-written backward is right out there too
    assert gradcheck(lambda u: ops.logsumexp(u, axis=1), leaf(x + 0.25, device))
    assert gradcheck(lambda u: ops.log_softmax(u, axis=0), leaf(x + 0.25, device))


# ---- shape ops ---------------------------------------------------------------------------

@given(shape=shapes, seed=seeds, data=st.data())
def test_reshape(device, shape, seed, data):
    size = int(np.prod(shape))
    target = data.draw(st.sampled_from([(size,), -1, (-1,), tuple(reversed(shape)),
                                        (1,) + shape, shape + (1,), (-1, shape[-1]),
                                        (shape[0], -1)]))
    x = values(seed, shape)
    t = leaf(x, device)
    close(ops.reshape(t, target), x.reshape(target))
    close(t.reshape(target), x.reshape(target))
    assert gradcheck(lambda u: ops.reshape(u, target), t)


@given(shape=shapes, seed=seeds, data=st.data())
def test_transpose(device, shape, seed, data):
    nd = len(shape)
    axes = data.draw(st.one_of(st.none(), st.permutations(range(nd)).map(tuple)))
    if axes is not None and data.draw(st.booleans()):
        axes = tuple(a - nd for a in axes)          # negative axes
    x = values(seed, shape)
    t = leaf(x, device)
    close(ops.transpose(t, axes), np.transpose(x, axes))
    assert gradcheck(lambda u: ops.transpose(u, axes), t)


def test_transpose_method_forms(device):
    x = values(5, (2, 3, 4))
    t = leaf(x, device)
    close(t.transpose(2, 0, 1), x.transpose(2, 0, 1))
    close(t.transpose((2, 0, 1)), x.transpose((2, 0, 1)))
    close(t.transpose(), x.transpose())
    close(t.T, x.T)
    close(leaf(x[0, 0], device).transpose(0), x[0, 0].transpose(0))   # 1-D, one axis


@given(shape=shapes, seed=seeds, data=st.data())
def test_getitem_basic(device, shape, seed, data):
    """Ints, slices (steps, negative steps), ellipsis."""
    index = data.draw(hnp.basic_indices(shape, min_dims=0, allow_ellipsis=True))
    x = values(seed, shape)
    assume(x[index].size > 0)
    t = leaf(x, device)
    close(t[index], x[index])
    assert gradcheck(lambda u: u[index], t)


@given(shape=shapes, seed=seeds, data=st.data())
def test_getitem_integer_arrays_with_repeats(device, shape, seed, data):
    nd = len(shape)
    axis = data.draw(st.integers(0, nd - 1))
    n = shape[axis]
    picks = data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6))
    # make a repeat likely: append a copy of the first pick half the time
    if data.draw(st.booleans()):
        picks = picks + [picks[0]]
    as_array = data.draw(st.booleans())
    arr = np.array(picks) if as_array else picks
    index = (slice(None),) * axis + (arr,)
    if nd > axis + 1 and data.draw(st.booleans()):    # mix in an int on a later axis
        index = index + (data.draw(st.integers(0, shape[axis + 1] - 1)),)
    x = values(seed, shape)
    t = leaf(x, device)
    idx = on(index, device)
    close(t[idx], x[index])
    assert gradcheck(lambda u: u[idx], t)


def test_getitem_repeated_indices_add_their_gradients(device):
    t = leaf(values(1, (3, 2)), device)
    t[on(np.array([0, 0, 2, 0]), device)].sum().backward()
    np.testing.assert_array_equal(grad(t), [[3.0, 3.0], [0.0, 0.0], [1.0, 1.0]])
    u = leaf(values(2, (3, 3)), device)       # paired arrays: elements (0,1) twice, (2,2) once
    u[on((np.array([0, 2, 0]), np.array([1, 2, 1])), device)].sum().backward()
    expected = np.zeros((3, 3))
    expected[0, 1], expected[2, 2] = 2.0, 1.0
    np.testing.assert_array_equal(grad(u), expected)


def test_getitem_two_index_arrays_and_boolean_mask(device):
    x = values(4, (3, 4))
    t = leaf(x, device)
    rows, cols = np.array([0, 2, 2, 0]), np.array([1, 3, 3, 1])
    rc = on((rows, cols), device)
    close(t[rc], x[rows, cols])
    assert gradcheck(lambda u: u[rc], t)
    mask = x > 0
    assert 0 < mask.sum() < mask.size
    m = on(mask, device)
    close(t[m], x[mask])
    assert gradcheck(lambda u: u[m], t)


@given(shape=shapes, seed=seeds, data=st.data())
def test_pad(device, shape, seed, data):
    widths = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape)
    x = values(seed, shape)
    t = leaf(x, device)
    close(ops.pad(t, widths), np.pad(x, widths))
    assert gradcheck(lambda u: ops.pad(u, widths), t)


def test_pad_needs_one_width_pair_per_axis(device):
    with pytest.raises(ValueError, match="one"):
        ops.pad(leaf(values(0, (2, 2)), device), ((1, 1),))


@given(shape=shapes, seed=seeds, data=st.data())
def test_concat(device, shape, seed, data):
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    pieces = []
    for k, n in enumerate(sizes):
        s = list(shape)
        s[axis] = n
        pieces.append(values(seed + k, tuple(s)))
    ts = [leaf(p, device) for p in pieces]
    close(ops.concat(ts, axis), np.concatenate(pieces, axis))
    assert gradcheck(lambda *us: ops.concat(us, axis), *ts)


@given(shape=shapes0, seed=seeds, data=st.data())
def test_stack(device, shape, seed, data):
    nd = len(shape)
    axis = data.draw(st.integers(-(nd + 1), nd))
    n = data.draw(st.integers(1, 3))
    pieces = [values(seed + k, shape) for k in range(n)]
    ts = [leaf(p, device) for p in pieces]
    close(ops.stack(ts, axis), np.stack(pieces, axis))
    assert gradcheck(lambda *us: ops.stack(us, axis), *ts)


@given(shape=shapes, seed=seeds, data=st.data())
def test_flip(device, shape, seed, data):
    nd = len(shape)
    axis = data.draw(st.one_of(st.integers(-nd, nd - 1), hnp.valid_tuple_axes(nd, min_size=1)))
    x = values(seed, shape)
    t = leaf(x, device)
    close(ops.flip(t, axis), np.flip(x, axis))
    assert gradcheck(lambda u: ops.flip(u, axis), t)


# ---- elementwise -------------------------------------------------------------------------

UNARY = {  # name: (op, numpy reference, value kind, scale)
    "exp": (ops.exp, np.exp, "signed", 2.0),
    "log": (ops.log, np.log, "positive", 1.0),
    "sigmoid": (ops.sigmoid, scipy.special.expit, "signed", 4.0),
    "tanh": (ops.tanh, np.tanh, "signed", 2.0),
    "relu": (ops.relu, lambda x: np.maximum(x, 0.0), "signed", 1.0),     # |x| >= 0.2
    "leaky_relu": (ops.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), "signed", 1.0),
    "leaky_relu(0.2)": (lambda t: ops.leaky_relu(t, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                        "signed", 1.0),
}


@pytest.mark.parametrize("name", list(UNARY))
@given(shape=shapes0, seed=seeds)
def test_unary(device, name, shape, seed):
    op, ref, kind, scale = UNARY[name]
    x = values(seed, shape, kind, scale=scale) if kind == "signed" else values(seed, shape, kind)
    t = leaf(x, device)
    close(op(t), ref(x), rtol=1e-13, atol=1e-15)
    assert gradcheck(op, t)


def test_tensor_elementwise_methods(device):
    x = values(9, (2, 3), "positive")
    t = leaf(x, device)
    close(t.exp(), np.exp(x))
    close(t.log(), np.log(x))
    close(t.tanh(), np.tanh(x))
    close(t.sigmoid(), scipy.special.expit(x))
    close((-t).relu(), np.zeros_like(x))


def test_sigmoid_does_not_overflow(device):
    x = np.array([-800.0, -30.0, 0.5, 30.0, 800.0])
    with np.errstate(over="raise"):
        out = ops.sigmoid(leaf(x, device)).numpy()
    np.testing.assert_allclose(out, scipy.special.expit(x), rtol=1e-15, atol=0)


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3),
       seed=seeds, form=st.sampled_from(["tensor, tensor", "tensor, scalar", "scalar, tensor"]))
def test_where(device, shapes, seed, form):
    sc, sa, sb = shapes.input_shapes
    cond = np.random.default_rng(seed).random(sc) < 0.5
    xa, xb = values(seed + 1, sa), values(seed + 2, sb)
    if form == "tensor, tensor":
        args, ref = (leaf(xa, device), leaf(xb, device)), np.where(cond, xa, xb)

        def fn(a, b):
            return ops.where(to_device(cond, device), a, b)
    elif form == "tensor, scalar":
        args, ref = (leaf(xa, device),), np.where(cond, xa, -0.5)

        def fn(a):
            return ops.where(to_device(cond, device), a, -0.5)
    else:
        args, ref = (leaf(xb, device),), np.where(cond, 0.25, xb)

        def fn(b):
            return ops.where(to_device(cond, device), 0.25, b)
    close(fn(*args), ref)
    assert gradcheck(fn, *args)


# ---- a composite expression: reused inputs, broadcasts, several op kinds -----------------

@given(seed=seeds, n=st.integers(1, 3), h=st.integers(1, 3))
def test_lstm_like_cell(device, seed, n, h):
    x, W, U, b, c = (leaf(values(seed + k, s), device) for k, s in
                     enumerate([(n, 2), (2, 4 * h), (h, 4 * h), (4 * h,), (n, h)]))

    def cell(x, W, U, b, c):
        hprev = ops.tanh(c)
        z = x @ W + hprev @ U + b
        i, f, o, g = (z[:, k * h:(k + 1) * h] for k in range(4))
        c2 = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        return ops.concat([ops.sigmoid(o) * ops.tanh(c2), c2 * c2], axis=1)
    assert gradcheck(cell, x, W, U, b, c)
