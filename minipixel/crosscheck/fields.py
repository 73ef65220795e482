"""The exact receptive fields of the model kinds the audit compares with, as dependency maps.

Notation: C colours, H x W image, L layers (PixelCNN blocks or RNN layers, each
after the 7x7 mask-A first layer). A field is a boolean array
(C, H, W, C, H, W): [output k, r, c, input k', r', c'], like the maps of
``minipixel.causality``. For output pixel (r, c) and an earlier input pixel
(r', c'), d = r - r' (rows up) and dx = c' - c (columns right):

    pixelcnn         d = 0: -3-L <= dx < 0
      (the paper's)  d >= 1: d <= 3+L, dx >= -3-L, dx <= 2 + min(d, L+1)
    rowlstm          d = 0: -3-L <= dx < 0
                     d >= 1: -3-L-d <= dx <= 2+d
    diagonal         the whole context, except that pixels (r+1, c) with
                     c <= W-5 never see the last colour of pixel (r, W-1)
    full             the whole causal context: every earlier pixel in all its
                     colours, the earlier colours of the output's own pixel (a deep
                     enough gated PixelCNN or PixelCNN++: no blind spot)
    maskb            one KA x KA mask-A convolution, then L KB x KB mask-B ones
                     (kernels=(KA, KB), default (7, 3)), 1x1 mask-B layers anywhere
                     (they change no field), zero padding: computed exactly by
                     propagating each input's reach through the stack on the H x W
                     grid (``stack_field``), borders included

Every earlier pixel inside the field is reached in all its colours; inside
the output's own pixel the earlier colours are reached (the colour order).
PixelCNN's blind spot is the part of the context right of its field's edge:
{d >= 1, dx >= d + 3}. The reference tests check each formula against the
exact gradient maps of minipixel's models and of independent PyTorch stacks
(reference_tests/test_crosscheck_fields.py), and maskb with kernels (7, 3)
against the pixelcnn formula.
"""
import numpy as np

from ..causality import context_map

__all__ = ["KINDS", "expected_field", "pixelcnn_field", "row_lstm_field", "diagonal_field",
           "full_field", "stack_field", "maskb_field", "pixelcnn_blind_spot", "blind_spot",
           "field_from_reach", "field_name", "needs_layers", "DEFAULT_KERNELS"]

KINDS = ("pixelcnn", "rowlstm", "diagonal", "full", "maskb")
DEFAULT_KERNELS = (7, 3)          # maskb: the first (mask A) and the other kernels (mask B)


def needs_layers(kind):
    return kind in ("pixelcnn", "rowlstm", "maskb")


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
    (at any depth): earlier rows only, never the output's own pixel."""
    d, dx = _pixel_offsets(H, W)
    wedge = (d >= 1) & (dx >= d + 3)                                  # (H, W, H, W)
    return np.broadcast_to(wedge[None, :, :, None], (C, H, W, C, H, W)).copy()


def full_field(C, H, W, L=None):
    """The whole causal context (causality.context_map), as a fresh array."""
    return context_map(C, H, W).copy()


def stack_field(C, H, W, stack):
    """The exact field of a stack of masked convolutions with zero padding.

    stack: [(kind, kh, kw)], kind "A" or "B", kernels of odd sizes, applied in order to
    C colour groups (channel groups as minipixel's masks: C = 1 one group). Masks drop
    the rows below the centre and the taps right of it on its row; at the centre,
    output group g sees input group g' < g (A) or g' <= g (B). The head (1x1 mask B
    from the last stack's groups to each colour's logits) is applied at the end.

    Propagates, for every feature position and group, the set of input sub-pixels it
    depends on (a generic network: no weights cancel, no unit dies): exact on the grid,
    borders included, because a tap outside the image reads zero padding."""
    P = C * H * W
    dep = np.zeros((C, H, W, P), bool)                # [group, r, c, input sub-pixel]
    dep.reshape(P, P)[np.arange(P), np.arange(P)] = True
    groups = np.arange(C)
    for kind, kh, kw in list(stack) + [("B", 1, 1)]:
        if kind not in ("A", "B") or kh % 2 == 0 or kw % 2 == 0 or kh < 1 or kw < 1:
            raise ValueError(f"a masked conv needs kind A or B and odd kernel sizes, got "
                             f"{kind} {kh}x{kw}")
        out = np.zeros_like(dep)
        cy, cx = kh // 2, kw // 2
        for i in range(cy + 1):
            for j in range(kw if i < cy else cx + 1):
                dy, dx = i - cy, j - cx                  # tap reads position (r+dy, c+dx)
                if (dy, dx) == (0, 0):
                    sees = (groups[None] < groups[:, None]) if kind == "A" else \
                        (groups[None] <= groups[:, None])
                else:
                    sees = np.ones((C, C), bool)
                if abs(dy) >= H or abs(dx) >= W:
                    continue                             # reads only zero padding
                src = np.zeros_like(dep)
                src[:, max(0, -dy):H - max(0, dy), max(0, -dx):W - max(0, dx)] = \
                    dep[:, max(0, dy):H - max(0, -dy), max(0, dx):W - max(0, -dx)]
                for g in range(C):
                    out[g] |= src[sees[g]].any(axis=0)
        dep = out
    return dep.reshape(C, H, W, C, H, W)


def _kernels(kernels):
    ka, kb = DEFAULT_KERNELS if kernels is None else kernels
    return int(ka), int(kb)


def maskb_field(C, H, W, L, kernels=None):
    """One KA x KA mask-A convolution, then L KB x KB mask-B convolutions (stack_field)."""
    ka, kb = _kernels(kernels)
    return stack_field(C, H, W, [("A", ka, ka)] + [("B", kb, kb)] * int(L))


def blind_spot(kind, C, H, W, kernels=None):
    """The context a PixelCNN-like stack misses at any depth (None for kinds without one):
    the wedge right of its field's edge."""
    if kind == "pixelcnn":
        return pixelcnn_blind_spot(C, H, W)
    if kind == "maskb":
        return context_map(C, H, W) & ~maskb_field(C, H, W, H + W, kernels)
    return None


def field_name(kind, L=None, kernels=None):
    """How the report names the field of `kind`."""
    layers = f" ({L} layer{'s' if L != 1 else ''})" if L else ""
    if kind == "full":
        return "a full-context model (the whole causal context: gated PixelCNN, PixelCNN++)"
    if kind == "maskb":
        ka, kb = _kernels(kernels)
        return (f"a mask-B stack ({ka}x{ka} mask A, then {L} {kb}x{kb} mask-B "
                f"layer{'s' if L != 1 else ''})")
    if kind == "diagonal":
        return "the paper's diagonal"
    return f"the paper's {kind}{layers}"


def expected_field(kind, C, H, W, L=None, kernels=None):
    """The exact field of `kind` (KINDS): the paper's 'pixelcnn', 'rowlstm', 'diagonal';
    'full' (the whole context); 'maskb' (L mask-B layers after one mask-A layer, kernels
    (KA, KB))."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kernels is not None:
        if kind != "maskb":
            raise ValueError(f"kernels are for the maskb field, not {kind}")
        if len(kernels) != 2 or any(int(k) < 1 or int(k) % 2 == 0 for k in kernels):
            raise ValueError(f"kernels must be two odd sizes (first layer, the others), "
                             f"got {kernels}")
    if kind == "diagonal":
        return diagonal_field(C, H, W)
    if kind == "full":
        return full_field(C, H, W)
    if L is None or int(L) < 1:
        raise ValueError(f"the {kind} field needs the number of layers (>= 1), got {L}")
    if kind == "maskb":
        return maskb_field(C, H, W, int(L), kernels)
    return (pixelcnn_field if kind == "pixelcnn" else row_lstm_field)(C, H, W, int(L))
