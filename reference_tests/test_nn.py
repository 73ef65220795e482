"""Modules (registration, state dicts, modes) and optimizers against hand-computed NumPy."""
import numpy as np
import pytest

from minipixel import Tensor, ops
from minipixel.backend import to_device, to_numpy
from minipixel.nn import SGD, Adam, Module, ModuleList, Parameter, RMSProp, clip_grad_norm


@pytest.fixture(autouse=True)
def _cpu_default_device(monkeypatch):
    """Parameters made without a device go to MINIPIXEL_DEVICE; these tests pick devices
    explicitly, so run them with the default (cpu) whatever the environment says."""
    monkeypatch.delenv("MINIPIXEL_DEVICE", raising=False)


class Leaf(Module):
    def __init__(self, seed):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.c = Parameter(rng.normal(size=(2, 3)))
        self.d = Parameter(rng.normal(size=(3,)))

    def forward(self, x):
        return ops.tanh(x @ self.c + self.d)


class Net(Module):
    def __init__(self, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.head = Leaf(seed + 1)                 # a module set before the parameters
        self.b = Parameter(rng.normal(size=(4,)))
        self.a = Parameter(rng.normal(size=(3, 4)))
        self.not_a_param = np.ones(3)              # plain attributes are not registered
        self.blocks = ModuleList([Leaf(seed + 2), Leaf(seed + 3)])

    def forward(self, x):
        h = self.head(x)
        for blk in self.blocks:
            h = h + blk(x)
        return h @ self.a + self.b


NAMES = ["b", "a", "head.c", "head.d", "blocks.0.c", "blocks.0.d", "blocks.1.c", "blocks.1.d"]


# ---- registration --------------------------------------------------------------------------

def test_registration_order_and_dotted_names():
    """A module's own parameters come first, then each submodule's, recursively; each group
    in the order the attributes were first set (as torch.nn.Module does)."""
    net = Net()
    assert [name for name, _ in net.named_parameters()] == NAMES
    assert list(net.state_dict()) == NAMES
    assert net.parameters()[1] is net.a and net.parameters()[4] is net.blocks[0].c
    assert net.num_parameters() == 4 + 12 + 3 * (6 + 3)
    assert [type(m).__name__ for m in net.modules()] == ["Net", "Leaf", "ModuleList", "Leaf", "Leaf"]
    assert len(net.blocks) == 2 and list(net.blocks) == [net.blocks[0], net.blocks[1]]


def test_reassigning_an_attribute_updates_the_registration_in_place():
    """Replacing a parameter or module keeps its place in the order (optimizer state is
    indexed by that order); setting a non-parameter unregisters the name."""
    net = Net()
    new_b = Parameter(np.zeros(4))
    net.b = new_b
    net.head = Leaf(9)
    assert [n for n, _ in net.named_parameters()] == NAMES
    assert net.parameters()[0] is new_b and dict(net.named_parameters())["head.c"] is net.head.c
    net.a = None                                    # no longer a parameter
    assert [n for n, _ in net.named_parameters()] == [n for n in NAMES if n != "a"]
    net.head = Parameter(np.ones(1))                # a module name turned into a parameter
    assert [n for n, _ in net.named_parameters()][:2] == ["b", "head"]
    assert "head.c" not in dict(net.named_parameters())


def test_module_must_call_super_init():
    class Broken(Module):
        def __init__(self):
            self.w = Parameter(np.ones(2))
    with pytest.raises(RuntimeError, match=r"super\(\).__init__\(\)"):
        Broken()


def test_train_and_eval_flags_reach_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    net.blocks.train(False)                          # a subtree only
    assert net.training and net.head.training and not net.blocks[1].training


def test_astype_casts_every_parameter():
    net = Net()
    x = Tensor(np.ones((2, 2), np.float32))
    net.astype(np.float32)
    assert net.dtype == np.float32 and all(p.dtype == np.float32 for p in net.parameters())
    assert net(x).dtype == np.float32


# ---- state dicts ---------------------------------------------------------------------------

def test_state_dict_round_trip():
    src, dst = Net(seed=0), Net(seed=100)
    x = Tensor(np.random.default_rng(5).normal(size=(5, 2)))
    assert not np.allclose(src(x).numpy(), dst(x).numpy())
    state = src.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    dst.load_state_dict(state)
    np.testing.assert_array_equal(dst(x).numpy(), src(x).numpy())
    # state_dict holds copies, and load_state_dict copies again: no aliasing either way
    state["a"][0, 0] = 123.0
    assert src.a.data[0, 0] != 123.0 and dst.a.data[0, 0] != 123.0
    src.a.data[0, 1] = -7.0
    assert dst.a.data[0, 1] != -7.0


def test_load_state_dict_missing_and_unexpected_keys_are_named():
    net = Net()
    state = net.state_dict()
    del state["blocks.1.d"]
    with pytest.raises(KeyError, match=r"missing parameters \['blocks.1.d'\], unexpected parameters \[\]"):
        net.load_state_dict(state)
    state = net.state_dict()
    state["blocks.2.c"] = np.ones((2, 3))
    with pytest.raises(KeyError, match=r"missing parameters \[\], unexpected parameters \['blocks.2.c'\]"):
        net.load_state_dict(state)


def test_load_state_dict_shape_mismatch_names_parameter_and_both_shapes():
    net = Net()
    state = net.state_dict()
    state["head.c"] = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"'head.c' has shape \(2, 3\), the state holds \(3, 2\)"):
        net.load_state_dict(state)


def test_load_state_dict_dtype_mismatch():
    net = Net()
    state = net.state_dict()
    state["b"] = state["b"].astype(np.float32)
    with pytest.raises(TypeError, match=r"'b' is float64, the state holds float32"):
        net.load_state_dict(state)


def test_failed_load_changes_nothing():
    """All names, shapes and dtypes are checked before any parameter is overwritten."""
    net, other = Net(seed=0), Net(seed=1)
    before = net.state_dict()
    state = other.state_dict()
    state["blocks.1.d"] = np.ones(7)               # the last parameter is wrong
    with pytest.raises(ValueError):
        net.load_state_dict(state)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


# ---- optimizers against NumPy --------------------------------------------------------------
# loss = sum(c p^2 / 2 + d p) per parameter, so g = c p + d depends on where p is now.

SHAPES = [(2, 3), (4,)]


def _problem(scale):
    rng = np.random.default_rng(42)
    p0 = [rng.normal(size=s) for s in SHAPES]
    c = [rng.uniform(0.5, 2.0, size=s) * scale for s in SHAPES]
    d = [rng.normal(size=s) * scale for s in SHAPES]
    return p0, c, d


def _engine_steps(make_opt, scale, n, device):
    p0, c, d = _problem(scale)
    params = [Parameter(p.copy(), device=device) for p in p0]
    assert all(p.device == device for p in params)
    opt = make_opt(params)
    for _ in range(n):
        opt.zero_grad()
        loss = sum(((p * p) * Tensor(to_device(ci, device)) * 0.5 + p * Tensor(to_device(di, device))).sum()
                   for p, ci, di in zip(params, c, d))
        loss.backward()
        opt.step()
    return [p.numpy() for p in params]


def _reference_steps(update, scale, n):
    p0, c, d = _problem(scale)
    ps = [p.copy() for p in p0]
    state = [dict() for _ in ps]
    for t in range(1, n + 1):
        for k in range(len(ps)):
            g = c[k] * ps[k] + d[k]
            ps[k] = update(ps[k], g, state[k], t)
    return ps


def sgd_ref(lr, momentum):
    def update(p, g, st, t):
        st["v"] = momentum * st.get("v", 0.0) + g
        return p - lr * st["v"]
    return update


def adam_ref(lr, b1, b2, eps):
    def update(p, g, st, t):
        st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
        st["s"] = b2 * st.get("s", 0.0) + (1 - b2) * g * g
        m_hat = st["m"] / (1 - b1 ** t)
        s_hat = st["s"] / (1 - b2 ** t)
        return p - lr * m_hat / (np.sqrt(s_hat) + eps)
    return update


def rmsprop_ref(lr, alpha, eps):
    def update(p, g, st, t):
        st["s"] = alpha * st.get("s", 0.0) + (1 - alpha) * g * g
        return p - lr * g / (np.sqrt(st["s"]) + eps)
    return update


OPTIMIZERS = {
    "sgd": (lambda ps: SGD(ps, lr=0.1), sgd_ref(0.1, 0.0)),
    "sgd momentum": (lambda ps: SGD(ps, lr=0.05, momentum=0.9), sgd_ref(0.05, 0.9)),
    "adam": (lambda ps: Adam(ps, lr=0.01), adam_ref(0.01, 0.9, 0.999, 1e-8)),
    "adam custom": (lambda ps: Adam(ps, lr=0.2, betas=(0.8, 0.99), eps=1e-6),
                    adam_ref(0.2, 0.8, 0.99, 1e-6)),
    "rmsprop": (lambda ps: RMSProp(ps, lr=0.01), rmsprop_ref(0.01, 0.95, 1e-8)),
    "rmsprop custom": (lambda ps: RMSProp(ps, lr=0.1, alpha=0.5, eps=1e-4), rmsprop_ref(0.1, 0.5, 1e-4)),
}


@pytest.mark.parametrize("scale", [1.0, 1e-7])       # tiny gradients: where eps placement shows
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_matches_numpy_reference_for_three_steps(device, name, scale):
    make_opt, ref = OPTIMIZERS[name]
    got = _engine_steps(make_opt, scale, 3, device)
    expected = _reference_steps(ref, scale, 3)
    start, _, _ = _problem(scale)
    for g, e, s in zip(got, expected, start):
        assert not np.array_equal(e, s)             # the reference did move
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)


def test_sgd_hand_computed():
    """Three momentum steps written out by hand: p = 1, g = p (loss p^2/2), lr 0.1, momentum 0.5."""
    p = Parameter(np.array([1.0]))
    opt = SGD([p], lr=0.1, momentum=0.5)
    for _ in range(3):
        opt.zero_grad()
        ((p * p) * 0.5).sum().backward()
        opt.step()
    # v1 = 1, p1 = 0.9; v2 = 0.5 + 0.9 = 1.4, p2 = 0.76; v3 = 0.7 + 0.76 = 1.46, p3 = 0.614
    np.testing.assert_allclose(p.data, [0.614], rtol=1e-14)


def test_parameters_without_grad_are_skipped_and_zero_grad_clears():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = SGD([a, b], lr=0.5)
    (a * 2.0).sum().backward()
    opt.step()
    np.testing.assert_array_equal(a.data, [0.0, 0.0])
    np.testing.assert_array_equal(b.data, [1.0, 1.0])
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    with pytest.raises(ValueError, match="empty"):
        Adam([])


@pytest.mark.parametrize("name", ["sgd momentum", "adam custom", "rmsprop custom"])
def test_optimizer_state_dict_round_trip_continues_identically(name):
    make_opt, _ = OPTIMIZERS[name]
    x = Tensor(np.random.default_rng(1).normal(size=(6, 2)))

    def run(model, opt, n):
        for _ in range(n):
            opt.zero_grad()
            (model(x) ** 2).mean().backward()
            opt.step()

    model_a = Net(seed=0)
    opt_a = make_opt(model_a.parameters())
    run(model_a, opt_a, 2)
    model_state, opt_state = model_a.state_dict(), opt_a.state_dict()
    assert int(opt_state["t"]) == 2

    model_b = Net(seed=50)
    opt_b = make_opt(model_b.parameters())
    opt_b.lr = 123.0                                # overwritten by the loaded state
    model_b.load_state_dict(model_state)
    opt_b.load_state_dict(opt_state)
    assert opt_b.t == 2 and opt_b.lr == opt_a.lr
    run(model_a, opt_a, 3)
    run(model_b, opt_b, 3)
    for (k, pa), (_, pb) in zip(model_a.named_parameters(), model_b.named_parameters()):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy(), err_msg=k)
    # the saved state was a copy: three more steps did not change it
    fresh = make_opt(Net(seed=50).parameters())
    fresh.load_state_dict(opt_state)
    assert fresh.t == 2


def test_optimizer_load_state_dict_shape_mismatch():
    opt = Adam([Parameter(np.ones((2, 3)))])
    state = opt.state_dict()
    state["m.0"] = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"m.0 has shape \(3, 2\), parameter 0 has \(2, 3\)"):
        opt.load_state_dict(state)


# ---- gradient clipping ---------------------------------------------------------------------

def _params_with_grads(grads):
    ps = [Parameter(np.zeros_like(g)) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = g.copy()
    return ps


def test_clip_grad_norm_scales_to_max_norm_and_returns_the_norm_before():
    grads = [np.array([3.0, 0.0]), np.array([[0.0, 4.0], [12.0, 0.0]])]   # global norm 13
    ps = _params_with_grads(grads)
    assert clip_grad_norm(ps, 6.5) == pytest.approx(13.0, rel=1e-15)
    np.testing.assert_allclose(ps[0].grad, grads[0] * 0.5, rtol=1e-10)
    np.testing.assert_allclose(ps[1].grad, grads[1] * 0.5, rtol=1e-10)
    total = np.sqrt(sum(float((p.grad ** 2).sum()) for p in ps))
    assert total == pytest.approx(6.5, rel=1e-10)


def test_clip_grad_norm_leaves_small_gradients_alone():
    grads = [np.array([0.3, -0.4])]
    ps = _params_with_grads(grads)
    assert clip_grad_norm(ps, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(ps[0].grad, grads[0])


def test_clip_grad_norm_skips_missing_grads_and_accepts_a_generator():
    ps = _params_with_grads([np.array([6.0, 8.0])]) + [Parameter(np.ones(3))]
    assert clip_grad_norm((p for p in ps), 1.0) == pytest.approx(10.0)
    np.testing.assert_allclose(ps[0].grad, [0.6, 0.8], rtol=1e-10)
    assert ps[1].grad is None


def test_clip_then_step_uses_the_clipped_gradient(device):
    p = Parameter(np.array([0.0, 0.0]), device=device)
    (p * Tensor(to_device(np.array([30.0, 40.0]), device))).sum().backward()
    assert float(clip_grad_norm([p], 5.0)) == pytest.approx(50.0)   # a 0-d array on the device
    SGD([p], lr=1.0).step()
    np.testing.assert_allclose(to_numpy(p.data), [-3.0, -4.0], rtol=1e-10)


def test_rmsprop_first_step_from_a_zero_average_is_the_formula_written_out():
    """One step from s = 0 (the paper's optimizer, Tieleman and Hinton's form):
    s1 = (1 - alpha) g^2,  p1 = p0 - lr g / (sqrt(s1) + eps), here with g = p (loss p^2/2)."""
    p0 = np.array([1.0, -2.0, 0.5])
    p = Parameter(p0.copy())
    lr, alpha, eps = 0.1, 0.9, 1e-3
    opt = RMSProp([p], lr=lr, alpha=alpha, eps=eps)
    ((p * p) * 0.5).sum().backward()
    opt.step()
    s1 = (1 - alpha) * p0 ** 2
    np.testing.assert_allclose(p.data, p0 - lr * p0 / (np.sqrt(s1) + eps), rtol=1e-14)
    # the same numbers by hand for the first entry: s1 = 0.1, p1 = 1 - 0.1 / (0.3162278 + 1e-3)
    np.testing.assert_allclose(p.data[0], 1 - 0.1 / (0.1 ** 0.5 + 1e-3), rtol=1e-14)
