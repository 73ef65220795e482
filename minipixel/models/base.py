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
"""
import numpy as np

from ..backend import device_of, get_array_module, to_device, to_numpy
from ..layers import MaskedConv2d, channel_groups, sigmoid_nll, softmax_nll
from ..nn import Module, ModuleList
from ..ops import concat, relu
from ..tensor import Tensor


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


class PixelModel(Module):
    """Base of PixelCNN, RowLSTM and DiagonalBiLSTM; subclasses give `make_layer`."""
    name = None

    def __init__(self, channels=1, levels=2, h=16, layers=7, out_hidden=32, seed=0,
                 dtype=np.float32):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey/binary) or 3 (RGB), got {channels}")
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.config = dict(model=self.name, channels=channels, levels=levels, h=h, layers=layers,
                           out_hidden=out_hidden, seed=seed, dtype=np.dtype(dtype).name)
        rng = np.random.default_rng(seed)
        self.channels, self.levels = channels, levels
        self.values = 1 if levels == 2 else levels            # logits per sub-pixel
        g2h, gout = channel_groups(2 * h, channels), channel_groups(out_hidden, channels)
        self.first = MaskedConv2d("A", g2h, channel_groups(channels, channels), 7, rng=rng,
                                  dtype=dtype)
        self.layers = ModuleList(self.make_layer(h, channels, rng, dtype) for _ in range(layers))
        self.skip = MaskedConv2d("B", gout, np.tile(g2h, layers), 1, rng=rng, dtype=dtype)
        self.out_hidden = MaskedConv2d("B", gout, gout, 1, rng=rng, dtype=dtype)
        self.out_logits = MaskedConv2d("B", channel_groups(channels * self.values, channels), gout,
                                       1, rng=rng, dtype=dtype)
        self.act = relu     # swapped for a leaky ReLU by causality.probe_activation

    def make_layer(self, h, colours, rng, dtype):
        raise NotImplementedError

    # ---- forward -------------------------------------------------------------
    def scale(self, images):
        """Integer images -> float Tensor in [-1, 1] on the model's device and dtype."""
        images = check_images(images, self.channels, self.levels)
        if device_of(images) != self.device:
            images = to_device(images, self.device)
        x = images.astype(self.dtype) * self.dtype.type(2.0 / (self.levels - 1)) - 1
        return Tensor(x)

    def forward(self, images):
        """Logits for integer images: (N, C, H, W) if binary, else (N, levels, C, H, W)."""
        return self.logits_from_scaled(self.scale(images))

    def layer_outputs(self, x):
        """The first layer's and every layer's output (N, 2h, H, W) for scaled input x."""
        outs = [self.first(x)]
        for layer in self.layers:
            outs.append(layer(outs[-1]))
        return outs

    def logits_from_scaled(self, x):
        """Logits from the scaled float input x (N, C, H, W): differentiable in x."""
        outs = self.layer_outputs(x)
        s = self.skip(concat(outs[1:], axis=1))
        z = self.out_logits(self.act(self.out_hidden(self.act(s))))
        if self.values == 1:
            return z
        N, _, H, W = z.shape
        return z.reshape(N, self.channels, self.values, H, W).transpose(0, 2, 1, 3, 4)

    # ---- likelihood ----------------------------------------------------------
    def nll_from_logits(self, logits, images):
        """NLL in nats per image (N,)."""
        if self.values == 1:
            return sigmoid_nll(logits, images).sum(axis=(1, 2, 3))
        return softmax_nll(logits, images).sum(axis=(1, 2, 3))

    def nll(self, images):
        """Negative log-likelihood of each image in nats: a Tensor (N,)."""
        images = check_images(images, self.channels, self.levels)
        logits = self(images)          # checked again where they are: host images cost no sync
        if device_of(images) != self.device:
            images = to_device(images, self.device)
        return self.nll_from_logits(logits, images)

    def loss(self, images):
        """Mean NLL per image in nats (the training objective)."""
        return self.nll(images).mean()
