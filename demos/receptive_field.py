"""Which input pixels can one output pixel see? The three models side by side.

    python demos/receptive_field.py [--size 16] [--pixel 12 5] [--device cuda]

For small random float64 models the exact gradient of one pixel's logits with
respect to every input pixel (minipixel.causality.dependency_map; ReLUs made
leaky so no path hides behind a dead unit) shows what each architecture sees:
- PixelCNN: a few rows up only, and a blind spot above and to the right;
- Row LSTM: a triangle that widens upward (all rows, not all columns);
- Diagonal BiLSTM: the whole context (bar one corner pixel, see docs/paper.md).
Red: the pixel; blue: context reached; amber: context not reached; grey: future.
"""
import argparse

import numpy as np

from minipixel.backend import check_device
from minipixel.causality import context_map, dependency_map
from minipixel.figures import receptive_field_figure, receptive_field_maps, receptive_field_text
from minipixel.models import build
from minipixel.png import write_png

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--size", type=int, default=16)
p.add_argument("--pixel", type=int, nargs=2, default=(12, 5))
p.add_argument("--layers", type=int, default=3)
p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
p.add_argument("--out", default="receptive_field.png")
args = p.parse_args()
check_device(args.device)

S, (r, c) = args.size, args.pixel
names = ["pixelcnn", "rowlstm", "diagonal"]
models = [build(n, channels=1, levels=2, h=4, layers=args.layers, out_hidden=8, seed=0,
                dtype=np.float64).to(args.device) for n in names]

# The raw answer: dep[k, r, c, k', r', c'] is True when output (k, r, c) moves with input
# (k', r', c'). Nothing outside the context (earlier pixels) may ever be True.
for name, model in zip(names, models):
    dep = dependency_map(model, S, S)
    leaks = int((dep & ~context_map(1, S, S)).sum())
    print(f"{name}: {leaks} dependencies on the future (must be 0)")

maps = receptive_field_maps(models, S, S, (r, c))          # per-pixel colour codes
for name, code in zip(names, maps):
    print(receptive_field_text(code, f"\n{name}, pixel ({r}, {c}):"))
write_png(args.out, receptive_field_figure(maps))
print(f"\nwrote {args.out}")
