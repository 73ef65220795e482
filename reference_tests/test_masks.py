"""Masks A and B, colour groups and gate groups (paper section 3.4; docs/paper.md).

The masks are compared entry by entry with ``pixel_reference.ref_conv_mask``, the
rule written from the spec: taps above the centre row and left of the centre on
its row are 1, taps below / right are 0, the centre tap follows the colour rule
(mask A: input group < output group; mask B: <=).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minipixel import Tensor
from minipixel.backend import to_numpy
from minipixel.layers import (DiagonalBiLSTMLayer, MaskedConv2d, PixelCNNBlock, RowLSTMLayer,
                              channel_groups, conv_mask, gate_groups)
from minipixel.models import DiagonalBiLSTM, PixelCNN, RowLSTM
from minipixel.ops.conv import kept_taps

from conftest import random_array
from pixel_reference import ref_conv_mask, ref_masked_conv

kinds = st.sampled_from(["A", "B"])
colours = st.sampled_from([1, 3])


# ---- channel groups ------------------------------------------------------------------------

@given(n=st.integers(1, 40))
def test_channel_groups_contiguous_blocks(n):
    g = channel_groups(n, 3)
    assert g.shape == (n,)
    assert g.tolist() == [k * 3 // n for k in range(n)]          # the documented rule
    assert g[0] == 0 and np.all(np.diff(g) >= 0) and np.all(np.diff(g) <= 1)
    sizes = np.bincount(g, minlength=3)
    if n >= 3:
        assert set(g.tolist()) == {0, 1, 2}
        assert sizes.max() - sizes.min() <= 1                     # as even as n allows
    assert channel_groups(n, 1).tolist() == [0] * n


def test_channel_groups_examples_and_errors():
    assert channel_groups(16, 3).tolist() == [0] * 6 + [1] * 5 + [2] * 5
    assert channel_groups(4, 3).tolist() == [0, 0, 1, 2]
    assert channel_groups(3, 3).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="colours must be 1 or 3"):
        channel_groups(6, 2)


@given(h=st.integers(1, 12), c=colours)
def test_gate_groups_one_block_per_gate(h, c):
    g = gate_groups(h, c)
    assert g.shape == (4 * h,)
    for gate in range(4):                                          # i, f, g, o
        assert g[gate * h:(gate + 1) * h].tolist() == channel_groups(h, c).tolist()


def test_gate_groups_differ_from_grouping_4h_as_one_block():
    # The pitfall of section 2: channel_groups(4h) gives the o gate of unit 0 the B group.
    h = 2
    assert gate_groups(h, 3).tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    assert channel_groups(4 * h, 3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]


# ---- conv_mask -----------------------------------------------------------------------------

@given(kind=kinds, c=colours, n_out=st.integers(1, 10), n_in=st.integers(1, 10),
       KH=st.integers(1, 7), KW=st.integers(1, 7))
def test_conv_mask_matches_spec(kind, c, n_out, n_in, KH, KW):
    og, ig = channel_groups(n_out, c), channel_groups(n_in, c)
    m = conv_mask(kind, og, ig, KH, KW)
    assert m.shape == (n_out, n_in, KH, KW)
    np.testing.assert_array_equal(m, ref_conv_mask(kind, og, ig, KH, KW))
    ci, cj = KH // 2, KW // 2
    # spatial zeros exact: below the centre row, and right of the centre on its row
    assert np.all(m[:, :, ci + 1:, :] == 0)
    assert np.all(m[:, :, ci, cj + 1:] == 0)
    # everything above / left is kept for every channel pair
    assert np.all(m[:, :, :ci, :] == 1)
    assert np.all(m[:, :, ci, :cj] == 1)
    # centre rule per group
    for o in range(n_out):
        for i in range(n_in):
            want = ig[i] < og[o] if kind == "A" else ig[i] <= og[o]
            assert m[o, i, ci, cj] == want, (kind, o, i, og[o], ig[i])


@given(n_out=st.integers(1, 8), n_in=st.integers(1, 8), k=st.sampled_from([1, 3, 5, 7]))
def test_grey_mask_a_zeroes_centre_b_keeps_it(n_out, n_in, k):
    og, ig = channel_groups(n_out, 1), channel_groups(n_in, 1)
    a, b = conv_mask("A", og, ig, k, k), conv_mask("B", og, ig, k, k)
    assert np.all(a[:, :, k // 2, k // 2] == 0)
    assert np.all(b[:, :, k // 2, k // 2] == 1)
    # they differ only at the centre
    diff = a != b
    diff[:, :, k // 2, k // 2] = False
    assert not diff.any()


def test_rgb_centre_examples():
    g = channel_groups(3, 3)                            # one channel per colour
    a = conv_mask("A", g, g, 3, 3)[:, :, 1, 1]
    b = conv_mask("B", g, g, 3, 3)[:, :, 1, 1]
    np.testing.assert_array_equal(a, [[0, 0, 0], [1, 0, 0], [1, 1, 0]])   # R sees nothing
    np.testing.assert_array_equal(b, [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    # 5 maps (groups R R G G B) from the 3 colours, as in a 7x7 first layer
    assert channel_groups(5, 3).tolist() == [0, 0, 1, 1, 2]
    first = conv_mask("A", channel_groups(5, 3), channel_groups(3, 3), 7, 7)[:, :, 3, 3]
    np.testing.assert_array_equal(first, [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0]])


def test_conv_mask_rejects_unknown_kind():
    with pytest.raises(ValueError, match="'A' or 'B'"):
        conv_mask("C", [0], [0], 3, 3)


# ---- kept taps -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, KH, KW, kept", [
    ("A", 7, 7, 24), ("B", 7, 7, 25), ("B", 3, 3, 5), ("A", 3, 3, 4),
    ("B", 1, 3, 2), ("A", 1, 3, 1), ("B", 1, 1, 1), ("B", 2, 1, 2)])
def test_kept_taps_grey(kind, KH, KW, kept):
    m = conv_mask(kind, channel_groups(6, 1), channel_groups(2, 1), KH, KW)
    assert len(kept_taps(m, KH, KW)) == kept


def test_kept_taps_7x7_mask_a_is_24():
    """The first layer of every model: 3 full rows of 7 above the centre and 3 taps left
    of it = 24 spatial taps. With RGB the centre is also computed (G sees R, B sees R and
    G there), so the conv gathers 25 taps; with one colour the centre is dropped."""
    for c, total in ((1, 24), (3, 25)):
        conv = MaskedConv2d("A", channel_groups(8, c), channel_groups(c, c), 7,
                            rng=np.random.default_rng(0), dtype=np.float64)
        off_centre = [t for t in conv.taps if t != (3, 3)]
        assert len(off_centre) == 24
        assert all(i < 3 or (i == 3 and j < 3) for i, j in off_centre)
        assert len(conv.taps) == total
        assert int(conv.mask.reshape(-1, 7, 7).any(axis=0).sum()) == total


# ---- MaskedConv2d applies its mask ---------------------------------------------------------

@given(kind=kinds, c=colours, n_out=st.integers(1, 6), n_in=st.integers(1, 6),
       k=st.sampled_from([(1, 1), (1, 3), (3, 3), (3, 5), (5, 3)]), seed=st.integers(0, 99))
def test_masked_conv_forward_uses_the_mask(device, kind, c, n_out, n_in, k, seed):
    rng = np.random.default_rng(seed)
    og, ig = channel_groups(n_out, c), channel_groups(n_in, c)
    conv = MaskedConv2d(kind, og, ig, k, rng=rng, dtype=np.float64).to(device)
    raw = conv.weight.numpy()
    x = random_array(np.random.default_rng(seed + 1), (2, n_in, 4, 5))
    out = conv(Tensor(random_array(np.random.default_rng(seed + 1), (2, n_in, 4, 5), device)))
    want = ref_masked_conv(x, raw, conv.bias.numpy(), ref_conv_mask(kind, og, ig, *k))
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(conv.weight.numpy(), raw)   # the raw weight is never changed
    out.sum().backward()
    g = to_numpy(conv.weight.grad)
    zero = ref_conv_mask(kind, og, ig, *k) == 0
    assert np.all(g[zero] == 0)                               # masked taps get no gradient


def test_masked_conv_keeps_size():
    conv = MaskedConv2d("B", channel_groups(4, 3), channel_groups(4, 3), 3,
                        rng=np.random.default_rng(1), dtype=np.float64)
    out = conv(Tensor(np.random.default_rng(2).uniform(-1, 1, (1, 4, 5, 7))))
    assert out.shape == (1, 4, 5, 7)


# ---- masks inside the layers and models ----------------------------------------------------

@pytest.mark.parametrize("h", [1, 2, 4, 5])
@pytest.mark.parametrize("c", [1, 3])
def test_layer_masks_are_per_gate(h, c):
    rng = np.random.default_rng(0)
    g2h, gh, gates = channel_groups(2 * h, c), channel_groups(h, c), gate_groups(h, c)
    row = RowLSTMLayer(h, c, rng, np.float64)
    np.testing.assert_array_equal(row.input_to_state.mask, ref_conv_mask("B", gates, g2h, 1, 3))
    np.testing.assert_array_equal(row.output.mask, ref_conv_mask("B", g2h, gh, 1, 1))
    diag = DiagonalBiLSTMLayer(h, c, rng, np.float64)
    for d in (diag.left_to_right, diag.right_to_left):
        np.testing.assert_array_equal(d.input_to_state.mask, ref_conv_mask("B", gates, g2h, 1, 1))
        assert d.state_to_state.shape == (4 * h, h, 2, 1)
    np.testing.assert_array_equal(diag.output.mask, ref_conv_mask("B", g2h, gh, 1, 1))
    block = PixelCNNBlock(h, c, rng, np.float64)
    np.testing.assert_array_equal(block.reduce.mask, ref_conv_mask("B", gh, g2h, 1, 1))
    np.testing.assert_array_equal(block.conv.mask, ref_conv_mask("B", gh, gh, 3, 3))
    np.testing.assert_array_equal(block.expand.mask, ref_conv_mask("B", g2h, gh, 1, 1))


@pytest.mark.parametrize("cls", [PixelCNN, RowLSTM, DiagonalBiLSTM])
@pytest.mark.parametrize("c, levels", [(1, 2), (3, 4), (1, 5)])
def test_model_masks(cls, c, levels):
    h, layers, out_hidden = 4, 2, 7
    m = cls(channels=c, levels=levels, h=h, layers=layers, out_hidden=out_hidden, dtype=np.float64)
    g2h, gout = channel_groups(2 * h, c), channel_groups(out_hidden, c)
    np.testing.assert_array_equal(m.first.mask, ref_conv_mask("A", g2h, channel_groups(c, c), 7, 7))
    np.testing.assert_array_equal(m.skip.mask, ref_conv_mask("B", gout, np.tile(g2h, layers), 1, 1))
    np.testing.assert_array_equal(m.out_hidden.mask, ref_conv_mask("B", gout, gout, 1, 1))
    values = 1 if levels == 2 else levels
    # logits are colour-major: channel colour * values + value belongs to that colour's group
    logit_groups = np.repeat(np.arange(c), values) if c == 3 else np.zeros(values, int)
    np.testing.assert_array_equal(m.out_logits.mask, ref_conv_mask("B", logit_groups, gout, 1, 1))
