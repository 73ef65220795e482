"""Causality of every layer type and every model, from exact gradient dependency maps.

Models: ``minipixel.causality.dependency_map`` / ``leaks``: output sub-pixel
(k, r, c) may only depend on earlier pixels and, inside its own pixel, on earlier
colours. Layers (feature level, group-aware, pixel_reference.layer_dependency_map):
a mask-B layer's output feature of group g at (r, c) may depend on input features
at earlier pixels, or at the same pixel with group <= g (< g after a mask A).

Must be exactly zero outside the context: any non-zero gradient is a leak.
Sizes stay small (h 2-5, images up to 7 x 7, up to 3 layers). Every test runs on
both paths: the fast layers (the default) and the paper layers (``fast=False``).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minipixel.causality import PROBE_SLOPE, context_map, dependency_map, leaks
from minipixel.layers import Conv2d, MaskedConv2d, channel_groups
from minipixel.models import DiagonalBiLSTM, PixelCNN, RowLSTM

from pixel_reference import (PAPER_LAYERS, Stack, assert_none, group_context,
                             layer_dependency_map, make_layer, violations)

LAYERS = sorted(PAPER_LAYERS)
MODELS = {"pixelcnn": PixelCNN, "rowlstm": RowLSTM, "diagonal": DiagonalBiLSTM}
PATHS = pytest.mark.parametrize("fast", [True, False], ids=["fast", "paper"])


def build_stack(kind, h, colours, n_layers, seed, fast):
    rng = np.random.default_rng(seed)
    return Stack([make_layer(kind, h, colours, rng, fast) for _ in range(n_layers)])


def assert_causal(dep, allowed):
    assert_none(violations(dep, allowed))
    assert (dep & allowed).any(), "the map is empty: the check would pass vacuously"


# ---- single layers and stacks of layers -----------------------------------------------------

@PATHS
@given(kind=st.sampled_from(LAYERS), colours=st.sampled_from([1, 3]), h=st.integers(2, 5),
       H=st.integers(2, 5), W=st.integers(2, 7), n_layers=st.integers(1, 3),
       seed=st.integers(0, 1000))
def test_layer_stack_is_causal(fast, kind, colours, h, H, W, n_layers, seed):
    stack = build_stack(kind, h, colours, n_layers, seed, fast)
    groups = channel_groups(2 * h, colours)
    dep = layer_dependency_map(stack, 2 * h, H, W, seed=seed)
    assert dep.shape == (2 * h, H, W, 2 * h, H, W)
    assert_causal(dep, group_context(groups, groups, H, W))


@PATHS
@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("colours, h, H, W",
                         [(3, 4, 5, 7), (3, 2, 4, 6), (1, 3, 6, 5), (3, 5, 3, 3)])
def test_layer_is_causal_non_square(device, fast, kind, colours, h, H, W):
    groups = channel_groups(2 * h, colours)
    for slope in (PROBE_SLOPE, 0.0):   # with the real ReLUs too: causality holds either way
        layer = make_layer(kind, h, colours, np.random.default_rng(1), fast, slope).to(device)
        dep = layer_dependency_map(layer, 2 * h, H, W, seed=2)
        assert_causal(dep, group_context(groups, groups, H, W))


@given(kind=st.sampled_from(["A", "B"]), colours=st.sampled_from([1, 3]),
       n_in=st.integers(1, 6), n_out=st.integers(1, 6),
       k=st.sampled_from([(1, 1), (1, 3), (3, 3), (3, 5), (5, 5), (7, 7)]),
       H=st.integers(2, 5), W=st.integers(2, 7), seed=st.integers(0, 1000))
def test_masked_conv_is_causal(kind, colours, n_in, n_out, k, H, W, seed):
    og, ig = channel_groups(n_out, colours), channel_groups(n_in, colours)
    conv = MaskedConv2d(kind, og, ig, k, rng=np.random.default_rng(seed), dtype=np.float64)
    dep = layer_dependency_map(conv, n_in, H, W, seed=seed)
    allowed = group_context(og, ig, H, W, strict=(kind == "A"))
    assert_none(violations(dep, allowed))


@PATHS
@given(colours=st.sampled_from([1, 3]), h=st.integers(2, 5), H=st.integers(2, 5),
       W=st.integers(2, 7), kind=st.sampled_from(LAYERS), n_layers=st.integers(1, 2),
       seed=st.integers(0, 1000))
def test_mask_a_then_layers_is_strictly_causal(fast, colours, h, H, W, kind, n_layers, seed):
    """7x7 mask A on the image, then mask-B layers: output group g sees only groups < g of
    its own pixel (the colours before it)."""
    rng = np.random.default_rng(seed)
    ig, g2h = channel_groups(colours, colours), channel_groups(2 * h, colours)
    first = MaskedConv2d("A", g2h, ig, 7, rng=rng, dtype=np.float64)
    stack = Stack([first] + [make_layer(kind, h, colours, rng, fast) for _ in range(n_layers)])
    dep = layer_dependency_map(stack, colours, H, W, seed=seed)
    assert_causal(dep, group_context(g2h, ig, H, W, strict=True))


def test_group_aware_check_catches_an_unmasked_layer():
    """The checker itself: a plain (unmasked) 3x3 conv must be reported."""
    conv = Conv2d(4, 4, 3, padding=1, rng=np.random.default_rng(0), dtype=np.float64)
    g = channel_groups(4, 3)
    bad = violations(layer_dependency_map(conv, 4, 4, 5), group_context(g, g, 4, 5))
    assert bad
    # e.g. the pixel below and to the right, and a later group of the same pixel
    assert ((0, 1, 1), (0, 2, 2)) in bad
    assert ((0, 1, 1), (3, 1, 1)) in bad


def test_group_context_definition():
    g = np.array([0, 1, 2])
    ctx = group_context(g, g, 2, 3)
    strict = group_context(g, g, 2, 3, strict=True)
    # same pixel: lower-triangular in the groups, strict without the diagonal
    np.testing.assert_array_equal(ctx[:, 1, 1, :, 1, 1], np.tril(np.ones((3, 3), bool)))
    np.testing.assert_array_equal(strict[:, 1, 1, :, 1, 1], np.tril(np.ones((3, 3), bool), -1))
    # earlier pixels: everything; later pixels: nothing
    assert ctx[:, 1, 1, :, 1, 0].all() and ctx[:, 1, 1, :, 0, 2].all()
    assert not ctx[:, 1, 1, :, 1, 2].any() and not ctx[:, 0, 2, :, 1, 0].any()


# ---- whole models --------------------------------------------------------------------------

def build_model(name, colours, levels, h, layers, seed=0, fast=True):
    return MODELS[name](channels=colours, levels=levels, h=h, layers=layers, out_hidden=6,
                        seed=seed, dtype=np.float64, fast=fast)


@PATHS
@given(name=st.sampled_from(sorted(MODELS)), rgb=st.booleans(), h=st.integers(2, 5),
       H=st.integers(2, 5), W=st.integers(2, 7), layers=st.integers(1, 3),
       levels=st.sampled_from([2, 4, 256]), seed=st.integers(0, 1000))
def test_model_is_causal(fast, name, rgb, h, H, W, layers, levels, seed):
    colours = 3 if rgb else 1
    if rgb:                        # an RGB model needs h >= 3 (a feature map per colour group)
        levels, h = max(levels, 4), max(h, 3)
    model = build_model(name, colours, levels, h, layers, seed, fast)
    dep = dependency_map(model, H, W, seed=seed)
    assert dep.shape == (colours, H, W, colours, H, W)
    assert_none(leaks(dep))
    assert (dep & context_map(colours, H, W)).any()


@PATHS
@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("colours, levels, H, W, layers", [
    (3, 4, 5, 7, 1), (3, 4, 4, 6, 3), (1, 2, 6, 5, 2), (1, 2, 7, 7, 3), (3, 256, 3, 5, 2)])
def test_model_is_causal_configs(device, fast, name, colours, levels, H, W, layers):
    model = build_model(name, colours, levels, 3, layers, seed=4, fast=fast).to(device)
    for leaky in (True, False):
        dep = dependency_map(model, H, W, seed=5, leaky=leaky)
        assert_none(leaks(dep))
        assert (dep & context_map(colours, H, W)).any()


def test_leaks_reports_future_dependencies():
    """The model check itself: a planted dependency on the future is reported, by position."""
    dep = np.zeros((3, 2, 2, 3, 2, 2), dtype=bool)
    dep[0, 0, 1, 0, 0, 0] = True        # allowed: the pixel to the left
    dep[1, 0, 0, 0, 0, 0] = True        # allowed: G sees R of its pixel
    dep[0, 0, 0, 0, 0, 0] = True        # leak: R sees itself
    dep[2, 0, 0, 0, 1, 0] = True        # leak: the row below
    assert sorted(leaks(dep)) == [((0, 0, 0), (0, 0, 0)), ((2, 0, 0), (0, 1, 0))]
