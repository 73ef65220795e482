"""An independent PyTorch implementation of minipixel's models, for cross-checking.

Written from the paper (docs/paper.md) and the file format (minipixel/crosscheck/reference.py)
only: it imports nothing from minipixel. Convolutions are torch's conv2d,
gradients torch's autograd, the losses torch's cross-entropy / BCE-with-logits.

    out = run(arrays, dtype=torch.float64)   # arrays: {key: ndarray} of a reference file
    -> {key: ndarray} with the same keys: mask/*, layer/*, hidden/*, skip,
       out_hidden, logits, nll, grad/* (computed here), images and param/*
       (copied, cast to dtype)

Masks are built here from the documented convention and compared with the
file's by the tests; the forward uses the ones built here.
"""
import json

import numpy as np
import torch
import torch.nn.functional as F


# ---- masks (paper section 2; channel k of n is in group k*3//n for RGB) ---------
def groups(n, colours):
    return [(k * 3) // n if colours == 3 else 0 for k in range(n)]


def make_mask(kind, out_groups, in_groups, kh, kw):
    m = torch.ones(len(out_groups), len(in_groups), kh, kw, dtype=torch.float64)
    cy, cx = kh // 2, kw // 2
    m[:, :, cy + 1:, :] = 0
    m[:, :, cy, cx + 1:] = 0
    og = torch.tensor(out_groups)[:, None]
    ig = torch.tensor(in_groups)[None, :]
    m[:, :, cy, cx] = ((ig < og) if kind == "A" else (ig <= og)).double()
    return m


def model_masks(cfg):
    """{weight name: mask} for every masked conv of the model in cfg (a multi-scale model:
    its two networks' masks, under "small." and "large."; its other convs are unmasked)."""
    if cfg["model"] == "multiscale":
        net = dict(cfg, model=cfg["kind"])
        return {f"{side}.{k}": m for side in ("small", "large") for k, m in model_masks(net).items()}
    C, h, L, Fh = cfg["channels"], cfg["h"], cfg["layers"], cfg["out_hidden"]
    V = 1 if cfg["levels"] == 2 else cfg["levels"]
    g1, g2h, gF = groups(h, C), groups(2 * h, C), groups(Fh, C)
    gates = g1 * 4
    masks = {"first.weight": make_mask("A", g2h, groups(C, C), 7, 7),
             "skip.weight": make_mask("B", gF, g2h * L, 1, 1),
             "out_hidden.weight": make_mask("B", gF, gF, 1, 1),
             "out_logits.weight": make_mask("B", groups(C * V, C), gF, 1, 1)}
    for i in range(L):
        p = f"layers.{i}."
        if cfg["model"] == "pixelcnn":
            masks[p + "reduce.weight"] = make_mask("B", g1, g2h, 1, 1)
            masks[p + "conv.weight"] = make_mask("B", g1, g1, 3, 3)
            masks[p + "expand.weight"] = make_mask("B", g2h, g1, 1, 1)
        elif cfg["model"] == "rowlstm":
            masks[p + "input_to_state.weight"] = make_mask("B", gates, g2h, 1, 3)
            masks[p + "output.weight"] = make_mask("B", g2h, g1, 1, 1)
        elif cfg["model"] == "diagonal":
            for d in ("left_to_right", "right_to_left"):
                masks[p + d + ".input_to_state.weight"] = make_mask("B", gates, g2h, 1, 1)
            masks[p + "output.weight"] = make_mask("B", g2h, g1, 1, 1)
        else:
            raise ValueError(f"unknown model {cfg['model']!r}")
    return masks


# ---- layers ---------------------------------------------------------------------
class Net:
    """One network; `prefix` picks its parameters ("small." / "large." in a multi-scale
    model); `cond` (N, c, H, W), the conditioning map of a conditional network."""

    def __init__(self, cfg, params, masks, prefix="", cond=None):
        self.cfg, self.cond = cfg, cond
        self.P = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
        self.M = {k[len(prefix):]: v for k, v in masks.items() if k.startswith(prefix)}

    def conv(self, name, x, padding=0, bias=True):
        w = self.P[name + ".weight"] * self.M[name + ".weight"]
        return F.conv2d(x, w, self.P[name + ".bias"] if bias else None, padding=padding)

    def biased(self, p, gates, cond):
        """gates + V (*) cond: the layer's 1x1 unmasked conv of the conditioning map."""
        return gates if cond is None else gates + F.conv2d(cond, self.P[p + "condition.weight"])

    @staticmethod
    def cell(pre, c_prev):
        """Gate order (i, f, g, o) along dim 1."""
        i, f, g, o = pre.chunk(4, dim=1)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def pixelcnn_block(self, p, x):
        y = self.conv(p + "reduce", F.relu(x))
        y = self.biased(p, self.conv(p + "conv", F.relu(y), padding=1), self.cond)
        return x + self.conv(p + "expand", F.relu(y))

    def row_lstm_hidden(self, p, x):
        N, _, H, W = x.shape
        gates = self.biased(p, self.conv(p + "input_to_state", x, padding=(0, 1)), self.cond)
        k = self.P[p + "state_to_state"][:, :, 0, :]                      # (4h, h, 3)
        h = self.P[p + "h0"][None, :, None].expand(N, -1, W)
        c = self.P[p + "c0"][None, :, None].expand(N, -1, W)
        rows = []
        for r in range(H):
            h, c = self.cell(gates[:, :, r] + F.conv1d(h, k, padding=1), c)
            rows.append(h)
        return torch.stack(rows, dim=2)

    @staticmethod
    def skew(x):
        H = x.shape[2]
        return torch.stack([F.pad(x[:, :, r], (r, H - 1 - r)) for r in range(H)], dim=2)

    @staticmethod
    def unskew(s, W):
        return torch.stack([s[:, :, r, r:r + W] for r in range(s.shape[2])], dim=2)

    def diagonal_direction(self, p, x, cond=None):
        N, _, H, W = x.shape
        w = self.P[p + "input_to_state.weight"] * self.M[p + "input_to_state.weight"]
        gates = F.conv2d(self.skew(x), w, self.P[p + "input_to_state.bias"])  # 1x1 on the skewed map
        gates = self.biased(p, gates, None if cond is None else self.skew(cond))
        k = self.P[p + "state_to_state"]                                  # (4h, h, 2, 1)
        h = self.P[p + "h0"][None, :, None].expand(N, -1, H)
        c = self.P[p + "c0"][None, :, None].expand(N, -1, H)
        cols = []
        for j in range(H + W - 1):
            prev = F.pad(h, (1, 0))[:, :, :, None]                         # pad the top only
            rec = F.conv2d(prev, k)[:, :, :, 0]                            # rows r-1, r
            h, c = self.cell(gates[:, :, :, j] + rec, c)
            cols.append(h)
        return self.unskew(torch.stack(cols, dim=3), W)

    def diagonal_hidden(self, p, x):
        cond = self.cond
        l2r = self.diagonal_direction(p + "left_to_right.", x, cond)
        r2l = self.diagonal_direction(p + "right_to_left.", x.flip(3),
                                      None if cond is None else cond.flip(3)).flip(3)
        return l2r + F.pad(r2l[:, :, :-1], (0, 0, 1, 0))                   # shift down one row

    def forward(self, images):
        cfg, out = self.cfg, {}
        C, V = cfg["channels"], cfg["levels"]
        x = images.to(self.P["first.weight"].dtype) * (2.0 / (V - 1)) - 1
        y = self.conv("first", x, padding=3)
        out["layer/0"], layers = y, []
        for i in range(cfg["layers"]):
            p = f"layers.{i}."
            if cfg["model"] == "pixelcnn":
                y = self.pixelcnn_block(p, y)
            else:
                hid = (self.row_lstm_hidden if cfg["model"] == "rowlstm" else self.diagonal_hidden)(p, y)
                out[f"hidden/{i + 1}"] = hid
                y = y + self.conv(p + "output", hid)
            out[f"layer/{i + 1}"] = y
            layers.append(y)
        s = self.conv("skip", torch.cat(layers, dim=1))
        o = self.conv("out_hidden", F.relu(s))
        z = self.conv("out_logits", F.relu(o))
        out["skip"], out["out_hidden"] = s, o
        N, _, H, W = z.shape
        if V == 2:
            logits = z
            nll = F.binary_cross_entropy_with_logits(z, images.to(z.dtype), reduction="none")
        else:
            logits = z.reshape(N, C, V, H, W).permute(0, 2, 1, 3, 4)
            nll = F.cross_entropy(logits, images, reduction="none")
        out["logits"], out["nll"], out["nll_map"] = logits, nll.sum(dim=(1, 2, 3)), nll
        return out


def multiscale_forward(cfg, params, masks, images):
    """The Multi-Scale model as the format table describes it: the small network on
    images[:, :, ::k, ::k], the upsampler, the conditional network, each pixel once."""
    k, V = cfg["factor"], cfg["levels"]
    net_cfg = dict(cfg, model=cfg["kind"])
    N, C, H, W = images.shape
    small = images[:, :, ::k, ::k]
    out = {f"small/{key}": v for key, v in Net(net_cfg, params, masks, "small.").forward(small).items()}
    P = {key[len("upsampler."):]: v for key, v in params.items() if key.startswith("upsampler.")}
    s = small.to(P["embed.weight"].dtype) * (2.0 / (V - 1)) - 1
    embed = F.relu(F.conv2d(s, P["embed.weight"], P["embed.bias"], padding=1))
    up = F.relu(F.conv_transpose2d(embed, P["up.weight"], P["up.bias"], stride=k))[:, :, :H, :W]
    cond = F.conv2d(up, P["refine.weight"], P["refine.bias"], padding=1)
    out.update({"upsampler/embed": embed, "upsampler/up": up, "condition": cond})
    large = Net(net_cfg, params, masks, "large.", cond).forward(images)
    predicted = torch.ones(H, W, dtype=cond.dtype)
    predicted[::k, ::k] = 0                                   # the small image's pixels: given
    out.update({key: v for key, v in large.items() if key not in ("nll", "nll_map")})
    out["nll"] = out["small/nll"] + (large["nll_map"] * predicted).sum(dim=(1, 2, 3))
    return out


def run(arrays, dtype=torch.float64):
    """Everything a reference file holds, recomputed here from its config, params and images."""
    cfg = json.loads(str(arrays["config"]))
    params = {k[len("param/"):]: torch.tensor(np.asarray(v), dtype=dtype, requires_grad=True)
              for k, v in arrays.items() if k.startswith("param/")}
    masks = {k: m.to(dtype) for k, m in model_masks(cfg).items()}
    images = torch.tensor(np.asarray(arrays["images"]), dtype=torch.int64)
    if cfg["model"] == "multiscale":
        out = multiscale_forward(cfg, params, masks, images)
        out["small/images"] = images[:, :, ::cfg["factor"], ::cfg["factor"]]
    else:
        out = Net(cfg, params, masks).forward(images)
    out["nll"].sum().backward()
    result = {"images": arrays["images"]}
    for k, p in params.items():
        result[f"param/{k}"] = p.detach().numpy()
        result[f"grad/{k}"] = (p.grad if p.grad is not None else torch.zeros_like(p)).numpy()
    for k, m in masks.items():
        result[f"mask/{k}"] = m.numpy()
    for k, v in out.items():
        if not k.endswith("nll_map"):
            result[k] = v.detach().numpy()
    return result


def worst_errors(settings=((1, 2, 5, 7), (1, 256, 7, 5), (3, 256, 5, 7), (3, 16, 6, 3))):
    """{(model, dtype): worst relative error over all arrays and settings} vs minipixel."""
    from minipixel.crosscheck.compare import compare
    from minipixel.crosscheck.reference import reference_arrays
    worst = {}
    for model in ("pixelcnn", "rowlstm", "diagonal"):
        for dtype, tdtype in (("float64", torch.float64), ("float32", torch.float32)):
            for C, V, H, W in settings:
                cfg = dict(model=model, channels=C, levels=V, h=4, layers=2, out_hidden=7, seed=11)
                ref = reference_arrays(cfg, seed=5, batch=2, H=H, W=W, dtype=dtype)
                report = compare(ref, run(ref, tdtype))
                key = (model, dtype)
                worst[key] = max(worst.get(key, 0.0), report.worst_rel())
                if not report.passed:
                    print(report.format(verbose=False))
    return worst


if __name__ == "__main__":        # python reference_tests/torch_oracle.py: the error table
    for (model, dtype), err in worst_errors().items():
        print(f"{model:<10} {dtype}: worst relative error {err:.2e}")
