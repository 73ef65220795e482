"""The gradient checker itself: it must catch small backward bugs and say where.

Ops with a deliberately wrong backward are built with ``minipixel.tensor.record``
(the same hook every real op uses): off by 0.1 % and by 0.05 %, everywhere or
at a single element. Both ``gradcheck`` (element by element) and
``gradcheck_directional`` (random directions) must reject them, and accept the
correct version of the same op.
"""
import re

import numpy as np
import pytest

from minipixel import GradcheckError, Tensor, gradcheck, gradcheck_directional, ops
from minipixel.backend import to_device
from minipixel.tensor import record


def cube(x, factor=1.0, at=None):
    """z = x^3 with backward 3 x^2 * factor (everywhere, or only at flat index `at`)."""
    xd = x.data
    scale = x.xp.ones_like(xd)
    if at is None:
        scale *= factor
    else:
        scale.reshape(-1)[at] = factor

    def backward(g):
        return (g * 3 * xd * xd * scale,)
    return record(xd ** 3, (x,), backward, "cube")


def scaled_product(a, b, factor_b=1.0):
    """z = a * b with the gradient of b off by factor_b."""
    ad, bd = a.data, b.data
    return record(ad * bd, (a, b), lambda g: (g * bd, g * ad * factor_b), "scaled_product")


def inputs(device, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [Tensor(to_device(rng.uniform(0.5, 1.5, size=s) * rng.choice([-1.0, 1.0], size=s), device),
                   requires_grad=True) for s in shapes]


@pytest.mark.parametrize("error", [1e-3, 5e-4, -5e-4])
def test_small_backward_errors_fail_both_checkers(device, error):
    (x,) = inputs(device, (3, 4))
    wrong = lambda t: cube(t, 1 + error)  # noqa: E731
    with pytest.raises(GradcheckError, match="gradcheck failed"):
        gradcheck(wrong, x)
    with pytest.raises(GradcheckError, match="gradcheck_directional failed"):
        gradcheck_directional(wrong, x)
    assert gradcheck(wrong, x, raise_exception=False) is False
    assert gradcheck_directional(wrong, x, raise_exception=False) is False
    # the correct backward passes both, on the same inputs
    assert gradcheck(cube, x) is True
    assert gradcheck_directional(cube, x) is True


def test_failure_message_names_input_index_analytic_and_numeric(device):
    """A 0.05 % error at one element of the second input is reported there, with both values."""
    a, b = inputs(device, (2, 3), (2, 3), seed=1)
    bd = b.numpy()
    ad = a.numpy()

    def wrong_at_one_element(a, b):
        ad_, bd_ = a.data, b.data
        bump = b.xp.ones_like(bd_)
        bump[1, 2] = 1 + 5e-4
        return record(ad_ * bd_, (a, b), lambda g: (g * bd_, g * ad_ * bump), "wrong")
    with pytest.raises(GradcheckError) as info:
        gradcheck(wrong_at_one_element, a, b)
    msg = str(info.value)
    assert "input 1" in msg and "index (1, 2)" in msg, msg
    found = re.search(r"analytic (\S+), numeric (\S+)", msg)
    assert found, msg
    analytic, numeric = float(found[1]), float(found[2].rstrip(","))
    # with L = sum(v * a * b) the true gradient is v * a; only the ratio is known here:
    np.testing.assert_allclose(analytic / numeric, 1 + 5e-4, rtol=1e-6)
    assert abs(numeric) > 0.4 * abs(ad[1, 2])
    # inputs are restored after the element-by-element perturbation
    np.testing.assert_array_equal(b.numpy(), bd)
    np.testing.assert_array_equal(a.numpy(), ad)


def test_wrong_gradient_of_one_of_two_inputs_is_caught(device):
    a, b = inputs(device, (4,), (4,))
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(lambda a, b: scaled_product(a, b, 1 + 1e-3), a, b)
    with pytest.raises(GradcheckError):
        gradcheck_directional(lambda a, b: scaled_product(a, b, 1 + 1e-3), a, b)
    assert gradcheck(scaled_product, a, b)
    assert gradcheck_directional(scaled_product, a, b)


def test_wrong_at_a_single_element_is_caught_by_the_directional_check(device):
    (x,) = inputs(device, (5, 5))
    with pytest.raises(GradcheckError, match=r"index \(2, 3\)"):
        gradcheck(lambda t: cube(t, 1 + 1e-2, at=13), x)
    with pytest.raises(GradcheckError):
        gradcheck_directional(lambda t: cube(t, 1 + 1e-2, at=13), x, n_directions=3)


def test_a_missing_broadcast_sum_is_caught(device):
    """A classic bug: a backward that forgets to count every use of a broadcast input."""
    a, b = inputs(device, (3, 1), (3, 4))

    def add_wrong(a, b):
        # forward broadcasts a over 4 columns, backward hands back only one column's share
        return record(a.data + b.data, (a, b), lambda g: (g[:, :1], g), "add_wrong")
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(add_wrong, a, b)
    assert gradcheck(ops.add, a, b)


def test_correct_ops_pass(device):
    a, b = inputs(device, (2, 3), (3, 2), seed=5)
    assert gradcheck(lambda a, b: ops.tanh(a @ b).sum(axis=0), a, b)
    assert gradcheck_directional(lambda a, b: ops.log_softmax(a @ b, axis=1), a, b, n_directions=5)


def test_float32_inputs_are_rejected(device):
    x = Tensor(to_device(np.ones((2, 2), np.float32), device), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(ops.tanh, x)
    with pytest.raises(TypeError, match="float64"):
        gradcheck_directional(ops.tanh, x)


def test_needs_an_input_that_requires_grad(device):
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(ops.tanh, Tensor(to_device(np.ones(3), device)))


def test_inputs_without_grad_are_held_fixed(device):
    """Only inputs that require grad are perturbed; a wrong gradient for a constant is ignored."""
    a, b = inputs(device, (3,), (3,))
    b.requires_grad = False
    b_before = b.numpy()
    assert gradcheck(lambda a, b: scaled_product(a, b, 2.0), a, b)
    np.testing.assert_array_equal(b.numpy(), b_before)
