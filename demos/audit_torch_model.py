"""Audit PyTorch models for causality with minipixel's black-box audit.

    pip install torch==2.13.0
    python demos/audit_torch_model.py [--png-dir DIR]

Three small RGB PixelCNN-style models built in PyTorch (no minipixel code):
  correct        7x7 mask A, then 3x3 mask B layers, 1x1 mask B output
  centre-kept    the first layer's mask A keeps the centre tap for every
                 colour pair (a mask B): each sub-pixel sees itself
  unmasked-3x3   one hidden 3x3 conv without a mask: sees the row below and
                 the pixel to the right
Only the correct one passes. The adapter that makes any model auditable is
the few lines in `as_numpy_fn`.
"""
import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minipixel.crosscheck import audit  # noqa: E402

C, LEVELS, H_MAPS = 3, 8, 12


def colour_mask(kind, oc, ic, k, colours=C):
    """Mask A / B with contiguous colour groups (channel j of n in group j*3//n)."""
    og = torch.arange(oc) * colours // oc
    ig = torch.arange(ic) * colours // ic
    m = torch.ones(oc, ic, k, k)
    m[:, :, k // 2 + 1:] = 0
    m[:, :, k // 2, k // 2 + 1:] = 0
    m[:, :, k // 2, k // 2] = (ig[None] < og[:, None]) if kind == "A" else (ig[None] <= og[:, None])
    return m


class MaskedConv(nn.Conv2d):
    def __init__(self, kind, ic, oc, k):
        super().__init__(ic, oc, k, padding=k // 2)
        self.register_buffer("mask", colour_mask(kind, oc, ic, k) if kind else torch.ones(oc, ic, k, k))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class TinyPixelCNN(nn.Module):
    def __init__(self, first="A", hidden=("B", "B")):
        super().__init__()
        self.first = MaskedConv(first, C, H_MAPS, 7)
        self.hidden = nn.ModuleList(MaskedConv(kind, H_MAPS, H_MAPS, 3) for kind in hidden)
        self.out = MaskedConv("B", H_MAPS, C * LEVELS, 1)

    def forward(self, images):                       # (N, C, H, W) integers
        x = images.float() * (2 / (LEVELS - 1)) - 1
        x = self.first(x)
        for conv in self.hidden:
            x = x + conv(F.leaky_relu(x, 0.1))
        z = self.out(F.leaky_relu(x, 0.1))           # (N, C * LEVELS, H, W), colour-major
        N, _, H, W = z.shape
        return z.reshape(N, C, LEVELS, H, W).transpose(1, 2)   # (N, LEVELS, C, H, W)


def as_numpy_fn(model):
    """The adapter: NumPy int images in, NumPy logits out, no autograd."""
    model.eval()

    def fn(images):
        with torch.no_grad():
            return model(torch.from_numpy(images)).numpy()
    return fn


MODELS = {
    "correct": lambda: TinyPixelCNN("A", ("B", "B")),
    "centre-kept": lambda: TinyPixelCNN("B", ("B", "B")),
    "unmasked-3x3": lambda: TinyPixelCNN("A", ("B", None)),
}


def run(name, png_dir=None, max_lines=12):
    torch.manual_seed(0)
    report = audit(as_numpy_fn(MODELS[name]()), channels=C, levels=LEVELS, H=8, W=8)
    print(f"=== {name}")
    print(report.format(max_lines=max_lines))
    if png_dir:
        path = os.path.join(png_dir, f"audit_{name}.png")
        report.write_png(path)
        print(f"map: {path}")
    print()
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--png-dir", help="write a dependency map per model here")
    a = ap.parse_args(argv)
    reports = {name: run(name, a.png_dir) for name in MODELS}
    ok = reports["correct"].passed and not any(r.passed for n, r in reports.items() if n != "correct")
    print("as expected: only the correct model passes" if ok else "UNEXPECTED audit results")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
