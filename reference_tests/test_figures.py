"""The receptive-field figure and the audit map share one palette, with a legend and titles."""
import numpy as np

from minipixel.figures import (FIELD_COLOURS, FIELD_LABELS, field_codes, legend,
                               receptive_field_figure)
from minipixel.font import text_size


def has(img, colour):
    return int(np.all(img == colour, axis=-1).sum())


def test_legend_shows_every_colour_and_label():
    key = legend(scale=1)
    for name, colour in FIELD_COLOURS.items():
        assert has(key, colour) >= 25, name                 # a 7x7 swatch, framed
    assert has(key, (0, 0, 0)) > 49 + 200                    # a swatch and the labels' ink
    widest = max(text_size(label, 1)[1] for label in FIELD_LABELS.values())
    assert key.shape[1] >= widest + 12 and key.shape[0] >= 5 * 10


def test_field_codes_match_the_palette_order():
    allowed = np.array([True, True, False, False])
    reached = np.array([True, False, False, True])
    assert field_codes(allowed, reached).tolist() == [1, 2, 3, 4]
    assert list(FIELD_COLOURS) == ["pixel", "reached", "missed", "future", "leak"]


def test_receptive_field_panels_have_titles_and_a_legend():
    code = np.full((6, 6), 3, np.uint8)
    code[:3] = 1
    code[3, :2] = 2
    code[3, 2] = 0
    plain = receptive_field_figure([code, code], scale=4)
    titled = receptive_field_figure([code, code], scale=4, titles=["PixelCNN", "Row LSTM"])
    assert titled.shape[0] > plain.shape[0]                  # a title band above the panels
    band = titled[4:4 + text_size("PixelCNN", 1)[0]]         # below the outer margin
    assert has(band, (0, 0, 0)) > 20                         # text in the band
    for name in ("pixel", "reached", "missed", "future"):
        assert has(titled, FIELD_COLOURS[name]) > 0
    # the legend below the panels carries every colour, the leak colour included
    assert has(titled[-60:], FIELD_COLOURS["leak"]) >= 25
