"""The three models: input validation, logits layout, NLL, dtypes, presets, state_dict."""
import math

import numpy as np
import pytest
import scipy.special

from minipixel import Tensor, no_grad
from minipixel.backend import to_numpy
from minipixel.models import (MODELS, PRESETS, DiagonalBiLSTM, PixelCNN, RowLSTM, build,
                              check_images, from_preset)
from minipixel.ops import relu

CLASSES = [PixelCNN, RowLSTM, DiagonalBiLSTM]


def small(cls, channels=1, levels=2, dtype=np.float64, seed=0, h=3, layers=2):
    return cls(channels=channels, levels=levels, h=h, layers=layers, out_hidden=7, seed=seed,
               dtype=dtype)


def images(channels, levels, N=2, H=3, W=5, seed=0):
    x = np.random.default_rng(seed).integers(0, levels, size=(N, channels, H, W))
    return x.astype(np.uint8)


# ---- input validation -------------------------------------------------------------------------

@pytest.mark.parametrize("cls", CLASSES)
def test_input_validation(cls):
    grey = small(cls, 1, 2)
    rgb = small(cls, 3, 256)
    good = images(1, 2)
    cases = [
        (grey, good.astype(np.float32) / 1.0, r"integers 0\.\.1.*float32"),
        (grey, np.full((1, 1, 3, 3), np.nan), "NaN"),
        (rgb, images(1, 256), r"takes 3 channel\(s\).*with 1"),
        (grey, images(3, 2), r"takes 1 channel\(s\).*with 3"),
        (grey, good.astype(np.int64) + 1, r"must lie in 0\.\.1, got 1\.\.2"),
        (grey, good.astype(np.int64) - 1, r"must lie in 0\.\.1, got -1\.\.0"),
        (rgb, np.full((1, 3, 2, 2), 256), r"must lie in 0\.\.255"),
        (grey, good[0], r"4 dimensions \(N, C, H, W\)"),
        (grey, good[None], r"4 dimensions \(N, C, H, W\)"),
        (grey, [[[[0, 1]]]], "integer array"),
    ]
    for model, x, message in cases:
        with pytest.raises(ValueError, match=message):
            model(x)
        with pytest.raises(ValueError, match=message):
            model.nll(x)
    # float images get a hint on how to convert them
    with pytest.raises(ValueError, match="astype"):
        check_images(np.zeros((1, 1, 2, 2)), 1, 2)


def test_constructor_and_builder_validation():
    with pytest.raises(ValueError, match="channels must be 1"):
        PixelCNN(channels=2)
    with pytest.raises(ValueError, match="levels must be >= 2"):
        RowLSTM(levels=1)
    with pytest.raises(ValueError, match="unknown model"):
        build("wavenet")
    with pytest.raises(ValueError, match="unknown preset"):
        from_preset("mnist-gated")


# ---- logits layout and NLL ----------------------------------------------------------------------

@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("channels, levels", [(1, 2), (3, 2), (3, 256), (1, 256), (3, 5)])
def test_logits_layout(cls, channels, levels):
    m = small(cls, channels, levels)
    x = images(channels, levels, N=2, H=3, W=5)
    with no_grad():
        logits = m(x)
    if levels == 2:
        assert logits.shape == (2, channels, 3, 5)
    else:
        assert logits.shape == (2, levels, channels, 3, 5)
    # the last conv's maps are colour-major: channel k * values + v is logit v of colour k
    with no_grad():
        trace = {}
        m(x, trace)
        z = m.out_logits(relu(trace["out_hidden"])).numpy()
    values = 1 if levels == 2 else levels
    assert z.shape == (2, channels * values, 3, 5)
    lg = logits.numpy()
    for k in range(channels):
        for v in range(values):
            got = lg[:, k] if levels == 2 else lg[:, v, k]
            np.testing.assert_array_equal(got, z[:, k * values + v])


def hand_nll(logits, x, levels):
    """NLL per image in nats from the logits, with NumPy/SciPy only."""
    if levels == 2:
        z, t = logits, x.astype(np.float64)
        log_s, log_1ms = -np.logaddexp(0, -z), -np.logaddexp(0, z)
        return -(t * log_s + (1 - t) * log_1ms).sum(axis=(1, 2, 3))
    log_p = scipy.special.log_softmax(logits, axis=1)
    picked = np.take_along_axis(log_p, x[:, None].astype(np.int64), axis=1)[:, 0]
    return -picked.sum(axis=(1, 2, 3))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("channels, levels", [(1, 2), (3, 256), (3, 4)])
def test_nll_equals_hand_computation(cls, channels, levels):
    m = small(cls, channels, levels, seed=2)
    x = images(channels, levels, N=3, H=4, W=3, seed=1)
    with no_grad():
        logits = m(x).numpy()
        nll = m.nll(x)
        loss = m.loss(x)
    assert nll.shape == (3,)
    want = hand_nll(logits, x, levels)
    np.testing.assert_allclose(nll.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(loss.item(), want.mean(), rtol=1e-12)
    # a sanity anchor: an untrained model is near uniform, but not exactly
    uniform = 3 * 4 * channels * math.log(levels)
    assert np.all(np.abs(want - uniform) < 0.5 * uniform) and np.all(want != uniform)


def test_nll_depends_on_the_image():
    m = small(RowLSTM, 1, 2, seed=3)
    x = images(1, 2, N=1, H=4, W=4, seed=3)
    y = x.copy()
    y[0, 0, 3, 3] ^= 1                                        # flip the last pixel
    with no_grad():
        a, b = m.nll(x).item(), m.nll(y).item()
        la, lb = m(x).numpy(), m(y).numpy()
    np.testing.assert_array_equal(la, lb)                      # no logit sees the last pixel
    assert a != b                                              # but its likelihood term changes


# ---- dtypes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("channels, levels", [(1, 2), (3, 4)])
def test_float32_model_stays_float32(cls, channels, levels):
    m = small(cls, channels, levels, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in m.parameters())
    x = images(channels, levels)
    logits = m(x)
    assert logits.dtype == np.float32
    loss = m.loss(x)
    assert loss.dtype == np.float32 and m.nll(x).dtype == np.float32
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert p.grad.dtype == np.float32, name
        assert np.all(np.isfinite(to_numpy(p.grad))), name
    # and it agrees with the float64 model of the same seed to float32 precision
    m64 = small(cls, channels, levels, dtype=np.float64)
    with no_grad():
        np.testing.assert_allclose(m(x).numpy(), m64(x).numpy(), rtol=1e-4, atol=1e-5)


def test_scale_maps_levels_to_unit_interval():
    m = small(PixelCNN, 3, 256)
    x = np.array([0, 255, 128], dtype=np.uint8).reshape(1, 3, 1, 1)
    s = m.scale(x).numpy().ravel()
    np.testing.assert_allclose(s, [-1.0, 1.0, 2 * 128 / 255 - 1], rtol=1e-15)
    assert m.scale(x).dtype == np.float64


# ---- presets ------------------------------------------------------------------------------------

PRESET_PARAMETERS = {
    "mnist-diagonal": 72385,
    "mnist-diagonal-1layer": 41633,
    "mnist-rowlstm": 78881,
    "mnist-pixelcnn": 68961,
    "cifar-pixelcnn": 9010432,
    "cifar-rowlstm": 12504832,
    "cifar-diagonal": 11727616,
}


def parameter_count(model, channels, levels, h, layers, out_hidden):
    """The count from the architecture (base.py and the layer modules), by hand."""
    values = 1 if levels == 2 else levels
    first = 2 * h * channels * 49 + 2 * h
    layer = {
        "pixelcnn": (h * 2 * h + h) + (h * h * 9 + h) + (2 * h * h + 2 * h),
        "rowlstm": (4 * h * 2 * h * 3 + 4 * h) + 4 * h * h * 3 + 2 * h + (2 * h * h + 2 * h),
        "diagonal": 2 * ((4 * h * 2 * h + 4 * h) + 4 * h * h * 2 + 2 * h) + (2 * h * h + 2 * h),
    }[model]
    skip = out_hidden * 2 * h * layers + out_hidden
    head = (out_hidden * out_hidden + out_hidden) + \
        (channels * values * out_hidden + channels * values)
    return first + layers * layer + skip + head


def test_preset_table_is_complete():
    single_scale = {name for name, config in PRESETS.items() if config["model"] != "multiscale"}
    assert single_scale == set(PRESET_PARAMETERS)     # multi-scale: test_multiscale.py
    assert set(MODELS) == {"pixelcnn", "rowlstm", "diagonal", "multiscale"}


@pytest.mark.parametrize("name", sorted(PRESET_PARAMETERS))
def test_presets_build_with_stable_parameter_counts(name):
    m = from_preset(name)
    config = PRESETS[name]
    assert isinstance(m, MODELS[config["model"]])
    assert m.num_parameters() == PRESET_PARAMETERS[name]
    assert m.num_parameters() == parameter_count(**config)
    assert m.dtype == np.float32 and len(m.layers) == config["layers"]
    assert m.channels == config["channels"] and m.levels == config["levels"]
    # overrides
    m64 = from_preset(name, seed=1, dtype=np.float64) if name.startswith("mnist") else None
    if m64 is not None:
        assert m64.dtype == np.float64 and m64.num_parameters() == m.num_parameters()
        x = images(m.channels, m.levels, N=1, H=4, W=4)
        with no_grad():
            assert m64(x).shape == (1, 1, 4, 4)


# ---- state_dict -------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("channels, levels", [(1, 2), (3, 256)])
def test_state_dict_round_trip(cls, channels, levels):
    a = small(cls, channels, levels, seed=0)
    b = small(cls, channels, levels, seed=1)
    x = images(channels, levels, N=2, H=4, W=5)
    with no_grad():
        la, lb = a(x).numpy(), b(x).numpy()
    assert not np.allclose(la, lb)
    state = a.state_dict()
    assert list(state) == [n for n, _ in a.named_parameters()]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    b.load_state_dict(state)
    with no_grad():
        np.testing.assert_array_equal(b(x).numpy(), la)
    # the state is a copy: changing the model afterwards does not change it
    for p in a.parameters():
        p.data = p.data + 1
    with no_grad():
        np.testing.assert_array_equal(b(x).numpy(), la)
    c = small(cls, channels, levels, seed=2)
    c.load_state_dict(state)
    with no_grad():
        np.testing.assert_array_equal(c(x).numpy(), la)


def test_load_state_dict_rejects_mismatches():
    a = small(RowLSTM, 1, 2)
    state = a.state_dict()
    with pytest.raises(KeyError, match="missing"):
        a.load_state_dict({k: v for k, v in list(state.items())[1:]})
    wrong = dict(state)
    key = next(iter(wrong))
    wrong[key] = wrong[key][..., :1]
    with pytest.raises(ValueError, match="shape"):
        small(RowLSTM, 1, 2).load_state_dict(wrong)
    with pytest.raises(TypeError):
        small(RowLSTM, 1, 2).load_state_dict({k: v.astype(np.float32) for k, v in state.items()})


def test_models_differ_by_layer_type():
    x = images(1, 2, N=1, H=4, W=4)
    with no_grad():
        outs = [small(cls, 1, 2, seed=0)(x).numpy() for cls in CLASSES]
    assert not np.allclose(outs[0], outs[1]) and not np.allclose(outs[1], outs[2])
    assert Tensor(outs[0]).shape == (1, 1, 4, 4)


# ---- bad settings and empty batches ------------------------------------------------------------

@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("bad, match", [
    (dict(h=0), "h must be >= 1"), (dict(layers=0), "layers must be >= 1"),
    (dict(out_hidden=0), "out_hidden must be >= 1"), (dict(h=-2), "h must be >= 1"),
    (dict(h=2.5), "h must be a whole number"), (dict(layers="3"), "layers must be a whole"),
    (dict(channels=3, levels=4, h=2), "RGB model needs h >= 3"),
    (dict(channels=3, levels=4, out_hidden=2), "RGB model needs out_hidden >= 3"),
    (dict(channels=2), "channels must be 1"), (dict(levels=1), "levels must be >= 2")])
def test_constructors_refuse_impossible_sizes(cls, bad, match):
    settings = dict(channels=1, levels=2, h=3, layers=1, out_hidden=4, dtype=np.float64)
    with pytest.raises(ValueError, match=match):
        cls(**{**settings, **bad})


@pytest.mark.parametrize("cls", CLASSES)
def test_smallest_models_build(cls):
    """h = layers = out_hidden = 1 for grey images, 3 for RGB: every colour group has a map."""
    cls(channels=1, levels=2, h=1, layers=1, out_hidden=1)
    cls(channels=3, levels=4, h=3, layers=1, out_hidden=3)


@pytest.mark.parametrize("fast", [True, False])
def test_loss_of_an_empty_batch_is_a_clear_error(fast):
    m = build("rowlstm", channels=1, levels=2, h=2, layers=1, out_hidden=4, fast=fast)
    with pytest.raises(ValueError, match="no images"):
        m.loss(np.zeros((0, 1, 4, 4), np.uint8))
    assert m.nll(np.zeros((0, 1, 4, 4), np.uint8)).shape == (0,)


def test_variant_copies_parameters_and_changes_only_what_is_asked():
    m = build("diagonal", channels=1, levels=2, h=2, layers=1, out_hidden=4, seed=3)
    paper = m.variant(fast=False)
    assert paper.fast is False and paper.config == m.config
    for (k, a), (k2, b) in zip(m.state_dict().items(), paper.state_dict().items()):
        assert k == k2 and np.array_equal(a, b)
    probe = m.variant(relu_slope=0.1)
    assert probe.relu_slope == 0.1 and m.relu_slope == 0.0 and probe.fast is True
