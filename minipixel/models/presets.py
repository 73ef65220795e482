"""The paper's model settings (table 4 / section 5), by name.

Where the paper gives no number (PixelCNN's width on MNIST, Row LSTM on
MNIST) the preset follows the closest setting it does give.
"""
from .diagonal_bilstm import DiagonalBiLSTM
from .multiscale import MultiScalePixelRNN
from .pixelcnn import PixelCNN
from .row_lstm import RowLSTM

MODELS = {cls.name: cls for cls in (PixelCNN, RowLSTM, DiagonalBiLSTM, MultiScalePixelRNN)}

_MNIST = dict(channels=1, levels=2, out_hidden=32)
_CIFAR = dict(channels=3, levels=256, out_hidden=1024)
PRESETS = {
    "mnist-diagonal":        dict(model="diagonal", h=16, layers=7, **_MNIST),   # 79.20 nats
    "mnist-diagonal-1layer": dict(model="diagonal", h=32, layers=1, **_MNIST),   # 80.75 nats
    "mnist-rowlstm":         dict(model="rowlstm", h=16, layers=7, **_MNIST),
    "mnist-pixelcnn":        dict(model="pixelcnn", h=16, layers=15, **_MNIST),  # 81.30 nats
    # section 3.6: a 14 x 14 (RGB: 16 x 16) small image, then the large one given it
    "mnist-multiscale":         dict(model="multiscale", kind="diagonal", factor=2,
                                     condition_maps=16, h=16, layers=7, **_MNIST),
    "mnist-multiscale-rowlstm": dict(model="multiscale", kind="rowlstm", factor=2,
                                     condition_maps=16, h=16, layers=7, **_MNIST),
    "cifar-multiscale":         dict(model="multiscale", kind="diagonal", factor=2,
                                     condition_maps=32, h=128, layers=12, **_CIFAR),
    "cifar-pixelcnn":        dict(model="pixelcnn", h=128, layers=15, **_CIFAR),  # 3.14 bits/dim
    "cifar-rowlstm":         dict(model="rowlstm", h=128, layers=12, **_CIFAR),   # 3.07 bits/dim
    "cifar-diagonal":        dict(model="diagonal", h=128, layers=12, **_CIFAR),  # 3.00 bits/dim
}


def build(model, **config):
    """A model by kind ('pixelcnn', 'rowlstm', 'diagonal', 'multiscale') and its settings
    (channels, levels, h, layers, out_hidden, seed, dtype; fast=False for the paper path;
    a multi-scale model's kind, factor and condition_maps)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {sorted(MODELS)}")
    return MODELS[model](**config)


def from_preset(name, **overrides):
    """A model from a paper preset, any setting overridden (e.g. seed, dtype, fast=False)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    config = {**PRESETS[name], **overrides}
    return build(config.pop("model"), **config)
