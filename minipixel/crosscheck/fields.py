"""The exact receptive fields of the paper's three models, as dependency maps.

Notation: C colours, H x W image, L layers (PixelCNN blocks or RNN layers, each
after the 7x7 mask-A first layer). A field is a boolean array
(C, H, W, C, H, W): [output k, r, c, input k', r', c'], like the maps of
``minipixel.causality``. For output pixel (r, c) and an earlier input pixel
(r', c'), d = r - r' (rows up) and dx = c' - c (columns right):

    PixelCNN         d = 0: -3-L <= dx < 0
                     d >= 1: d <= 3+L, dx >= -3-L, dx <= 2 + min(d, L+1)
    Row LSTM         d = 0: -3-L <= dx < 0
                     d >= 1: -3-L-d <= dx <= 2+d
    Diagonal BiLSTM  the whole context, except that pixels (r+1, c) with
                     c <= W-5 never see the last colour of pixel (r, W-1)

Every earlier pixel inside the field is reached in all its colours; inside
the output's own pixel the earlier colours are reached (the colour order).
PixelCNN's blind spot is the part of the context right of its field's edge:
{d >= 1, dx >= d + 3}. The reference tests check each formula against the
exact gradient maps of minipixel's models (reference_tests/test_crosscheck_fields.py).
"""
import numpy as np

from ..causality import context_map

__all__ = ["KINDS", "expected_field", "pixelcnn_field", "row_lstm_field", "diagonal_field",
           "pixelcnn_blind_spot", "field_from_reach"]

KINDS = ("pixelcnn", "rowlstm", "diagonal")


def _pixel_offsets(H, W):
    """d (H, W, H, W) rows up and dx columns right of input (r', c') from output (r, c)."""
    r = np.arange(H)[:, None, None, None]
    c = np.arange(W)[None, :, None, None]
    rp = np.arange(H)[None, None, :, None]
    cp = np.arange(W)[None, None, None, :]
    return np.broadcast_to(r - rp, (H, W, H, W)), np.broadcast_to(cp - c, (H, W, H, W))


def field_from_reach(C, H, W, reach):
    """(C, H, W, C, H, W): earlier pixels where reach(d, dx) holds (vectorised over arrays
    d, dx), all their colours; the earlier colours of the output's own pixel."""
    d, dx = _pixel_offsets(H, W)
    earlier = (d > 0) | ((d == 0) & (dx < 0))
    pixels = earlier & reach(d, dx)                                  # (H, W, H, W)
    ctx = context_map(C, H, W)
    same = ((d == 0) & (dx == 0))[None, :, :, None]
    return (pixels[None, :, :, None] | same) & ctx


def pixelcnn_field(C, H, W, L):
    """PixelCNN with L blocks: bounded by its depth, blind to the wedge {d >= 1, dx >= d+3}."""
    def reach(d, dx):
        row = (d == 0) & (dx >= -3 - L)
        above = (d >= 1) & (d <= 3 + L) & (dx >= -3 - L) & (dx <= 2 + np.minimum(d, L + 1))
        return row | above
    return field_from_reach(C, H, W, reach)


def row_lstm_field(C, H, W, L):
    """Row LSTM with L layers: the triangle above the pixel, every row above reached."""
    def reach(d, dx):
        return ((d == 0) & (dx >= -3 - L)) | ((d >= 1) & (dx >= -3 - L - d) & (dx <= 2 + d))
    return field_from_reach(C, H, W, reach)


def diagonal_field(C, H, W, L=None):
    """Diagonal BiLSTM (any L): the context, less the last colour of pixel (r, W-1) for the
    outputs of pixels (r+1, c), c <= W-5."""
    field = context_map(C, H, W).copy()
    for r in range(H - 1):
        field[:, r + 1, :max(W - 4, 0), C - 1, r, W - 1] = False
    return field


def pixelcnn_blind_spot(C, H, W):
    """(C, H, W, C, H, W): the context right of PixelCNN's field edge, {d >= 1, dx >= d+3}
    (at any depth)."""
    return field_from_reach(C, H, W, lambda d, dx: (d >= 1) & (dx >= d + 3))


def expected_field(kind, C, H, W, L=None):
    """The exact field of the paper's model `kind` ('pixelcnn', 'rowlstm', 'diagonal')."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "diagonal":
        return diagonal_field(C, H, W)
    if L is None or int(L) < 1:
        raise ValueError(f"the {kind} field needs the number of layers (>= 1), got {L}")
    return (pixelcnn_field if kind == "pixelcnn" else row_lstm_field)(C, H, W, int(L))
