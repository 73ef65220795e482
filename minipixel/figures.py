"""The pictures: sample grids, the paper's completions figure, receptive fields.

Each function returns a uint8 picture (H, W) grey or (H, W, 3) RGB, ready for
``png.write_png``. Images come in the models' layout: (N, C, H, W) integers
in 0..levels-1.
"""
import numpy as np

from .png import grid, to_display, upscale

__all__ = ["samples_figure", "completions_figure", "occlusion_mask", "receptive_field_maps",
           "receptive_field_figure", "receptive_field_text", "RF_COLOURS"]

OCCLUDED_GREY = 128


def samples_figure(images, levels, ncols=None, scale=3, pad=2):
    """A grid of images (N, C, H, W), upscaled `scale` times."""
    return upscale(grid(to_display(images, levels), ncols=ncols, pad=pad, pad_value=90), scale)


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
    originals, completions = np.asarray(originals), np.asarray(completions)
    n, k = completions.shape[:2]
    occluded = to_display(originals, levels)
    occluded[:, :, keep_rows:] = OCCLUDED_GREY
    tiles = np.concatenate([occluded[:, None], to_display(completions, levels),
                            to_display(originals, levels)[:, None]], axis=1)
    return upscale(grid(tiles.reshape((n * (k + 2),) + tiles.shape[2:]), ncols=k + 2, pad=pad,
                        pad_value=90), scale)


# ---- receptive fields -----------------------------------------------------------
RF_COLOURS = {
    "pixel": (220, 40, 40),          # the output pixel
    "reached": (40, 90, 200),        # context that the pixel's logits depend on
    "missed": (250, 190, 50),        # context they do not reach (blind spot, limited field)
    "future": (232, 232, 232),       # not part of the context (must never be reached)
    "leak": (0, 0, 0),               # a dependency on the future: a bug
}
RF_CHARS = {"pixel": "@", "reached": "#", "missed": "o", "future": ".", "leak": "!"}
_CODES = ("pixel", "reached", "missed", "future", "leak")


def receptive_field_maps(models, H, W, pixel, seed=0, leaky=True):
    """For each model, an (H, W) code map for output `pixel` = (r, c), last colour:
    0 the pixel, 1 context reached, 2 context missed, 3 future, 4 leak (see RF_COLOURS).
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
        code = np.full((H, W), 3, np.uint8)
        code[context & reached] = 1
        code[context & ~reached] = 2
        code[~context & reached] = 4
        code[r, c] = 4 if (reached[r, c] and model.channels == 1) else 0
        maps.append(code)
    return maps


def receptive_field_figure(maps, scale=14, gap=3):
    """Code maps side by side, each cell `scale` pixels with a white grid line."""
    palette = np.array([RF_COLOURS[k] for k in _CODES], np.uint8)
    panels = []
    for code in maps:
        img = upscale(palette[code], scale)
        img[::scale] = 255
        img[:, ::scale] = 255
        panels.append(img)
    H = max(p.shape[0] for p in panels)
    gap_px = np.full((H, gap * scale, 3), 255, np.uint8)
    row = [panels[0]]
    for p in panels[1:]:
        row += [gap_px, p]
    out = np.concatenate(row, axis=1)
    return np.pad(out, ((scale, scale), (scale, scale), (0, 0)), constant_values=255)


def receptive_field_text(code, title=""):
    """An ASCII drawing of one code map: @ pixel, # reached, o missed, . future, ! leak."""
    chars = np.array([RF_CHARS[k] for k in _CODES])
    lines = [" ".join(row) for row in chars[code]]
    return "\n".join(([title] if title else []) + lines)
