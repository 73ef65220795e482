"""Exact receptive fields (docs/paper.md, "Receptive fields"), with the leaky probe in float64.

Causality says "nothing outside the context"; these tests say exactly what
inside the context is reached. Dead ReLUs can hide paths, so maps come from
``dependency_map(..., leaky=True)`` (causality.probe_model: the same model with
leaky ReLUs keeps every path alive), and layers are built with leaky ReLUs. With random non-zero weights a reachable path gives a non-zero
gradient, so the maps must equal the formulas as sets.

RGB cases use h >= 3: with fewer hidden units than colours some colour group
has no hidden unit (channel_groups(2, 3) = [0, 1]) and same-pixel paths of that
group can only go through the residual; the section-7 fields assume every group
is present (and the models refuse RGB with h < 3). Every test runs on both paths:
the fast layers (the default) and the paper layers (``fast=False``).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minipixel.causality import context_map, coverage, dependency_map, leaks
from minipixel.layers import MaskedConv2d, channel_groups
from minipixel.models import DiagonalBiLSTM, PixelCNN, RowLSTM

from pixel_reference import (Stack, as_set, assert_none, assert_same_set, conv_reach,
                             diagonal_model_missing, feature_field, group_context,
                             layer_dependency_map, make_layer, pixelcnn_model_field,
                             pixelcnn_stack_reach, row_lstm_model_field, row_lstm_stack_reach)

PATHS = pytest.mark.parametrize("fast", [True, False], ids=["fast", "paper"])


def model(cls, colours, levels, h, layers, seed=0, fast=True):
    return cls(channels=colours, levels=levels, h=h, layers=layers, out_hidden=6, seed=seed,
               dtype=np.float64, fast=fast)


def assert_same_field(dep, want):
    assert_same_set(as_set(dep), as_set(want))


rgb_or_grey = st.sampled_from([(1, 2), (3, 4)])       # (colours, levels)
h_for = {1: st.integers(2, 4), 3: st.integers(3, 5)}


# ---- single layers ----------------------------------------------------------------------------

@PATHS
@given(cl=rgb_or_grey, H=st.integers(2, 6), W=st.integers(2, 7), n_layers=st.integers(1, 2),
       seed=st.integers(0, 1000), data=st.data())
def test_diagonal_bilstm_layer_reaches_its_whole_context(fast, cl, H, W, n_layers, seed, data):
    colours = cl[0]
    h = data.draw(h_for[colours])
    rng = np.random.default_rng(seed)
    stack = Stack([make_layer("diagonal", h, colours, rng, fast) for _ in range(n_layers)])
    g = channel_groups(2 * h, colours)
    dep = layer_dependency_map(stack, 2 * h, H, W, seed=seed)
    assert_same_field(dep, group_context(g, g, H, W))


@PATHS
@given(cl=rgb_or_grey, kind=st.sampled_from(["row", "pixelcnn"]), H=st.integers(2, 6),
       W=st.integers(2, 7), n_layers=st.integers(1, 3), seed=st.integers(0, 1000), data=st.data())
def test_row_lstm_and_pixelcnn_layer_fields(fast, cl, kind, H, W, n_layers, seed, data):
    """L Row LSTM layers: for d >= 1 c-d-L <= c' <= c+d (the triangle above, widened left by
    the 1 x 3 input-to-state), on the row c-L <= c' < c. L PixelCNN blocks: d <= L,
    c-L <= c' <= c+d. Same pixel: groups <= g."""
    colours = cl[0]
    h = data.draw(h_for[colours])
    rng = np.random.default_rng(seed)
    reach = {"row": row_lstm_stack_reach, "pixelcnn": pixelcnn_stack_reach}[kind]
    stack = Stack([make_layer(kind, h, colours, rng, fast) for _ in range(n_layers)])
    g = channel_groups(2 * h, colours)
    dep = layer_dependency_map(stack, 2 * h, H, W, seed=seed)
    assert_same_field(dep, feature_field(g, g, H, W, reach(n_layers)))


@pytest.mark.parametrize("kind", ["A", "B"])
@pytest.mark.parametrize("k", [(1, 1), (1, 3), (3, 3), (3, 5), (7, 7)])
def test_masked_conv_field(kind, k):
    og, ig = channel_groups(5, 3), channel_groups(4, 3)
    conv = MaskedConv2d(kind, og, ig, k, rng=np.random.default_rng(2), dtype=np.float64)
    dep = layer_dependency_map(conv, 4, 5, 7, seed=3)
    assert_same_field(dep, feature_field(og, ig, 5, 7, conv_reach(*k), strict=(kind == "A")))


# ---- whole models -----------------------------------------------------------------------------

@PATHS
@given(cl=rgb_or_grey, H=st.integers(2, 7), W=st.integers(2, 7), layers=st.integers(1, 3),
       seed=st.integers(0, 1000), data=st.data())
def test_row_lstm_model_field(fast, cl, H, W, layers, seed, data):
    """For d >= 1, c-3-L-d <= c' <= c+2+d; current row c-3-L <= c' < c."""
    colours, levels = cl
    m = model(RowLSTM, colours, levels, data.draw(h_for[colours]), layers, seed, fast)
    want = row_lstm_model_field(colours, H, W, layers)
    assert_same_field(dependency_map(m, H, W, seed=seed), want)


@given(cl=rgb_or_grey, H=st.integers(2, 7), W=st.integers(2, 7), layers=st.integers(1, 3),
       seed=st.integers(0, 1000), data=st.data())
def test_pixelcnn_model_field(cl, H, W, layers, seed, data):
    """d <= 3+L; c' >= c-3-L; for d >= 1 c' <= c+2+min(d, L+1);
    current row c-3-L <= c' < c."""
    colours, levels = cl
    m = model(PixelCNN, colours, levels, data.draw(h_for[colours]), layers, seed)
    want = pixelcnn_model_field(colours, H, W, layers)
    assert_same_field(dependency_map(m, H, W, seed=seed), want)


@PATHS
@pytest.mark.parametrize("cls, field", [(RowLSTM, row_lstm_model_field),
                                        (PixelCNN, pixelcnn_model_field)])
@pytest.mark.parametrize("colours, levels, H, W, layers", [
    (3, 4, 7, 7, 3), (1, 2, 7, 5, 1), (1, 2, 8, 8, 5), (3, 256, 4, 6, 2)])
def test_model_fields_fixed(fast, cls, field, colours, levels, H, W, layers):
    m = model(cls, colours, levels, 3, layers, seed=7, fast=fast)
    assert_same_field(dependency_map(m, H, W, seed=8), field(colours, H, W, layers))


@pytest.mark.parametrize("layers", [4, 5])
@pytest.mark.parametrize("colours, levels", [(1, 2), (3, 4)])
def test_pixelcnn_blind_spot_example(layers, colours, levels):
    """On 8x8 with L >= 4, pixel (7, 0) misses row 6 columns 4-7, row 5 columns 5-7,
    row 4 columns 6-7 and row 3 column 7 (all colours), and nothing else."""
    m = model(PixelCNN, colours, levels, 3, layers, seed=1)
    dep = dependency_map(m, 8, 8, seed=2)
    assert_none(leaks(dep))
    want_missing = {(6, 4), (6, 5), (6, 6), (6, 7), (5, 5), (5, 6), (5, 7), (4, 6), (4, 7), (3, 7)}
    ctx = context_map(colours, 8, 8)
    for k in range(colours):
        missed = ctx[k, 7, 0] & ~dep[k, 7, 0]                      # (C, 8, 8)
        pixels = {(int(r), int(c)) for _, r, c in np.argwhere(missed)}
        assert pixels == want_missing, k
        for r, c in want_missing:
            assert not dep[k, 7, 0, :, r, c].any()                   # every colour of it
    # the wedge is {d >= 1, c' >= c + d + 3}
    assert want_missing == {(7 - d, c) for d in range(1, 8) for c in range(8) if c >= d + 3}
    assert coverage(dep)[:, 7, 0].max() < 1


@PATHS
@given(cl=rgb_or_grey, H=st.integers(2, 6), W=st.integers(2, 7), layers=st.integers(1, 2),
       seed=st.integers(0, 1000), data=st.data())
def test_diagonal_bilstm_model_misses_exactly_one_subpixel_per_row(fast, cl, H, W, layers, seed,
                                                                   data):
    """For every output colour of pixel (r+1, c) with c <= W-5, the last colour of input
    pixel (r, W-1) is missed; everything else in the context is reached."""
    colours, levels = cl
    m = model(DiagonalBiLSTM, colours, levels, data.draw(h_for[colours]), layers, seed, fast)
    dep = dependency_map(m, H, W, seed=seed)
    assert_none(leaks(dep))
    missed = as_set(context_map(colours, H, W) & ~dep)
    assert_same_set(missed, diagonal_model_missing(colours, H, W), "missed sub-pixel pairs")


@PATHS
@pytest.mark.parametrize("colours, levels, H, W, layers", [
    (3, 4, 5, 7, 1), (1, 2, 4, 6, 2), (3, 4, 6, 5, 3), (1, 2, 3, 4, 1), (3, 256, 3, 6, 1)])
def test_diagonal_bilstm_model_fixed(fast, colours, levels, H, W, layers):
    m = model(DiagonalBiLSTM, colours, levels, 3, layers, seed=3, fast=fast)
    dep = dependency_map(m, H, W, seed=4)
    missed = as_set(context_map(colours, H, W) & ~dep)
    want = diagonal_model_missing(colours, H, W)
    assert_same_set(missed, want, "missed sub-pixel pairs")
    assert len(want) == (H - 1) * max(W - 4, 0) * colours         # one sub-pixel per row pair
    if W <= 4:
        assert coverage(dep).min() == 1.0
