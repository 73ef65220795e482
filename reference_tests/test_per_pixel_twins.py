"""Each layer's per-pixel twin (minipixel/sampling/per_pixel/) equals the layer's forward pass.

For every layer kind on its own (PixelCNN block, Row LSTM layer, Diagonal BiLSTM layer),
paper and fast classes, grey and RGB channel groups, non-square images: the twin, fed
the layer's input one pixel at a time in raster order, gives the layer's output at
each pixel, in float64 at 1e-12. A twin that reads one wrong tap of its cached states
fails here, at the layer's own level (not only in the whole-model sampling tests).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from minipixel import Tensor, fast, layers, no_grad
from minipixel.sampling.per_pixel.cell import lstm_cell
from minipixel.sampling.per_pixel.diagonal_bilstm import DirectionPixels
from minipixel.sampling.per_pixel.row_lstm import RowLSTMPixels

from conftest import random_array

KINDS = {"pixelcnn": (layers.PixelCNNBlock, layers.PixelCNNBlock),
         "rowlstm": (layers.RowLSTMLayer, fast.FastRowLSTMLayer),
         "diagonal": (layers.DiagonalBiLSTMLayer, fast.FastDiagonalBiLSTMLayer)}


def twin_gap(layer, x):
    """The largest |twin - forward| over every pixel, for the layer input x (N, 2h, H, W)."""
    N, _, H, W = x.shape
    with no_grad():
        want = layer(Tensor(x)).numpy()
    steps = layer.pixel_steps(N, H, W)
    got = np.empty_like(want)
    out = np.empty((N, x.shape[1]))
    for r in range(H):
        steps.begin_row(r)
        for col in range(W):
            got[:, :, r, col] = steps.at(np.ascontiguousarray(x[:, :, r, col]), r, col, out)
    return float(np.abs(got - want).max())


def layer_and_input(kind, path, h, colours, N, H, W, seed):
    cls = KINDS[kind][path == "fast"]
    layer = cls(h, colours, np.random.default_rng(seed), np.float64)
    return layer, random_array(np.random.default_rng(seed + 1), (N, 2 * h, H, W))


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
