"""Golden reference files (reference_tests/golden/, made by make_golden.py).

Every run recomputes each file from its stored parameters and images and
compares every array at a tight tolerance; a second test rebuilds the model
from the file's config (parameter seed) and checks the initialisation. With
PyTorch installed the files are also checked against the torch oracle
(test_torch_oracle.py). Regenerate only for an intended change:
    python reference_tests/golden/make_golden.py
"""
import os

import numpy as np
import pytest

from minipixel.crosscheck.compare import compare
from minipixel.crosscheck.reference import (compute_arrays, model_from_reference,
                                            read_reference, reference_arrays)

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
NAMES = [f"{m}_{k}" for m in ("pixelcnn", "rowlstm", "diagonal", "multiscale")
         for k in ("grey", "rgb")]
RTOL = 1e-10


def golden(name):
    return read_reference(os.path.join(GOLDEN_DIR, name + ".npz"))


def test_the_golden_set_is_complete_and_small():
    files = sorted(f for f in os.listdir(GOLDEN_DIR) if f.endswith(".npz"))
    assert files == sorted(n + ".npz" for n in NAMES)
    total = sum(os.path.getsize(os.path.join(GOLDEN_DIR, f)) for f in files)
    assert total < 2 * 2**20, f"golden files take {total} bytes"


@pytest.mark.parametrize("name", NAMES)
def test_minipixel_reproduces_golden_outputs_and_gradients(name):
    ref = golden(name)
    assert ref.config["dtype"] == "float64"
    ours = compute_arrays(model_from_reference(ref), ref["images"])
    report = compare(ref, ours, rtol=RTOL)
    assert report.passed, report.format(verbose=False) + \
        "\n(an intended change of the computation? regenerate: python reference_tests/golden/make_golden.py)"
    assert not report.not_compared


@pytest.mark.parametrize("name", NAMES)
def test_golden_parameters_and_images_come_from_the_config(name):
    ref = golden(name)
    c = ref.config
    again = reference_arrays(c, c["image_seed"], c["batch"], c["height"], c["width"])
    assert np.array_equal(again["images"], ref["images"])
    for key in (k for k in ref.keys() if k.startswith(("param/", "mask/"))):
        assert np.array_equal(again[key], ref[key]), (
            f"{key} differs from a fresh model of the golden config: the initialisation "
            f"changed; if intended, regenerate with reference_tests/golden/make_golden.py")
