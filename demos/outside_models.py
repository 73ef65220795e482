"""Stand-ins for six outside PyTorch models of the PixelCNN family, audited as black boxes.

    pip install torch==2.13.0
    python demos/outside_models.py                 # audit all six: verdicts and timings
    python demos/outside_models.py --speed         # old default (isolated) against new (auto)

Written for this project in the shape of the public designs people bring to the
audit (none is copied from one; no minipixel code inside a model):

  batchnorm         a tutorial-style PixelCNN: 7x7 mask A, six 7x7 mask-B convs, each
                    with BatchNorm and ReLU, weights masked in place at every forward
                    (weight.data *= mask); grey, 256 levels, input floats v/(V-1).
                    In eval mode it passes (--expect maskb --layers 6 --kernels 7,7);
                    in training mode its batch statistics fail it
  rowlstm-causal    a Row LSTM whose 1x3 convolutions are "causally" padded (two zeros
                    on the left, none on the right): no leak, but the field leans left;
                    --expect rowlstm names the pixels it misses
  gated             a gated PixelCNN (vertical and horizontal stacks, no blind spot)
                    that looks its integer input up in an nn.Embedding: it needs
                    --input int; the whole causal context (--expect full)
  gated-rgb         an RGB gated PixelCNN with colour groups whose second layer has
                    mask A again: no leak, but G never sees its own R and B never its
                    own G (the "inside its own pixel" finding); gated-rgb-fixed has
                    mask B there and reaches the whole context
  pixelcnn++        a small PixelCNN++: down- and down-right-shifted convolutions,
                    gated resnets with concat_elu, a U-net over three resolutions, a
                    discretized mixture of logistics head turned into 256-way
                    log-probabilities (mixture_logprobs), and a border padding sized
                    from the first batch it sees (as PixelCNN++'s code keeps it)
  docs-pixelcnn     a plain PixelCNN written from docs/porting.md alone: it loads a
                    reference file's parameters and matches its logits (its own test),
                    and passes the audit with the paper's PixelCNN field

Each `make_*` returns a torch.nn.Module for `minipixel audit FILE.py:make --kwargs
'{"name": ...}'`; CASES gives the audit options each needs and its expected verdict.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


# ---- 1. a tutorial-style BatchNorm PixelCNN -------------------------------------------------
class InPlaceMaskedConv(nn.Conv2d):
    """Masked in place at every forward, as many tutorials do (no colour groups: grey)."""

    def __init__(self, kind, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _, _, kh, kw = self.weight.shape
        mask = torch.ones_like(self.weight)
        mask[:, :, kh // 2, kw // 2 + (kind == "B"):] = 0
        mask[:, :, kh // 2 + 1:] = 0
        self.register_buffer("mask", mask)

    def forward(self, x):
        self.weight.data *= self.mask
        return super().forward(x)


class BatchNormPixelCNN(nn.Module):
    def __init__(self, maps=32, layers=6, kernel=7, levels=256):
        super().__init__()
        self.channels, self.levels = 1, levels
        p = kernel // 2
        blocks = [InPlaceMaskedConv("A", 1, maps, kernel, 1, p, bias=False),
                  nn.BatchNorm2d(maps), nn.ReLU(True)]
        for _ in range(layers):
            blocks += [InPlaceMaskedConv("B", maps, maps, kernel, 1, p, bias=False),
                       nn.BatchNorm2d(maps), nn.ReLU(True)]
        blocks.append(nn.Conv2d(maps, levels, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x):                  # floats v/(V-1), (N, 1, H, W) -> (N, V, H, W)
        return self.net(x)


def make_batchnorm(train=False, maps=32, layers=6, levels=256, seed=0):
    torch.manual_seed(seed)
    model = BatchNormPixelCNN(maps, layers, levels=levels)
    with torch.no_grad():                  # running statistics from a few batches
        for _ in range(3):
            model(torch.randint(0, levels, (16, 1, 8, 8)) / (levels - 1.0))
    return model.train(train)


# ---- 2. a Row LSTM with causal (left-only) padding --------------------------------------
def masked(weight, kind):
    """A copy of a conv weight with mask A or B (grey: no colour groups)."""
    kh, kw = weight.shape[2:]
    m = torch.ones_like(weight)
    m[:, :, kh // 2, kw // 2 + (kind == "B"):] = 0
    m[:, :, kh // 2 + 1:] = 0
    return weight * m


class CausalRowLSTM(nn.Module):
    """7x7 mask A, then Row LSTM layers whose input-to-state and state-to-state 1x3
    convolutions see columns c-2..c (padded (2, 0)), a residual each; a ReLU head.
    Gates in the order i, f, o, g."""

    def __init__(self, levels=256, h=8, layers=2, hidden=32):
        super().__init__()
        self.channels, self.levels, self.h = 1, levels, h
        self.first = nn.Conv2d(1, 2 * h, 7, padding=3)
        self.i2s = nn.ModuleList(nn.Conv2d(2 * h, 4 * h, (1, 3)) for _ in range(layers))
        self.s2s = nn.ModuleList(nn.Conv1d(h, 4 * h, 3, bias=False) for _ in range(layers))
        self.out = nn.ModuleList(nn.Conv2d(h, 2 * h, 1) for _ in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(2 * h, hidden, 1), nn.ReLU(),
                                  nn.Conv2d(hidden, levels, 1))

    def forward(self, x):                  # floats in [-1, 1] -> (N, V, H, W)
        x = F.conv2d(x, masked(self.first.weight, "A"), self.first.bias, padding=3)
        N, _, H, W = x.shape
        for i2s, s2s, out in zip(self.i2s, self.s2s, self.out):
            gates = i2s(F.pad(x, (2, 0)))                       # columns c-2..c
            h = c = x.new_zeros(N, self.h, W)
            rows = []
            for r in range(H):
                i, f, o, g = (gates[:, :, r] + s2s(F.pad(h, (2, 0)))).chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                rows.append(h)
            x = x + out(torch.stack(rows, 2))
        return self.head(x)


def make_rowlstm_causal(levels=256, seed=0):
    torch.manual_seed(seed)
    return CausalRowLSTM(levels).eval()


# ---- 3 and 4. gated PixelCNNs (vertical and horizontal stacks) -----------------------------
def colour_groups(n, colours):
    """Group of each of n channels: contiguous blocks (channel j of n in j*colours//n)."""
    return torch.arange(n) * colours // n


class GatedLayer(nn.Module):
    """One gated layer: a vertical stack that sees the rows above (its last kernel row
    dropped in the first layer, so that it sees strictly above), a horizontal stack that
    sees the row to the left and, by colour groups, the pixel itself (mask `kind` at its
    centre tap), the vertical stack fed into the horizontal one, gates
    tanh(a) * sigmoid(b)."""

    def __init__(self, kind, cin, dim, kernel, colours, residual, first=False):
        super().__init__()
        self.kind, self.colours, self.residual, self.dim = kind, colours, residual, dim
        k2 = kernel // 2
        self.vert = nn.Conv2d(cin, 2 * dim, (k2 + 1, kernel), padding=(k2, k2))
        self.v2h = nn.Conv2d(2 * dim, 2 * dim, 1)
        self.horiz = nn.Conv2d(cin, 2 * dim, (1, k2 + 1), padding=(0, k2))
        self.h_res = nn.Conv2d(dim, dim, 1)
        out_g = colour_groups(dim, colours).repeat(2)               # each gate half grouped
        in_g = colour_groups(cin, colours)
        sees = (in_g[None] < out_g[:, None]) if kind == "A" else (in_g[None] <= out_g[:, None])
        hmask = torch.ones_like(self.horiz.weight)
        hmask[:, :, 0, -1] = sees.to(hmask.dtype)                    # the pixel itself
        vmask = torch.ones_like(self.vert.weight)
        if first:
            vmask[:, :, -1] = 0                                      # not the current row
        g = colour_groups(dim, colours)
        self.register_buffer("hmask", hmask)
        self.register_buffer("vmask", vmask)
        self.register_buffer("rmask", (g[None] <= g[:, None]).to(hmask.dtype)[:, :, None, None])

    def gate(self, x):
        a, b = x.chunk(2, 1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, xv, xh):
        H, W = xv.shape[2:]
        hv = F.conv2d(xv, self.vert.weight * self.vmask, self.vert.bias,
                      padding=self.vert.padding)[:, :, :H]
        hh = F.conv2d(xh, self.horiz.weight * self.hmask, self.horiz.bias,
                      padding=self.horiz.padding)[:, :, :, :W]
        out = F.conv2d(self.gate(self.v2h(hv) + hh), self.h_res.weight * self.rmask,
                       self.h_res.bias)
        return self.gate(hv), (out + xh if self.residual else out)


class GatedPixelCNN(nn.Module):
    """Grey with an embedding (integer input), or colours with groups (float input)."""

    def __init__(self, colours=1, levels=256, dim=16, layers=6, embed=True, kinds=None):
        super().__init__()
        self.channels, self.levels, self.embed_input = colours, levels, embed
        cin = dim if embed else colours
        self.embedding = nn.Embedding(levels, dim) if embed else None
        kinds = kinds or ["A"] + ["B"] * (layers - 1)
        self.layers = nn.ModuleList(
            GatedLayer(kind, cin if i == 0 else dim, dim, 7 if i == 0 else 3, colours,
                       residual=i > 0 and kind == "B", first=i == 0)
            for i, kind in enumerate(kinds))
        self.out1 = nn.Conv2d(dim, 8 * colours, 1)
        self.out2 = nn.Conv2d(8 * colours, colours * levels, 1)
        g_dim, g_mid = colour_groups(dim, colours), colour_groups(8 * colours, colours)
        g_out = colour_groups(colours * levels, colours)
        self.register_buffer("m1", (g_dim[None] <= g_mid[:, None]).float()[:, :, None, None])
        self.register_buffer("m2", (g_mid[None] <= g_out[:, None]).float()[:, :, None, None])

    def forward(self, x):
        if self.embed_input:               # (N, 1, H, W) integers -> (N, dim, H, W)
            x = self.embedding(x[:, 0]).permute(0, 3, 1, 2)
        xv = xh = x
        for layer in self.layers:
            xv, xh = layer(xv, xh)
        z = F.conv2d(F.relu(xh), self.out1.weight * self.m1, self.out1.bias)
        z = F.conv2d(F.relu(z), self.out2.weight * self.m2, self.out2.bias)
        N, _, H, W = z.shape               # colour-major -> (N, V, C, H, W)
        return z.reshape(N, self.channels, self.levels, H, W).transpose(1, 2)


def make_gated(levels=256, seed=0):
    torch.manual_seed(seed)
    return GatedPixelCNN(1, levels, embed=True).eval()


def make_gated_rgb(fixed=False, levels=256, seed=0):
    """The second layer has mask A again (the defect) unless fixed; the first two layers
    have no residual, so nothing carries the first layer's own-pixel colours around it."""
    torch.manual_seed(seed)
    kinds = ["A", "B" if fixed else "A", "B", "B", "B", "B"]
    model = GatedPixelCNN(3, levels, dim=24, embed=False, kinds=kinds)
    model.layers[1].residual = False
    return model.eval()


# ---- 5. a small PixelCNN++ ------------------------------------------------------------------
def concat_elu(x):
    return F.elu(torch.cat([x, -x], 1))


def down_shift(x):
    return F.pad(x[:, :, :-1], (0, 0, 1, 0))


def right_shift(x):
    return F.pad(x[..., :-1], (1, 0))


class DownShifted(nn.Module):
    """A (2, 3) kernel padded at the top and on both sides: output (r, c) sees rows
    r-1..r, columns c-1..c+1 of its input; shift_down moves the output one row down,
    for the first layer, which must not see its own row."""

    def __init__(self, cin, cout, size=(2, 3), stride=1, shift_down=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, size, stride)
        self.pad = ((size[1] - 1) // 2, (size[1] - 1) // 2, size[0] - 1, 0)
        self.shift_down = shift_down

    def forward(self, x):
        x = self.conv(F.pad(x, self.pad))
        return down_shift(x) if self.shift_down else x


class DownRightShifted(nn.Module):
    def __init__(self, cin, cout, size=(2, 2), stride=1, shift_right=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, size, stride)
        self.pad = (size[1] - 1, 0, size[0] - 1, 0)
        self.shift_right = shift_right

    def forward(self, x):
        x = self.conv(F.pad(x, self.pad))
        return right_shift(x) if self.shift_right else x


class ShiftedDeconv(nn.Module):
    """A stride-2 transposed conv cropped back to twice its input's size: centred on the
    columns for a (2, 3) kernel (down-shifted), from the left for (2, 2) (down-right)."""

    def __init__(self, cin, cout, size=(2, 3)):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, size, 2, output_padding=1)
        self.size = size

    def forward(self, x):
        x = self.deconv(x)
        H, W = x.shape[2:]
        left = (self.size[1] - 1) // 2 if self.size[1] == 3 else 0
        right = W - (self.size[1] - 1 - left)
        return x[:, :, :H - self.size[0] + 1, left:right]


class GatedResnet(nn.Module):
    def __init__(self, nf, conv, skip=0):
        super().__init__()
        self.conv_input = conv(2 * nf, nf)
        self.nin_skip = nn.Conv2d(2 * skip * nf, nf, 1) if skip else None
        self.conv_out = conv(2 * nf, 2 * nf)

    def forward(self, x, a=None):
        y = self.conv_input(concat_elu(x))
        if a is not None:
            y = y + self.nin_skip(concat_elu(a))
        a_, b_ = self.conv_out(concat_elu(y)).chunk(2, 1)
        return x + a_ * torch.sigmoid(b_)


class PixelCNNpp(nn.Module):
    """Up pass over three resolutions (u: down-shifted, ul: down-right-shifted streams),
    down pass with the up pass's outputs as skips, a 1x1 head to mixture parameters."""

    def __init__(self, colours=3, nf=16, nr_resnet=2, nr_mix=5):
        super().__init__()
        self.colours, self.nr_mix, self.init_padding = colours, nr_mix, None
        self.u_init = DownShifted(colours + 1, nf, (2, 3), shift_down=True)
        self.ul_init = nn.ModuleList([DownShifted(colours + 1, nf, (1, 3), shift_down=True),
                                      DownRightShifted(colours + 1, nf, (2, 1), shift_right=True)])
        self.up_u = nn.ModuleList(nn.ModuleList(GatedResnet(nf, DownShifted)
                                                for _ in range(nr_resnet)) for _ in range(3))
        self.up_ul = nn.ModuleList(nn.ModuleList(GatedResnet(nf, DownRightShifted, 1)
                                                 for _ in range(nr_resnet)) for _ in range(3))
        down = [nr_resnet, nr_resnet + 1, nr_resnet + 1]
        self.down_u = nn.ModuleList(nn.ModuleList(GatedResnet(nf, DownShifted, 1)
                                                  for _ in range(n)) for n in down)
        self.down_ul = nn.ModuleList(nn.ModuleList(GatedResnet(nf, DownRightShifted, 2)
                                                   for _ in range(n)) for n in down)
        self.downsize_u = nn.ModuleList(DownShifted(nf, nf, (2, 3), 2) for _ in range(2))
        self.downsize_ul = nn.ModuleList(DownRightShifted(nf, nf, (2, 2), 2) for _ in range(2))
        self.upsize_u = nn.ModuleList(ShiftedDeconv(nf, nf, (2, 3)) for _ in range(2))
        self.upsize_ul = nn.ModuleList(ShiftedDeconv(nf, nf, (2, 2)) for _ in range(2))
        per_mix = 3 if colours == 1 else 10
        self.nin_out = nn.Conv2d(nf, per_mix * nr_mix, 1)

    def forward(self, x):                  # floats in [-1, 1] -> mixture parameters
        if self.init_padding is None:      # sized from the first batch, kept
            N, _, H, W = x.shape
            self.init_padding = torch.ones(N, 1, H, W, dtype=x.dtype)
        x = torch.cat([x, self.init_padding.to(x.dtype)], 1)
        u_list = [self.u_init(x)]
        ul_list = [self.ul_init[0](x) + self.ul_init[1](x)]
        for i in range(3):
            for ru, rul in zip(self.up_u[i], self.up_ul[i]):
                u_list.append(ru(u_list[-1]))
                ul_list.append(rul(ul_list[-1], a=u_list[-1]))
            if i != 2:
                u_list.append(self.downsize_u[i](u_list[-1]))
                ul_list.append(self.downsize_ul[i](ul_list[-1]))
        u, ul = u_list.pop(), ul_list.pop()
        for i in range(3):
            for ru, rul in zip(self.down_u[i], self.down_ul[i]):
                u = ru(u, a=u_list.pop())
                ul = rul(ul, a=torch.cat([u, ul_list.pop()], 1))
            if i != 2:
                u, ul = self.upsize_u[i](u), self.upsize_ul[i](ul)
        return self.nin_out(F.elu(ul))


def _mixture_parts(params, x, nr_mix):
    """Per-colour logistic means, log-scales (of values x (N, C, H, W) in [-1, 1]) and the
    mixture log-weights, PixelCNN++'s parametrisation: G's mean moves with R's value, B's
    with R's and G's. Returns (log_pi (N, H, W, M), means, log_scales (N, H, W, C, M))."""
    N, _, H, W = params.shape
    C = x.shape[1]
    l = params.permute(0, 2, 3, 1)
    log_pi = F.log_softmax(l[..., :nr_mix], -1)
    if C == 1:
        means, log_scales = l[..., nr_mix:2 * nr_mix], l[..., 2 * nr_mix:3 * nr_mix]
        return log_pi, means[..., None, :], torch.clamp(log_scales, min=-7.0)[..., None, :]
    l = l[..., nr_mix:].reshape(N, H, W, 3, 3 * nr_mix)
    means = l[..., :nr_mix]
    log_scales = torch.clamp(l[..., nr_mix:2 * nr_mix], min=-7.0)
    coeffs = torch.tanh(l[..., 2 * nr_mix:3 * nr_mix])
    xs = x.permute(0, 2, 3, 1)[..., None]                                # (N, H, W, 3, 1)
    m2 = means[..., 1, :] + coeffs[..., 0, :] * xs[..., 0, :]
    m3 = means[..., 2, :] + coeffs[..., 1, :] * xs[..., 0, :] + coeffs[..., 2, :] * xs[..., 1, :]
    return log_pi, torch.stack([means[..., 0, :], m2, m3], 3), log_scales


def _logistic_bin_logp(v, means, log_scales):
    """log P(value v) of each logistic component, discretized to 256 bins over [-1, 1]
    with open end bins, exactly as PixelCNN++'s loss computes it (v in [-1, 1])."""
    centered = v - means
    inv = torch.exp(-log_scales)
    plus_in, min_in = inv * (centered + 1 / 255.0), inv * (centered - 1 / 255.0)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    log_cdf_plus = plus_in - F.softplus(plus_in)
    log_one_minus_cdf_min = -F.softplus(min_in)
    mid_in = inv * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    inner_inner = torch.where(cdf_delta > 1e-5, torch.log(torch.clamp(cdf_delta, min=1e-12)),
                              log_pdf_mid - np.log(127.5))
    inner = torch.where(v > 0.999, log_one_minus_cdf_min, inner_inner)
    return torch.where(v < -0.999, log_cdf_plus, inner)


def mixture_loss(params, x, nr_mix):
    """PixelCNN++'s own loss: -log p(image) in nats, summed over the batch (x in [-1, 1])."""
    log_pi, means, log_scales = _mixture_parts(params, x, nr_mix)
    xs = x.permute(0, 2, 3, 1)[..., None]
    logp = _logistic_bin_logp(xs, means, log_scales).sum(3) + log_pi    # (N, H, W, M)
    return -torch.logsumexp(logp, -1).sum()


def _every_bin_logp(means, log_scales):
    """(256, ...): log P(v) of each logistic component for every value v = 0..255: the
    pieces of _logistic_bin_logp, evaluated once per bin edge (bin v spans the values
    within 1/255 of v/127.5 - 1; edge e is the upper edge of bin e)."""
    dtype = means.dtype
    shape = (-1,) + (1,) * means.ndim
    inv = torch.exp(-log_scales)
    edges = (torch.arange(255, dtype=dtype) * 2 + 1) / 255 - 1
    z = inv * (edges.reshape(shape) - means)                            # (255, ...)
    cdf = torch.sigmoid(z)
    first = z[0] - F.softplus(z[0])                                     # bin 0: log cdf
    last = -F.softplus(z[-1])                                           # bin 255: log(1-cdf)
    delta = cdf[1:] - cdf[:-1]                                          # bins 1..254
    mid = inv * ((torch.arange(1, 255, dtype=dtype) / 127.5 - 1).reshape(shape) - means)
    log_pdf_mid = mid - log_scales - 2.0 * F.softplus(mid)
    inner = torch.where(delta > 1e-5, torch.log(torch.clamp(delta, min=1e-12)),
                        log_pdf_mid - np.log(127.5))
    return torch.cat([first[None], inner, last[None]])


def mixture_logprobs(params, x, nr_mix):
    """The mixture as 256-way conditional log-probabilities (N, 256, C, H, W) for the
    audit: colour k's distribution over its 256 values given the image's own earlier
    colours of that pixel. The mixture is over whole pixels (one weight for all colours),
    so G's weights are the posterior given R, B's given R and G:

        log p(x_k = v | x_<k) = logsumexp_m [log pi_m + sum_{j<k} log p_mj(x_j) + log p_mk(v)]
                                - logsumexp_m [log pi_m + sum_{j<k} log p_mj(x_j)]

    Summed at the image's own values this is the model's own log-likelihood (the chain
    rule): test_crosscheck_outside.py checks it against mixture_loss."""
    log_pi, means, log_scales = _mixture_parts(params, x, nr_mix)
    every = _every_bin_logp(means, log_scales)                          # (256, N, H, W, C, M)
    values = torch.round((x.permute(0, 2, 3, 1) + 1) * 127.5).long()    # (N, H, W, C)
    own = every.gather(0, values[None, ..., None].expand(1, *every.shape[1:]))[0]
    # log pi_m + the earlier colours' terms: an exclusive prefix sum over the colours
    # (cumsum(own) - own would leave a rounding trace of the colour's own value: a leak
    # of 1e-16 that the float64 audit finds)
    before = F.pad(torch.cumsum(own[..., :-1, :], 3), (0, 0, 1, 0)) + log_pi[..., None, :]
    logp = torch.logsumexp(before[None] + every, -1) - torch.logsumexp(before, -1)[None]
    return logp.permute(1, 0, 4, 2, 3)                                  # (N, 256, C, H, W)


class AuditedPixelCNNpp(nn.Module):
    """The function the audit sees: images in [-1, 1] -> 256-way log-probabilities. The
    network runs on the whole call; the conversion, which holds 256 values per mixture
    component per sub-pixel, runs on 4 images at a time (it treats each image on its
    own, so the numbers are the same), which keeps it in cache."""

    def __init__(self, model, chunk=4):
        super().__init__()
        self.model, self.channels, self.levels, self.chunk = model, model.colours, 256, chunk

    def forward(self, x):
        params = self.model(x)
        return torch.cat([mixture_logprobs(params[i:i + self.chunk], x[i:i + self.chunk],
                                           self.model.nr_mix)
                          for i in range(0, len(x), self.chunk)])


def make_pixelcnnpp(colours=3, nf=16, nr_resnet=2, nr_mix=5, seed=0):
    torch.manual_seed(seed)
    return AuditedPixelCNNpp(PixelCNNpp(colours, nf, nr_resnet, nr_mix)).eval()


# ---- 6. a plain PixelCNN written from docs/porting.md ---------------------------------------
class DocsPixelCNN(nn.Module):
    """minipixel's PixelCNN as docs/porting.md describes its forward pass, loaded from a
    reference file (param/* and mask/*); integer images in, logits out."""

    def __init__(self, ref, leak=False):
        super().__init__()
        cfg = ref.config
        self.channels, self.levels, self.L = cfg["channels"], cfg["levels"], cfg["layers"]
        self.p = nn.ParameterDict({k.replace(".", "_"): nn.Parameter(torch.tensor(v))
                                   for k, v in ref.group("param").items()})
        masks = {k.replace(".", "_"): torch.tensor(v) for k, v in ref.group("mask").items()}
        if leak:                           # the classic bug: mask B in the first layer
            m = masks["first_weight"]
            groups_out = torch.arange(m.shape[0]) * 3 // m.shape[0]
            groups_in = torch.arange(m.shape[1]) * 3 // m.shape[1] if m.shape[1] > 1 \
                else torch.zeros(1, dtype=torch.long)
            m[:, :, 3, 3] = (groups_in[None] <= groups_out[:, None]).to(m.dtype)
        for k, m in masks.items():
            self.register_buffer("mask_" + k, m)

    def conv(self, name, x, pad=0):
        w = self.p[name + "_weight"] * getattr(self, "mask_" + name + "_weight")
        return F.conv2d(x, w, self.p[name + "_bias"], padding=pad)

    def forward(self, images, trace=None):
        """Logits for integer images; with a dict `trace`, the layer outputs under the
        reference file's keys (layer/<i>, skip, out_hidden)."""
        trace = {} if trace is None else trace
        x = images.to(self.p["first_weight"].dtype) * (2 / (self.levels - 1)) - 1
        x = trace["layer/0"] = self.conv("first", x, 3)
        outs = []
        for i in range(self.L):
            y = self.conv(f"layers_{i}_reduce", F.relu(x))
            y = self.conv(f"layers_{i}_conv", F.relu(y), 1)
            x = trace[f"layer/{i + 1}"] = x + self.conv(f"layers_{i}_expand", F.relu(y))
            outs.append(x)
        s = trace["skip"] = self.conv("skip", torch.cat(outs, 1))
        o = trace["out_hidden"] = self.conv("out_hidden", F.relu(s))
        z = self.conv("out_logits", F.relu(o))
        if self.levels == 2:
            return z
        N, _, H, W = z.shape
        return z.reshape(N, self.channels, self.levels, H, W).transpose(1, 2)


def make_docs_pixelcnn(leak=False, channels=1, levels=16, layers=2, ref=None):
    """DocsPixelCNN loaded from `ref` (a Reference), else from a fresh reference file's
    parameters (minipixel.crosscheck.reference_arrays)."""
    if ref is None:
        from minipixel.crosscheck.reference import check_arrays, reference_arrays
        ref = check_arrays(reference_arrays(dict(model="pixelcnn", channels=channels,
                                                 levels=levels, h=4, layers=layers,
                                                 out_hidden=8, seed=0), batch=1, H=4, W=4))
    return DocsPixelCNN(ref, leak).eval()


# ---- the cases ------------------------------------------------------------------------------
MAKERS = {
    "batchnorm": lambda: make_batchnorm(train=False),
    "batchnorm-train": lambda: make_batchnorm(train=True),
    "rowlstm-causal": make_rowlstm_causal,
    "gated": make_gated,
    "gated-rgb": make_gated_rgb,
    "gated-rgb-fixed": lambda: make_gated_rgb(fixed=True),
    "pixelcnn++": make_pixelcnnpp,
    "docs-pixelcnn": make_docs_pixelcnn,
    "docs-pixelcnn-leak": lambda: make_docs_pixelcnn(leak=True),
}

# name: (audit keyword arguments, expected verdict)
CASES = {
    "batchnorm": (dict(channels=1, levels=256, inputs="unit", expect="maskb", layers=6,
                       kernels=(7, 7)), True),
    "batchnorm-train": (dict(channels=1, levels=256, inputs="unit"), False),
    "rowlstm-causal": (dict(channels=1, levels=256, expect="rowlstm", layers=2), True),
    "gated": (dict(channels=1, levels=256, inputs="int", expect="full"), True),
    "gated-rgb": (dict(channels=3, levels=256, expect="full"), True),
    "gated-rgb-fixed": (dict(channels=3, levels=256, expect="full"), True),
    "pixelcnn++": (dict(channels=3, levels=256, expect="full"), True),
    "docs-pixelcnn": (dict(channels=1, levels=16, inputs="int", expect="pixelcnn", layers=2),
                      True),
    "docs-pixelcnn-leak": (dict(channels=1, levels=16, inputs="int"), False),
}


def make(name="pixelcnn++"):
    """The factory for `minipixel audit demos/outside_models.py:make --kwargs '{"name": ..}'`."""
    return MAKERS[name]()


def audit_case(name, H=8, W=8, bases=2, float64=True, probe=None, **overrides):
    """Audit one case as `minipixel audit` would -> (report, wall seconds, CPU seconds,
    expected verdict)."""
    from minipixel.crosscheck import audit
    from minipixel.crosscheck.adapters import torch_fn
    kwargs, expected = CASES[name]
    kwargs = dict(kwargs, **overrides)
    inputs = kwargs.pop("inputs", "signed")
    fn = torch_fn(make(name), float64=float64, inputs=inputs, probe=probe)
    wall, cpu = time.perf_counter(), time.process_time()
    report = audit(fn, H=H, W=W, bases=bases, **kwargs)
    return report, time.perf_counter() - wall, time.process_time() - cpu, expected


SPEED_CASES = (("pixelcnn++", True), ("batchnorm", True), ("batchnorm", False))


def speed(bases=8, size=8):
    """The old default design (isolated) against the new one (auto), in one run, on the
    PixelCNN++ stand-in and the BatchNorm PixelCNN (float64, and float32 for scale).
    Wall time and this process's CPU time (one torch thread): on a shared machine the
    CPU time is the steadier measure."""
    print(f"{'model':22s} {'design':9s} {'verdict':7s} {'coverage':>8s} {'calls':>6s} "
          f"{'images':>7s} {'wall s':>7s} {'CPU s':>7s}")
    rows, same = [], True
    for name, float64 in SPEED_CASES:
        got = {}
        label = f"{name} {'float64' if float64 else 'float32'}"
        for design in ("isolated", "auto"):
            r, wall, cpu, _ = audit_case(name, size, size, bases, float64=float64,
                                         design=design)
            got[design] = (r, wall, cpu)
            print(f"{label:22s} {design:9s} {'PASS' if r.passed else 'FAIL':7s} "
                  f"{100 * r.total_coverage:7.1f}% {r.calls:6d} {r.images:7d} {wall:7.1f} "
                  f"{cpu:7.1f}", flush=True)
        (a, wa, ca), (b, wb, cb) = got["isolated"], got["auto"]
        verdict = a.passed == b.passed and a.leaks == b.leaks
        differ = int((a.dep != b.dep).sum())
        same &= verdict and (differ == 0 or a.dtype != "float64")
        rows.append((label, wa / wb, ca / cb, verdict, differ, a.dtype))
    for label, wall, cpu, verdict, differ, dtype in rows:
        maps = "the same map" if not differ else \
            f"maps differ on {differ} pairs at the {dtype} threshold (faint changes)"
        print(f"{label}: auto {wall:.1f}x faster (wall), {cpu:.1f}x (CPU); "
              f"{'the same verdict and leaks' if verdict else 'a DIFFERENT verdict'}, {maps}")
    return 0 if same else 1


def main(argv=None):
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", choices=sorted(CASES), default=list(CASES))
    ap.add_argument("--bases", type=int, default=None, help="default 2 (8 with --speed)")
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--max-lines", type=int, default=6)
    ap.add_argument("--speed", action="store_true",
                    help="time the old default design (isolated) against auto, 8 bases")
    a = ap.parse_args(argv)
    if a.speed:
        return speed(a.bases or 8, a.size)
    rows, ok = [], True
    for name in a.models:
        report, seconds, _, expected = audit_case(name, a.size, a.size, a.bases or 2)
        print(f"=== {name} ({seconds:.1f} s)")
        print(report.format(max_lines=a.max_lines))
        print()
        rows.append((name, report, seconds, expected))
        ok &= report.passed == expected
    print(f"{'model':20s} {'verdict':8s} {'expected':8s} {'coverage':>8s} {'calls':>6s} "
          f"{'images':>7s} {'seconds':>8s}")
    for name, r, s, expected in rows:
        print(f"{name:20s} {'PASS' if r.passed else 'FAIL':8s} "
              f"{'PASS' if expected else 'FAIL':8s} {100 * r.total_coverage:7.1f}% "
              f"{r.calls:6d} {r.images:7d} {s:8.2f}")
    print("as expected" if ok else "UNEXPECTED verdicts")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
