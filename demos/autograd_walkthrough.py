"""A short tour of minipixel's autograd engine (minipixel/tensor.py, minipixel/ops/):
not only that it works, but how.

    python demos/autograd_walkthrough.py [--device cuda]

1. A Tensor holds an array (NumPy, or CuPy on a GPU) and, after backward(),
   its gradient. Every op computes its output and records a graph node: its
   inputs' nodes and a backward closure. The demo prints such a graph.
2. backward() walks the recorded graph from the output back to the leaves,
   adding up the gradients of values used more than once.
3. Writing an op: compute the output array with the inputs' array module, then
   ``record(output, inputs, backward, name)``, where backward maps the output's
   gradient to one gradient per input. Every op in minipixel/ops is written so.
4. gradcheck compares a backward with central finite differences (float64): it
   passes the op of step 3, and fails, naming the worst element, when the same
   op is given a wrong backward.
5. A masked convolution's gradient, checked the same way; no_grad; one training
   step of a tiny model (zero_grad, loss, backward, step).
"""
import argparse

import numpy as np

from minipixel import GradcheckError, Tensor, gradcheck, no_grad, ops
from minipixel.backend import check_device
from minipixel.models import build
from minipixel.nn import Adam
from minipixel.tensor import record

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
device = check_device(p.parse_args().device)

def show_graph(t, names):
    """Print the graph recorded under tensor t: each op above its inputs, leaves by name."""
    def show(node, depth):
        pad = "   " + "    " * depth
        if node is None:                    # an input that needs no gradient
            print(pad + "(a constant: no gradient)")
        elif node.leaf is not None:
            print(pad + names.get(id(node.leaf()), "a leaf"))
        else:
            print(pad + node.op)
            for parent in node.parents:
                show(parent, depth + 1)
    show(t.node(), 0)


print("1. y = sum(x * x + 3x): the graph the ops recorded, then dy/dx = 2x + 3")
x = Tensor([1.0, -2.0, 0.5], requires_grad=True, device=device)
y = (x * x + 3 * x).sum()
print("   y =", y)
show_graph(y, {id(x): "x (a leaf: it keeps .grad)"})
y.backward()                              # walks the graph back, then releases it
print("   x =", x.numpy(), " y =", y.item(), " x.grad =", x.grad, "\n")

print("2. a value used twice gets the sum of both paths: z = a*b + a, dz/da = b + 1")
a = Tensor(np.array(2.0), requires_grad=True, device=device)
b = Tensor(np.array(5.0), requires_grad=True, device=device)
z = a * b + a
z.backward()
print(f"   dz/da = {float(a.grad)} (b + 1 = 6), dz/db = {float(b.grad)} (a = 2)\n")


print("3. writing an op with record: softplus(x) = log(1 + e^x), d/dx = sigmoid(x)")


def softplus(x, wrong=False):
    """z = log(1 + e^x);  dz/dx = sigmoid(x). wrong=True: the backward of exp instead."""
    xp = x.xp                               # NumPy or CuPy, whichever holds x
    z = xp.logaddexp(0, x.data)             # the forward, on arrays (no graph)
    s = 1 / (1 + xp.exp(-x.data))           # what the backward needs, kept by the closure
    if wrong:
        return record(z, (x,), lambda g: (g * z,), "softplus")   # a plausible slip
    return record(z, (x,), lambda g: (g * s,), "softplus")    # g -> one grad per input


rng = np.random.default_rng(0)
u = Tensor(rng.normal(size=(2, 3)), requires_grad=True, device=device)   # float64
show_graph(softplus(u).sum(), {id(u): "u"})
print("   gradcheck, right backward:", gradcheck(softplus, u))
try:
    gradcheck(lambda t: softplus(t, wrong=True), u)
except GradcheckError as e:
    print("   gradcheck, wrong backward:", e)
print()

print("4. a masked convolution and its gradient, checked by finite differences (float64)")
img = Tensor(rng.normal(size=(1, 2, 5, 5)), requires_grad=True, device=device)
w = Tensor(rng.normal(size=(3, 2, 3, 3)), requires_grad=True, device=device)
mask = np.ones((3, 2, 3, 3))
mask[:, :, 2, :] = 0                      # no row below the centre
mask[:, :, 1, 2] = 0                      # no pixel to the right
mask = img.xp.asarray(mask)
fn = lambda i, k: ops.tanh(ops.conv2d(i, k, None, padding=1, mask=mask))
print("   gradcheck:", gradcheck(fn, img, w), "(True: every gradient element matches)\n")

print("5. no_grad: no graph is recorded (sampling, evaluation)")
with no_grad():
    q = x * 2
print("   requires_grad inside no_grad:", q.requires_grad, "\n")

print("6. one training step of a tiny Row LSTM on random binary 6x6 images")
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
