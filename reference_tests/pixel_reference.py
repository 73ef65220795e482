"""Independent references of the primitives, and exact causal fields, for the tests.

The readable versions of the layers are the package's paper path
(minipixel/layers/); this file keeps what checks it from outside: the LSTM
cell, skew and the masked convolution written entry by entry in scalar loops
(from docs/paper.md, not from the library's code), the dependency-map tools
and the exact receptive fields.

Dependency maps
---------------
``layer_dependency_map`` is the single-layer, feature-level counterpart of
``minipixel.causality.dependency_map``: for a layer (N, Cin, H, W) ->
(N, Cout, H, W) it returns a boolean (Cout, H, W, Cin, H, W) map, computed
from exact gradients (one batch copy per output element). ``group_context``
is what a mask-B (or mask-A, ``strict``) layer may depend on: input features
at earlier pixels, or at the same pixel with colour group <= g (< g).

Exact fields (docs/paper.md, "Receptive fields"): ``pixelcnn_model_field``,
``row_lstm_model_field`` and ``diagonal_model_missing`` give the model fields;
``*_stack_field`` give the fields of stacks of layers, feature-level.
"""
import math

import numpy as np

import minipixel.fast.cell as fast_cell_module
from minipixel.backend import to_numpy
from minipixel.causality import PROBE_SLOPE, context_map
from minipixel.fast import FastDiagonalBiLSTMLayer, FastRowLSTMLayer
from minipixel.sampling.per_pixel import cell as per_pixel_cell_module
from minipixel.layers import DiagonalBiLSTMLayer, PixelCNNBlock, RowLSTMLayer
from minipixel.nn import Module, ModuleList
from minipixel.tensor import Tensor


# ---- the cell's twins as functions of Tensors (pre, c_prev) -> (h, c) -----------------------

def fused_cell(pre, c_prev):
    """The scans' in-place cell (fast/cell.py) on the arrays of Tensors pre (N, 4h, L) and
    c_prev (N, h, L): it takes k * pre (exp_gate_scale), as the scans hand it. Looked up
    in its module at each call, so a monkeypatched step is the one run."""
    xp, n = pre.xp, c_prev.shape[1]
    act = pre.data * fast_cell_module.exp_gate_scale(xp, n, pre.dtype)
    c_new, tanh_c, h_new, tmp = (xp.empty_like(c_prev.data) for _ in range(4))
    with np.errstate(over="ignore"):
        fast_cell_module.lstm_cell_step(act, c_prev.data, c_new, tanh_c, h_new, tmp, xp)
    return Tensor(h_new), Tensor(c_new)


def per_pixel_cell(pre, c_prev):
    """The cached sampler's cell (sampling/per_pixel/cell.py) on the arrays of Tensors
    pre (N, 4h, L), c_prev (N, h, L): each of the N * L positions as one pixel's row."""
    N, G, L = pre.shape
    rows = lambda a: a.transpose(0, 2, 1).reshape(N * L, -1)                    # noqa: E731
    h_new, c_new = per_pixel_cell_module.lstm_cell(rows(pre.data), rows(c_prev.data))
    back = lambda a: a.reshape(N, L, -1).transpose(0, 2, 1)                     # noqa: E731
    return Tensor(back(h_new)), Tensor(back(c_new))


# ---- scalar helpers ------------------------------------------------------------------------

def sigmoid(x):
    """1 / (1 + e^-x) for a Python float, without overflow."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


# ---- LSTM -----------------------------------------------------------------------------------

def ref_lstm_cell(pre, c_prev):
    """pre (N, 4h, L), c_prev (N, h, L) -> h, c, one scalar at a time.

    Gate order (i, f, g, o):
        i = sigmoid(pre[k]), f = sigmoid(pre[h + k]),
        g = tanh(pre[2h + k]), o = sigmoid(pre[3h + k])
        c = f c_prev + i g,  h = o tanh(c)
    """
    pre = np.asarray(pre, dtype=np.float64)
    c_prev = np.asarray(c_prev, dtype=np.float64)
    N, G, L = pre.shape
    n = G // 4
    assert G == 4 * n and c_prev.shape == (N, n, L)
    h_out = np.empty((N, n, L))
    c_out = np.empty((N, n, L))
    for b in range(N):
        for k in range(n):
            for l in range(L):
                in_gate = sigmoid(pre[b, k, l])
                forget = sigmoid(pre[b, n + k, l])
                content = math.tanh(pre[b, 2 * n + k, l])
                out_gate = sigmoid(pre[b, 3 * n + k, l])
                c = forget * c_prev[b, k, l] + in_gate * content
                c_out[b, k, l] = c
                h_out[b, k, l] = out_gate * math.tanh(c)
    return h_out, c_out


# ---- skew, convolutions, layers --------------------------------------------------------------

def ref_skew(x):
    """S[..., r, r + c] = X[..., r, c], zeros elsewhere: (N, C, H, W) -> (N, C, H, H + W - 1)."""
    N, C, H, W = x.shape
    s = np.zeros((N, C, H, H + W - 1), dtype=x.dtype)
    for r in range(H):
        for c in range(W):
            s[:, :, r, r + c] = x[:, :, r, c]
    return s


def ref_unskew(s, W):
    """X[..., r, c] = S[..., r, r + c]."""
    N, C, H, _ = s.shape
    x = np.zeros((N, C, H, W), dtype=s.dtype)
    for r in range(H):
        for c in range(W):
            x[:, :, r, c] = s[:, :, r, r + c]
    return x


def ref_conv_mask(kind, out_groups, in_groups, KH, KW):
    """The causal mask written from the spec, entry by entry."""
    m = np.zeros((len(out_groups), len(in_groups), KH, KW))
    ci, cj = KH // 2, KW // 2
    for o, go in enumerate(out_groups):
        for i, gi in enumerate(in_groups):
            for y in range(KH):
                for x in range(KW):
                    if y < ci or (y == ci and x < cj):
                        m[o, i, y, x] = 1
                    elif y == ci and x == cj:
                        m[o, i, y, x] = (gi < go) if kind == "A" else (gi <= go)
    return m


def ref_masked_conv(x, w, b, mask):
    """Cross-correlation of x (N, C, H, W) with w * mask, 'same' zero padding (odd kernels)."""
    N, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    ph, pw = KH // 2, KW // 2
    xpad = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xpad[:, :, ph:ph + H, pw:pw + W] = x
    wm = w * mask
    out = np.zeros((N, OC, H, W)) + (0 if b is None else b[None, :, None, None])
    for y in range(KH):
        for z in range(KW):
            out += np.einsum("oc,nchw->nohw", wm[:, :, y, z], xpad[:, :, y:y + H, z:z + W])
    return out


def _np(p):
    return np.asarray(to_numpy(p.data), dtype=np.float64)


def ref_conv_module(conv, x):
    """A MaskedConv2d's output from its parameters, with the mask rebuilt from the spec."""
    OC, C, KH, KW = conv.weight.shape
    return ref_masked_conv(x, _np(conv.weight), None if conv.bias is None else _np(conv.bias),
                           np.asarray(to_numpy(conv.mask), dtype=np.float64))


# ---- the package's layers, by kind and path ------------------------------------------------------

PAPER_LAYERS = {"row": RowLSTMLayer, "diagonal": DiagonalBiLSTMLayer, "pixelcnn": PixelCNNBlock}
FAST_LAYERS = {"row": FastRowLSTMLayer, "diagonal": FastDiagonalBiLSTMLayer,
               "pixelcnn": PixelCNNBlock}


def make_layer(kind, h, colours, rng, fast=True, relu_slope=PROBE_SLOPE, dtype=np.float64):
    """A layer of `kind` ("row", "diagonal", "pixelcnn") on the fast or the paper path.

    PixelCNN blocks get leaky ReLUs of `relu_slope` (the probe's, by default, so
    dependency maps show every path; 0 for the paper's ReLU)."""
    cls = (FAST_LAYERS if fast else PAPER_LAYERS)[kind]
    if kind == "pixelcnn":
        return cls(h, colours, rng, dtype, relu_slope=relu_slope)
    return cls(h, colours, rng, dtype)


# ---- dependency maps ---------------------------------------------------------------------------

def layer_dependency_map(layer, in_channels, H, W, seed=0):
    """(Cout, H, W, Cin, H, W) boolean: does output feature (o, r, c) move with input (i, r', c')?

    One batch copy of a random input per output element; copy n's backward weight
    selects only output element n. Runs in the layer's dtype and device. (Build
    layers with leaky ReLUs, make_layer's default, for maps that show every path.)"""
    rng = np.random.default_rng(seed)
    p0 = layer.parameters()[0]
    xp, dtype = p0.xp, p0.dtype
    probe = rng.uniform(-1, 1, size=(1, in_channels, H, W))
    # the output's size first, from one copy
    out_channels = layer(Tensor(xp.asarray(probe, dtype=dtype))).shape[1]
    n_out = out_channels * H * W
    x = Tensor(xp.asarray(probe.repeat(n_out, axis=0), dtype=dtype), requires_grad=True)
    out = layer(x)
    assert out.shape == (n_out, out_channels, H, W), out.shape
    select = np.eye(n_out).reshape(n_out, out_channels, H, W)
    weights = rng.uniform(0.5, 1.5, size=out.shape) * select
    out.backward(xp.asarray(weights, dtype=dtype))
    return to_numpy(x.grad).reshape(out_channels, H, W, in_channels, H, W) != 0


def group_context(out_groups, in_groups, H, W, strict=False):
    """What a causal layer may depend on (Cout, H, W, Cin, H, W): input features at earlier
    pixels (raster order), or at the same pixel with group <= the output's (< if strict)."""
    pos = np.arange(H * W).reshape(H, W)
    earlier = pos[:, :, None, None] > pos[None, None, :, :]          # (H, W, H, W)
    same = pos[:, :, None, None] == pos[None, None, :, :]
    go = np.asarray(out_groups)[:, None]
    gi = np.asarray(in_groups)[None, :]
    colour_ok = (gi < go) if strict else (gi <= go)                  # (Cout, Cin)
    return (earlier[None, :, :, None] |
            (same[None, :, :, None] & colour_ok[:, None, None, :, None, None]))


def violations(dep, allowed):
    """Entries ((o, r, c), (i, r', c')) of dep outside allowed."""
    return [(tuple(map(int, i[:3])), tuple(map(int, i[3:]))) for i in np.argwhere(dep & ~allowed)]


def pixel_field(H, W, reach):
    """(H, W, H, W): reach(d, dx) for each earlier pixel, d = r - r', dx = c' - c."""
    f = np.zeros((H, W, H, W), dtype=bool)
    for r in range(H):
        for c in range(W):
            for rp in range(r + 1):
                for cp in range(W):
                    if (rp, cp) < (r, c):
                        f[r, c, rp, cp] = reach(r - rp, cp - c)
    return f


def feature_field(out_groups, in_groups, H, W, reach, strict=False):
    """Exact field of a layer stack: reach(d, dx) at earlier pixels (all groups), the colour
    rule at the same pixel."""
    go = np.asarray(out_groups)[:, None]
    gi = np.asarray(in_groups)[None, :]
    colour_ok = (gi < go) if strict else (gi <= go)
    eye = np.eye(H * W, dtype=bool).reshape(H, W, H, W)
    f = pixel_field(H, W, reach)[None, :, :, None] | \
        (eye[None, :, :, None] & colour_ok[:, None, None, :, None, None])
    return np.broadcast_to(f, (len(out_groups), H, W, len(in_groups), H, W))


def conv_reach(KH, KW):
    """An odd KH x KW masked conv: rows above within KH//2, columns within KW//2;
    on its own row the KW//2 pixels to the left."""
    def reach(d, dx):
        if d == 0:
            return -(KW // 2) <= dx < 0
        return d <= KH // 2 and abs(dx) <= KW // 2
    return reach


def row_lstm_stack_reach(L):
    """L Row LSTM layers: for d >= 1, c - d - L <= c' <= c + d; on the row, c - L <= c' < c."""
    def reach(d, dx):
        if d == 0:
            return -L <= dx < 0
        return -d - L <= dx <= d
    return reach


def pixelcnn_stack_reach(L):
    """L PixelCNN blocks (3 x 3 mask B): d <= L, c - L <= c' <= c + d;
    on the row c - L <= c' < c."""
    def reach(d, dx):
        if d == 0:
            return -L <= dx < 0
        return d <= L and -L <= dx <= d
    return reach


def full_reach(d, dx):
    return True


# ---- whole-model fields (docs/paper.md) -------------------------------------------------

def _model_field(C, H, W, reach):
    """(C, H, W, C, H, W): reach(d, dx) at earlier pixels, all colours; the colour order inside
    the current pixel."""
    ctx = context_map(C, H, W)
    eye = np.eye(H * W, dtype=bool).reshape(H, W, H, W)[None, :, :, None]
    return (pixel_field(H, W, reach)[None, :, :, None] | (eye & ctx)) & ctx


def pixelcnn_model_field(C, H, W, L):
    """d <= 3 + L; c' >= c - 3 - L; for d >= 1 also c' <= c + 2 + min(d, L + 1);
    on the current row c - 3 - L <= c' < c."""
    def reach(d, dx):
        if d == 0:
            return -3 - L <= dx < 0
        return d <= 3 + L and dx >= -3 - L and dx <= 2 + min(d, L + 1)
    return _model_field(C, H, W, reach)


def row_lstm_model_field(C, H, W, L):
    """for d >= 1: c - 3 - L - d <= c' <= c + 2 + d; on the current row c - 3 - L <= c' < c."""
    def reach(d, dx):
        if d == 0:
            return -3 - L <= dx < 0
        return -3 - L - d <= dx <= 2 + d
    return _model_field(C, H, W, reach)


def diagonal_model_missing(C, H, W):
    """The set the Diagonal BiLSTM model misses: for every output colour k of
    pixel (r + 1, c) with c <= W - 5, the last colour of input pixel (r, W - 1)."""
    return {((k, r + 1, c), (C - 1, r, W - 1))
            for r in range(H - 1) for c in range(W - 4) for k in range(C)}


def as_set(mask):
    return {(tuple(map(int, i[:3])), tuple(map(int, i[3:]))) for i in np.argwhere(mask)}


class Stack(Module):
    """Layers applied one after the other (a model without head, for layer tests)."""

    def __init__(self, layers):
        super().__init__()
        self.layers = ModuleList(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def assert_none(found, what="dependencies outside the context"):
    """Fail with a short message (pytest's diff of a long list against [] is very slow)."""
    if len(found):
        raise AssertionError(f"{len(found)} {what}, e.g. {list(found)[:5]}")


def assert_same_set(got, want, what="dependencies"):
    extra, missing = set(got) - set(want), set(want) - set(got)
    if extra or missing:
        raise AssertionError(f"{len(extra)} unexpected {what}, e.g. {sorted(extra)[:4]}; "
                             f"{len(missing)} missing, e.g. {sorted(missing)[:4]}")
