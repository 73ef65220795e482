"""Audit PyTorch models for causality with minipixel's black-box audit.

    pip install torch==2.13.0
    python demos/audit_torch_model.py [--png-dir DIR]

Small PixelCNN and Row LSTM models built in PyTorch (no minipixel code), each
audited as `minipixel audit demos/audit_torch_model.py:make --kwargs '{"name": ...}'`
would:

  pixelcnn            7x7 mask A, 3x3 mask B layers, 1x1 mask B output: passes,
                      and --expect pixelcnn shows its blind spot is the paper's
  batchnorm-train     the same with BatchNorm after each hidden conv, in training
                      mode: the batch statistics mix every position of every image
                      (batch coupling, and leaks within each image, with their sizes)
  batchnorm-eval      the same model in eval mode: per-image again, passes
  centre-kept         mask B in the first layer: each sub-pixel sees itself
  rowlstm             a Row LSTM layer (1x3 state-to-state conv padded on both
                      sides): passes, the paper's Row LSTM field exactly
  rowlstm-left-pad    state-to-state padded on the left only: no leak, but the field
                      leans left; --expect rowlstm names the missing pixels

The models take float images (N, C, H, W) in [-1, 1], what the audit gives a torch
module by default (--input signed; --input unit gives v/(V-1), --input int the integer
values), and compute in the dtype of their parameters, so the audit can run them in
float64 (module.double()). demos/outside_models.py has stand-ins of bigger outside
models (gated PixelCNNs, PixelCNN++, a BatchNorm tutorial PixelCNN).
"""
import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minipixel.crosscheck import audit  # noqa: E402
from minipixel.crosscheck.adapters import torch_fn  # noqa: E402


def colour_mask(kind, oc, ic, kh, kw, colours):
    """Mask A / B with contiguous colour groups (channel j of n in group j*colours//n)."""
    og = torch.arange(oc) * colours // oc
    ig = torch.arange(ic) * colours // ic
    m = torch.ones(oc, ic, kh, kw)
    if kind is None:
        return m
    m[:, :, kh // 2 + 1:] = 0
    m[:, :, kh // 2, kw // 2 + 1:] = 0
    sees = (ig[None] < og[:, None]) if kind == "A" else (ig[None] <= og[:, None])
    m[:, :, kh // 2, kw // 2] = sees
    return m


class MaskedConv(nn.Conv2d):
    def __init__(self, kind, ic, oc, kh, kw, colours):
        super().__init__(ic, oc, (kh, kw), padding=(kh // 2, kw // 2))
        self.register_buffer("mask", colour_mask(kind, oc, ic, kh, kw, colours))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class Head(nn.Module):
    """Take the images in the model's dtype, and turn features into logits
    (N, levels, C, H, W)."""

    def __init__(self, colours, levels, maps):
        super().__init__()
        self.channels, self.levels = colours, levels
        self.out = MaskedConv("B", maps, colours * levels, 1, 1, colours)

    def scale(self, images):                          # floats in [-1, 1] already
        return images.to(self.out.weight.dtype)

    def forward(self, x):
        z = self.out(F.leaky_relu(x, 0.1))            # (N, C * levels, H, W), colour-major
        N, _, H, W = z.shape
        return z.reshape(N, self.channels, self.levels, H, W).transpose(1, 2)


class TinyPixelCNN(nn.Module):
    def __init__(self, colours=1, levels=4, maps=12, layers=2, first="A", batchnorm=False):
        super().__init__()
        self.head = Head(colours, levels, maps)
        self.channels, self.levels = colours, levels
        self.first = MaskedConv(first, colours, maps, 7, 7, colours)
        self.hidden = nn.ModuleList(MaskedConv("B", maps, maps, 3, 3, colours)
                                    for _ in range(layers))
        self.norms = nn.ModuleList((nn.BatchNorm2d(maps) if batchnorm else nn.Identity())
                                   for _ in range(layers))

    def forward(self, images):                        # (N, C, H, W) floats in [-1, 1]
        x = self.first(self.head.scale(images))
        for conv, norm in zip(self.hidden, self.norms):
            x = x + norm(conv(F.leaky_relu(x, 0.1)))
        return self.head(x)


class TinyRowLSTM(nn.Module):
    """One-colour Row LSTM: 7x7 mask A, one Row LSTM layer (1x3 mask B input-to-state,
    1x3 state-to-state over the row above), a residual, the head. Gates i, f, o, g."""

    def __init__(self, levels=4, maps=8, hidden=6, state_padding="both"):
        super().__init__()
        self.head = Head(1, levels, maps)
        self.channels, self.levels, self.hidden_units = 1, levels, hidden
        self.first = MaskedConv("A", 1, maps, 7, 7, 1)
        self.input_to_state = MaskedConv("B", maps, 4 * hidden, 1, 3, 1)
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, 3, bias=False)
        self.pad = (1, 1) if state_padding == "both" else (2, 0)
        self.output = nn.Conv2d(hidden, maps, 1)

    def forward(self, images):
        x = self.first(self.head.scale(images))
        gates_in = self.input_to_state(x)              # (N, 4h, H, W)
        N, _, H, W = x.shape
        h = c = x.new_zeros(N, self.hidden_units, W)
        rows = []
        for r in range(H):
            pre = gates_in[:, :, r] + self.state_to_state(F.pad(h, self.pad))
            i, f, o, g = pre.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            rows.append(h)
        return self.head(x + self.output(torch.stack(rows, dim=2)))


def build(name, colours=1, levels=4):
    torch.manual_seed(0)
    if name.startswith("rowlstm"):
        return TinyRowLSTM(levels, state_padding="left" if name.endswith("left-pad") else "both")
    model = TinyPixelCNN(colours, levels, first="B" if name == "centre-kept" else "A",
                         batchnorm=name.startswith("batchnorm"))
    if name == "batchnorm-eval":
        with torch.no_grad():                          # running statistics from one batch
            model(torch.rand(16, colours, 8, 8) * 2 - 1)
        model.eval()
    return model


def make(name="pixelcnn", colours=1, levels=4):
    """The factory for `minipixel audit`: a torch module (the audit wraps it)."""
    return build(name, colours, levels)


CASES = {   # name: (audit keyword arguments, expected to pass)
    "pixelcnn": (dict(expect="pixelcnn", layers=2), True),
    "batchnorm-train": (dict(expect="pixelcnn", layers=2), False),
    "batchnorm-eval": (dict(expect="pixelcnn", layers=2), True),
    "centre-kept": (dict(), False),
    "rowlstm": (dict(expect="rowlstm", layers=1), True),
    "rowlstm-left-pad": (dict(expect="rowlstm", layers=1), True),
}


def run(name, png_dir=None, max_lines=8):
    kwargs, _ = CASES[name]
    report = audit(torch_fn(build(name)), channels=1, levels=4, H=8, W=8, bases=2, **kwargs)
    print(f"=== {name}")
    print(report.format(max_lines=max_lines))
    if png_dir:
        path = os.path.join(png_dir, f"audit_{name}.png")
        report.write_png(path)
        print(f"map: {path}")
    print()
    return report


def main(argv=None):
    torch.set_num_threads(1)               # many tiny calls: threads only add waiting
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--png-dir", help="write a dependency map per model here")
    ap.add_argument("--models", nargs="+", choices=sorted(CASES), default=list(CASES))
    a = ap.parse_args(argv)
    reports = {name: run(name, a.png_dir) for name in a.models}
    ok = all(reports[n].passed == CASES[n][1] for n in reports)
    print("as expected: " + ", ".join(f"{n} {'passes' if r.passed else 'fails'}"
                                      for n, r in reports.items()) if ok
          else "UNEXPECTED audit results")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
