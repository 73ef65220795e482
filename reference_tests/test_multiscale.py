"""The Multi-Scale PixelRNN (paper section 3.6): sizes, both paths equal, gradients, and
its causal structure.

The conditional network must see the large image exactly as a single-scale model of its
kind does (the same field, the exact formulas of minipixel/crosscheck/fields.py), with the
small image held fixed; the small image reaches it only through the upsampler, whose
footprint is written out here from its layers (3 x 3 conv, k x k stride-k transposed
conv, crop, 3 x 3 conv) and composed with the measured field of the conditioning map.
A conditioning that reads the large image fails these tests (built below).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minipixel import Tensor, gradcheck_directional
from minipixel.causality import dependency_map, leaks, probe_model
from minipixel.crosscheck.fields import expected_field
from minipixel.layers import Conv2d
from minipixel.models import PRESETS, MultiScalePixelRNN, from_preset
from minipixel.models.multiscale import ConditionalNetwork
from minipixel.tensor import no_grad

KINDS = ("pixelcnn", "rowlstm", "diagonal")


def tiny(kind, colours=1, levels=2, factor=2, seed=0, fast=True, layers=2, h=3, maps=3,
         relu_slope=0.0):
    model = MultiScalePixelRNN(kind, factor, maps, channels=colours, levels=levels, h=h,
                               layers=layers, out_hidden=6, seed=seed, dtype=np.float64,
                               fast=fast, relu_slope=relu_slope)
    for p in model.parameters():          # larger than the init: the nonlinearities work
        p.data = p.data * 2.0
    return model


def images(rng, n, colours, levels, H, W):
    return rng.integers(0, levels, size=(n, colours, H, W))


# ---- sizes -------------------------------------------------------------------------------------

def single_scale_count(kind, C, V, h, L, F):
    values = 1 if V == 2 else V
    layer = {"pixelcnn": (h * 2 * h + h) + (h * h * 9 + h) + (2 * h * h + 2 * h),
             "rowlstm": (4 * h * 2 * h * 3 + 4 * h) + 4 * h * h * 3 + 2 * h + (2 * h * h + 2 * h),
             "diagonal": 2 * ((4 * h * 2 * h + 4 * h) + 4 * h * h * 2 + 2 * h) + (2 * h * h + 2 * h),
             }[kind]
    return (2 * h * C * 49 + 2 * h) + L * layer + (F * 2 * h * L + F) + (F * F + F) + \
        (C * values * F + C * values)


def multiscale_count(kind, factor, condition_maps, channels, levels, h, layers, out_hidden, **_):
    c, k = condition_maps, factor
    v_per_layer = {"pixelcnn": h * c, "rowlstm": 4 * h * c, "diagonal": 2 * 4 * h * c}[kind]
    upsampler = (channels * c * 9 + c) + (c * c * k * k + c) + (c * c * 9 + c)
    return 2 * single_scale_count(kind, channels, levels, h, layers, out_hidden) + \
        layers * v_per_layer + upsampler


@pytest.mark.parametrize("name", sorted(n for n, c in PRESETS.items() if c["model"] == "multiscale"))
def test_presets_build_with_hand_counted_parameters(name):
    model = from_preset(name)
    assert model.num_parameters() == multiscale_count(**PRESETS[name])
    assert len(model.small.layers) == len(model.large.layers) == PRESETS[name]["layers"]


def test_bad_settings_get_one_line():
    for kwargs, expected in ((dict(kind="lstm"), "kind must be one of"),
                             (dict(factor=1), "factor must be a whole number >= 2"),
                             (dict(condition_maps=0), "condition_maps must be")):
        with pytest.raises(ValueError, match=expected) as err:
            MultiScalePixelRNN(**kwargs)
        assert "\n" not in str(err.value)
    model = tiny("pixelcnn")
    with pytest.raises(ValueError, match=r"small images of shape \(1, 1, 3, 3\) expected"):
        model.conditional_logits(np.zeros((1, 1, 5, 5), int), np.zeros((1, 1, 2, 2), int))


# ---- the two paths -----------------------------------------------------------------------------

@given(kind=st.sampled_from(KINDS), colours=st.sampled_from([1, 3]), levels=st.sampled_from([2, 4]),
       H=st.integers(2, 7), W=st.integers(2, 7), factor=st.integers(2, 3), seed=st.integers(0, 999))
def test_fast_path_equals_paper_path_forward_and_every_gradient(kind, colours, levels, H, W,
                                                                 factor, seed):
    fast = tiny(kind, colours, levels, factor, seed)
    paper = fast.variant(fast=False)
    x = images(np.random.default_rng(seed), 2, colours, levels, H, W)
    out = {}
    for name, model in (("fast", fast), ("paper", paper)):
        nll_small, nll_rest = model.nll_parts(x)
        (nll_small + nll_rest).sum().backward()
        with no_grad():
            logits = model(x).data
        out[name] = (nll_small.data, nll_rest.data, logits,
                     [p.grad for p in model.parameters()])
    for a, b in zip(out["fast"][:3], out["paper"][:3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for ga, gb in zip(out["fast"][3], out["paper"][3]):
        np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("kind, colours, levels", [("rowlstm", 1, 2), ("diagonal", 3, 4),
                                                   ("pixelcnn", 3, 2)])
def test_nll_gradient_equals_finite_differences(kind, colours, levels, fast):
    model = tiny(kind, colours, levels, factor=2, seed=3, fast=fast)
    x = images(np.random.default_rng(4), 2, colours, levels, 5, 4)
    params = model.parameters()
    assert gradcheck_directional(lambda *ps: model.nll(x), *params, n_directions=3, seed=1)


def test_upsampler_gradient_equals_finite_differences():
    model = tiny("diagonal", 3, 4, factor=3)
    s = Tensor(np.random.default_rng(0).uniform(-1, 1, (2, 3, 2, 3)), requires_grad=True)
    assert gradcheck_directional(lambda s_, *ps: model.upsampler(s_, 5, 7), s,
                                 *model.upsampler.parameters(), n_directions=4)


def test_the_likelihood_gives_the_small_images_pixels_and_predicts_the_others():
    """-log p(x) = -log p_small(s) + the conditional NLL of the sub-pixels not in s, each
    read off the conditional network's own logits (an independent sum, in NumPy)."""
    model = tiny("rowlstm", 3, 4, factor=2, seed=5)
    x = images(np.random.default_rng(6), 2, 3, 4, 5, 6)
    with no_grad():
        logits = model(x).data                                  # (N, V, C, H, W)
        total = model.nll(x).data
        small = model.small.nll(x[:, :, ::2, ::2]).data
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    picked = np.take_along_axis(logp, x[:, None], axis=1)[:, 0]  # (N, C, H, W)
    predicted = np.ones((5, 6), bool)
    predicted[::2, ::2] = False
    rest = -(picked * predicted).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(total, small + rest, rtol=1e-12)


# ---- causality ---------------------------------------------------------------------------------

CAUSAL_CASES = [(kind, colours, H, W, factor) for kind in KINDS
                for colours, H, W, factor in ((1, 5, 7, 2), (3, 4, 5, 3), (3, 7, 4, 2))]


def probe(kind, colours, factor, seed=0):
    return probe_model(tiny(kind, colours, 4, factor, seed, layers=2))


@pytest.mark.parametrize("kind, colours, H, W, factor", CAUSAL_CASES)
def test_the_large_image_is_seen_exactly_as_the_single_scale_model_sees_it(kind, colours, H, W,
                                                                            factor):
    """With the small image held fixed, the conditional logits' map on the large image is
    the single-scale field of the same kind and depth, pair for pair."""
    model = probe(kind, colours, factor)
    rng = np.random.default_rng(1)
    small = images(rng, 1, colours, 4, *model.small_size(H, W))
    dep = dependency_map(model.given_small(small), H, W)
    assert leaks(dep) == []
    assert np.array_equal(dep, expected_field(kind, colours, H, W, 2))


def input_dependency(fn, x_shape, n_out, seed=0):
    """(n_out, *x_shape[1:]) bool: which entries of fn's input each of its n_out = C*H*W
    logits moves with (the gradient of logit i alone, on copy i of one random input)."""
    rng = np.random.default_rng(seed)
    x = Tensor(rng.uniform(-1, 1, size=(1,) + x_shape[1:]).repeat(n_out, axis=0),
               requires_grad=True)
    logits = fn(x)                                  # (n_out, C, H, W) or (n_out, V, C, H, W)
    select = np.eye(n_out).reshape((n_out,) + logits.shape[-3:])
    select = select[:, None] if logits.ndim == 5 else select
    logits.backward(rng.uniform(0.5, 1.5, size=logits.shape) * select)
    return x.grad != 0


def upsampler_footprint(H, W, factor):
    """(H, W, s_H, s_W) bool: the large positions whose conditioning moves with each small
    pixel, from the upsampler's layers (all colours mix in its first conv)."""
    def along(n):
        s = -(-n // factor)
        embed = np.abs(np.arange(s)[:, None] - np.arange(s)[None, :]) <= 1          # (s, s)
        up = (np.arange(n)[:, None] // factor) == np.arange(s)[None, :]          # (n, s)
        refine = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :]) <= 1       # (n, n)
        return (refine.astype(int) @ up.astype(int) @ embed.astype(int)) > 0      # (n, s)
    rows, cols = along(H), along(W)
    return rows[:, None, :, None] & cols[None, :, None, :]


@pytest.mark.parametrize("kind, colours, H, W, factor", CAUSAL_CASES)
def test_the_small_image_reaches_the_logits_only_through_the_conditioning(kind, colours, H, W,
                                                                          factor):
    """Measured on the small image: exactly the upsampler's footprint composed with where
    the conditioning map reaches; that in turn includes the output's own position and
    none after it in raster order (the conditioning enters each layer pointwise, at its
    position, so it flows only where the layers' states flow)."""
    model = probe(kind, colours, factor)
    C, n_out, maps = colours, colours * H * W, model.upsampler.refine.weight.shape[0]
    x = Tensor(np.random.default_rng(2).uniform(-1, 1, (1, C, H, W)).repeat(n_out, axis=0))
    sH, sW = model.small_size(H, W)
    on_small = input_dependency(
        lambda s: model.large.logits_from_scaled(x, cond=model.upsampler(s, H, W)),
        (1, C, sH, sW), n_out).reshape(C, H, W, C, sH, sW)
    on_cond = input_dependency(lambda c: model.large.logits_from_scaled(x, cond=c),
                               (1, maps, H, W), n_out).reshape(C, H, W, maps, H, W).any(axis=3)
    footprint = upsampler_footprint(H, W, factor)                       # (H, W, sH, sW)
    composed = np.einsum("krcpq,pqij->krcij", on_cond.astype(int), footprint.astype(int)) > 0
    assert np.array_equal(on_small, np.broadcast_to(composed[:, :, :, None], on_small.shape))
    order = np.arange(H * W).reshape(H, W)
    at_or_before = order[None, :, :, None, None] >= order[None, None, None]  # (1, H, W, H, W)
    assert not (on_cond & ~at_or_before).any()
    assert on_cond[:, np.arange(H)[:, None], np.arange(W), np.arange(H)[:, None],
                   np.arange(W)].all()                                  # its own position


class ConditioningReadsTheLargeImage(ConditionalNetwork):
    """The known bug: a bias conv of the conditioning that also reads the large image
    (an unmasked 3 x 3 conv of it added to the upsampled map)."""

    def __init__(self, model, small_images):
        super().__init__(model, small_images)
        maps = model.upsampler.refine.weight.shape[0]
        self.leak = Conv2d(model.channels, maps, 3, padding=1, rng=np.random.default_rng(9),
                           dtype=np.float64)

    def variant(self, **changes):
        twin = ConditioningReadsTheLargeImage(self.model.variant(**changes), self.small_images)
        twin.seed = self.seed
        twin.leak = self.leak
        return twin

    def logits_from_scaled(self, x, trace=None):
        N, _, H, W = x.shape
        cond = self.model.conditioning(self.small_for(N, H, W), H, W) + self.leak(x)
        return self.model.large.logits_from_scaled(x, trace, cond=cond)


@pytest.mark.parametrize("kind", KINDS)
def test_a_conditioning_that_reads_the_large_image_is_caught(kind):
    model = probe(kind, 3, 2)
    small = images(np.random.default_rng(1), 1, 3, 4, 3, 3)
    buggy = ConditioningReadsTheLargeImage(model, small)
    dep = dependency_map(buggy, 5, 6)
    assert leaks(dep)                                   # sees pixels after the one it predicts
    assert not np.array_equal(dep, expected_field(kind, 3, 5, 6, 2))
    assert np.array_equal(dependency_map(model.given_small(small), 5, 6),
                          expected_field(kind, 3, 5, 6, 2))


# ---- the audit ---------------------------------------------------------------------------------

def test_the_audit_passes_the_conditional_network_and_fails_the_buggy_one():
    """What `minipixel audit` runs on a multi-scale model: the conditional network as a
    function of the large image, its small image held fixed."""
    from minipixel.crosscheck.adapters import model_fn
    from minipixel.crosscheck.audit import audit
    model = tiny("diagonal", 3, 4, factor=2)
    ours = audit(model_fn(model.given_small(), leaky=True), 3, 4, H=5, W=6, bases=2)
    assert ours.passed and not ours.leaks
    buggy = audit(model_fn(ConditioningReadsTheLargeImage(model, None), leaky=True), 3, 4,
                  H=5, W=6, bases=2)
    assert not buggy.passed and buggy.leaks


def test_auditing_a_multiscale_checkpoint_holds_its_small_image_fixed(tmp_path, capsys):
    from minipixel.checkpoint import save_checkpoint
    from minipixel.cli import main
    path = str(tmp_path / "checkpoint.npz")
    save_checkpoint(path, tiny("rowlstm", 1, 2, factor=2))
    assert main(["audit", path, "--height", "5", "--width", "6"]) == 0
    assert "PASS" in capsys.readouterr().out


# ---- both backends -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_on_device_cuda_it_computes_what_the_cpu_does(device, kind):
    """NLL, its two parts and every gradient on the device (the CuPy stand-in without a
    GPU: NumPy arrays refused where CuPy ones are due) equal the CPU's."""
    from minipixel.backend import to_numpy
    cpu = tiny(kind, 3, 4, factor=2, seed=1)
    moved = cpu.variant().to(device)
    x = images(np.random.default_rng(2), 2, 3, 4, 5, 6)
    got = {}
    for name, model in (("cpu", cpu), (device, moved)):
        small, rest = model.nll_parts(x)
        (small + rest).sum().backward()
        got[name] = [to_numpy(small.data), to_numpy(rest.data)] + \
            [to_numpy(p.grad) for p in model.parameters()]
    for a, b in zip(got["cpu"], got[device]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)


# ---- the likelihood sums to one ---------------------------------------------------------------

def multiscale_nll_fn(model, bug=None):
    """images -> -log p(x), nats (N,) float64: the model's own, or a broken variant's:
    "double"  the small image's pixels also predicted by the conditional network
    "skip"    the small network's term dropped
    "peek"    the conditioning fed a small image whose pixel (0, 0) is the large image's
              (0, 1), a pixel the conditional network predicts (a subsampling off by one
              column there)"""
    from minipixel.backend import to_numpy

    def nll_fn(x):
        x = np.asarray(x, dtype=np.int64)
        with no_grad():
            if bug is None:
                return to_numpy(model.nll(x).data)
            small = model.subsample(x)
            seen = small.copy()
            if bug == "peek":
                seen[:, :, 0, 0] = x[:, :, 0, 1]
            H, W = x.shape[2:]
            logits = model.large.logits_from_scaled(model.large.scale(x),
                                                    cond=model.conditioning(seen, H, W))
            terms = to_numpy(model.large.subpixel_nll(logits, x).data)
            counted = np.ones((H, W)) if bug == "double" else ~model.given(H, W)
            rest = (terms * counted).sum(axis=(1, 2, 3))
            small_nll = 0.0 if bug == "skip" else to_numpy(model.small.nll(small).data)
            return small_nll + rest
    return nll_fn


SUM_CASES = [(kind, 1, 2, 3, 3) for kind in KINDS] + [(kind, 3, 2, 2, 2) for kind in KINDS] + \
    [("diagonal", 1, 2, 4, 4), ("rowlstm", 1, 3, 3, 2)]


@pytest.mark.parametrize("kind, colours, levels, H, W", SUM_CASES)
def test_the_multiscale_likelihood_sums_to_one_over_every_image(kind, colours, levels, H, W):
    from likelihood_sum import total_probability
    for fast in ((True, False) if H * W <= 9 else (True,)):
        model = tiny(kind, colours, levels, factor=2, seed=1, fast=fast)
        total = total_probability(multiscale_nll_fn(model), colours, levels, H, W)
        assert abs(total - 1) < 1e-10, (fast, total)


@pytest.mark.parametrize("bug", ["double", "skip", "peek"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_multiscale_likelihood_that_miscounts_or_peeks_does_not_sum_to_one(kind, bug):
    from likelihood_sum import total_probability
    model = tiny(kind, 1, 2, factor=2, seed=1)
    assert abs(total_probability(multiscale_nll_fn(model), 1, 2, 3, 3) - 1) < 1e-10
    broken = total_probability(multiscale_nll_fn(model, bug), 1, 2, 3, 3)
    assert abs(broken - 1) > 1e-3, broken
    if bug == "skip":                     # every small image's conditional sums to one
        assert abs(broken - 2 ** 4) < 1e-9
