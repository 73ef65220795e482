"""The bitmap font: distinct glyphs, exact sizes, clipping at the image's edges."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from minipixel.font import GLYPH_H, GLYPH_W, draw_text, text_size

PRINTABLE = "".join(chr(c) for c in range(32, 127))


def test_every_printable_glyph_but_space_is_distinct_and_visible():
    seen = {}
    for ch in PRINTABLE[1:]:
        img = draw_text(np.zeros((GLYPH_H, GLYPH_W), np.uint8), ch, 0, 0, 1)
        assert img.any(), f"{ch!r} draws nothing"
        key = img.tobytes()
        assert key not in seen, f"{ch!r} looks like {seen.get(key)!r}"
        seen[key] = ch


@given(st.text(alphabet=PRINTABLE[1:], min_size=1, max_size=6), st.integers(1, 3))
def test_text_size_is_the_bounding_box_of_what_is_drawn(text, scale):
    h, w = text_size(text, scale)
    img = np.zeros((h + 4 * scale, w + 4 * scale), np.uint8)
    draw_text(img, text, 2 * scale, 2 * scale, 255, scale)
    rows, cols = np.nonzero(img)
    assert rows.min() >= 2 * scale and rows.max() < 2 * scale + h
    assert cols.min() >= 2 * scale and cols.max() < 2 * scale + w


def test_text_outside_the_image_is_clipped_not_an_error():
    img = np.zeros((5, 5, 3), np.uint8)
    draw_text(img, "Hello\nworld", -3, -4, (9, 8, 7), scale=2)
    draw_text(img, "far", 100, 100, (1, 2, 3))
    assert set(np.unique(img)) <= {0, 7, 8, 9}


def test_a_bad_scale_is_refused():
    with pytest.raises(ValueError, match="positive integer"):
        draw_text(np.zeros((4, 4), np.uint8), "a", 0, 0, 1, scale=0)
