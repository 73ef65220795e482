"""What the subcommands share: errors, flag types, device and dataset flags, checkpoint
loading, output checks."""
import argparse
import os

from ..argtypes import POSITIVE
from ..backend import DeviceError, check_device


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def check_output(path, *, directory=False, flag="--out"):
    """Refuse an output path that cannot be written, before any work (one-line CLIError)."""
    from ..io import check_writable
    try:
        return check_writable(path, directory=directory)
    except OSError as e:
        what = "output folder" if directory else "output file"
        raise CLIError(f"cannot write the {what} {path}: {e.strerror or e}; "
                       f"choose another {flag}") from None


def checkpoint_parser(sub, name, help, doc, example):
    """A subcommand reading a checkpoint: its parser, with the checkpoint argument and
    one example line."""
    p = sub.add_parser(name, help=help, description=doc, formatter_class=HelpFormatter,
                       epilog=f"example:\n  minipixel {name} runs/main/checkpoint.npz {example}")
    p.add_argument("checkpoint", help="a checkpoint .npz written by `minipixel train`")
    return p


def add_device(p):
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where to compute (cuda needs CuPy and a GPU; default %(default)s)")


def add_threads(p, default=1, default_help="1"):
    p.add_argument("--threads", type=POSITIVE, default=default, metavar="N",
                   help=f"threads that share each batch on the CPU, each with single-threaded "
                        f"BLAS (default {default_help}; as many as cores speeds up the "
                        f"PixelCNNs and the RGB models; the small binary scans gain little or "
                        f"lose)")


def check_threads(args, dev):
    if (args.threads or 1) > 1 and dev != "cpu":
        raise CLIError(f"--threads {args.threads} splits batches on the CPU; "
                       f"on --device {dev} use 1")
    return args.threads


def add_paper_path(p):
    p.add_argument("--paper-path", action="store_true",
                   help="run the paper path (layers written from engine ops, minipixel/layers/) "
                        "instead of the fused fast path; same numbers, slower")


def add_dataset(p, default_help="the checkpoint's dataset"):
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=("binary", "binary-threshold", "grey", "rgb"),
                   default=None,
                   help=f"embedded digits kind: binary (0/1, statically binarized: each pixel "
                        f"drawn once from its grey level), binary-threshold (0/1, grey >= 128), "
                        f"grey (256 levels) or rgb (coloured digits, 256 levels per colour); "
                        f"default: {default_help}")
    g.add_argument("--mnist-dir", metavar="DIR", default=None,
                   help="use full MNIST from its IDX files in DIR (binary, binary-threshold "
                        "or grey)")
    g.add_argument("--cifar-dir", metavar="DIR", default=None,
                   help="use CIFAR-10 (binary version) from DIR (rgb)")
    g.add_argument("--binarized-mnist-dir", metavar="DIR", default=None,
                   help="use the standard statically binarized MNIST from "
                        "binarized_mnist_{train,test}.amat in DIR (binary)")
    g.add_argument("--crop", type=POSITIVE, metavar="S", default=None,
                   help="central S x S crop of every image (small, fast experiments)")
    g.add_argument("--n-test", type=POSITIVE, metavar="N", default=None,
                   help="use only the first N test images")
    return g


def device(name):
    try:
        return check_device(name)
    except DeviceError as e:
        raise CLIError(str(e)) from None


def dataset_spec(args, base=None):
    """The dataset to load: `base` (a checkpoint's spec) with any flags given on top."""
    folders = ("mnist_dir", "cifar_dir", "binarized_mnist_dir")
    spec = dict(kind="binary", crop=None, n_train=None, n_test=None, **dict.fromkeys(folders))
    spec.update(base or {})
    if any(getattr(args, f, None) for f in folders):
        spec.update({f: getattr(args, f, None) for f in folders})
    for key, flag in (("kind", "dataset"), ("crop", "crop"), ("n_test", "n_test"),
                      ("n_train", "n_train")):
        if getattr(args, flag, None) is not None:
            spec[key] = getattr(args, flag)
    if spec["cifar_dir"] and getattr(args, "dataset", None) is None:
        spec["kind"] = "rgb"
    return spec


def load_data(spec, splits=("train", "test"), origin=None):
    """The dataset of `spec` (only `splits`); origin: the checkpoint the spec came from
    (for the message)."""
    from ..data import load_dataset
    try:
        return load_dataset(**spec, splits=splits)
    except (ValueError, TypeError, FileNotFoundError) as e:
        where = f"{origin}: cannot load the dataset it names" if origin else \
            "cannot load the dataset"
        raise CLIError(f"{where}: {e}") from None


def spec_for_model(model, base=None):
    """A checkpoint without a training state: the embedded digits of the model's kind."""
    if base:
        return base
    kind = "binary" if model.levels == 2 else ("rgb" if model.channels == 3 else "grey")
    return dict(kind=kind)


def check_fits(model, data):
    if (model.channels, model.levels) != (data.channels, data.levels):
        raise CLIError(f"the model takes {model.channels} channel(s) with {model.levels} levels, "
                       f"the dataset ({data.spec['kind']}) has {data.channels} with {data.levels}")


def image_size(spec):
    """The (H, W) of the images a dataset spec gives, without loading it."""
    if spec.get("crop"):
        return spec["crop"], spec["crop"]
    return (32, 32) if spec.get("cifar_dir") else (28, 28)


def load_model(path, dev="cpu", fast=True):
    """(model on `dev`, checkpoint) from a checkpoint path; clear errors.
    fast=False: the same model on the paper path."""
    from ..checkpoint import load_checkpoint
    try:
        ckpt = load_checkpoint(path)
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(str(e)) from None
    model = ckpt.model if fast else ckpt.model.variant(fast=False)
    model = model if dev == "cpu" else model.to(dev)
    return model, ckpt


def open_checkpoint(path, dev="cpu", fast=True):
    """What every command that reads a checkpoint starts with: (model on `dev`, checkpoint,
    the dataset spec it was trained on, or the embedded digits of its kind), one-line
    errors. fast=False: the model on the paper path."""
    model, ckpt = load_model(path, dev, fast)
    return model, ckpt, spec_for_model(model, (ckpt.train or {}).get("dataset"))


def open_for_picture(args, name, fast=True):
    """The start of `sample` and `complete`: (model, its dataset spec, the PNG path: --out
    or `name` next to the checkpoint, checked writable before any work)."""
    out = args.out or default_output(args.checkpoint, name)
    model, _, spec = open_checkpoint(args.checkpoint, device(args.device), fast=fast)
    check_output(out)
    return model, spec, out


def default_output(checkpoint, name):
    """A file next to the checkpoint (a relative path stays relative)."""
    return os.path.join(os.path.dirname(checkpoint), name)


def samples_picture(model, images, ncols=None, scale=3):
    """The picture of sampled images (N, C, H, W) that `sample` and `train` write: a grid;
    for a Multi-Scale model, pairs of its small image (each pixel a k x k block) beside
    the large one, ncols pairs a row."""
    from ..figures import samples_figure, two_scale_figure
    from ..sampling.multiscale import is_multiscale
    if is_multiscale(model):
        return two_scale_figure(model.subsample(images), images, model.levels, model.factor,
                                ncols=ncols, scale=scale)
    return samples_figure(images, model.levels, ncols=ncols, scale=scale)


def progress_printer(desc, enabled=True):
    """A progress(done, total) callback that draws a Progress bar, created lazily."""
    from ..progress import Progress
    state = {}

    def progress(done, total):
        if "bar" not in state:
            state["bar"] = Progress(total, desc, enabled=enabled, unit="px")
        bar = state["bar"]
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
    return progress


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    pass


def describe(error):
    """One line for an expected failure."""
    if isinstance(error, MemoryError):
        return ("out of memory" + (f" ({error})" if str(error) else "")
                + "; try smaller sizes, fewer images or a smaller batch")
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        text = f"{error.strerror}{where}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())
