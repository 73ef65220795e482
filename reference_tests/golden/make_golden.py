"""Regenerate the golden reference files in this directory.

    python reference_tests/golden/make_golden.py

One file per model and colour setting, float64, tiny on purpose (h 3, 2
layers, 5x6 / 6x5 images); the Multi-Scale model's two (a Diagonal BiLSTM pair on
grey, a Row LSTM pair on RGB, factor 2, 3 conditioning maps) hold both networks. Format: minipixel/crosscheck/reference.py. Each
file's config holds everything needed to rebuild it (model settings, the
parameter seed, image seed, batch and size), which is what
reference_tests/test_golden.py does on every run. Only regenerate on an
intended change of the computation or of the initialisation, and say so in
the commit.
"""
import os
import sys

from minipixel.crosscheck.reference import write_reference

HERE = os.path.dirname(os.path.abspath(__file__))

GREY = dict(channels=1, levels=2, h=3, layers=2, out_hidden=5, seed=0)
RGB = dict(channels=3, levels=256, h=3, layers=2, out_hidden=6, seed=0)

# name: (config, image seed, batch, H, W)
GOLDEN = {f"{model}_{kind}": (dict(model=model, **cfg), 0, batch, H, W)
          for model in ("pixelcnn", "rowlstm", "diagonal")
          for kind, cfg, batch, H, W in (("grey", GREY, 2, 5, 6), ("rgb", RGB, 1, 6, 5))}
GOLDEN["multiscale_grey"] = (dict(model="multiscale", kind="diagonal", factor=2,
                                  condition_maps=3, **GREY), 0, 2, 5, 6)
GOLDEN["multiscale_rgb"] = (dict(model="multiscale", kind="rowlstm", factor=2,
                                 condition_maps=3, **RGB), 0, 1, 6, 5)


def main(out_dir=HERE, *names):
    """Write every golden file, or only those named (e.g. multiscale_grey)."""
    for name, (config, seed, batch, H, W) in GOLDEN.items():
        if names and name not in names:
            continue
        path = os.path.join(out_dir, name + ".npz")
        write_reference(path, config, seed, batch, H, W, dtype="float64")
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:])
