"""Network families: shapes, published parameter counts, init, spectral norm, maxout,
batch invariance, gradient flow and configuration errors. CPU, a few seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ganforge.config import NetConfig
from ganforge.errors import ConfigError
from ganforge.nets import NETS, build_discriminator, build_generator
from ganforge.nets.dcgan import SIZES
from ganforge.nets.layers import DenseConv2d, DenseConvTranspose2d, Maxout, init_dcgan_


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny nets: one intra-op thread is fastest, and far faster on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def g_cfg(name="dcgan", **kw):
    return NetConfig(name=name, activation="relu", **kw)


def d_cfg(name="dcgan", **kw):
    kw.setdefault("activation", "leaky_relu")
    return NetConfig(name=name, **kw)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --------------------------------------------------------------------------- registry


def test_registry_lists_families_with_one_line_docs():
    assert {"dcgan", "mlp"} <= set(NETS.names())
    for name in NETS:
        doc = NETS.describe(name)
        assert doc and "\n" not in doc


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    shape = (channels, size, size)
    G = build_generator(g_cfg(width=8), 16, shape)
    D = build_discriminator(d_cfg(width=8), shape)
    assert G.z_dim == 16 and G.out_shape == shape
    x = G(torch.randn(3, 16))
    assert x.shape == (3, *shape)
    assert x.abs().max() <= 1.0  # tanh output
    assert D(x).shape == (3,)
    f = D.features(x)
    assert f.shape == (3, D.n_features)
    assert torch.allclose(D.head(f).reshape(-1), D(x))  # forward = head(features)


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_dcgan_norm_options(norm):
    G = build_generator(g_cfg(width=8, norm=norm), 10, (3, 32, 32))
    D = build_discriminator(d_cfg(width=8, norm=norm), (3, 32, 32))
    assert D(G(torch.randn(4, 10))).shape == (4,)
    kinds = {"batch": nn.BatchNorm2d, "layer": nn.GroupNorm}
    n_norm = sum(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in D.modules())
    assert n_norm == (0 if norm == "none" else 2)  # 3 stages at 32x32, none on the first
    if norm != "none":
        assert all(isinstance(m, kinds[norm]) for m in D.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)))
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert all((m.bias is not None) == (norm == "none") for m in convs)


@pytest.mark.parametrize("depth", [0, 2])
def test_mlp_points(depth):
    G = build_generator(g_cfg("mlp", width=32, depth=depth, norm="none"), 4, (2,))
    D = build_discriminator(d_cfg("mlp", width=32, depth=depth, norm="none"), (2,))
    with torch.no_grad():
        G.out.bias.fill_(5.0)  # no output activation for points: values beyond [-1, 1]
    x = G(torch.randn(7, 4))
    assert x.shape == (7, 2) and x.min() > 1.0
    assert D(x).shape == (7,)
    assert D.features(x).shape == (7, 32 if depth else 2)


def test_mlp_images_and_maxout():
    G = build_generator(g_cfg("mlp", width=32, depth=2), 8, (1, 8, 8))
    D = build_discriminator(d_cfg("mlp", width=24, depth=3, maxout=5, norm="none", dropout=0.1), (1, 8, 8))
    x = G(torch.randn(5, 8))
    assert x.shape == (5, 1, 8, 8) and x.abs().max() <= 1.0
    assert D(x).shape == (5,) and D.features(x).shape == (5, 24)
    maxouts = [m for m in D.modules() if isinstance(m, Maxout)]
    assert len(maxouts) == 3 and all(m.pieces == 5 for m in maxouts)


def test_discriminator_accepts_channels_last():
    D = build_discriminator(d_cfg(width=8), (3, 16, 16)).eval()
    x = torch.randn(4, 3, 16, 16)
    xcl = x.to(memory_format=torch.channels_last)
    assert torch.allclose(D(x), D(xcl), atol=1e-5)
    assert torch.allclose(D.features(x), D.features(xcl), atol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("sn", [False, True])
@pytest.mark.parametrize("dense, conv, x_shape, args, kw", [
    (DenseConvTranspose2d, nn.ConvTranspose2d, (5, 6, 1, 1), (6, 4, 7, 1, 0), {}),  # G's first layer
    (DenseConvTranspose2d, nn.ConvTranspose2d, (5, 6, 3, 3), (6, 4, 4, 2, 1), {}),  # not 1 x 1: conv path
    (DenseConvTranspose2d, nn.ConvTranspose2d, (5, 6, 1, 1), (6, 4, 3, 2, 0), {"output_padding": 1}),  # conv path
    (DenseConvTranspose2d, nn.ConvTranspose2d, (5, 6, 1, 1), (6, 4, 3, 1, 0), {"dilation": 2}),  # conv path
    (DenseConv2d, nn.Conv2d, (5, 6, 7, 7), (6, 1, 7, 1, 0), {}),  # D's head
    (DenseConv2d, nn.Conv2d, (5, 6, 9, 9), (6, 3, 7, 1, 0), {}),  # bigger input: conv path
    (DenseConv2d, nn.Conv2d, (5, 6, 5, 5), (6, 3, 3, 1, 0), {"dilation": 2}),  # a 3 x 3 kernel over 5 x 5: conv path
])
def test_dense_convs_equal_the_torch_convs_in_float64(dense, conv, x_shape, args, kw, sn, bias):
    """The matmul forms of DCGAN's first and last layers: same output and gradients (input,
    weight, bias) as torch's conv on the same parameters, same state-dict keys."""
    torch.manual_seed(1)
    ref = conv(*args, bias=bias, **kw).double()
    ours = dense(*args, bias=bias, **kw).double()
    ours.load_state_dict(ref.state_dict())
    if sn:
        ref, ours = (torch.nn.utils.parametrizations.spectral_norm(m) for m in (ref, ours))
        ours.load_state_dict(ref.state_dict())
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.randn(*x_shape, dtype=torch.float64)
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    ys = [m(xi) for m, xi in zip((ref, ours), xs)]
    assert ys[1].shape == ys[0].shape
    torch.testing.assert_close(ys[1], ys[0], rtol=1e-12, atol=1e-12)
    w = torch.randn_like(ys[0])
    for y in ys:
        (y * w).sum().backward()
    torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=1e-12, atol=1e-12)
    for (k, p0), (_, p1) in zip(ref.named_parameters(), ours.named_parameters()):
        torch.testing.assert_close(p1.grad, p0.grad, rtol=1e-12, atol=1e-12, msg=k)


def test_dcgan_first_and_last_layers_use_the_dense_forms_and_keep_channels_last():
    G = build_generator(g_cfg(width=8), 16, (3, 28, 28))
    D = build_discriminator(d_cfg(width=8), (3, 28, 28))
    assert isinstance(G.net[0], DenseConvTranspose2d) and isinstance(D.head[1], DenseConv2d)
    G.to(memory_format=torch.channels_last)
    y = G.net[0](torch.randn(2, 16, 1, 1))
    assert y.shape == (2, 16, 7, 7) and y.is_contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- published counts


def test_dcgan64_matches_pytorch_examples_parameter_counts():
    nz, ngf, ndf, nc = 100, 64, 64, 3

    def conv(cin, cout, k=4):  # no bias (pytorch/examples uses bias=False everywhere)
        return cin * cout * k * k

    def bn(c):  # weight + bias
        return 2 * c

    g_expected = (
        conv(nz, ngf * 8) + bn(ngf * 8)
        + conv(ngf * 8, ngf * 4) + bn(ngf * 4)
        + conv(ngf * 4, ngf * 2) + bn(ngf * 2)
        + conv(ngf * 2, ngf) + bn(ngf)
        + conv(ngf, nc)
    )
    d_expected = (
        conv(nc, ndf)
        + conv(ndf, ndf * 2) + bn(ndf * 2)
        + conv(ndf * 2, ndf * 4) + bn(ndf * 4)
        + conv(ndf * 4, ndf * 8) + bn(ndf * 8)
        + conv(ndf * 8, 1)
    )
    assert (g_expected, d_expected) == (3_576_704, 2_765_568)  # the published numbers
    G = build_generator(g_cfg(width=ngf), nz, (nc, 64, 64))
    D = build_discriminator(d_cfg(width=ndf), (nc, 64, 64))
    assert n_params(G) == g_expected
    assert n_params(D) == d_expected


# --------------------------------------------------------------------------- init


def test_dcgan_init_statistics():
    G = build_generator(g_cfg(width=64), 100, (3, 64, 64))
    D = build_discriminator(d_cfg(width=64, norm="none"), (3, 64, 64))
    for net in (G, D):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.weight.numel() >= 10_000:
                assert abs(m.weight.std().item() - 0.02) < 0.001
                assert abs(m.weight.mean().item()) < 0.001
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
                assert torch.all(m.bias == 0)
            if isinstance(m, nn.BatchNorm2d) and m.num_features >= 256:
                assert abs(m.weight.mean().item() - 1.0) < 0.005
                assert abs(m.weight.std().item() - 0.02) < 0.005
                assert torch.all(m.bias == 0)


def test_init_dcgan_reaches_spectral_normed_weights():
    conv = nn.utils.parametrizations.spectral_norm(nn.Conv2d(64, 128, 4))
    init_dcgan_(conv)
    w = conv.parametrizations.weight.original
    assert abs(w.std().item() - 0.02) < 0.001


def _weight_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]


@pytest.mark.parametrize("sn", [False, True])
def test_mlp_init_std_draws_normal_weights_and_zero_biases(sn):
    """model.*.init_std = s > 0: every weight ~ N(0, s^2), biases 0 (PacGAN's 2D setup: s = 0.02),
    maxout units included; spectral norm is fitted to those weights."""
    G = build_generator(g_cfg("mlp", width=400, depth=4, init_std=0.02), 2, (2,))
    D = build_discriminator(d_cfg("mlp", width=200, depth=3, maxout=5, norm="none", init_std=0.02, spectral_norm=sn), (8,))
    assert isinstance(D.body[0], Maxout)
    for net in (G, D):
        for m in _weight_layers(net):
            w = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
            if w.numel() >= 40_000:
                assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
            if m.bias is not None:
                assert torch.all(m.bias == 0)
    if sn:  # the power-iteration vectors belong to the N(0, 0.02^2) weights: sigma(W / sigma_hat) ~ 1
        D.train()
        D(torch.randn(4, 8))
        for m in _weight_layers(D):
            assert _sigma(m) == pytest.approx(1.0, abs=0.05)


def test_init_std_default_keeps_each_familys_initialisation():
    torch.manual_seed(1)
    default = build_discriminator(d_cfg("mlp", width=200, depth=2, norm="none"), (2,))
    bound = 1 / np.sqrt(200)  # PyTorch's Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w = default.body[2].weight  # the 200 -> 200 layer
    assert w.abs().max().item() <= bound and w.std().item() == pytest.approx(bound / np.sqrt(3), rel=0.02)
    D = build_discriminator(d_cfg(width=32, norm="none", init_std=0.05), (3, 32, 32))
    convs = [m for m in _weight_layers(D) if m.weight.numel() >= 10_000]
    assert convs and all(abs(m.weight.std().item() - 0.05) < 0.003 for m in convs)


def test_init_std_must_not_be_negative():
    with pytest.raises(ConfigError) as e:
        build_generator(g_cfg("mlp", init_std=-0.1), 2, (2,))
    assert "model.g.init_std must be >= 0" in _one_line(e)


# --------------------------------------------------------------------------- spectral norm


def _sigma(m: nn.Module) -> float:
    """Largest singular value of the (normalised) weight, reshaped as torch's SN does."""
    w = m.weight.detach().double()
    if isinstance(m, nn.ConvTranspose2d):
        w = w.transpose(0, 1)  # SN normalises transposed convs along their output dim 1
    return torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2).item()


@pytest.mark.parametrize("family,shape", [("dcgan", (3, 32, 32)), ("mlp", (2,))])
def test_spectral_norm_bounds_largest_singular_value(family, shape):
    D = build_discriminator(d_cfg(family, width=16, depth=2, norm="none", spectral_norm=True), shape)
    G = build_generator(g_cfg(family, width=16, depth=2, norm="none", spectral_norm=True), 8, shape)
    layers = [m for net in (G, D) for m in net.modules() if parametrize.is_parametrized(m, "weight")]
    n_weight_layers = sum(isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) for net in (G, D) for m in net.modules())
    assert layers and len(layers) == n_weight_layers
    raw = [m.parametrizations.weight.original.detach().double() for m in layers]
    G.train(), D.train()
    for _ in range(10):  # one power iteration per layer per training forward pass
        D(G(torch.randn(8, 8)))
    G.eval(), D.eval()  # read the weights without another power iteration
    for m in layers:
        # u^T W v <= sigma(W), so the normalised weight has sigma >= 1, and ~1 once converged
        assert 1.0 - 1e-4 < _sigma(m) < 1.1  # worst of 20 seeds: 1.06
    # the check is not vacuous: raw weights are far from sigma = 1 (DCGAN init: ~0.1-0.3)
    raw_sigma = [torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2).item() for w in raw]
    assert max(abs(s - 1.0) for s in raw_sigma) > 0.2


# --------------------------------------------------------------------------- maxout


def test_maxout_matches_numpy_reference():
    m = Maxout(5, 3, 4)
    x = torch.randn(6, 5)
    W = m.linear.weight.detach().double().numpy()  # [out * pieces, in]
    b = m.linear.bias.detach().double().numpy()
    xs = x.double().numpy()
    ref = np.empty((6, 3))
    for n in range(6):
        for j in range(3):
            ref[n, j] = max(xs[n] @ W[j * 4 + k] + b[j * 4 + k] for k in range(4))
    np.testing.assert_allclose(m(x).detach().double().numpy(), ref, rtol=1e-5, atol=1e-6)
    # the gradient flows through each unit's winning piece only: d/dx sum_j g_j y_j = sum_j g_j W[j, k*]
    x.requires_grad_(True)
    g = torch.randn(6, 3)
    (gx,) = torch.autograd.grad((m(x) * g).sum(), x, create_graph=True)
    win = [[max(range(4), key=lambda k: xs[n] @ W[j * 4 + k] + b[j * 4 + k]) for j in range(3)] for n in range(6)]
    ref_gx = np.array([sum(g[n, j].item() * W[j * 4 + win[n][j]] for j in range(3)) for n in range(6)])
    np.testing.assert_allclose(gx.detach().double().numpy(), ref_gx, rtol=1e-5, atol=1e-6)
    # and is differentiable again (gradient penalties and the unrolled GAN take gradients of it)
    (gx.square().sum()).backward()
    w_grad = m.linear.weight.grad.double().numpy()
    ref_w = np.zeros_like(W)  # d/dW of sum_n |sum_j g_nj W[j, k*]|^2
    for n in range(6):
        for j in range(3):
            ref_w[j * 4 + win[n][j]] += 2 * g[n, j].item() * ref_gx[n]
    np.testing.assert_allclose(w_grad, ref_w, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- invariances

CASES = [
    ("mlp", (2,), "none"),
    ("mlp", (1, 8, 8), "batch"),
    ("mlp", (1, 8, 8), "layer"),
    ("dcgan", (1, 28, 28), "batch"),
    ("dcgan", (3, 16, 16), "layer"),
    ("dcgan", (3, 8, 8), "none"),
]


@pytest.mark.parametrize("family,shape,norm", CASES)
def test_batch1_equals_batchN_in_eval(family, shape, norm):
    G = build_generator(g_cfg(family, width=16, depth=2, norm=norm), 12, shape)
    D = build_discriminator(d_cfg(family, width=16, depth=2, norm=norm), shape)
    for net in (G, D):  # non-trivial running statistics
        net.train()
    with torch.no_grad():
        for _ in range(3):
            D(G(torch.randn(16, 12)))
    G.eval(), D.eval()
    z = torch.randn(5, 12)
    with torch.no_grad():
        x = G(z)
        xs = torch.cat([G(z[i : i + 1]) for i in range(5)])
        y = D(x)
        ys = torch.cat([D(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(x, xs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y, ys, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "family,shape,kw",
    [
        ("mlp", (2,), dict(norm="batch")),
        ("mlp", (2,), dict(norm="none", spectral_norm=True)),
        ("mlp", (1, 8, 8), dict(norm="layer", dropout=0.2)),
        ("dcgan", (3, 32, 32), dict(norm="batch")),
        ("dcgan", (1, 28, 28), dict(norm="layer")),
        ("dcgan", (3, 16, 16), dict(norm="none", spectral_norm=True)),
    ],
)
def test_gradient_reaches_every_generator_parameter_through_D(family, shape, kw):
    G = build_generator(g_cfg(family, width=8, depth=2, **kw), 6, shape).train()
    D = build_discriminator(d_cfg(family, width=8, depth=2, **kw), shape).train()
    D(G(torch.randn(8, 6))).sum().backward()
    for name, p in G.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# --------------------------------------------------------------------------- errors


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_unknown_family_lists_valid_names():
    with pytest.raises(ConfigError) as e:
        build_generator(NetConfig(name="resnet9000"), 10, (3, 32, 32))
    msg = _one_line(e)
    assert "resnet9000" in msg and "dcgan" in msg and "mlp" in msg
    with pytest.raises(ConfigError):
        build_discriminator(NetConfig(name="nope"), (2,))


@pytest.mark.parametrize("shape,fix", [((3, 20, 20), "data.image_size=16"), ((3, 32, 24), "data.image_size=32"), ((1, 100, 100), "data.image_size=128")])
def test_dcgan_bad_size_names_supported_sizes_and_fix(shape, fix):
    for build in (lambda: build_generator(g_cfg(), 10, shape), lambda: build_discriminator(d_cfg(), shape)):
        with pytest.raises(ConfigError) as e:
            build()
        msg = _one_line(e)
        assert "8, 16, 28, 32, 64, 128" in msg and fix in msg


def test_dcgan_on_points_points_to_mlp():
    with pytest.raises(ConfigError) as e:
        build_generator(g_cfg(), 10, (2,))
    assert "mlp" in _one_line(e)


@pytest.mark.parametrize(
    "build,needle",
    [
        (lambda: build_generator(g_cfg(norm="group"), 10, (3, 32, 32)), "batch, layer, none"),
        (lambda: build_discriminator(d_cfg(activation="gelu"), (3, 32, 32)), "relu, leaky_relu, tanh, elu"),
        (lambda: build_generator(g_cfg("mlp", maxout=3), 10, (2,)), "model.g.maxout"),
        (lambda: build_discriminator(d_cfg(maxout=3), (3, 32, 32)), "model.d.name=mlp"),
        (lambda: build_discriminator(d_cfg("mlp", dropout=1.0), (2,)), "dropout"),
        (lambda: build_discriminator(d_cfg("mlp", width=0), (2,)), "width"),
        (lambda: build_generator(g_cfg(), 0, (3, 32, 32)), "z_dim"),
    ],
)
def test_bad_settings_are_one_line_config_errors(build, needle):
    with pytest.raises(ConfigError) as e:
        build()
    assert needle in _one_line(e)


# --------------------------------------------------------------------------- categorical latent code


def test_categorical_code_is_uniform_and_matches_the_normal_cdf():
    from scipy import stats

    from ganforge.nets.mlp import CategoricalCode

    k, scale = 7, 0.1
    z = torch.randn(70_000, 3, generator=torch.Generator().manual_seed(1))
    h = CategoricalCode(k, scale)(z)  # [N, K + 2]
    assert h.shape == (70_000, k + 2)
    onehot = h[:, :k]
    assert torch.equal(onehot.sum(1), torch.ones(70_000)) and set(onehot.unique().tolist()) == {0.0, 1.0}
    assert torch.allclose(h[:, k:], scale * z[:, 1:])
    # reference: floor(K * Phi(z_0)) in float64 SciPy; only samples within 1e-5 of a bin edge may differ
    u = stats.norm.cdf(z[:, 0].double().numpy())
    ref = np.floor(k * u).astype(np.int64)
    got = onehot.argmax(1).numpy()
    edge = np.abs(k * u - np.round(k * u)) < 1e-5
    assert np.array_equal(got[~edge], ref[~edge])
    counts = np.bincount(got, minlength=k)
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform over the K codes


def test_categorical_generator_depends_on_z0_only_through_its_code():
    G = build_generator(g_cfg("mlp", width=16, depth=2, categories=5, code_scale=0.5), 3, (2,)).eval()
    assert G.body[0].in_features == 5 + 2
    z = torch.randn(6, 3)
    same_code = z.clone()
    same_code[:, 0] = torch.tensor([-2.0, -1.0, 0.0, 0.1, 1.0, 2.0]) + 0.01  # each bin is wide: nudging stays inside it
    z[:, 0] = torch.tensor([-2.0, -1.0, 0.0, 0.1, 1.0, 2.0])
    with torch.no_grad():
        assert torch.equal(G(z), G(same_code))
        other = z.clone()
        other[:, 0] = -z[:, 0] + 3.0  # other codes
        assert not torch.allclose(G(z), G(other))


@pytest.mark.parametrize("build,needle", [
    (lambda: build_generator(g_cfg("mlp", categories=1), 3, (2,)), "categories must be 0 (off) or at least 2"),
    (lambda: build_generator(g_cfg("mlp", categories=4), 1, (2,)), "model.z_dim >= 2"),
    (lambda: build_generator(g_cfg(categories=4), 10, (3, 32, 32)), "model.g.name=mlp"),
    (lambda: build_discriminator(d_cfg("mlp", categories=4), (2,)), "generator option"),
    (lambda: build_generator(g_cfg("mlp", categories=4, code_scale=0.0), 3, (2,)), "code_scale must be > 0"),
])
def test_categorical_code_errors(build, needle):
    with pytest.raises(ConfigError) as e:
        build()
    assert needle in _one_line(e)


@pytest.mark.parametrize("family,shape", [("mlp", (2,)), ("dcgan", (1, 16, 16))])
def test_generator_dropout_is_training_noise_only(family, shape):
    """model.g.dropout=p: h -> m * h / (1 - p), m ~ Bernoulli(1 - p), in training; identity in eval."""
    p = 0.5
    G = build_generator(g_cfg(family, width=16, depth=2, dropout=p), 4, shape)
    drops = [m for m in G.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(m.p == p for m in drops)
    torch.manual_seed(0)
    z = torch.randn(6, 4)
    G.train()
    assert not torch.equal(G(z), G(z))  # a second noise source beside z
    h = torch.rand(20000)
    out = drops[0](h)
    kept = out != 0
    torch.testing.assert_close(out[kept], h[kept] / (1 - p))  # inverted dropout's rescaling
    assert abs(kept.float().mean().item() - (1 - p)) < 0.02
    G.eval()
    torch.testing.assert_close(G(z), G(z), rtol=0, atol=0)
