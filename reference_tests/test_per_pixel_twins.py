"""Each layer's per-pixel twin (minipixel/sampling/per_pixel/) equals the layer's forward pass.

For every layer kind on its own (PixelCNN block, Row LSTM layer, Diagonal BiLSTM layer),
paper and fast classes, grey and RGB channel groups, non-square images: the twin, fed
the layer's input one pixel at a time in raster order, gives the layer's output at
each pixel, in float64 at 1e-12. A twin that reads one wrong tap of its cached states
fails here, at the layer's own level (not only in the whole-model sampling tests).
The same for each layer of a conditional network (the Multi-Scale model's), given a
conditioning map: its twin adds the layer's bias V (*) cond where the forward does.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from minipixel import Tensor, fast, layers, no_grad
from minipixel.sampling.per_pixel.cell import lstm_cell
from minipixel.sampling.per_pixel.conv import condition_bias
from minipixel.sampling.per_pixel.diagonal_bilstm import DiagonalPixels, DirectionPixels
from minipixel.sampling.per_pixel.row_lstm import RowLSTMPixels

from conftest import random_array

KINDS = {"pixelcnn": (layers.PixelCNNBlock, layers.PixelCNNBlock),
         "rowlstm": (layers.RowLSTMLayer, fast.FastRowLSTMLayer),
         "diagonal": (layers.DiagonalBiLSTMLayer, fast.FastDiagonalBiLSTMLayer)}


def twin_gap(layer, x, cond=None):
    """The largest |twin - forward| over every pixel, for the layer input x (N, 2h, H, W)
    (and a conditional layer's conditioning map cond (N, c, H, W))."""
    N, _, H, W = x.shape
    with no_grad():
        want = (layer(Tensor(x)) if cond is None else layer(Tensor(x), cond=Tensor(cond))).numpy()
    steps = layer.pixel_steps(N, H, W) if cond is None else \
        layer.pixel_steps(N, H, W, np.ascontiguousarray(cond.transpose(0, 2, 3, 1)))
    got = np.empty_like(want)
    out = np.empty((N, x.shape[1]))
    for r in range(H):
        steps.begin_row(r)
        for col in range(W):
            got[:, :, r, col] = steps.at(np.ascontiguousarray(x[:, :, r, col]), r, col, out)
    return float(np.abs(got - want).max())


def layer_and_input(kind, path, h, colours, N, H, W, seed, condition_maps=0):
    cls = KINDS[kind][path == "fast"]
    conditional = {"condition_maps": condition_maps} if condition_maps else {}
    layer = cls(h, colours, np.random.default_rng(seed), np.float64, **conditional)
    return layer, random_array(np.random.default_rng(seed + 1), (N, 2 * h, H, W))


def conditional_layer_and_inputs(kind, path, h, colours, N, H, W, maps, seed):
    """A conditional layer, its input x and a conditioning map (N, maps, H, W)."""
    layer, x = layer_and_input(kind, path, h, colours, N, H, W, seed, condition_maps=maps)
    return layer, x, random_array(np.random.default_rng(seed + 2), (N, maps, H, W))


@pytest.mark.parametrize("path", ["paper", "fast"])
@pytest.mark.parametrize("kind", sorted(KINDS))
@given(colours=st.sampled_from([1, 3]), h=st.integers(1, 5), N=st.integers(1, 2),
       H=st.integers(1, 5), W=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_each_layers_per_pixel_twin_equals_its_forward_pass(kind, path, colours, h, N, H, W,
                                                            seed):
    h = max(h, 3) if colours == 3 else h
    layer, x = layer_and_input(kind, path, h, colours, N, H, W, seed)
    assert twin_gap(layer, x) <= 1e-12


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_layers_per_pixel_twin_equals_its_forward_pass_rgb_non_square(kind):
    """Always run: RGB groups of unequal sizes (2h = 10 maps), a 4 x 7 image, 2 images."""
    layer, x = layer_and_input(kind, "paper", 5, 3, 2, 4, 7, seed=3)
    assert twin_gap(layer, x) <= 1e-12


def test_a_row_lstm_twin_reading_the_wrong_row_fails_at_the_layer_level(monkeypatch):
    """Test the test: K_ss of the Row LSTM twin taken over h_r instead of h_{r-1} (a wrong
    tap in one row's state) is caught by the layer-level comparison."""
    layer, x = layer_and_input("rowlstm", "paper", 3, 1, 2, 4, 5, seed=1)
    assert twin_gap(layer, x) <= 1e-12

    def begin_row_wrong(self, r):
        self.from_above = self.k_ss.row(min(r + 1, self.h_grid.shape[1] - 1))
        self.k_is.begin_row(r)
    monkeypatch.setattr(RowLSTMPixels, "begin_row", begin_row_wrong)
    assert twin_gap(layer, x) > 1e-3


def test_a_diagonal_twin_with_a_wrong_left_tap_fails_at_the_layer_level(monkeypatch):
    """Test the test: the Diagonal twin's K_left read from the row above (a wrong tap in one
    position's state) is caught by the layer-level comparison."""
    layer, x = layer_and_input("diagonal", "paper", 3, 1, 2, 4, 5, seed=2)
    assert twin_gap(layer, x) <= 1e-12

    def at_wrong(self, x, r, col):
        pre = self.k_is.vec(x) + self.from_above[:, col]
        pre += self.h_grid[:, r, col] @ self.k_left        # the bug: the state above, not left
        h_new, c_new = lstm_cell(pre, self.c_grid[:, r + 1, col])
        self.h_grid[:, r + 1, col + 1], self.c_grid[:, r + 1, col + 1] = h_new, c_new
        return h_new
    monkeypatch.setattr(DirectionPixels, "at", at_wrong)
    assert twin_gap(layer, x) > 1e-3


@pytest.mark.parametrize("path", ["paper", "fast"])
@pytest.mark.parametrize("kind", sorted(KINDS))
@given(colours=st.sampled_from([1, 3]), h=st.integers(1, 4), N=st.integers(1, 2),
       H=st.integers(1, 5), W=st.integers(1, 6), maps=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_each_conditional_layers_per_pixel_twin_equals_its_forward_pass(kind, path, colours, h,
                                                                        N, H, W, maps, seed):
    """The layer's bias V (*) cond, computed once by its twin, lands where the forward adds
    it: the twin equals the conditional layer's forward at every pixel."""
    h = max(h, 3) if colours == 3 else h
    layer, x, cond = conditional_layer_and_inputs(kind, path, h, colours, N, H, W, maps, seed)
    assert twin_gap(layer, x, cond) <= 1e-12
    with no_grad():                              # the map does change the layer's output
        moved = layer(Tensor(x), cond=Tensor(cond)).numpy() - layer(Tensor(x)).numpy()
    assert np.abs(moved).max() > 1e-6


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_conditional_layers_per_pixel_twin_equals_its_forward_pass_rgb_non_square(kind):
    """Always run: RGB groups of unequal sizes (2h = 10 maps), a 4 x 7 image, 2 maps."""
    layer, x, cond = conditional_layer_and_inputs(kind, "fast", 5, 3, 2, 4, 7, 2, seed=4)
    assert twin_gap(layer, x, cond) <= 1e-12


def test_a_right_to_left_twin_reading_the_map_unmirrored_fails(monkeypatch):
    """Test the test: the Diagonal twin's right-to-left pass given its bias in the image's
    column order instead of its own (mirrored) one is caught at the layer level."""
    layer, x, cond = conditional_layer_and_inputs("diagonal", "paper", 3, 1, 2, 4, 5, 2, seed=5)
    assert twin_gap(layer, x, cond) <= 1e-12
    build = DiagonalPixels.__init__

    def init_unmirrored(self, layer, N, H, W, cond=None):
        build(self, layer, N, H, W, cond)
        self.r2l.bias = condition_bias(layer.right_to_left, cond)      # the bug: not mirrored
    monkeypatch.setattr(DiagonalPixels, "__init__", init_unmirrored)
    assert twin_gap(layer, x, cond) > 1e-3


def test_a_twin_refuses_a_map_its_layer_has_no_conditioning_for():
    layer, x = layer_and_input("rowlstm", "paper", 3, 1, 1, 3, 3, seed=0)
    with pytest.raises(ValueError, match="no conditioning"):
        layer.pixel_steps(1, 3, 3, np.zeros((1, 3, 3, 2)))
