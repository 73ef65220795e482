"""What the three models share (paper section 3 and figure 4 / table 1).

    images (N, C, H, W) integers in 0..levels-1
      -> scaled to [-1, 1]
      -> 7 x 7 conv, mask A, 2h maps
      -> L layers (Row LSTM, Diagonal BiLSTM or PixelCNN blocks), each 2h -> 2h
      -> skip connections: the outputs of all L layers, concatenated, through
         one 1 x 1 conv with mask B to `out_hidden` maps (the same as a learned
         1 x 1 projection of each layer, summed; the paper's exact form is not
         legible, this is our choice)
      -> ReLU, 1 x 1 conv mask B (out_hidden), ReLU, 1 x 1 conv mask B to logits

Logits: levels == 2 (binary images): one Bernoulli logit per sub-pixel,
(N, C, H, W). Otherwise a softmax over `levels` values per sub-pixel, laid
out as PyTorch's cross-entropy expects: (N, levels, C, H, W). The last conv
makes C * levels maps, colour-major (channel = colour * levels + value), so
they fall into the R, G, B groups like every other layer.

Two paths compute the same numbers: ``fast=True`` (the default) uses the fused
layers and losses of minipixel/fast/, ``fast=False`` the paper path of
minipixel/layers/ (every backward derived by the engine). ``relu_slope`` > 0
makes every ReLU leaky (the causality probe's models; 0 is the paper's ReLU).
Neither is part of ``config``: they change how, not what, the model computes
(relu_slope aside, which only probes use).

``condition_maps`` > 0 makes the conditional network of the Multi-Scale PixelRNN
(multiscale.py): every layer gets a 1 x 1 unmasked conv V of a conditioning map
(N, condition_maps, H, W) added to its gates, and ``logits_from_scaled(x, cond=...)``
takes that map.

``forward(images, trace)`` / ``logits_from_scaled(x, trace)``: with a dict
``trace`` the one forward pass also records its intermediates (the reference
files of minipixel/crosscheck/reference.py are made this way): "layer/0",
"layer/<i>", "hidden/<i>" (recurrent layers), "skip", "out_hidden".
"""
import numpy as np

from .. import fast as fast_path
from ..backend import device_of, get_array_module, to_device, to_numpy
from ..layers import MaskedConv2d, channel_groups, losses as paper_losses
from ..layers.residual import rectify
from ..nn import Module, ModuleList
from ..ops import concat
from ..sampling.per_pixel.base import ModelPixels
from ..tensor import Tensor
from ..validate import is_whole


def check_images(images, channels, levels):
    """Raise ValueError unless images are integer (N, channels, H, W) in 0..levels-1."""
    if isinstance(images, Tensor):
        images = images.data
    if not hasattr(images, "dtype") or not hasattr(images, "ndim"):
        raise ValueError(f"images must be an integer array (N, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must have 4 dimensions (N, C, H, W), got shape {tuple(images.shape)}")
    if images.dtype.kind not in "iub":
        xp = get_array_module(images)
        nan = " (and contains NaN)" if images.dtype.kind == "f" and bool(xp.isnan(images).any()) else ""
        raise ValueError(f"images must hold integers 0..{levels - 1}, got dtype {images.dtype}{nan}; "
                         f"convert float images with e.g. (x * {levels - 1}).round().astype('uint8')")
    if images.shape[1] != channels:
        raise ValueError(f"this model takes {channels} channel(s), got images of shape "
                         f"{tuple(images.shape)} with {images.shape[1]}")
    if images.size:                                # both ends in one read: one sync on a GPU
        ends = get_array_module(images).stack([images.min(), images.max()])
        low, high = (int(v) for v in to_numpy(ends))
        if low < 0 or high > levels - 1:
            raise ValueError(f"image values must lie in 0..{levels - 1}, got {low}..{high}")
    return images


def check_config(channels, levels, h, layers, out_hidden):
    """Raise ValueError for sizes no model can have."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey/binary) or 3 (RGB), got {channels!r}")
    for name, value in (("levels", levels), ("h", h), ("layers", layers),
                        ("out_hidden", out_hidden)):
        if not is_whole(value, low=None):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    for name, value in (("h", h), ("layers", layers), ("out_hidden", out_hidden)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if channels == 3:
        for name, value in (("h", h), ("out_hidden", out_hidden)):
            if value < 3:
                raise ValueError(f"an RGB model needs {name} >= 3 so that each colour group "
                                 f"(R, G, B) has a feature map; got {name}={value}")


class PixelModel(Module):
    """Base of PixelCNN, RowLSTM and DiagonalBiLSTM; subclasses give `make_layer`."""
    name = None

    def __init__(self, channels=1, levels=2, h=16, layers=7, out_hidden=32, seed=0,
                 dtype=np.float32, fast=True, relu_slope=0.0, condition_maps=0):
        super().__init__()
        check_config(channels, levels, h, layers, out_hidden)
        self.config = dict(model=self.name, channels=channels, levels=levels, h=h, layers=layers,
                           out_hidden=out_hidden, seed=seed, dtype=np.dtype(dtype).name)
        if condition_maps:
            self.config["condition_maps"] = condition_maps
        self.fast, self.relu_slope = bool(fast), float(relu_slope)
        rng = np.random.default_rng(seed)
        self.channels, self.levels = channels, levels
        self.logits_per_subpixel = 1 if levels == 2 else levels   # Bernoulli: 1; softmax: levels
        g2h, gout = channel_groups(2 * h, channels), channel_groups(out_hidden, channels)
        self.first = MaskedConv2d("A", g2h, channel_groups(channels, channels), 7, rng=rng,
                                  dtype=dtype)
        conditional = {"condition_maps": condition_maps} if condition_maps else {}
        self.layers = ModuleList(self.make_layer(h, channels, rng, dtype, **conditional)
                                 for _ in range(layers))
        self.skip = MaskedConv2d("B", gout, np.tile(g2h, layers), 1, rng=rng, dtype=dtype)
        self.out_hidden = MaskedConv2d("B", gout, gout, 1, rng=rng, dtype=dtype)
        n_logits = channels * self.logits_per_subpixel
        self.out_logits = MaskedConv2d("B", channel_groups(n_logits, channels), gout, 1, rng=rng,
                                       dtype=dtype)
        self.losses = fast_path.losses if self.fast else paper_losses

    def variant(self, **changes):
        """A new model of this one's kind and config, its parameters copied, with `changes`
        to the constructor's arguments (e.g. fast=False, relu_slope=0.1, dtype=float64)."""
        args = {k: v for k, v in self.config.items() if k != "model"}
        args.update(fast=self.fast, relu_slope=self.relu_slope)
        args.update(changes)
        twin = type(self)(**args)
        twin.load_state_dict({k: v.astype(twin.dtype) for k, v in self.state_dict().items()})
        return twin.to(self.device)

    def head_relu(self, x):
        """The head's ReLU (leaky with relu_slope > 0)."""
        return rectify(x, self.relu_slope)

    def make_layer(self, h, colours, rng, dtype, condition_maps=0):
        raise NotImplementedError

    # ---- forward -------------------------------------------------------------
    def scale(self, images):
        """Integer images -> float Tensor in [-1, 1] on the model's device and dtype."""
        images = check_images(images, self.channels, self.levels)
        if device_of(images) != self.device:
            images = to_device(images, self.device)
        x = images.astype(self.dtype) * self.dtype.type(2.0 / (self.levels - 1)) - 1
        return Tensor(x)

    def forward(self, images, trace=None):
        """Logits for integer images: (N, C, H, W) if binary, else (N, levels, C, H, W)."""
        return self.logits_from_scaled(self.scale(images), trace)

    def logits_from_scaled(self, x, trace=None, cond=None):
        """Logits from the scaled float input x (N, C, H, W): differentiable in x.

        trace: a dict to record the intermediates in (see the module docstring);
        cond: the conditioning map (N, condition_maps, H, W) of a conditional network."""
        trace = {} if trace is None else trace
        x = trace["layer/0"] = self.first(x)
        outs = []
        for i, layer in enumerate(self.layers, start=1):
            inner = {}
            x = trace[f"layer/{i}"] = layer(x, trace=inner, cond=cond)
            outs.append(x)
            if "hidden" in inner:
                trace[f"hidden/{i}"] = inner["hidden"]
        s = trace["skip"] = self.skip(concat(outs, axis=1))
        hidden = trace["out_hidden"] = self.out_hidden(self.head_relu(s))
        return self.logits_layout(self.out_logits(self.head_relu(hidden)))

    def logits_layout(self, z):
        """The last conv's maps (N, C * values, H, W) -> logits (N, C, H, W) or
        (N, levels, C, H, W) (the last conv's channels are colour-major)."""
        if self.logits_per_subpixel == 1:
            return z
        N, _, H, W = z.shape
        V = self.logits_per_subpixel
        return z.reshape(N, self.channels, V, H, W).transpose(0, 2, 1, 3, 4)

    # ---- one pixel at a time (cached sampling) -------------------------------
    def pixel_steps(self, N, H, W, cond=None):
        """The per-pixel twin (sampling/per_pixel/); cond: a conditional network's
        conditioning map (N, condition_maps, H, W), as ``logits_from_scaled`` takes it."""
        return ModelPixels(self, N, H, W, cond)

    # ---- likelihood ----------------------------------------------------------
    def subpixel_nll(self, logits, images):
        """-log p of each sub-pixel's value given its context, nats (N, C, H, W)."""
        if self.logits_per_subpixel == 1:
            return self.losses.sigmoid_nll(logits, images)
        return self.losses.softmax_nll(logits, images)

    def nll_from_logits(self, logits, images):
        """NLL in nats per image (N,)."""
        return self.subpixel_nll(logits, images).sum(axis=(1, 2, 3))

    def nll(self, images):
        """Negative log-likelihood of each image in nats: a Tensor (N,)."""
        images = check_images(images, self.channels, self.levels)
        logits = self(images)          # checked again where they are: host images cost no sync
        if device_of(images) != self.device:
            images = to_device(images, self.device)
        return self.nll_from_logits(logits, images)

    def loss(self, images):
        """Mean NLL per image in nats (the training objective)."""
        images = check_images(images, self.channels, self.levels)
        if images.shape[0] == 0:
            raise ValueError(f"loss: the batch holds no images (shape {tuple(images.shape)}); "
                             f"the mean NLL of an empty batch is undefined")
        return self.nll(images).mean()
