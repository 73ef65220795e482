"""minipixel models as plain functions for the black-box audit (audit.py).

    fn = model_fn(model)        int images (N, C, H, W) -> NumPy logits, no autograd
    tiny(model="diagonal")      a small float64 model's fn, for `minipixel audit`:
        minipixel audit minipixel.crosscheck.adapters:tiny --kwargs '{"model": "rowlstm"}'
"""
import numpy as np

from ..backend import to_numpy
from ..causality import probe_model
from ..models import build
from ..tensor import no_grad


def model_fn(model, leaky=False):
    """A NumPy function images -> logits for a minipixel model, with .channels and .levels.

    leaky=True runs a copy with leaky ReLUs (causality.probe_model) so no
    path hides behind a dead unit: exact coverage, same causal structure."""
    net = probe_model(model) if leaky else model

    def fn(images):
        with no_grad():
            return to_numpy(net(np.asarray(images)).data)
    fn.channels, fn.levels, fn.model = model.channels, model.levels, model
    return fn


def tiny(model="pixelcnn", channels=3, levels=16, h=4, layers=2, out_hidden=8, seed=0,
         dtype="float64", leaky=False):
    """model_fn of a small freshly initialised model (defaults: RGB, 16 levels, float64)."""
    m = build(model, channels=channels, levels=levels, h=h, layers=layers, out_hidden=out_hidden,
              seed=seed, dtype=np.dtype(dtype))
    return model_fn(m, leaky)
