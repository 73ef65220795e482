"""The paper's exact fields as package functions (minipixel/crosscheck/fields.py) equal the
exact gradient dependency maps of minipixel's models, and the formulas the coverage tests use."""
import numpy as np
import pytest

from minipixel.causality import context_map, dependency_map
from minipixel.crosscheck.fields import (blind_spot, expected_field, field_name, maskb_field,
                                         pixelcnn_blind_spot, pixelcnn_field, row_lstm_field,
                                         stack_field)
from minipixel.models import build

from pixel_reference import (as_set, diagonal_model_missing, pixelcnn_model_field,
                             row_lstm_model_field)


@pytest.mark.parametrize("kind", ["pixelcnn", "rowlstm", "diagonal"])
@pytest.mark.parametrize("colours, levels, H, W, layers", [
    (1, 2, 7, 8, 1), (1, 2, 8, 6, 3), (3, 4, 5, 7, 2)])
def test_expected_field_is_the_models_exact_map(kind, colours, levels, H, W, layers):
    m = build(kind, channels=colours, levels=levels, h=3, layers=layers, out_hidden=6, seed=5,
              dtype=np.float64)
    dep = dependency_map(m, H, W, seed=6, leaky=True)
    assert np.array_equal(dep, expected_field(kind, colours, H, W, layers))


@pytest.mark.parametrize("C, H, W", [(1, 8, 8), (3, 5, 7), (1, 3, 9)])
@pytest.mark.parametrize("L", [1, 2, 6])
def test_fields_equal_the_coverage_tests_formulas(C, H, W, L):
    assert np.array_equal(pixelcnn_field(C, H, W, L), pixelcnn_model_field(C, H, W, L))
    assert np.array_equal(row_lstm_field(C, H, W, L), row_lstm_model_field(C, H, W, L))
    missed = as_set(context_map(C, H, W) & ~expected_field("diagonal", C, H, W))
    assert missed == diagonal_model_missing(C, H, W)


def test_blind_spot_is_what_deep_pixelcnn_misses():
    """On 8x8 with L >= 4, pixel (7, 0) misses row 6 columns 4-7, row 5 columns 5-7,
    row 4 columns 6-7 and row 3 column 7: the blind spot and nothing else."""
    spot = pixelcnn_blind_spot(1, 8, 8)[0, 7, 0, 0]
    assert {(int(r), int(c)) for r, c in np.argwhere(spot)} == {
        (6, 4), (6, 5), (6, 6), (6, 7), (5, 5), (5, 6), (5, 7), (4, 6), (4, 7), (3, 7)}
    missed = context_map(1, 8, 8) & ~pixelcnn_field(1, 8, 8, 5)
    assert np.array_equal(missed[0, 7, 0, 0], spot)


def test_expected_field_checks_its_arguments():
    with pytest.raises(ValueError, match="unknown model kind"):
        expected_field("gan", 1, 4, 4, 1)
    with pytest.raises(ValueError, match="layers"):
        expected_field("rowlstm", 1, 4, 4, None)
    with pytest.raises(ValueError, match="layers"):
        expected_field("maskb", 1, 4, 4, None)
    with pytest.raises(ValueError, match="odd"):
        expected_field("maskb", 1, 4, 4, 2, (7, 4))
    with pytest.raises(ValueError, match="kernels are for the maskb"):
        expected_field("pixelcnn", 1, 4, 4, 2, (7, 3))
    assert expected_field("diagonal", 1, 4, 4).shape == (1, 4, 4, 1, 4, 4)


@pytest.mark.parametrize("C, H, W", [(1, 8, 8), (3, 5, 7), (1, 3, 9), (3, 2, 2)])
@pytest.mark.parametrize("L", [1, 2, 6])
def test_the_maskb_stack_with_kernels_7_3_is_the_pixelcnn_formula(C, H, W, L):
    """Two independent derivations: the closed form of the paper's PixelCNN, and the
    propagation of every input's reach through 7x7 mask A and L 3x3 mask B on the grid."""
    assert np.array_equal(maskb_field(C, H, W, L), pixelcnn_field(C, H, W, L))
    assert np.array_equal(blind_spot("maskb", C, H, W), pixelcnn_blind_spot(C, H, W))


def test_full_field_is_the_context_and_stack_fields_by_hand():
    assert np.array_equal(expected_field("full", 3, 4, 5), context_map(3, 4, 5))
    # one 3x3 mask A on a grey 4x4 image, then the head: the pixel to the left and the
    # three above (inside the image)
    f = stack_field(1, 4, 4, [("A", 3, 3)])[0]
    for r in range(4):
        for c in range(4):
            want = {(r, c - 1)} | {(r - 1, c + d) for d in (-1, 0, 1)}
            want = {(a, b) for a, b in want if 0 <= a < 4 and 0 <= b < 4}
            assert {(int(a), int(b)) for _, a, b in np.argwhere(f[r, c])} == want
    # RGB, mask A then mask B at 1x1: the colour order inside the pixel, nothing else
    f = stack_field(3, 2, 2, [("A", 1, 1), ("B", 1, 1)])
    assert np.array_equal(f[:, 1, 1, :, 1, 1], np.tril(np.ones((3, 3), bool), -1))
    assert not f[:, 1, 1, :, 0].any() and not f[:, 1, 1, :, :, 0].any()
    # two mask-A layers: G no longer sees its own R, B sees its R only
    f = stack_field(3, 1, 1, [("A", 1, 1), ("A", 1, 1)])[:, 0, 0, :, 0, 0]
    assert f.tolist() == [[False] * 3, [False] * 3, [True, False, False]]
    with pytest.raises(ValueError, match="odd"):
        stack_field(1, 3, 3, [("A", 2, 3)])


def test_field_names():
    assert field_name("pixelcnn", 2) == "the paper's pixelcnn (2 layers)"
    assert field_name("maskb", 6, (7, 7)) == \
        "a mask-B stack (7x7 mask A, then 6 7x7 mask-B layers)"
    assert field_name("full").startswith("a full-context model")
