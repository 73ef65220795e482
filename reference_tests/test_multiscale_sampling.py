"""Sampling the Multi-Scale PixelRNN in two stages (minipixel/sampling/multiscale.py).

The cached sampler gives the naive sampler's images exactly, for every kind, grey binary
and RGB, non-square sizes not divisible by the factor; its logits are the conditional
network's forward pass at every sub-pixel; the large image's given pixels are the small
image's, which is the small network's own sample for the seed; the conditioning map is
computed once per image, by either sampler."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import cupy_standin
from minipixel.models import build
from minipixel.sampling import sample, teacher_forced_logits, upscale

KINDS = ["pixelcnn", "rowlstm", "diagonal"]
COLOURS = [(1, 2), (3, 4)]                     # grey binary; RGB with 4 levels


def multiscale(kind, C=1, levels=2, factor=2, h=3, layers=2, maps=3, seed=3, fast=True,
               slope=0.0):
    return build("multiscale", kind=kind, factor=factor, condition_maps=maps, channels=C,
                 levels=levels, h=h, layers=layers, out_hidden=6, seed=seed, dtype=np.float64,
                 fast=fast, relu_slope=slope)


def full_logits(model, images):
    """The conditional network's forward pass, laid out as (N, C, H, W, values)."""
    z = model(images).data
    return z[..., None] if z.ndim == 4 else z.transpose(0, 2, 3, 4, 1)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "paper"])
@pytest.mark.parametrize("kind", KINDS)
@given(colour=st.booleans(), factor=st.integers(2, 3), h=st.integers(1, 4),
       layers=st.integers(1, 2), maps=st.integers(1, 3), H=st.integers(1, 6),
       W=st.integers(1, 7), n=st.integers(1, 2), leaky=st.booleans(), seed=st.integers(0, 2**16))
def test_cached_logits_equal_the_conditional_forward_pass(fast, kind, colour, factor, h, layers,
                                                          maps, H, W, n, leaky, seed):
    C, levels = (3, 4) if colour else (1, 2)
    model = multiscale(kind, C, levels, factor, max(h, 3) if colour else h, layers, maps, seed,
                       fast, 0.1 if leaky else 0.0)
    images = np.random.default_rng(seed).integers(0, levels, size=(n, C, H, W))
    np.testing.assert_allclose(teacher_forced_logits(model, images), full_logits(model, images),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("C,levels", COLOURS, ids=["binary", "rgb"])
@pytest.mark.parametrize("factor,H,W", [(2, 5, 7), (3, 7, 4)], ids=["k2-5x7", "k3-7x4"])
def test_cached_and_naive_draw_the_same_two_stage_images(kind, C, levels, factor, H, W):
    model = multiscale(kind, C, levels, factor)
    naive = sample(model, 3, H, W, seed=11, cached=False)
    cached = sample(model, 3, H, W, seed=11, cached=True)
    np.testing.assert_array_equal(cached, naive)
    assert len(np.unique(naive)) > 1                      # something was actually drawn


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cached", [False, True], ids=["naive", "cached"])
def test_the_large_samples_given_pixels_are_the_small_networks_own_sample(kind, cached):
    """Stage 1 draws with the seed's first uniforms: the small image is what the small
    network alone draws for that seed, and the large image holds it at (k r, k c)."""
    model = multiscale(kind, 3, 4, factor=2)
    large = sample(model, 3, 5, 7, seed=4, cached=cached)
    small = sample(model.small, 3, 3, 4, seed=4, cached=cached)
    np.testing.assert_array_equal(large[:, :, ::2, ::2], small)
    np.testing.assert_array_equal(model.subsample(large), small)


@pytest.mark.parametrize("kind", KINDS)
def test_the_second_stage_is_the_upscaling_of_the_first_stages_image(kind):
    """Stage 2 draws with the seed's next uniforms, given the small image: upscaling the
    small network's own sample with the same seed gives the two-stage sample again."""
    model = multiscale(kind, 1, 2, factor=2, seed=6)
    large = sample(model, 4, 6, 5, seed=9, cached=True)
    small = sample(model.small, 4, 3, 3, seed=9)
    np.testing.assert_array_equal(upscale(model, small, 6, 5, seed=9, cached=True), large)
    np.testing.assert_array_equal(upscale(model, small, 6, 5, seed=9), large)
    other = upscale(model, 1 - small, 6, 5, seed=9, cached=True)
    np.testing.assert_array_equal(model.subsample(other), 1 - small)


@pytest.mark.parametrize("cached", [False, True], ids=["naive", "cached"])
def test_the_conditioning_is_computed_once_per_image(cached, monkeypatch):
    model = multiscale("diagonal", 3, 4, factor=2)
    forward, batches = model.upsampler.forward, []

    def counted(small, *args, **kwargs):
        batches.append(small.shape[0])
        return forward(small, *args, **kwargs)
    monkeypatch.setattr(model.upsampler, "forward", counted)
    sample(model, 3, 5, 6, seed=1, cached=cached)
    assert batches == [3]                 # one call, for the 3 images: none per pixel or pass


@pytest.mark.parametrize("kind", KINDS)
def test_a_completion_keeps_its_given_pixels_and_cached_matches_naive(kind):
    """Given rows of the large image are given to both stages (the small image's rows
    among them); images given different rows (one mask per image) also work."""
    model = multiscale(kind, 1, 2, factor=2, seed=5)
    given = np.random.default_rng(0).integers(0, 2, size=(2, 1, 7, 5))
    mask = np.zeros((2, 1, 7, 5), bool)
    mask[0, :, :3] = True
    mask[1, :, :4] = True
    naive = sample(model, 2, 7, 5, seed=2, given=given, given_mask=mask)
    cached = sample(model, 2, 7, 5, seed=2, given=given, given_mask=mask, cached=True)
    np.testing.assert_array_equal(cached, naive)
    np.testing.assert_array_equal(naive[mask], given[mask])


def test_the_progress_count_covers_both_stages_once():
    model = multiscale("rowlstm", factor=2)
    seen = []
    sample(model, 2, 5, 4, seed=0, cached=True, progress=lambda done, total: seen.append((done,
                                                                                          total)))
    totals = {total for _, total in seen}
    assert totals == {3 * 2 + 5 * 4}                     # small 3 x 2, then large 5 x 4 pixels
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == 26


def test_upscale_refuses_small_images_of_the_wrong_size():
    model = multiscale("pixelcnn", factor=2)
    with pytest.raises(ValueError, match=r"upscale: small images \(n, 1, 3, 2\) expected"):
        upscale(model, np.zeros((2, 1, 2, 2), np.uint8), 5, 4)


def test_two_stage_sampling_on_the_device_equals_the_cpu(device):
    """Both stages and both samplers on the array module of the model's device (the CuPy
    stand-in, or CuPy where a GPU is usable), images given per image included."""
    model = multiscale("diagonal", 3, 4, factor=2)
    on_device = model.variant().to(device)
    mask = np.zeros((2, 1, 5, 6), bool)
    mask[0, :, :2] = True
    given = np.random.default_rng(1).integers(0, 4, size=(2, 3, 5, 6))
    for cached in (False, True):
        want = sample(model, 2, 5, 6, seed=3, cached=cached, given=given, given_mask=mask)
        got = sample(on_device, 2, 5, 6, seed=3, cached=cached, given=given, given_mask=mask)
        np.testing.assert_array_equal(got, want)


def test_cached_two_stage_sampling_synchronises_once_per_sub_pixel(standin):
    """The conditioning map stays on the device: the only reads are the logits of each
    sub-pixel, the small image's and the large one's."""
    model = multiscale("rowlstm", 3, 4, factor=2).to("cuda")
    with cupy_standin.count_syncs() as syncs:
        sample(model, 2, 4, 5, seed=0, cached=True)
    assert syncs.total == (2 * 3 + 4 * 5) * 3 and set(syncs.kinds) == {"asnumpy"}, syncs


@pytest.mark.parametrize("kind", KINDS)
def test_the_naive_passes_crop_the_map_and_not_the_small_image(kind):
    """Why each naive pass crops the conditioning map computed once from the full small
    image: rows 0..r of the map give rows 0..r's logits exactly (cond enters each layer
    pointwise, the layers are causal), while the map of the cropped image's own small
    image differs (the upsampler's convolutions read the small rows below)."""
    from minipixel import no_grad
    model = multiscale(kind, 3, 4, factor=2, seed=2)
    x = np.random.default_rng(2).integers(0, 4, size=(2, 3, 6, 5))
    with no_grad():
        cond = model.conditioning(model.subsample(x), 6, 5)
        full = model.large.logits_from_scaled(model.large.scale(x), cond=cond).data
        differs = False
        for r in range(6):
            part = model.large.logits_from_scaled(model.large.scale(x[:, :, :r + 1]),
                                                  cond=cond[:, :, :r + 1]).data
            np.testing.assert_allclose(part, full[..., :r + 1, :], rtol=1e-12, atol=1e-12)
            own = model.conditioning(model.subsample(x[:, :, :r + 1]), r + 1, 5).data
            differs |= not np.allclose(own, cond.data[:, :, :r + 1], atol=1e-9)
    assert differs
