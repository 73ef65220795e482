"""minipixel models as plain functions for the black-box audit (audit.py).

    fn = model_fn(model)        int images (N, C, H, W) -> NumPy logits, no autograd
    tiny(model="diagonal")      a small float64 model's fn, for `minipixel audit`:
        minipixel audit minipixel.crosscheck.adapters:tiny --kwargs '{"model": "rowlstm"}'
"""
import contextlib

import numpy as np

from ..backend import to_numpy
from ..causality import probe_activation
from ..models import build
from ..tensor import no_grad


def model_fn(model, leaky=False):
    """A NumPy function images -> logits for a minipixel model, with .channels and .levels.

    leaky=True swaps ReLUs for leaky ones (causality.probe_activation) so no
    path hides behind a dead unit: exact coverage, same causal structure."""
    def fn(images):
        ctx = probe_activation(model) if leaky else contextlib.nullcontext()
        with no_grad(), ctx:
            return to_numpy(model(np.asarray(images)).data)
    fn.channels, fn.levels, fn.model = model.channels, model.levels, model
    return fn


def tiny(model="pixelcnn", channels=3, levels=16, h=4, layers=2, out_hidden=8, seed=0,
         dtype="float64", leaky=False):
    """model_fn of a small freshly initialised model (defaults: RGB, 16 levels, float64)."""
    m = build(model, channels=channels, levels=levels, h=h, layers=layers, out_hidden=out_hidden,
              seed=seed, dtype=np.dtype(dtype))
    return model_fn(m, leaky)
