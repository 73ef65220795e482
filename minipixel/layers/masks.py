"""Masks for masked convolutions: the causal structure of PixelRNN (paper section 3.4).

Raster order: a pixel may see the rows above it and the pixels to its left.
Inside a pixel the colours come in the order R, G, B, and every feature map is
assigned to one colour group:

    channel k of n belongs to group  k * 3 // n      (contiguous blocks; colours=3)
                                     0               (colours=1: one group)

Contiguous blocks are our choice (the paper does not say); for n = 16 the
groups are channels 0-5 (R), 6-10 (G), 11-15 (B). A layer's 4h gate maps are
four blocks of h, and each block is grouped like the h hidden units it feeds
(gate_groups), never as one block of 4h.

For a kernel KH x KW with centre (KH // 2, KW // 2):
  - taps below the centre row, and right of the centre on its row, are zero;
  - at the centre, output group g sees input group g' when
        mask A:  g' <  g     (first layer: R sees nothing of its own pixel)
        mask B:  g' <= g     (every later layer)
With one colour (grey or binary images) mask A zeroes the centre, mask B keeps it.
"""
import numpy as np

COLOUR_NAMES = "RGB"


def channel_groups(n, colours):
    """Colour group (0, 1, 2) of each of n channels; all 0 when colours == 1."""
    if colours not in (1, 3):
        raise ValueError(f"colours must be 1 or 3, got {colours}")
    if colours == 1:
        return np.zeros(n, dtype=np.int64)
    return np.arange(n) * 3 // n


def gate_groups(h, colours, gates=4):
    """Groups of the `gates` x h gate maps: each gate block grouped like the h units."""
    return np.tile(channel_groups(h, colours), gates)


def conv_mask(kind, out_groups, in_groups, KH, KW):
    """0/1 mask (OC, C, KH, KW) of type 'A' or 'B' for the given channel groups."""
    if kind not in ("A", "B"):
        raise ValueError(f"mask kind must be 'A' or 'B', got {kind!r}")
    out_groups, in_groups = np.asarray(out_groups), np.asarray(in_groups)
    mask = np.ones((len(out_groups), len(in_groups), KH, KW))
    ci, cj = KH // 2, KW // 2
    mask[:, :, ci + 1:, :] = 0          # rows below the centre
    mask[:, :, ci, cj + 1:] = 0         # right of the centre on its row
    og, ig = out_groups[:, None], in_groups[None, :]
    mask[:, :, ci, cj] = (ig < og) if kind == "A" else (ig <= og)
    return mask
