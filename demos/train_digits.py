"""Train a Diagonal BiLSTM on the embedded binarized digits, then sample from it.

    python demos/train_digits.py                  # ~1 min on 2 CPU cores
    OPENBLAS_NUM_THREADS=1 python demos/train_digits.py   # faster when other jobs run
    python demos/train_digits.py --device cuda --epochs 10 --h 32

Uses the library directly (the `minipixel train` command does the same with
more options): load the data, build a model, train with exact-resume
checkpoints, score the test set, draw a grid of samples.
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
p.add_argument("--model", default="diagonal", choices=["diagonal", "rowlstm", "pixelcnn"])
p.add_argument("--h", type=int, default=16)
p.add_argument("--layers", type=int, default=1)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
p.add_argument("--out", default="runs/demo_digits")
args = p.parse_args()
check_device(args.device)                      # a clear error if cuda is not usable

data = load_dataset("binary")                  # 4,000 train / 1,000 test digits, 0/1, 28x28
model = build(args.model, channels=1, levels=2, h=args.h, layers=args.layers, seed=0)
model.to(args.device)
print(f"{args.model}: {model.num_parameters():,} parameters on {args.device}")

trainer = Trainer(model, data.train, data.test, optimizer="adam", lr=1e-3, batch_size=16,
                  epochs=args.epochs, clip=100.0, out=args.out, dataset=data.spec)
metrics = trainer.run()                        # writes out/checkpoint.npz and out/metrics.json
print(f"test NLL {metrics['test_nll_nats']:.2f} nats per image "
      f"(uniform: 543.4, NADE on standard binarized MNIST: 88.3)")

images = sample(model, 36, 28, 28, seed=0, cached=True)     # (36, 1, 28, 28) of 0/1
path = write_png(f"{args.out}/samples.png", samples_figure(images, levels=2))
print(f"wrote {path}")
