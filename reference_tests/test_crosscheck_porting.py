"""The claims of docs/porting.md, each on a reference file: the direction of a channel
permutation when loading, folding the input scaling into the first conv, masks applied in
place, the colour groups of a masked conv over concatenated skips.

Needs PyTorch (CPU):  pip install torch==2.13.0  (the [crosscheck] extra).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch==2.13.0 "
                                            "(the [crosscheck] extra)")

pytestmark = pytest.mark.crosscheck
torch.set_num_threads(1)
F = torch.nn.functional

from minipixel.crosscheck import reference_arrays  # noqa: E402
from minipixel.crosscheck.adapters import torch_fn  # noqa: E402
from minipixel.crosscheck.audit import audit  # noqa: E402
from minipixel.crosscheck.reference import check_arrays  # noqa: E402
from minipixel.layers.masks import channel_groups  # noqa: E402

from demo_module import load_demo  # noqa: E402

@pytest.fixture(scope="module")
def om():
    return load_demo("outside_models")


@pytest.fixture(scope="module")
def ref():
    return check_arrays(reference_arrays(dict(model="pixelcnn", channels=3, levels=16, h=3,
                                              layers=2, out_hidden=6, seed=2), seed=3,
                                         batch=2, H=6, W=7))


def scaled(ref):
    return torch.from_numpy(ref["images"]).double() * (2 / 15) - 1


def interleaved_to_reference(n):                 # docs/porting.md, as written there
    return np.argsort(np.arange(n) % 3, kind="stable")


def test_the_permutation_goes_theirs_to_reference_and_its_inverse_loads(ref):
    p = interleaved_to_reference(6)
    assert p.tolist() == [0, 3, 1, 4, 2, 5]
    inv = np.argsort(p)
    w, m, b = ref["param/first.weight"], ref["mask/first.weight"], ref["param/first.bias"]
    # an implementation with interleaved groups builds its own mask: channel j in group j % 3
    their_groups = np.arange(6) % 3
    own = np.ones_like(m)
    own[:, :, 4:] = own[:, :, 3, 4:] = 0
    own[:, :, 3, 3] = np.arange(3)[None] < their_groups[:, None]           # mask A
    assert np.array_equal(own, m[inv])            # the reference's mask, relabelled
    x = scaled(ref)

    def their_layer0(weight, mask, bias):
        return F.conv2d(x, torch.from_numpy(weight * mask), torch.from_numpy(bias),
                        padding=3).numpy()
    right = their_layer0(w[inv], own, b[inv])
    assert np.allclose(right[:, p], ref["layer/0"], rtol=0, atol=1e-13)   # written back
    wrong = their_layer0(w[p], own, b[p])                                  # loaded with p
    assert not np.allclose(wrong[:, p], ref["layer/0"], atol=1e-3)
    # and with the mask loaded the wrong way too, an R channel of theirs sees its own G
    assert m[p][their_groups == 0][:, 1, 3, 3].any()


def test_folding_the_scaling_into_the_first_conv_breaks_at_the_border_only(ref):
    w = torch.from_numpy(ref["param/first.weight"] * ref["mask/first.weight"])
    b = torch.from_numpy(ref["param/first.bias"])
    s = 2 / 15
    raw = torch.from_numpy(ref["images"]).double()
    folded = F.conv2d(raw, w * s, b - w.sum((1, 2, 3)), padding=3).numpy()
    want = ref["layer/0"]
    diff = np.abs(folded - want).max(axis=(0, 1))                          # (H, W)
    H, W = diff.shape
    r, c = np.arange(H)[:, None], np.arange(W)[None, :]
    # the mask keeps the rows above and the left: only those borders reach the padding
    near = (r < 3) | (c < 3) | (c >= W - 3)
    assert diff[~near].max() < 1e-12 and diff[near].min() > 1e-3
    # the difference is minus the sum of the weights over the taps outside the image
    outside = F.conv2d(F.pad(torch.zeros_like(raw[:1]), (3, 3, 3, 3), value=1.0), w)
    assert np.allclose(folded - want, -outside.numpy(), atol=1e-12)


def test_masks_applied_in_place_need_masked_gradients(ref, om):
    images = torch.from_numpy(ref["images"])

    def first_weight_grad(in_place, hook):
        model = om.make_docs_pixelcnn(ref=ref)
        w, m = model.p["first_weight"], model.mask_first_weight
        if in_place:                          # weight.data *= mask, the conv uses weight
            w.data *= m
            model.mask_first_weight = torch.ones_like(m)
            if hook:
                w.register_hook(lambda g: g * m)
        nll = F.cross_entropy(model(images), images, reduction="none").sum()
        nll.backward()
        return w.grad.numpy()
    want, mask = ref["grad/first.weight"], ref["mask/first.weight"]
    assert np.allclose(first_weight_grad(False, False), want, atol=1e-12)
    bare = first_weight_grad(True, False)
    assert np.allclose(bare[mask == 1], want[mask == 1], atol=1e-12)
    assert np.abs(bare[mask == 0]).max() > 1e-3       # non-zero where the reference's is 0
    assert np.allclose(first_weight_grad(True, True), want, atol=1e-12)


def test_the_skip_conv_groups_each_layer_on_its_own(ref, om):
    h2, L = 6, 2
    tiled = np.tile(channel_groups(h2, 3), L)
    assert tiled.tolist() == [0, 0, 1, 1, 2, 2] * 2
    m = ref["mask/skip.weight"][:, :, 0, 0]                        # (F, L*2h), 1x1 mask B
    out_groups = channel_groups(m.shape[0], 3)
    assert np.array_equal(m, tiled[None] <= out_groups[:, None])
    # one block of L*2h channels instead: the first layer's G and B channels land in
    # groups R and G
    block = np.arange(L * h2) * 3 // (L * h2)
    assert block[2:6].tolist() == [0, 0, 1, 1] and tiled[2:6].tolist() == [1, 1, 2, 2]
    model = om.make_docs_pixelcnn(ref=ref)
    model.mask_skip_weight = torch.from_numpy(
        (block[None] <= out_groups[:, None]).astype(np.float64)[:, :, None, None])
    report = audit(torch_fn(model, inputs="int", probe="leaky"), 3, 16, H=4, W=4, bases=1)
    assert not report.passed
    kinds = {name for name, *_ in report.patterns()}
    assert "the same sub-pixel" in kinds          # R sees its own R, G its own G
    assert {o for o, i in report.leaks if o == i} >= {(0, 2, 2), (1, 2, 2)}
