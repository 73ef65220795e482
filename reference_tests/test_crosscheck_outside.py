"""Stand-ins for the outside PyTorch models people audit (demos/outside_models.py): each gets
its verdict and field; PixelCNN++'s mixture head as 256-way log-probabilities equals its
own loss; the plain PixelCNN written from docs/porting.md matches a reference file; the
torch adapter's inputs, errors and leaky probe; the default design's cost.

Needs PyTorch (CPU):  pip install torch==2.13.0  (the [crosscheck] extra). Small sizes and
one or two bases keep the whole file to a few seconds; `python demos/outside_models.py`
audits the same models at 8x8 with timings, `--speed` the old default against the new.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch==2.13.0 "
                                            "(the [crosscheck] extra)")

pytestmark = pytest.mark.crosscheck
torch.set_num_threads(1)

from minipixel.causality import context_map  # noqa: E402
from minipixel.crosscheck import compare, reference_arrays  # noqa: E402
from minipixel.crosscheck.adapters import torch_fn, torch_probe  # noqa: E402
from minipixel.crosscheck.audit import FunctionRaised, audit  # noqa: E402
from minipixel.crosscheck.audit_cli import audit_main  # noqa: E402

from demo_module import load_demo  # noqa: E402
from minipixel.crosscheck.fields import expected_field, maskb_field  # noqa: E402
from minipixel.crosscheck.reference import check_arrays  # noqa: E402

@pytest.fixture(scope="module")
def om():
    return load_demo("outside_models")


def small_pixelcnnpp(om, colours=3):
    return om.make_pixelcnnpp(colours=colours, nf=8, nr_resnet=2, nr_mix=2)


# ---- the six kinds -----------------------------------------------------------------------
def test_batchnorm_pixelcnn_eval_passes_with_its_exact_field_and_train_fails(om):
    model = om.make_batchnorm(maps=16, layers=3)
    report = audit(torch_fn(model, inputs="unit"), 1, 256, H=6, W=6, bases=1,
                   expect="maskb", layers=3, kernels=(7, 7))
    assert report.passed and report.dtype == "float64" and report.design == "per-image"
    assert np.array_equal(report.dep & report.allowed, report.expected)
    assert "same field as a mask-B stack (7x7 mask A, then 3 7x7 mask-B layers)" in \
        report.format()
    # in training mode its batch statistics couple the images of a call: auto goes
    # isolated, and the statistics show as leaks of every output within the image
    train = audit(torch_fn(model.train(), inputs="unit"), 1, 256, H=5, W=5, bases=1)
    assert train.coupled and not train.passed and train.design == "isolated"
    assert len(train.leaks) > 0.9 * (~train.allowed).sum()


def test_row_lstm_with_causal_padding_passes_and_its_gap_is_named(om):
    report = audit(torch_fn(om.make_rowlstm_causal(), inputs="signed"), 1, 256, H=6, W=6,
                   bases=1, expect="rowlstm", layers=2)
    assert report.passed and report.leaks == []
    missed = report.expected & ~report.dep
    assert missed.sum() > 0 and "pairs outside the output's own pixel" in report.format()
    # the left-only padding: every pixel it misses lies right of the output's column
    for _, r, c, _, r2, c2 in np.argwhere(missed):
        assert c2 > c and r2 < r


def test_gated_pixelcnn_with_an_embedding_needs_integers_and_has_no_blind_spot(om):
    model = om.make_gated()
    with pytest.raises(FunctionRaised, match="takes integers: --input int"):
        audit(torch_fn(model, inputs="signed"), 1, 256, H=5, W=5, bases=1)
    # the leaky probe: every wire carries a change, so one base gives the whole field
    report = audit(torch_fn(om.make_gated(), inputs="int", probe="leaky"), 1, 256, H=6, W=6,
                   bases=1, expect="full")
    assert report.passed and np.array_equal(report.dep, context_map(1, 6, 6))
    assert "probe: a copy of the module with leaky ReLUs" in report.format()


def test_gated_rgb_second_mask_a_layer_is_found_inside_its_own_pixel(om):
    bad = audit(torch_fn(om.make_gated_rgb(), probe="leaky"), 3, 256, H=5, W=5, bases=1,
                expect="full")
    assert bad.passed                                   # not a leak
    assert bad.own_pixel_summary() == [(1, 0, 25, 25), (2, 1, 25, 25)]
    text = bad.format()
    assert "G never moved with its own pixel's R in 25 of 25 pixels; B never moved with " \
           "its own pixel's G in 25 of 25 pixels" in text
    assert "reaches 50 own-pixel pairs that this function does not" in text
    assert "LOW" in text.splitlines()[-1]
    good = audit(torch_fn(om.make_gated_rgb(fixed=True), probe="leaky"), 3, 256, H=5, W=5,
                 bases=1, expect="full")
    assert good.passed and np.array_equal(good.dep, context_map(3, 5, 5))
    assert good.own_pixel_summary() == []


def test_pixelcnnpp_passes_with_the_full_context(om):
    report = audit(torch_fn(small_pixelcnnpp(om)), 3, 256, H=4, W=4, bases=1, expect="full")
    assert report.passed and np.array_equal(report.dep, context_map(3, 4, 4))
    assert "same field as a full-context model" in report.format()


def test_docs_pixelcnn_matches_a_reference_file_and_passes(om, tmp_path):
    """The plain PixelCNN written from docs/porting.md's forward page: every layer output,
    the logits and the NLL of a reference file, at float64 rounding."""
    ref = check_arrays(reference_arrays(dict(model="pixelcnn", channels=3, levels=16, h=3,
                                             layers=2, out_hidden=6, seed=4), seed=1,
                                        batch=2, H=5, W=6))
    model = om.make_docs_pixelcnn(ref=ref)
    trace = {}
    images = torch.from_numpy(ref["images"])
    with torch.no_grad():
        logits = model(images, trace)
        nll = torch.nn.functional.cross_entropy(logits, images, reduction="none").sum((1, 2, 3))
    theirs = {k: v.numpy() for k, v in trace.items()}
    theirs.update(logits=logits.numpy(), nll=nll.numpy())
    result = compare(ref, theirs)
    assert result.passed, result.format()
    assert max(r.max_rel for r in result.results) < 1e-12
    report = audit(torch_fn(model, inputs="int", probe="leaky"), 3, 16, H=5, W=5, bases=1,
                   expect="pixelcnn", layers=2)
    assert report.passed and np.array_equal(report.dep & report.allowed, report.expected)
    leak = audit(torch_fn(om.make_docs_pixelcnn(leak=True, ref=ref), inputs="int",
                          probe="leaky"), 3, 16, H=4, W=4, bases=1)
    assert not leak.passed
    assert {o for o, i in leak.leaks if o == i} == {(k, r, c) for k in range(3)
                                                    for r in range(4) for c in range(4)}
    assert "usually a first layer with mask B, or mask A's centre kept" in leak.format()


# ---- PixelCNN++'s head ---------------------------------------------------------------------
@pytest.mark.parametrize("colours", [1, 3])
def test_mixture_logprobs_sum_to_the_models_own_loss(om, colours):
    model = small_pixelcnnpp(om, colours).model.double()
    torch.manual_seed(3)
    images = torch.randint(0, 256, (3, colours, 4, 4))
    x = images.double() * (2 / 255) - 1
    with torch.no_grad():
        params = model(x)
        logp = om.mixture_logprobs(params, x, model.nr_mix)       # (N, 256, C, H, W)
        own = -logp.gather(1, images[:, None]).sum()
        loss = om.mixture_loss(params, x, model.nr_mix)
    assert logp.shape == (3, 256, colours, 4, 4)
    assert float(abs(own - loss) / abs(loss)) < 1e-12
    assert float((logp.exp().sum(1) - 1).abs().max()) < 1e-12     # each a distribution


def test_a_padding_sized_from_the_first_batch_gets_what_to_do(om):
    """PixelCNN++'s code keeps a border padding sized from its first batch: every call of
    an audit holds the same number of images, so it just works; a module first called with
    another batch size fails on the audit's first call, with what to give."""
    report = audit(torch_fn(small_pixelcnnpp(om, 1)), 1, 256, H=4, W=4, bases=1)
    assert report.passed
    used = small_pixelcnnpp(om, 1)
    with torch.no_grad():
        used(torch.zeros(3, 1, 4, 4))                 # its padding is now 3 images deep
    with pytest.raises(FunctionRaised) as e:
        audit(torch_fn(used), 1, 256, H=4, W=4, bases=1)
    msg = str(e.value)
    assert "Sizes of tensors must match" in msg and "only one batch size" in msg
    assert "--batch" in msg and "\n" not in msg
    assert audit(torch_fn(used), 1, 256, H=4, W=4, bases=1, batch=3).passed


def test_int_images_into_a_convolution_name_the_input_option(om):
    with pytest.raises(FunctionRaised) as e:
        audit(torch_fn(om.make_batchnorm(maps=8, layers=1), inputs="int"), 1, 256, H=4, W=4,
              bases=1)
    assert "the images came as integers v (int64) (--input int)" in str(e.value)
    assert "--input unit (v/(V-1)) or --input signed ([-1, 1])" in str(e.value)


# ---- the probe -------------------------------------------------------------------------------
class DeadLeak(torch.nn.Module):
    """Causal (each output sees the pixel to its left), plus a wire from the pixel itself
    through a ReLU that is dead for every input the audit can give: the plain audit
    cannot see it, the probe must."""

    def __init__(self):
        super().__init__()
        self.channels, self.levels = 1, 4
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        left = torch.nn.functional.pad(x, (1, 0))[..., :-1]
        return torch.tanh(left) + 0.1 * self.relu(x - 5.0) + torch.relu(left - 9.0)


def test_the_leaky_probe_finds_a_wire_to_the_future_that_a_dead_relu_hides():
    plain = audit(torch_fn(DeadLeak()), 1, 4, H=3, W=3, bases=2)
    assert plain.passed and plain.leaks == []
    probe = torch_fn(DeadLeak(), probe="leaky")
    report = audit(probe, 1, 4, H=3, W=3, bases=1)
    assert not report.passed
    assert report.leaks == [((0, r, c), (0, r, c)) for r in range(3) for c in range(3)]
    assert "1 nn.ReLU module(s) swapped, 1 functional relu call(s) per forward made leaky" \
        in report.probe_note                            # self.relu, and torch.relu
    assert torch.nn.functional.relu(torch.tensor(-1.0)) == 0          # restored after it
    assert torch.relu(torch.tensor(-1.0)) == 0
    twin, swapped = torch_probe(DeadLeak())
    assert swapped == 1 and isinstance(twin.relu, torch.nn.LeakyReLU)


def test_probe_both_fails_on_a_hidden_wire_and_splits_gaps(tmp_path, capsys):
    f = tmp_path / "dead.py"
    f.write_text("import torch\n"
                 "class M(torch.nn.Module):\n"
                 "    channels, levels = 1, 4\n"
                 "    def forward(self, x):\n"
                 "        left = torch.nn.functional.pad(x, (1, 0))[..., :-1]\n"
                 "        up = torch.nn.functional.pad(x, (0, 0, 1, 0))[..., :-1, :]\n"
                 "        return torch.tanh(left) + torch.relu(up - 9.0) + "
                 "(0.0 if self.ok else torch.relu(x - 5.0))\n"
                 "def make(ok=False):\n"
                 "    m = M(); m.ok = ok\n"
                 "    return m\n")
    small = ["--height", "3", "--width", "3", "--bases", "1"]
    assert audit_main([f"{f}:make", *small]) == 0
    capsys.readouterr()
    assert audit_main([f"{f}:make", *small, "--probe", "both"]) == 1
    out = capsys.readouterr().out
    assert "PROBE LEAKS" in out and "its copy with leaky ReLUs leaks" in out.splitlines()[-1]
    assert audit_main([f"{f}:make", "--kwargs", '{"ok": true}', *small, "--probe", "both"]) == 0
    out = capsys.readouterr().out
    assert "dead paths (the copy reaches them)" in out
    # the pixel above is a dead path (its ReLU never opens), the rest missing wires
    line = next(ln for ln in out.splitlines() if ln.startswith("probe ("))
    assert "6 are dead paths" in line


# ---- the fields, against independent torch stacks -----------------------------------------
def masked_stack(colours, kernels, layers, seed=0):
    """A PyTorch stack of masked convs with colour groups (each layer 3 maps per colour),
    leaky units, a 1x1 mask-B head: independent of fields.py."""
    torch.manual_seed(seed)
    maps = 3 * colours

    def mask(kind, oc, ic, k):
        og, ig = torch.arange(oc) * colours // oc, torch.arange(ic) * colours // ic
        m = torch.ones(oc, ic, k, k, dtype=torch.float64)
        m[:, :, k // 2 + 1:] = 0
        m[:, :, k // 2, k // 2 + 1:] = 0
        m[:, :, k // 2, k // 2] = (ig[None] < og[:, None]) if kind == "A" else \
            (ig[None] <= og[:, None])
        return m
    specs = [("A", colours, maps, kernels[0])] + [("B", maps, maps, kernels[1])] * layers
    specs.append(("B", maps, colours, 1))
    weights = [(torch.randn(oc, ic, k, k, dtype=torch.float64) * mask(kind, oc, ic, k), k)
               for kind, ic, oc, k in specs]

    def f(x):
        for i, (w, k) in enumerate(weights):
            x = torch.nn.functional.conv2d(x, w, padding=k // 2)
            if i < len(weights) - 1:
                x = torch.nn.functional.leaky_relu(x, 0.3)
        return x
    return f


@pytest.mark.parametrize("colours,H,W,kernels,layers", [
    (1, 7, 6, (7, 3), 2), (1, 5, 9, (5, 5), 1), (3, 5, 5, (7, 7), 2), (3, 4, 6, (3, 3), 3),
    (1, 3, 3, (7, 3), 4)])
def test_maskb_field_is_an_independent_stacks_exact_gradient_map(colours, H, W, kernels,
                                                                  layers):
    f = masked_stack(colours, kernels, layers)
    x = torch.rand(1, colours, H, W, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda v: f(v)[0], x)[:, :, :, 0]
    dep = (J != 0).numpy()
    assert np.array_equal(dep, maskb_field(colours, H, W, layers, kernels))
    assert np.array_equal(dep, expected_field("maskb", colours, H, W, layers, kernels))


# ---- the cost of the default design -----------------------------------------------------------
def test_the_default_audit_evaluates_3x_fewer_images_for_the_same_verdict(om):
    for fn, C, size, inputs in ((lambda: small_pixelcnnpp(om), 3, 4, "signed"),
                                (lambda: om.make_batchnorm(maps=8, layers=2), 1, 8, "unit")):
        iso = audit(torch_fn(fn(), inputs=inputs), C, 256, H=size, W=size, bases=2,
                    design="isolated")
        auto = audit(torch_fn(fn(), inputs=inputs), C, 256, H=size, W=size, bases=2)
        assert auto.design == "per-image" and iso.passed == auto.passed
        assert auto.leaks == iso.leaks and np.array_equal(auto.dep, iso.dep)
        assert iso.images >= 3 * auto.images and iso.calls >= 8 * auto.calls
