"""Reference files: one .npz that fixes a model, its inputs and everything it computes.

Another implementation (PyTorch, JAX, ...) loads the parameters and images,
runs its own forward and backward, writes what it got under the same keys,
and ``minipixel compare`` (compare.py) tells where the two first disagree.
The file is the contract; this table is its only description.

Format ``minipixel-reference`` version 1
----------------------------------------
N images, C colours (1 grey/binary, 3 RGB), H x W image, V levels per
sub-pixel, h hidden units, L layers, F = out_hidden. Floats are all of the
file's dtype (config["dtype"]: float64 or float32). Stored with
np.savez_compressed; read with np.load(allow_pickle=False): no key holds
Python objects.

| key                | dtype   | shape                      | content |
|--------------------|---------|----------------------------|---------|
| config             | unicode | () 0-d                     | JSON object, below |
| images             | int64   | (N, C, H, W)               | input sub-pixel values 0..V-1 |
| param/<name>       | float   | PyTorch layout, below      | raw parameters (masked weights unmasked) |
| mask/<name>        | float   | same as param/<name>       | 0/1 mask of every masked conv weight; the conv uses param * mask |
| grad/<name>        | float   | same as param/<name>       | d(sum_n nll[n]) / d param/<name> (zero where the mask is 0) |
| layer/0            | float   | (N, 2h, H, W)              | output of the first 7x7 mask-A conv |
| layer/<i>, i=1..L  | float   | (N, 2h, H, W)              | output of layer i (residual added) |
| hidden/<i>         | float   | (N, h, H, W)               | RNN layers only: LSTM hidden states of layer i; Diagonal BiLSTM: left-to-right + right-to-left shifted down one row |
| skip               | float   | (N, F, H, W)               | skip conv on concat(layer/1..L) over channels, before ReLU |
| out_hidden         | float   | (N, F, H, W)               | out_hidden conv applied to ReLU(skip), before ReLU |
| logits             | float   | (N, C, H, W) if V == 2, else (N, V, C, H, W) | Bernoulli logit / softmax logits per sub-pixel |
| nll                | float   | (N,)                       | negative log-likelihood per image, nats |

A Multi-Scale model (config "model": "multiscale", with "kind", "factor" k and
"condition_maps" c; models/multiscale.py) holds two networks and the conditioning:
its params are named "small.<name>", "large.<name>" and "upsampler.<name>"; the keys
above (layer/*, hidden/*, skip, out_hidden, logits) are the conditional (large)
network's, its logits at every sub-pixel, given pixels included; and it adds

| key                | dtype   | shape                      | content |
|--------------------|---------|----------------------------|---------|
| small/images       | int64   | (N, C, s_H, s_W)           | images[:, :, ::k, ::k], s_H = ceil(H / k) |
| small/layer/<i>, small/hidden/<i>, small/skip, small/out_hidden, small/logits | float | as above, s_H x s_W | the small network on small/images |
| small/nll          | float   | (N,)                       | the small network's NLL of small/images, nats |
| upsampler/embed    | float   | (N, c, s_H, s_W)           | ReLU(3x3 conv, padding 1) of small/images scaled to [-1, 1] |
| upsampler/up       | float   | (N, c, H, W)               | ReLU(k x k transposed conv, stride k) of it, cropped to H x W |
| condition          | float   | (N, c, H, W)               | the conditioning map: 3x3 conv (padding 1) of upsampler/up |

and nll = small/nll + the conditional network's NLL of the sub-pixels that
small/images does not fix (every pixel (k r, k c) is given, all its colours). Each
conditional layer adds V (*) condition to its gates: "layers.<i>.condition.weight"
(4h, c, 1, 1) for the Row LSTM, "layers.<i>.<direction>.condition.weight" per Diagonal
direction (the right-to-left one reads condition flipped like x), and for PixelCNN
(h, c, 1, 1) added to the block's 3x3 conv output.

config: {"format": "minipixel-reference", "version": 1, "model": "pixelcnn" |
"rowlstm" | "diagonal", "channels": C, "levels": V, "h": h, "layers": L,
"out_hidden": F, "seed": parameter-init seed, "dtype": "float64" | "float32",
"image_seed", "batch": N, "height": H, "width": W, "gate_order": "ifgo",
"channel_groups": "contiguous"}.

The computation (paper section 3; cross-correlation convs as PyTorch's conv2d):

    x = images * (2 / (V - 1)) - 1                       in the file's dtype
    layer/0 = conv(x, first, 7x7, padding 3)             mask A
    layer/i = layer_i(layer/(i-1))
    skip = conv1x1(concat(layer/1 .. layer/L))           mask B
    out_hidden = conv1x1(relu(skip));  z = conv1x1(relu(out_hidden))   (out_logits)
    logits = z                                           if V == 2
             z.reshape(N, C, V, H, W).transpose(0, 2, 1, 3, 4)   otherwise
    nll[n] = sum over (C, H, W) of  softplus(z) - t z              (V == 2, t = image value)
                                 or -log_softmax(logits, axis=1)[t]  (V > 2)

Parameters, by dotted name (every masked conv has `<conv>.weight` (OC, IC,
KH, KW) and `<conv>.bias` (OC,); "mask X" = MaskedConv2d of kind X):

    first                          7x7 mask A, C -> 2h, padding 3
    skip                           1x1 mask B, L*2h -> F
    out_hidden                     1x1 mask B, F -> F
    out_logits                     1x1 mask B, F -> C*V' (V' = 1 if V == 2 else V),
                                   output channel = colour * V' + value
  PixelCNN block i ("layers.<i>."), y = x + expand(relu(conv(relu(reduce(relu(x))))))
    reduce                         1x1 mask B, 2h -> h
    conv                           3x3 mask B, h -> h, padding 1
    expand                         1x1 mask B, h -> 2h
  Row LSTM layer i ("layers.<i>."), y = x + output(hidden)
    input_to_state                 1x3 mask B, 2h -> 4h, padding (0, 1)
    state_to_state                 (4h, h, 1, 3) unmasked, no bias: pre-activations of row r
                                   += sum_t state_to_state[:, :, 0, t] @ h_{r-1}[:, c - 1 + t]
                                   (zero outside the row)
    h0, c0                         (h,) learned initial state, broadcast over columns
    output                         1x1 mask B, h -> 2h
  Diagonal BiLSTM layer i ("layers.<i>."), y = x + output(hidden)
    left_to_right., right_to_left. one direction each, with
      input_to_state               1x1 mask B, 2h -> 4h, applied to the SKEWED input:
                                   its bias is added at every skewed position,
                                   including the skew's zero padding
      state_to_state               (4h, h, 2, 1) unmasked, no bias: pre-activations at skewed
                                   (r, j) += state_to_state[:, :, 0, 0] @ h[r - 1, j - 1]
                                            + state_to_state[:, :, 1, 0] @ h[r, j - 1]
                                   (zero above row 0: padded at the top only)
      h0, c0                       (h,) learned initial state, broadcast over rows
    output                         1x1 mask B, h -> 2h
    skew: S[r, r + c] = X[r, c] (width H + W - 1, zeros elsewhere); unskew: X[r, c] = S[r, r + c].
    right_to_left runs on the input flipped left-right and its hidden states are
    flipped back, then shifted down one row (row 0 zeros) before being added.

Gate order: the 4h pre-activation channels are four blocks of h in PyTorch's
order (i, f, g, o): i, f, o sigmoid, g tanh; c = f c_prev + i g; h = o tanh(c).

Channel groups (masks): channel k of n belongs to colour group k * 3 // n
(contiguous blocks) for C = 3, group 0 for C = 1; each of the four gate blocks
is grouped like the h hidden units. Masks zero kernel rows below the centre
and taps right of the centre on its row; at the centre, output group g sees
input group g' if g' < g (mask A) or g' <= g (mask B).
"""
import json
import os
import zipfile

import numpy as np

from ..backend import to_numpy
from ..io import NpzError, atomic_savez_compressed, load_npz, loads_json
from ..layers import MaskedConv2d
from ..models import MODELS, build
from ..models.multiscale import KINDS as MULTISCALE_KINDS

FORMAT, VERSION = "minipixel-reference", 1
MODEL_KEYS = ("model", "channels", "levels", "h", "layers", "out_hidden", "seed", "dtype")
MULTISCALE_KEYS = ("kind", "factor", "condition_maps")
REQUIRED = ("config", "images", "logits", "nll")
MAX_REFERENCE_BYTES = 1 << 30      # all arrays of one reference file (checked from headers)


class ReferenceFormatError(ValueError):
    """A reference file that cannot be read, or that breaks the format above."""


class Reference:
    """A reference file in memory: `config` (dict) and `arrays` {key: ndarray}."""

    def __init__(self, config, arrays, path=None):
        self.config, self.arrays, self.path = config, arrays, path

    def group(self, prefix):
        """{name: array} of the keys "<prefix>/<name>", e.g. group("param")."""
        p = prefix + "/"
        return {k[len(p):]: v for k, v in self.arrays.items() if k.startswith(p)}

    def __getitem__(self, key):
        return self.arrays[key]

    def __contains__(self, key):
        return key in self.arrays

    def keys(self):
        return self.arrays.keys()

    def __repr__(self):
        return f"Reference({self.path or '<memory>'}, {self.config.get('model')}, {len(self.arrays)} arrays)"


# ---- computing -----------------------------------------------------------------
def make_model(model_or_config, dtype=None):
    """A model from a PixelModel (copied if `dtype` differs) or a config dict."""
    if isinstance(model_or_config, dict):
        keys = MODEL_KEYS + (MULTISCALE_KEYS if model_or_config.get("model") == "multiscale" else ())
        config = {k: v for k, v in model_or_config.items() if k in keys}
        if dtype is not None:
            config["dtype"] = dtype
        config["dtype"] = np.dtype(config.get("dtype", np.float64))
        kind = config.pop("model", None)
        if kind not in MODELS:
            raise ValueError(f"config needs 'model' in {sorted(MODELS)}, got {kind!r}")
        return build(kind, **config)
    model = model_or_config
    if dtype is not None and np.dtype(dtype) != model.dtype:
        return model.variant(dtype=np.dtype(dtype))
    return model


def images_for(config, seed, batch, H, W):
    """The file's images: uniform integers 0..levels-1 from default_rng(seed), int64."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, config["levels"], size=(batch, config["channels"], H, W), dtype=np.int64)


def compute_arrays(model, images):
    """Every array of the format except config, for `model` on integer `images`.

    One forward pass, traced (the model's forward records its intermediates in
    a dict, models/base.py), one backward of the summed NLL."""
    images = np.asarray(images, dtype=np.int64)
    for p in model.parameters():
        p.grad = None
    trace = {}
    if model.name == "multiscale":
        nll_small, nll_rest = model.nll_parts(images, trace)
        nll, logits = nll_small + nll_rest, trace.pop("logits")
        trace["small/nll"] = nll_small
    else:
        x = model.scale(images)
        logits = model.logits_from_scaled(x, trace)
        nll = model.nll_from_logits(logits, x.xp.asarray(images))
    nll.sum().backward()

    arrays = {"images": images}
    for name, p in model.named_parameters():
        arrays[f"param/{name}"] = to_numpy(p.data).copy()
    for name, m in _masked_convs(model):
        arrays[f"mask/{name}.weight"] = np.asarray(to_numpy(m.mask), dtype=model.dtype)
    for name, p in model.named_parameters():
        g = np.zeros(p.shape, p.dtype) if p.grad is None else to_numpy(p.grad)
        arrays[f"grad/{name}"] = g.copy()
    for key, t in trace.items():
        arrays[key] = to_numpy(getattr(t, "data", t)).copy()
    arrays["logits"] = to_numpy(logits.data).copy()
    arrays["nll"] = to_numpy(nll.data).copy()
    for p in model.parameters():
        p.grad = None
    return arrays


def _masked_convs(model):
    """(dotted name, module) of every MaskedConv2d, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, MaskedConv2d)]


def reference_config(model, seed, batch, H, W):
    return {"format": FORMAT, "version": VERSION,
            **{k: (np.dtype(v).name if k == "dtype" else v) for k, v in model.config.items()},
            "image_seed": int(seed), "batch": int(batch), "height": int(H), "width": int(W),
            "gate_order": "ifgo", "channel_groups": "contiguous"}


def reference_arrays(model_or_config, seed=0, batch=2, H=5, W=6, dtype=None):
    """The file's content as {key: ndarray} (config as a 0-d unicode array)."""
    model = make_model(model_or_config, dtype)
    images = images_for(model.config, seed, batch, H, W)
    arrays = compute_arrays(model, images)
    arrays["config"] = np.array(json.dumps(reference_config(model, seed, batch, H, W),
                                           sort_keys=True, allow_nan=False))
    return arrays


def write_reference(path, model_or_config, seed=0, batch=2, H=5, W=6, dtype=None):
    """Write the reference file for a model (or config dict) atomically; returns its arrays.

    seed: the images' seed (the parameters come from the model / config["seed"]).
    dtype: float64 or float32; default the model's (a config's default: float64)."""
    arrays = reference_arrays(model_or_config, seed, batch, H, W, dtype)
    atomic_savez_compressed(path, **arrays)
    return arrays


# ---- reading -------------------------------------------------------------------
def read_reference(path, strict=True):
    """Load and check a reference file -> Reference. Raises ReferenceFormatError.

    strict=False (for a file written by another implementation) only needs
    readable arrays: config, images etc. may be missing."""
    if not zipfile.is_zipfile(path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"no reference file {path}")
        raise ReferenceFormatError(f"{path}: not a readable .npz reference file (not a zip "
                                   f"archive: truncated, or not an .npz)")
    try:             # the checkpoint reader's checks: sizes from headers, no zip bombs
        arrays = load_npz(path, max_bytes=MAX_REFERENCE_BYTES)
    except NpzError as e:
        what = "holds pickled Python objects, which the format forbids" if "pickle" in str(e) \
            else "is not a readable .npz reference file"
        raise ReferenceFormatError(f"{path}: {what} ({e})") from None
    return check_arrays(arrays, path, strict)


def check_arrays(arrays, path=None, strict=True):
    """Validate {key: array} against the format -> Reference."""
    where = path or "<reference>"
    config = {}
    if "config" in arrays:
        c = arrays.pop("config")
        if c.shape != () or c.dtype.kind != "U":
            raise ReferenceFormatError(f"{where}: 'config' must be a 0-d unicode array holding "
                                       f"JSON, got dtype {c.dtype} shape {c.shape}")
        try:
            config = loads_json(str(c))
        except ValueError as e:
            raise ReferenceFormatError(f"{where}: 'config' is not valid JSON ({e})") from e
        if not isinstance(config, dict):
            raise ReferenceFormatError(f"{where}: 'config' must be a JSON object")
    if strict:
        missing = [k for k in REQUIRED if k != "config" and k not in arrays]
        if not config:
            missing.insert(0, "config")
        if not any(k.startswith("param/") for k in arrays):
            missing.append("param/*")
        if missing:
            raise ReferenceFormatError(f"{where}: missing key(s) {missing}; a reference file "
                                       f"holds {list(REQUIRED)} and param/<name> (see reference.py)")
        absent = [k for k in MODEL_KEYS if k not in config]
        if absent:
            raise ReferenceFormatError(f"{where}: config lacks {absent}")
        if config.get("format", FORMAT) != FORMAT or config.get("version", VERSION) > VERSION:
            raise ReferenceFormatError(f"{where}: format {config.get('format')!r} version "
                                       f"{config.get('version')!r}; this reader knows {FORMAT!r} "
                                       f"version <= {VERSION}")
        if arrays["images"].dtype.kind not in "iu":
            raise ReferenceFormatError(f"{where}: 'images' must be integers, got {arrays['images'].dtype}")
    for k, a in arrays.items():
        for prefix in ("mask/", "grad/"):
            if k.startswith(prefix):
                p = "param/" + k[len(prefix):]
                if p in arrays and arrays[p].shape != a.shape:
                    raise ReferenceFormatError(f"{where}: {k!r} has shape {a.shape}, "
                                               f"{p!r} has {arrays[p].shape}")
                if strict and p not in arrays:
                    raise ReferenceFormatError(f"{where}: {k!r} has no {p!r} beside it")
    return Reference(config, arrays, path)


def model_from_reference(ref, dtype=None):
    """The minipixel model a reference file describes, its parameters loaded.

    Checks that the file's masks are the ones minipixel builds."""
    if not isinstance(ref, Reference):
        ref = read_reference(ref)
    model = make_model(ref.config, dtype or ref.config["dtype"])
    params = ref.group("param")
    try:
        model.load_state_dict({k: v.astype(model.dtype) for k, v in params.items()})
    except (KeyError, ValueError, TypeError) as e:
        raise ReferenceFormatError(f"{ref.path or '<reference>'}: parameters do not fit a "
                                   f"{ref.config['model']} model of this config: {e}") from e
    masks = ref.group("mask")
    for name, conv in _masked_convs(model):
        key = f"{name}.weight"
        if key in masks and not np.array_equal(masks[key], conv.mask):
            raise ReferenceFormatError(f"{ref.path or '<reference>'}: mask/{key} differs from the "
                                       f"mask minipixel builds (channel-group convention?)")
    return model


# ---- command line ----------------------------------------------------------------
REFERENCE_FLAGS = (     # the integer flags of `minipixel reference`: default, meaning
    ("--levels", 2, "values per sub-pixel V; 2 is binary with one Bernoulli logit, more a "
                    "V-way softmax"),
    ("--h", 4, "hidden units h: layers carry 2h maps, LSTMs h units"),
    ("--layers", 2, "PixelCNN blocks or LSTM layers after the first 7x7 mask-A conv"),
    ("--out-hidden", 8, "maps F of the head's 1x1 convs"),
    ("--seed", 0, "parameter-initialisation seed"),
    ("--image-seed", 0, "seed of the random images"),
    ("--batch", 2, "images N in the file"),
    ("--height", 5, "image height"),
    ("--width", 6, "image width"),
)


def reference_main(argv=None):
    """minipixel reference OUT.npz --model M [--channels C --levels V --h H --layers L
    --out-hidden F --seed S --image-seed S --batch N --height H --width W --dtype D]"""
    import argparse
    import sys
    import textwrap
    from ..argtypes import OneLineParser
    ap = OneLineParser(
        prog="minipixel reference", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Write a reference file: one .npz that fixes a minipixel model (its config, "
            "and its parameters from --seed), N random images (from --image-seed), and "
            "everything the model computes on them: every layer's output, the logits, the "
            "NLL and the gradient of every parameter. Another implementation loads the "
            "parameters and images, writes its own outputs under the same keys, and "
            "`minipixel compare` names the first array where the two disagree. The "
            "format: the docstring of minipixel/crosscheck/reference.py; porting another "
            "layout onto it, and what the format cannot hold: docs/porting.md.", 79),
        epilog="example:\n  minipixel reference ref.npz --model diagonal --channels 3 "
               "--levels 256\n  minipixel compare ref.npz theirs.npz")
    ap.add_argument("out", help="the .npz to write (atomically: an old file is replaced "
                                "only once the new one is complete)")
    ap.add_argument("--model", required=True, choices=sorted(MODELS),
                    help="which of minipixel's models (required)")
    ap.add_argument("--channels", type=int, default=1, choices=(1, 3),
                    help="colours: 1 grey or binary, 3 RGB (default %(default)s)")
    for flag, default, meaning in REFERENCE_FLAGS:
        ap.add_argument(flag, type=int, default=default,
                        help=f"{meaning} (default %(default)s)")
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                    help="the dtype of every float array; compare passes at 1e-9 relative "
                         "in float64, 1e-4 in float32 (default %(default)s)")
    ap.add_argument("--kind", default="diagonal", choices=tuple(MULTISCALE_KINDS),
                    help="--model multiscale: the kind of its two networks (default %(default)s)")
    ap.add_argument("--factor", type=int, default=2,
                    help="--model multiscale: the small image is every factor-th pixel "
                         "(default %(default)s)")
    ap.add_argument("--condition-maps", type=int, default=3,
                    help="--model multiscale: maps of the upsampled small image "
                         "(default %(default)s)")
    a = ap.parse_args(argv)
    config = dict(model=a.model, channels=a.channels, levels=a.levels, h=a.h, layers=a.layers,
                  out_hidden=a.out_hidden, seed=a.seed, dtype=a.dtype)
    if a.model == "multiscale":
        config.update(kind=a.kind, factor=a.factor, condition_maps=a.condition_maps)
    try:
        arrays = write_reference(a.out, config, a.image_seed, a.batch, a.height, a.width)
    except (ValueError, OSError) as e:
        print(f"minipixel reference: {e}", file=sys.stderr)
        return 2
    print(summary_line(a.out, arrays))
    return 0


def summary_line(path, arrays):
    """'wrote ref.npz: pixelcnn, ...': what a reference file fixed, in one line."""
    cfg = json.loads(str(arrays["config"]))
    count = {"param": 0, "mask": 0, "grad": 0, "layer output": 0}
    for key in arrays:
        head = key.partition("/")[0]
        if head in ("param", "mask", "grad"):
            count[head] += 1
        elif (key[len("small/"):] if head == "small" else key).partition("/")[0] in \
                ("layer", "hidden", "skip", "out_hidden", "upsampler", "condition"):
            count["layer output"] += 1
    model = cfg["model"] if cfg["model"] != "multiscale" else (
        f"multiscale ({cfg['kind']} pair, factor {cfg['factor']}, {cfg['condition_maps']} "
        f"conditioning maps)")
    colours = "grey" if cfg["channels"] == 1 else "RGB"
    values = "binary (one Bernoulli logit)" if cfg["levels"] == 2 else \
        f"{cfg['levels']} levels (softmax)"
    return (f"wrote {path}: {model}, {colours}, {values}, h={cfg['h']}, "
            f"{cfg['layers']} layer(s), out_hidden {cfg['out_hidden']}, parameter seed "
            f"{cfg['seed']}; {cfg['batch']} image(s) {cfg['height']}x{cfg['width']} (image "
            f"seed {cfg['image_seed']}); {cfg['dtype']}; {len(arrays)} arrays: the config, "
            f"the images, {count['param']} parameters, {count['mask']} masks, "
            f"{count['grad']} gradients, {count['layer output']} layer outputs, the logits "
            f"and the NLL")
