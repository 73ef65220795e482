"""Bugs seen in public implementations (docs/paper.md), each built on purpose and shown caught.

Every test builds the faulty variant from the package's own pieces (a subclass,
or a monkeypatch that pytest undoes) next to the correct one, and asserts that the causality check
(``leaks`` / the group-aware ``violations``) or the reference check fails on the
faulty variant while the correct variant passes. So these are also tests of
the tests: a check that cannot see the bug would fail here.
"""
import numpy as np
import pytest

import minipixel.fast.cell as fast_cell_module
import minipixel.fast.layers as fast_layers_module
import minipixel.layers.conv as conv_module
import minipixel.layers.diagonal_bilstm as diagonal_module
import minipixel.layers.row_lstm as row_module
from minipixel import Tensor, fast, layers, no_grad
from minipixel.causality import context_map, dependency_map, leaks
from minipixel.layers import (DiagonalBiLSTMLayer, DiagonalLSTM, MaskedConv2d, RowLSTMLayer,
                              channel_groups, conv_mask)
from minipixel.models import DiagonalBiLSTM, PixelCNN, RowLSTM
from minipixel.ops import conv2d, flip, pad, sigmoid, tanh

from conftest import random_array
from pixel_reference import (assert_none, fused_cell, group_context, layer_dependency_map,
                             make_layer, per_pixel_cell, ref_conv_mask, ref_lstm_cell,
                             violations)

MODELS = [PixelCNN, RowLSTM, DiagonalBiLSTM]


def model(cls, colours=3, levels=4, h=3, layers=2, seed=0, fast=True):
    return cls(channels=colours, levels=levels, h=h, layers=layers, out_hidden=6, seed=seed,
               dtype=np.float64, fast=fast)


def model_leaks(m, H=4, W=5):
    return leaks(dependency_map(m, H, W, seed=1))


def layer_violations(layer, h, colours, H=4, W=5):
    g = channel_groups(2 * h, colours)
    return violations(layer_dependency_map(layer, 2 * h, H, W, seed=1), group_context(g, g, H, W))


# ---- sigmoid on the content gate g ----------------------------------------------------------

def sigmoid_array(a, xp):
    return 1 / (1 + xp.exp(-a))


def faulty_cell_step(act, c_prev, c_new, tanh_c, h_new, tmp, xp):
    """The scan's in-place cell step with the same bug: sigmoid on g too. It takes
    z = k * pre (k = -1 for i, f, o and -2 for g)."""
    n = c_prev.shape[1]
    act[:, 2 * n:3 * n] /= 2                     # -pre for every gate
    act[...] = sigmoid_array(-act, xp)
    i, f, g, o = act[:, :n], act[:, n:2 * n], act[:, 2 * n:3 * n], act[:, 3 * n:]
    c_new[...] = f * c_prev + i * g
    tanh_c[...] = xp.tanh(c_new)
    h_new[...] = o * tanh_c


def cell_matches_reference(cell, seed=0):
    """The reference check: cell(pre, c_prev) -> (h, c) equals the formula-by-formula cell."""
    rng = np.random.default_rng(seed)
    pre, c_prev = random_array(rng, (2, 12, 5), low=-3, high=3), random_array(rng, (2, 3, 5))
    with no_grad():
        h, c = cell(Tensor(pre), Tensor(c_prev))
    want_h, want_c = ref_lstm_cell(pre, c_prev)
    return np.allclose(h.numpy(), want_h, rtol=1e-10, atol=1e-12) and \
        np.allclose(c.numpy(), want_c, rtol=1e-10, atol=1e-12)


def cell_from_ops(content_activation):
    def cell(pre, c_prev):
        n = c_prev.shape[1]
        i, f = sigmoid(pre[:, :n]), sigmoid(pre[:, n:2 * n])
        g, o = content_activation(pre[:, 2 * n:3 * n]), sigmoid(pre[:, 3 * n:])
        c = f * c_prev + i * g
        return o * tanh(c), c
    return cell


def test_sigmoid_on_g_fails_the_cell_reference_check(monkeypatch):
    assert cell_matches_reference(layers.lstm_cell)                # the paper path's cell
    assert cell_matches_reference(fused_cell)                      # the scans' in-place cell
    assert cell_matches_reference(per_pixel_cell)                  # the sampler's cell
    assert cell_matches_reference(cell_from_ops(tanh))             # the same written here
    assert not cell_matches_reference(cell_from_ops(sigmoid))      # sigmoid on g
    monkeypatch.setattr(fast_cell_module, "lstm_cell_step", faulty_cell_step)
    assert not cell_matches_reference(fused_cell)                  # the in-place cell, patched


def test_sigmoid_on_g_fails_the_layer_check(monkeypatch):
    """The paper Row LSTM and the fast one agree; a sigmoid on g in either breaks that;
    the same for the fast Diagonal BiLSTM's in-place cell."""
    rng = np.random.default_rng(4)
    paper = RowLSTMLayer(3, 3, rng, np.float64)
    fused = fast.FastRowLSTMLayer(3, 3, np.random.default_rng(4), np.float64)
    x = random_array(rng, (1, 6, 3, 4))

    def hidden(layer):
        with no_grad():
            return layer.hidden(Tensor(x)).numpy()
    np.testing.assert_allclose(hidden(fused), hidden(paper), rtol=1e-12, atol=1e-12)
    with monkeypatch.context() as m:
        m.setattr(row_module, "lstm_cell", cell_from_ops(sigmoid))   # the paper layer's cell
        assert not np.allclose(hidden(fused), hidden(paper), rtol=1e-6, atol=1e-8)
    with monkeypatch.context() as m:
        m.setattr(fast_cell_module, "lstm_cell_step", faulty_cell_step)   # the row scan's
        assert not np.allclose(hidden(fused), hidden(paper), rtol=1e-6, atol=1e-8)
    # the Diagonal BiLSTM's scan runs the same in-place cell: the check there
    paper = DiagonalBiLSTMLayer(3, 3, np.random.default_rng(4), np.float64)
    fused = fast.FastDiagonalBiLSTMLayer(3, 3, np.random.default_rng(4), np.float64)
    np.testing.assert_allclose(hidden(fused), hidden(paper), rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(fast_cell_module, "lstm_cell_step", faulty_cell_step)
    assert not np.allclose(hidden(fused), hidden(paper), rtol=1e-6, atol=1e-8)


# ---- the right-to-left pass of the Diagonal BiLSTM ------------------------------------------

def zero_last_row(x):
    """The bug: row H-1 becomes zeros, rows are not moved."""
    return pad(x[:, :, :-1], ((0, 0), (0, 0), (0, 1), (0, 0)))


class BottomPadded(DiagonalLSTM):
    """State-to-state 2x1 conv padded at the bottom ('same'): taps rows r and r + 1."""
    state_padding = ((0, 1), (0, 0))


class BottomPaddedBiLSTM(DiagonalBiLSTMLayer):
    direction = BottomPadded


def diagonal_model_with(layer_cls):
    class Faulty(DiagonalBiLSTM):
        def make_layer(self, h, colours, rng, dtype):
            return layer_cls(h, colours, rng, dtype)
    return Faulty


def paper_diagonal(colours, rng):
    return make_layer("diagonal", 3, colours, rng, fast=False)


@pytest.mark.parametrize("colours", [1, 3])
def test_correct_bilstm_is_causal_on_both_paths(colours):
    for fast_path in (True, False):
        layer = make_layer("diagonal", 3, colours, np.random.default_rng(0), fast=fast_path)
        assert_none(layer_violations(layer, 3, colours))
        assert_none(model_leaks(model(DiagonalBiLSTM, colours, 2 if colours == 1 else 4,
                                      fast=fast_path)))


def same_row_right(bad):
    return [(o, i) for o, i in bad if i[1] == o[1] and i[2] > o[2]]


def row_below(bad):
    return [(o, i) for o, i in bad if i[1] > o[1]]


@pytest.mark.parametrize("colours", [1, 3])
def test_r2l_not_shifted_down_leaks(colours, monkeypatch):
    monkeypatch.setattr(diagonal_module, "shift_down", lambda r2l: r2l)
    bad = layer_violations(paper_diagonal(colours, np.random.default_rng(0)), 3, colours)
    # it sees the current row to the right, and nothing else
    assert bad and len(same_row_right(bad)) == len(bad)
    bad = model_leaks(model(DiagonalBiLSTM, colours, 2 if colours == 1 else 4, fast=False))
    assert bad and same_row_right(bad)
    monkeypatch.setattr(fast_layers_module, "R2L_SHIFT", 0)                     # the fast layer
    assert model_leaks(model(DiagonalBiLSTM, colours, 2 if colours == 1 else 4))


@pytest.mark.parametrize("colours", [1, 3])
def test_r2l_last_row_zeroed_instead_of_shift_leaks(colours, monkeypatch):
    monkeypatch.setattr(diagonal_module, "shift_down", zero_last_row)
    bad = layer_violations(paper_diagonal(colours, np.random.default_rng(0)), 3, colours, H=4)
    assert bad and len(same_row_right(bad)) == len(bad)
    assert {o[1] for o, _ in bad} == {0, 1, 2}         # every row but the zeroed last one
    assert model_leaks(model(DiagonalBiLSTM, colours, 2 if colours == 1 else 4, fast=False))


@pytest.mark.parametrize("colours", [1, 3])
def test_state_conv_padded_at_the_bottom_leaks(colours, monkeypatch):
    layer = BottomPaddedBiLSTM(3, colours, np.random.default_rng(0), np.float64)
    bad = layer_violations(layer, 3, colours)
    assert bad and row_below(bad)                       # it sees the row below
    bad = model_leaks(model(diagonal_model_with(BottomPaddedBiLSTM), colours,
                            2 if colours == 1 else 4, fast=False))
    assert bad and row_below(bad)
    monkeypatch.setattr(fast_layers_module, "DIAGONAL_OFFSETS", (0, 1))        # the fast scan
    bad = model_leaks(model(DiagonalBiLSTM, colours, 2 if colours == 1 else 4))
    assert bad and row_below(bad)


# ---- masks ------------------------------------------------------------------------------------

def groups_ignored(kinds):
    """conv_mask that treats every channel as one group for the given mask kinds."""
    real = conv_mask

    def faulty(kind, out_groups, in_groups, KH, KW):
        if kind in kinds:
            out_groups, in_groups = np.zeros(len(out_groups), int), np.zeros(len(in_groups), int)
        return real(kind, out_groups, in_groups, KH, KW)
    return faulty


@pytest.mark.parametrize("cls", MODELS)
def test_mask_b_ignoring_colour_groups_leaks(cls, monkeypatch):
    """Mask A per group, mask B ignoring groups (an unmasked centre that mixes R, G, B)."""
    assert_none(model_leaks(model(cls)))
    monkeypatch.setattr(conv_module, "conv_mask", groups_ignored({"B"}))
    faulty = model(cls)
    bad = model_leaks(faulty)
    assert bad
    # inside each pixel: R sees R and G, G sees G (through the first layer's G and B features,
    # which hold the colours before them); B sees nothing new
    assert all(o[1:] == i[1:] for o, i in bad)
    assert {(o[0], i[0]) for o, i in bad} == {(0, 0), (0, 1), (1, 1)}
    assert len(bad) == 3 * 4 * 5
    # the mask reference check fails too
    g = channel_groups(6, 3)
    assert not np.array_equal(faulty.layers[0].output.mask if cls is not PixelCNN
                              else faulty.layers[0].expand.mask,
                              ref_conv_mask("B", g, channel_groups(3, 3), 1, 1))


@pytest.mark.parametrize("cls", MODELS)
def test_masks_ignoring_colour_groups_lose_the_colour_order(cls, monkeypatch):
    """Both masks ignoring groups: no leak (mask A then hides the whole pixel), but G and B
    no longer see the earlier colours of their pixel: the reference checks fail."""
    correct = model(cls)
    dep = dependency_map(correct, 4, 5, seed=1)
    assert dep[1, 2, 2, 0, 2, 2] and dep[2, 2, 2, 1, 2, 2]        # G sees R, B sees G
    monkeypatch.setattr(conv_module, "conv_mask", groups_ignored({"A", "B"}))
    faulty = model(cls)
    np.testing.assert_array_equal(faulty.first.mask[:, :, 3, 3], 0)
    assert not np.array_equal(faulty.first.mask, ref_conv_mask(
        "A", channel_groups(6, 3), channel_groups(3, 3), 7, 7))
    dep = dependency_map(faulty, 4, 5, seed=1)
    assert_none(leaks(dep))
    eye = np.eye(20, dtype=bool).reshape(4, 5, 4, 5)
    same_pixel = dep & eye[None, :, :, None]
    assert not same_pixel.any()                                    # the colour order is gone
    assert (context_map(3, 4, 5) & eye[None, :, :, None]).any()


def gate_mask_over_4h(h, colours, gates=4):
    """The bug: group the 4h gate maps as one block of 4h channels."""
    return channel_groups(gates * h, colours)


@pytest.mark.parametrize("h", [3, 4])
def test_gate_mask_built_over_all_4h_maps_leaks(h, monkeypatch):
    rng = np.random.default_rng(0)
    layers = [RowLSTMLayer(h, 3, rng, np.float64), DiagonalBiLSTMLayer(h, 3, rng, np.float64)]
    for layer in layers:
        assert_none(layer_violations(layer, h, 3))
    assert_none(model_leaks(model(RowLSTM, h=h)))
    assert_none(model_leaks(model(DiagonalBiLSTM, h=h)))
    monkeypatch.setattr(row_module, "gate_groups", gate_mask_over_4h)
    monkeypatch.setattr(diagonal_module, "gate_groups", gate_mask_over_4h)
    rng = np.random.default_rng(0)
    for layer in [RowLSTMLayer(h, 3, rng, np.float64), DiagonalBiLSTMLayer(h, 3, rng, np.float64)]:
        bad = layer_violations(layer, h, 3)
        assert bad and all(o[1:] == i[1:] for o, i in bad)    # a later group of the same pixel
    assert model_leaks(model(RowLSTM, h=h)) and model_leaks(model(DiagonalBiLSTM, h=h))


def mask_a_as_b(kind, out_groups, in_groups, KH, KW):
    return conv_mask("B" if kind == "A" else kind, out_groups, in_groups, KH, KW)


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("colours, levels", [(1, 2), (3, 4)])
def test_mask_a_centre_kept_in_first_layer_leaks(cls, colours, levels, monkeypatch):
    assert_none(model_leaks(model(cls, colours, levels)))
    monkeypatch.setattr(conv_module, "conv_mask", mask_a_as_b)
    m = model(cls, colours, levels)
    assert m.first.mask[:, :, 3, 3].any()
    bad = model_leaks(m)
    # every output sub-pixel now sees its own input value
    own = {((k, r, c), (k, r, c)) for k in range(colours) for r in range(4) for c in range(5)}
    assert own <= set(bad)


def flipped_forward(self, x, bias=True):
    """The bug: a true convolution (kernel flipped) of the cross-correlation-masked weight."""
    w = self.weight * Tensor(self.device_mask())
    return conv2d(x, flip(w, (2, 3)), self.bias if bias else None, self.padding)


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("colours, levels", [(1, 2), (3, 4)])
def test_flipped_kernel_with_cross_correlation_mask_leaks(cls, colours, levels, monkeypatch):
    assert_none(model_leaks(model(cls, colours, levels)))
    monkeypatch.setattr(MaskedConv2d, "forward", flipped_forward)
    bad = model_leaks(model(cls, colours, levels))
    assert bad and row_below(bad)            # the flipped 7x7 kernel reads the rows below


def test_flipped_kernel_leaks_in_single_layers(monkeypatch):
    rng = np.random.default_rng(0)
    g = channel_groups(6, 3)
    conv = MaskedConv2d("B", g, g, 3, rng=rng, dtype=np.float64)
    row = RowLSTMLayer(3, 3, rng, np.float64)
    for layer in (conv, row):
        assert_none(layer_violations(layer, 3, 3))
    monkeypatch.setattr(MaskedConv2d, "forward", flipped_forward)
    assert row_below(layer_violations(conv, 3, 3))                 # 3x3: the row below
    bad = layer_violations(row, 3, 3)                               # 1x3: the pixel to the right
    assert bad and same_row_right(bad)
