"""RGB digits with a 256-way softmax per colour (the paper's CIFAR-10 setting, small).

    python demos/rgb_digits.py                     # ~1 min on 2 CPU cores (16x16 crops)
    python demos/rgb_digits.py --device cuda --crop 28 --epochs 50

Each digit is drawn in a random colour on a random background; each sub-pixel
R, G, B is a 256-way softmax conditioned on the pixels before it and, inside
a pixel, on the colours before it (masks A and B). The loss is reported in
bits per dimension, the unit of the paper's colour results.

A 256-way softmax learns slowly: it has to discover that value v and v+1 are
neighbours. Expect about 6.5 bits/dim after the default 4 epochs (8 is
uniform) and noisy colour samples; it takes far longer training (and the
paper's 1024 output maps) to get sharp images.
"""
import argparse

from minipixel.backend import check_device
from minipixel.data import load_dataset
from minipixel.figures import samples_figure
from minipixel.models import build
from minipixel.png import write_png
from minipixel.sampling import sample
from minipixel.training import Trainer

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--model", default="pixelcnn", choices=["diagonal", "rowlstm", "pixelcnn"])
p.add_argument("--crop", type=int, default=16, help="central crop size (28 = whole digits)")
p.add_argument("--epochs", type=int, default=4)
p.add_argument("--n-train", type=int, default=4000)
p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
p.add_argument("--out", default="runs/demo_rgb")
args = p.parse_args()
check_device(args.device)

data = load_dataset("rgb", crop=args.crop, n_train=args.n_train, n_test=200)
print(f"{len(data.train)} training images {data.train.shape[1:]}, {data.levels} levels")
# 2h = 24 feature maps, split into R, G, B groups of 8; out_hidden 96 (32 per colour).
model = build(args.model, channels=3, levels=256, h=12, layers=4, out_hidden=96, seed=0)
model.to(args.device)

trainer = Trainer(model, data.train, data.test, optimizer="adam", lr=3e-3, batch_size=16,
                  epochs=args.epochs, clip=100.0, out=args.out, dataset=data.spec)
metrics = trainer.run()
print(f"test: {metrics['test_bits_per_dim']:.3f} bits/dim "
      f"(uniform over 256 values: 8 bits/dim)")

images = sample(model, 16, args.crop, args.crop, seed=0, cached=True)   # (16, 3, S, S) uint8
path = write_png(f"{args.out}/samples.png", samples_figure(images, levels=256, scale=4))
print(f"wrote {path}")
