"""Multi-Scale PixelRNN (paper section 3.6): a small image first, then the large one given it.

    x (N, C, H, W), integers        the large image
    s = x[:, :, ::k, ::k]           the small image (N, C, ceil(H/k), ceil(W/k)): the
                                    pixel (k r, k c) of each k x k block
    small network                   an unconditional model of the same kind on s
    upsampler                       s -> cond (N, c, H, W)  (layers/conditioning.py)
    conditional network             the same kind on x, each layer's gates biased by a
                                    1 x 1 unmasked conv V of cond (condition_maps = c)

The likelihood counts each pixel once. The small image's pixels are pixels of x, so
the conditional network is not asked for them: they are given. With G the given
pixels (the rows and columns k r, all colours),

    -log p(x) = -log p_small(s) - sum_{sub-pixels i not in G} log p_cond(x_i | x_<i, s)

Both networks train on this one objective, jointly (they share no parameter, so one
step of the sum is one step of each). p sums to one over all images: for each s the
conditional factors are normalised over the pixels they predict, in raster order
(proved by enumeration in reference_tests/test_multiscale.py).

Sampling runs the two in order (minipixel/sampling/): s from the small network, then
x from the conditional one with the pixels of G copied from s, cond computed once.
"""
import numpy as np

from ..backend import device_of, to_device
from ..layers.conditioning import Upsampler, given_pixels, small_size, subsample
from ..nn import Module
from ..tensor import Tensor
from ..validate import is_whole
from .base import PixelModel, check_images
from .diagonal_bilstm import DiagonalBiLSTM
from .pixelcnn import PixelCNN
from .row_lstm import RowLSTM

KINDS = {cls.name: cls for cls in (PixelCNN, RowLSTM, DiagonalBiLSTM)}
# the settings of its own, by default (the command line fills them from here too)
DEFAULTS = dict(kind="diagonal", factor=2, condition_maps=16)


class MultiScalePixelRNN(Module):
    name = "multiscale"

    def __init__(self, kind=DEFAULTS["kind"], factor=DEFAULTS["factor"],
                 condition_maps=DEFAULTS["condition_maps"], channels=1, levels=2,
                 h=16, layers=7, out_hidden=32, seed=0, dtype=np.float32, fast=True,
                 relu_slope=0.0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        for key, value, low in (("factor", factor, 2), ("condition_maps", condition_maps, 1)):
            if not is_whole(value, low):
                raise ValueError(f"{key} must be a whole number >= {low}, got {value!r}")
        net = dict(channels=channels, levels=levels, h=h, layers=layers, out_hidden=out_hidden,
                   dtype=dtype, fast=fast, relu_slope=relu_slope)
        self.small = KINDS[kind](seed=seed, **net)
        self.large = KINDS[kind](seed=seed + 1, condition_maps=condition_maps, **net)
        self.upsampler = Upsampler(channels, condition_maps, factor,
                                   np.random.default_rng(seed + 2), dtype, relu_slope)
        self.config = dict(model=self.name, kind=kind, factor=factor,
                           condition_maps=condition_maps, channels=channels, levels=levels,
                           h=h, layers=layers, out_hidden=out_hidden, seed=seed,
                           dtype=np.dtype(dtype).name)
        self.kind, self.factor = kind, factor
        self.fast, self.relu_slope = bool(fast), float(relu_slope)
        self.channels, self.levels = channels, levels
        self.logits_per_subpixel = self.large.logits_per_subpixel

    variant = PixelModel.variant

    # ---- the two scales ------------------------------------------------------
    def subsample(self, images):
        """The small image of each large one (the pixel (k r, k c) of each k x k block)."""
        return subsample(images, self.factor)

    def given(self, H, W):
        """(H, W) bool: the pixels of an H x W image that its small image fixes."""
        return given_pixels(H, W, self.factor)

    def small_size(self, H, W):
        return small_size(H, W, self.factor)

    def conditioning(self, small_images, H, W, trace=None):
        """The upsampled small image: the conditioning map (N, c, H, W)."""
        return self.upsampler(self.small.scale(small_images), H, W, trace)

    def conditional_logits(self, images, small_images, trace=None):
        """The conditional network's logits for the large images given the small ones:
        what the large image reaches goes through the masked path only.

        trace: a dict to record the intermediates in: the upsampler's, "condition", and
        the conditional network's (models/base.py)."""
        images = check_images(images, self.channels, self.levels)
        small_images = check_images(small_images, self.channels, self.levels)
        H, W = images.shape[2:]
        if tuple(small_images.shape[2:]) != self.small_size(H, W) or \
                small_images.shape[0] != images.shape[0]:
            raise ValueError(f"small images of shape ({images.shape[0]}, {self.channels}, "
                             f"{self.small_size(H, W)[0]}, {self.small_size(H, W)[1]}) expected "
                             f"for large ones {tuple(images.shape)}, got {tuple(small_images.shape)}")
        cond = self.conditioning(small_images, H, W, trace)
        if trace is not None:
            trace["condition"] = cond
        return self.large.logits_from_scaled(self.large.scale(images), trace, cond=cond)

    def given_small(self, small_images=None, seed=0):
        """The conditional network with these small images held fixed (None: a seeded random
        one per size): a model of the large images alone (``ConditionalNetwork``), for the
        causality tools."""
        return ConditionalNetwork(self, small_images, seed)

    def forward(self, images, trace=None):
        """The conditional network's logits given the images' own small images."""
        images = check_images(images, self.channels, self.levels)
        return self.conditional_logits(images, self.subsample(images), trace)

    # ---- likelihood ----------------------------------------------------------
    def nll_parts(self, images, trace=None):
        """(-log p_small(s), -log p_cond(the other pixels | s)) in nats, Tensors (N,) each.

        trace: a dict to record every intermediate in: the small network's under "small/"
        (and "small/images"), the conditioning's, the conditional network's, "logits"."""
        images = check_images(images, self.channels, self.levels)
        small = self.subsample(images)
        small_trace = {} if trace is not None else None
        small_logits = self.small.logits_from_scaled(self.small.scale(small), small_trace)
        logits = self.conditional_logits(images, small, trace)
        if device_of(images) != self.device:
            images, small = to_device(images, self.device), to_device(small, self.device)
        H, W = images.shape[2:]
        predicted = Tensor(logits.xp.asarray(~self.given(H, W), dtype=self.dtype))
        per_subpixel = self.large.subpixel_nll(logits, images)              # (N, C, H, W)
        if trace is not None:
            trace.update({f"small/{k}": v for k, v in small_trace.items()})
            trace.update({"small/images": small, "small/logits": small_logits, "logits": logits})
        return (self.small.nll_from_logits(small_logits, small),
                (per_subpixel * predicted).sum(axis=(1, 2, 3)))

    def nll(self, images):
        """-log p(x) in nats per image: a Tensor (N,)."""
        nll_small, nll_rest = self.nll_parts(images)
        return nll_small + nll_rest

    loss = PixelModel.loss


class ConditionalNetwork:
    """A multi-scale model's conditional network with its small images fixed, seen as a
    model of the large images alone: what ``causality.dependency_map`` and the audit take
    (channels, levels, dtype, parameters, relu_slope, variant, logits_from_scaled, and a
    call on integer images).

    small_images (1 or N, C, s_H, s_W): one small image is shared by every large image
    of a batch; None: a random one of the size each call needs, the same for the same
    size (from default_rng(seed)), which is how ``minipixel audit`` holds a checkpoint's
    small image fixed. Its logits depend on the large image exactly as a single-scale
    model's of the same kind do (reference_tests/test_multiscale.py)."""

    def __init__(self, model, small_images=None, seed=0):
        self.model, self.seed = model, seed
        self.small_images = None if small_images is None else \
            check_images(small_images, model.channels, model.levels)
        self.channels, self.levels = model.channels, model.levels
        self.logits_per_subpixel = model.logits_per_subpixel
        self.relu_slope, self.dtype, self.device = model.relu_slope, model.dtype, model.device
        self.kind, self.config = model.kind, model.config

    def parameters(self):
        return self.model.parameters()

    def variant(self, **changes):
        return ConditionalNetwork(self.model.variant(**changes), self.small_images, self.seed)

    def small_for(self, N, H, W):
        """The fixed small images for a batch of N large images of H x W."""
        small = self.small_images
        if small is None:
            size = (1, self.channels) + self.model.small_size(H, W)
            small = np.random.default_rng(self.seed).integers(0, self.levels, size=size)
        return small if small.shape[0] == N else small[:1].repeat(N, axis=0)

    def logits_from_scaled(self, x, trace=None):
        N, _, H, W = x.shape
        cond = self.model.conditioning(self.small_for(N, H, W), H, W)
        return self.model.large.logits_from_scaled(x, trace, cond=cond)

    def __call__(self, images):
        """Logits for integer large images, given the fixed small ones."""
        return self.logits_from_scaled(self.model.large.scale(images))
