"""A short tour of minipixel's autograd engine (minipixel/tensor.py, minipixel/ops/).

    python demos/autograd_walkthrough.py [--device cuda]

1. A Tensor holds an array (NumPy, or CuPy on a GPU) and, after backward(),
   its gradient.
2. Every op computes its output and records a small backward function that
   maps the output's gradient to its inputs' gradients.
3. backward() walks the recorded graph from the output back to the leaves,
   adding up the gradients of values used more than once.
4. gradcheck compares those hand-written gradients with finite differences.
5. Modules and optimizers build the models on top; one training step is
   zero_grad, loss, backward, step.
"""
import argparse

import numpy as np

from minipixel import Tensor, gradcheck, no_grad, ops
from minipixel.backend import check_device
from minipixel.models import build
from minipixel.nn import Adam

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
device = check_device(p.parse_args().device)

print("1. y = sum(x * x + 3x): dy/dx = 2x + 3")
x = Tensor([1.0, -2.0, 0.5], requires_grad=True, device=device)
y = (x * x + 3 * x).sum()
y.backward()
print("   x =", x.numpy(), " y =", y.item(), " x.grad =", x.grad, "\n")

print("2. a value used twice gets the sum of both paths: z = a*b + a, dz/da = b + 1")
a = Tensor(np.array(2.0), requires_grad=True, device=device)
b = Tensor(np.array(5.0), requires_grad=True, device=device)
z = a * b + a
z.backward()
print(f"   dz/da = {float(a.grad)} (b + 1 = 6), dz/db = {float(b.grad)} (a = 2)\n")

print("3. a masked convolution and its gradient, checked by finite differences (float64)")
rng = np.random.default_rng(0)
img = Tensor(rng.normal(size=(1, 2, 5, 5)), requires_grad=True, device=device)
w = Tensor(rng.normal(size=(3, 2, 3, 3)), requires_grad=True, device=device)
mask = np.ones((3, 2, 3, 3))
mask[:, :, 2, :] = 0                      # no row below the centre
mask[:, :, 1, 2] = 0                      # no pixel to the right
mask = img.xp.asarray(mask)
fn = lambda i, k: ops.tanh(ops.conv2d(i, k, None, padding=1, mask=mask))
print("   gradcheck:", gradcheck(fn, img, w), "(True: every gradient element matches)\n")

print("4. no_grad: no graph is recorded (sampling, evaluation)")
with no_grad():
    q = x * 2
print("   requires_grad inside no_grad:", q.requires_grad, "\n")

print("5. one training step of a tiny Row LSTM on random binary 6x6 images")
model = build("rowlstm", channels=1, levels=2, h=2, layers=1, out_hidden=4, seed=0).to(device)
opt = Adam(model.parameters(), lr=1e-2)
images = rng.integers(0, 2, size=(4, 1, 6, 6))
for step in range(3):
    opt.zero_grad()
    loss = model.loss(images)             # mean NLL in nats per image
    loss.backward()
    opt.step()
    print(f"   step {step}: loss {loss.item():.3f} nats/image "
          f"(a uniform model: 36 ln 2 = {36 * np.log(2):.3f})")
