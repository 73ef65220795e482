"""A tiny bitmap font for the labels in this project's pictures (no font files needed).

Notation:
    glyph   5 columns x 7 rows of on/off cells, one per printable ASCII character
    scale   each cell drawn as a scale x scale square
    advance 6 * scale pixels from one character to the next (one blank column);
            a line is 8 * scale pixels high

Each glyph is stored column by column, one byte per column, bit k set when row k
(counting from the top) is on: the classic 5x7 LCD layout. Characters outside
printable ASCII are drawn as '?'.

    image = np.full((20, 80, 3), 255, np.uint8)
    draw_text(image, "PixelCNN", 2, 2, (0, 0, 0), scale=2)
"""
import numpy as np

__all__ = ["draw_text", "text_size", "GLYPH_W", "GLYPH_H"]

GLYPH_W, GLYPH_H = 5, 7
_ADVANCE, _LINE = GLYPH_W + 1, GLYPH_H + 1

# 95 glyphs, ' ' (32) to '~' (126), 5 column bytes each, in hex.
_TABLE = (
    "0000000000 00005f0000 0007000700 147f147f14 242a7f2a12 2313086462 3649552250 0005030000"
    " 001c224100 0041221c00 082a1c2a08 08083e0808 0050300000 0808080808 0060600000 2010080402"
    " 3e5149453e 00427f4000 4261514946 2141454b31 1814127f10 2745454539 3c4a494930 0171090503"
    " 3649494936 064949291e 0036360000 0056360000 0008142241 1414141414 4122140800 0201510906"
    " 324979413e 7e1111117e 7f49494936 3e41414122 7f4141221c 7f49494941 7f09090101 3e41415132"
    " 7f0808087f 00417f4100 2040413f01 7f08142241 7f40404040 7f0204027f 7f0408107f 3e4141413e"
    " 7f09090906 3e4151215e 7f09192946 4649494931 01017f0101 3f4040403f 1f2040201f 7f2018207f"
    " 6314081463 0304780403 6151494543 00007f4141 0204081020 41417f0000 0402010204 4040404040"
    " 0001020400 2054545478 7f48444438 3844444420 384444487f 3854545418 087e090102 081454543c"
    " 7f08040478 00447d4000 2040443d00 007f102844 00417f4000 7c04180478 7c08040478 3844444438"
    " 7c14141408 081414187c 7c08040408 4854545420 043f444020 3c4040207c 1c2040201c 3c4030403c"
    " 4428102844 0c5050503c 4464544c44 0008364100 00007f0000 0041360800 0201020402"
)
_GLYPHS = np.array([[[(int(g[2 * c:2 * c + 2], 16) >> row) & 1 for c in range(GLYPH_W)]
                     for row in range(GLYPH_H)] for g in _TABLE.split()], bool)   # (95, 7, 5)


def _glyph(ch):
    code = ord(ch)
    return _GLYPHS[code - 32 if 32 <= code <= 126 else ord("?") - 32]


def text_size(text, scale=1):
    """(height, width) in pixels of `text` drawn at `scale` (lines split at newlines)."""
    lines = str(text).split("\n")
    width = max(len(line) for line in lines) * _ADVANCE - 1
    return (len(lines) * _LINE - 1) * scale, max(width, 0) * scale


def draw_text(image, text, x, y, colour, scale=1):
    """Draw `text` into `image` (uint8 (H, W) or (H, W, 3)) in place, its top-left
    corner at column x, row y; cells falling outside the image are clipped.
    Returns the image."""
    if scale < 1 or int(scale) != scale:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    H, W = image.shape[:2]
    for i, line in enumerate(str(text).split("\n")):
        for j, ch in enumerate(line):
            cells = np.repeat(np.repeat(_glyph(ch), scale, 0), scale, 1)
            top, left = y + i * _LINE * scale, x + j * _ADVANCE * scale
            r0, c0 = max(top, 0), max(left, 0)
            r1, c1 = min(top + cells.shape[0], H), min(left + cells.shape[1], W)
            if r0 >= r1 or c0 >= c1:
                continue
            on = cells[r0 - top:r1 - top, c0 - left:c1 - left]
            image[r0:r1, c0:c1][on] = colour
    return image
