"""The pictures: sample grids, the paper's completions figure, receptive fields.

Each function returns a uint8 picture (H, W) grey or (H, W, 3) RGB, ready for
``png.write_png``. Images come in the models' layout: (N, C, H, W) integers
in 0..levels-1.
"""
import numpy as np

from .font import draw_text, text_size
from .png import grid, to_display, upscale

__all__ = ["samples_figure", "two_scale_figure", "completions_figure", "upscale_figure",
           "small_as_blocks", "occlusion_mask", "receptive_field_maps",
           "receptive_field_figure", "receptive_field_text", "RF_COLOURS", "FIELD_COLOURS",
           "field_codes", "legend", "with_legend"]

OCCLUDED_GREY = 128
PAD_GREY = 90                        # between and around the tiles


def samples_figure(images, levels, ncols=None, scale=3, pad=2):
    """A grid of images (N, C, H, W), upscaled `scale` times."""
    return upscale(grid(to_display(images, levels), ncols=ncols, pad=pad, pad_value=PAD_GREY),
                   scale)


def small_as_blocks(small, factor, H, W):
    """Small images (N, C, ceil(H/k), ceil(W/k)) at the large size (N, C, H, W): each small
    pixel a k x k block (nearest neighbour), its top-left pixel where the large image
    holds it (a Multi-Scale model's small image is the pixel (k r, k c) of each block)."""
    small = np.asarray(small)
    return small.repeat(factor, axis=2).repeat(factor, axis=3)[:, :, :H, :W]


def two_scale_figure(small, large, levels, factor, ncols=None, scale=3, pad=2):
    """A Multi-Scale model's samples: a grid of pairs, the small image (N, C, s_H, s_W)
    shown at the large one's size (``small_as_blocks``) left of the large image
    (N, C, H, W), one pad apart; the pairs 2 * pad apart. ncols: pairs per row."""
    large = to_display(large, levels)
    N, C, H, W = large.shape
    gap = np.full((N, C, H, pad), PAD_GREY, np.uint8)
    pairs = np.concatenate([to_display(small_as_blocks(small, factor, H, W), levels), gap,
                            large], axis=3)
    return upscale(grid(pairs, ncols=ncols, pad=2 * pad, pad_value=PAD_GREY), scale)


def occlusion_mask(H, W, keep_rows):
    """(H, W) boolean: True on the first `keep_rows` rows (the part a completion is given)."""
    mask = np.zeros((H, W), bool)
    mask[:keep_rows] = True
    return mask


def completions_figure(originals, completions, levels, keep_rows, scale=3, pad=2):
    """The paper's figure 1 layout, one row per test image:

        occluded | completion 1 ... completion k | original

    originals (n, C, H, W), completions (n, k, C, H, W); rows below `keep_rows`
    of the occluded image are drawn mid-grey."""
    occluded = to_display(originals, levels)
    occluded[:, :, keep_rows:] = OCCLUDED_GREY
    return rows_figure(occluded, completions, originals, levels, scale, pad)


def upscale_figure(originals, small, drawn, levels, factor, scale=3, pad=2):
    """A Multi-Scale model's upscalings, one row per test image:

        small image (as k x k blocks) | large image 1 ... large image m | original

    originals (n, C, H, W), their small images (n, C, s_H, s_W), drawn (n, m, C, H, W)."""
    H, W = np.shape(originals)[2:]
    return rows_figure(to_display(small_as_blocks(small, factor, H, W), levels), drawn,
                       originals, levels, scale, pad)


def rows_figure(first, drawn, originals, levels, scale=3, pad=2):
    """One row per image: first (n, C, H, W) display values | drawn (n, m, C, H, W) | the
    original (n, C, H, W), the last two in 0..levels-1."""
    originals, drawn = np.asarray(originals), np.asarray(drawn)
    n, k = drawn.shape[:2]
    tiles = np.concatenate([first[:, None], to_display(drawn, levels),
                            to_display(originals, levels)[:, None]], axis=1)
    return upscale(grid(tiles.reshape((n * (k + 2),) + tiles.shape[2:]), ncols=k + 2, pad=pad,
                        pad_value=PAD_GREY), scale)


# ---- receptive fields and dependency maps: one palette ---------------------------------------
FIELD_COLOURS = {                    # in code order: code i is the i-th entry
    "pixel": (220, 40, 40),          # the output (sub-)pixel itself
    "reached": (40, 90, 200),        # context that the output depends on
    "missed": (250, 190, 50),        # context it does not reach (blind spot, limited field)
    "future": (232, 232, 232),       # not part of the context (must never be reached)
    "leak": (0, 0, 0),               # a dependency on the future: a bug
}
FIELD_LABELS = {"pixel": "the output", "reached": "context reached",
                "missed": "context not reached", "future": "future (not context)",
                "leak": "LEAK: future reached"}
RF_COLOURS = FIELD_COLOURS           # the receptive-field figure's name for it
RF_CHARS = {"pixel": "@", "reached": "#", "missed": "o", "future": ".", "leak": "!"}
_CODES = tuple(FIELD_COLOURS)
LEGEND_BG, LEGEND_INK = (255, 255, 255), (0, 0, 0)


def field_codes(allowed, reached):
    """Code array (0..4, see FIELD_COLOURS) from boolean context and dependency arrays:
    1 reached context, 2 missed context, 3 future, 4 leak (the caller marks the pixel, 0)."""
    code = np.full(np.shape(allowed), 3, np.uint8)
    code[allowed & reached] = 1
    code[allowed & ~reached] = 2
    code[~allowed & reached] = 4
    return code


def legend(names=_CODES, scale=1):
    """A white uint8 (h, w, 3) legend: one line per name, a colour swatch then its label."""
    line_h = text_size("Ag", scale)[0] + 3 * scale
    width = max(text_size(FIELD_LABELS[n], scale)[1] for n in names) + 14 * scale
    img = np.full((line_h * len(names) + 2 * scale, width + 4 * scale, 3), LEGEND_BG, np.uint8)
    for i, name in enumerate(names):
        y = 2 * scale + i * line_h
        img[y:y + 7 * scale, 2 * scale:9 * scale] = FIELD_COLOURS[name]
        img[y:y + 7 * scale, 2 * scale] = img[y:y + 7 * scale, 9 * scale - 1] = 120  # frame
        img[y, 2 * scale:9 * scale] = img[y + 7 * scale - 1, 2 * scale:9 * scale] = 120
        draw_text(img, FIELD_LABELS[name], 12 * scale, y, LEGEND_INK, scale)
    return img


def stack_below(top, bottom, bg=LEGEND_BG):
    """Two RGB pictures one above the other, left-aligned, padded to one width with bg."""
    W = max(top.shape[1], bottom.shape[1])
    pad = [np.concatenate([p, np.full((p.shape[0], W - p.shape[1], 3), bg, np.uint8)], axis=1)
           for p in (top, bottom)]
    return np.concatenate(pad, axis=0)


def with_legend(img, names=_CODES, scale=1):
    """img with the palette's legend below it."""
    return stack_below(img, legend(names, scale))


def receptive_field_maps(models, H, W, pixel, seed=0, leaky=True):
    """For each model, an (H, W) code map for output `pixel` = (r, c), last colour:
    0 the pixel, 1 context reached, 2 context missed, 3 future, 4 leak (see FIELD_COLOURS).
    An input pixel counts as reached when any of its colours moves any of the pixel's
    logits of the last colour (``causality.dependency_map``)."""
    from .causality import dependency_map
    r, c = pixel
    if not (0 <= r < H and 0 <= c < W):
        raise ValueError(f"pixel {pixel} is outside the {H} x {W} image")
    order = np.arange(H * W).reshape(H, W)
    context = order < order[r, c]
    maps = []
    for model in models:
        dep = dependency_map(model, H, W, seed=seed, leaky=leaky)
        reached = dep[model.channels - 1, r, c].any(axis=0)          # (H, W)
        code = field_codes(context, reached)
        code[r, c] = 4 if (reached[r, c] and model.channels == 1) else 0
        maps.append(code)
    return maps


def receptive_field_figure(maps, scale=14, gap=3, titles=None):
    """Code maps side by side, each cell `scale` pixels with a white grid line, a title
    above each panel (titles: one string per map) and the legend below."""
    palette = np.array([FIELD_COLOURS[k] for k in _CODES], np.uint8)
    text_scale = 2 if scale >= 10 else 1
    panels = []
    for i, code in enumerate(maps):
        img = upscale(palette[code], scale)
        img[::scale] = 255
        img[:, ::scale] = 255
        if titles:
            th, tw = text_size(titles[i], text_scale)
            head = np.full((th + 2 * text_scale, max(img.shape[1], tw), 3), 255, np.uint8)
            draw_text(head, titles[i], 0, 0, LEGEND_INK, text_scale)
            img = stack_below(head, img, bg=(255, 255, 255))
        panels.append(img)
    H = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, H - p.shape[0]), (0, 0), (0, 0)), constant_values=255)
              for p in panels]
    gap_px = np.full((H, gap * scale, 3), 255, np.uint8)
    row = [panels[0]]
    for p in panels[1:]:
        row += [gap_px, p]
    out = np.concatenate(row, axis=1)
    key = np.pad(legend(_CODES, text_scale), ((scale, 0), (0, 0), (0, 0)), constant_values=255)
    out = stack_below(out, key, bg=(255, 255, 255))
    return np.pad(out, ((scale, scale), (scale, scale), (0, 0)), constant_values=255)


def receptive_field_text(code, title=""):
    """An ASCII drawing of one code map: @ pixel, # reached, o missed, . future, ! leak."""
    chars = np.array([RF_CHARS[k] for k in _CODES])
    lines = [" ".join(row) for row in chars[code]]
    return "\n".join(([title] if title else []) + lines)
