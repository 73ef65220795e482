"""RGB digits: each grey digit painted in a random colour on a random background.

For a digit with foreground colour ``fg`` and background colour ``bg`` (8-bit
RGB triples) every pixel of every channel is

    pixel = bg + (fg - bg) * grey / 255,   rounded half up to uint8

so grey 0 is exactly ``bg`` and grey 255 exactly ``fg``; the rounding is done
in integers, ``(2 * (255*bg + (fg-bg)*grey) + 255) // 510``, so it is exact and
the same on every platform.

The colours of digit ``i`` of a split come from their own generator,
``np.random.default_rng([seed, SPLIT_CODES[split], i])`` with ``seed = RGB_SEED``:
it draws (fg, bg) as 2x3 integers in 0..255 and draws again while their
Euclidean distance is below ``MIN_COLOUR_DISTANCE`` (160 of a possible 441),
so the digit always stands out. The colours therefore depend only on
(seed, split, position), not on how many digits are loaded.
"""
import functools

import numpy as np

__all__ = ["colourize", "digit_colours", "rgb_digits",
           "RGB_SEED", "MIN_COLOUR_DISTANCE", "SPLIT_CODES"]

RGB_SEED = 0
MIN_COLOUR_DISTANCE = 160.0
SPLIT_CODES = {"train": 0, "test": 1}


def _pair(seed, code, i):
    rng = np.random.default_rng([seed, code, i])
    while True:
        fg, bg = rng.integers(0, 256, size=(2, 3))
        if np.sqrt(np.sum((fg - bg) ** 2.0)) >= MIN_COLOUR_DISTANCE:
            return fg, bg


@functools.lru_cache(maxsize=8)
def _colours(n, code, seed):
    pairs = [_pair(seed, code, i) for i in range(n)]
    fg = np.array([p[0] for p in pairs], dtype=np.uint8).reshape(n, 3)
    bg = np.array([p[1] for p in pairs], dtype=np.uint8).reshape(n, 3)
    fg.flags.writeable = bg.flags.writeable = False
    return fg, bg


def digit_colours(n, split="train", seed=RGB_SEED):
    """(fg, bg): two uint8 arrays (n, 3), the colours of digits 0..n-1 of ``split``."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split: expected one of {tuple(SPLIT_CODES)}, got {split!r}")
    fg, bg = _colours(int(n), SPLIT_CODES[split], int(seed))
    return fg.copy(), bg.copy()


def colourize(grey, fg, bg):
    """grey uint8 (N, H, W) or (N, 1, H, W), fg/bg uint8 (N, 3) -> uint8 (N, 3, H, W)."""
    grey = np.asarray(grey)
    if grey.ndim == 4 and grey.shape[1] == 1:
        grey = grey[:, 0]
    if grey.ndim != 3:
        raise ValueError(f"grey: expected shape (N, H, W) or (N, 1, H, W), got {grey.shape}")
    n = grey.shape[0]
    fg, bg = np.asarray(fg), np.asarray(bg)
    if fg.shape != (n, 3) or bg.shape != (n, 3):
        raise ValueError(f"fg, bg: expected shape ({n}, 3), got {fg.shape} and {bg.shape}")
    g = grey.astype(np.int32)[:, None]                       # (N, 1, H, W)
    f = fg.astype(np.int32)[:, :, None, None]                # (N, 3, 1, 1)
    b = bg.astype(np.int32)[:, :, None, None]
    num = 255 * b + (f - b) * g                               # 255 * exact value, >= 0
    return ((2 * num + 255) // 510).astype(np.uint8)


def rgb_digits(grey, split="train", seed=RGB_SEED):
    """Colour a whole split: digit i gets ``digit_colours(N, split, seed)[:, i]``."""
    fg, bg = digit_colours(len(grey), split, seed)
    return colourize(grey, fg, bg)
