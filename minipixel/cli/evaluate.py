"""minipixel evaluate: the test NLL of a checkpoint, in nats per image and bits per dimension.

Prints its result once, as one line of text:

    test NLL: N nats/image, B bits/dim (1000 images of 1x28x28)

--json PATH also writes the numbers (with the dataset and the model's config) to PATH;
--json - prints that JSON on stdout instead of the line, for scripts. The progress bar
goes to stderr.
"""
import math

from ..argtypes import POSITIVE
from .common import (CLIError, HelpFormatter, add_dataset, add_device, add_paper_path,
                     add_threads, check_fits, check_output, check_threads, dataset_spec, device,
                     load_data, open_checkpoint)


def add_parser(sub):
    p = sub.add_parser("evaluate", help="test NLL of a checkpoint (nats/image and bits/dim)",
                       description=__doc__, formatter_class=HelpFormatter,
                       epilog="examples:\n  minipixel evaluate runs/main/checkpoint.npz\n"
                              "  minipixel evaluate runs/main/checkpoint.npz --json - | jq .bits_per_dim")
    p.add_argument("checkpoint", help="a checkpoint .npz written by `minipixel train`")
    add_dataset(p)
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="which split to score (default %(default)s)")
    p.add_argument("--batch-size", type=POSITIVE, default=100, help="default %(default)s")
    p.add_argument("--json", metavar="PATH", default=None,
                   help="also write the numbers to this JSON file; - prints the JSON on "
                        "stdout instead of the text line")
    add_device(p)
    add_threads(p)
    add_paper_path(p)
    p.set_defaults(run=run)
    return p


def run(args):
    from ..io import dumps_json, write_json
    from ..training import evaluate_nll
    dev = device(args.device)
    check_threads(args, dev)
    to_stdout = args.json == "-"
    if args.json and not to_stdout:
        check_output(args.json, flag="--json")
    model, _, spec = open_checkpoint(args.checkpoint, dev, fast=not args.paper_path)
    base = dict(spec, n_train=None)
    data = load_data(dataset_spec(args, base), splits=(args.split,))
    check_fits(model, data)
    images = data.test if args.split == "test" else data.train
    result = evaluate_nll(model, images, args.batch_size, progress=True, desc=args.split,
                          workers=args.threads)
    if not math.isfinite(result["nats"]):
        raise CLIError(f"the {args.split} NLL under {args.checkpoint} is {result['nats']} "
                       f"(its weights are finite, but its outputs overflow on these images)")
    result = {"checkpoint": args.checkpoint, "split": args.split, "dataset": data.spec,
              "nll_nats_per_image": result["nats"], "bits_per_dim": result["bits_per_dim"],
              "images": result["n"], "shape": list(images.shape[1:]), "config": model.config}
    if to_stdout:
        print(dumps_json(result, sort_keys=True))
        return 0
    print(f"{args.split} NLL: {result['nll_nats_per_image']:.3f} nats/image, "
          f"{result['bits_per_dim']:.4f} bits/dim ({result['images']} images of "
          f"{'x'.join(map(str, result['shape']))})")
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
