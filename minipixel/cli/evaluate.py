"""minipixel evaluate: the test NLL of a checkpoint, in nats per image and bits per dimension."""
import json

from .common import (HelpFormatter, add_dataset, add_device, check_fits, dataset_spec, device,
                     load_data, load_model, spec_for_model)


def add_parser(sub):
    p = sub.add_parser("evaluate", help="test NLL of a checkpoint (nats/image and bits/dim)",
                       description=__doc__, formatter_class=HelpFormatter,
                       epilog="example:\n  minipixel evaluate runs/main/checkpoint.npz")
    p.add_argument("checkpoint", help="a checkpoint .npz written by `minipixel train`")
    add_dataset(p)
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="which split to score (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=100, help="default %(default)s")
    p.add_argument("--json", metavar="PATH", default=None,
                   help="also write the numbers to this JSON file")
    add_device(p)
    p.set_defaults(run=run)
    return p


def run(args):
    from ..training import evaluate_nll, write_json
    dev = device(args.device)
    model, ckpt = load_model(args.checkpoint, dev)
    base = spec_for_model(model, (ckpt.train or {}).get("dataset"))
    base = dict(base, n_train=None)
    data = load_data(dataset_spec(args, base), splits=(args.split,))
    check_fits(model, data)
    images = data.test if args.split == "test" else data.train
    result = evaluate_nll(model, images, args.batch_size, progress=True, desc=args.split)
    result = {"checkpoint": args.checkpoint, "split": args.split, "dataset": data.spec,
              "nll_nats_per_image": result["nats"], "bits_per_dim": result["bits_per_dim"],
              "images": result["n"], "shape": list(images.shape[1:]), "config": model.config}
    print(f"{args.split} NLL: {result['nll_nats_per_image']:.3f} nats/image, "
          f"{result['bits_per_dim']:.4f} bits/dim ({result['images']} images of "
          f"{'x'.join(map(str, result['shape']))})")
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    else:
        print(json.dumps({k: result[k] for k in ("nll_nats_per_image", "bits_per_dim", "images")}))
    return 0
