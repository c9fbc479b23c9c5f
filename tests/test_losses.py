"""Adversarial losses vs float64 NumPy formulas written from the papers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ganforge.config import LossConfig
from ganforge.errors import ConfigError
from ganforge.losses import LOSSES, AdversarialLoss, check_options, clip_weights_, get_loss, penalty_name

NAMES = ["saturating", "ns", "bce", "lsgan", "wgan", "wgan-gp", "hinge"]


def np_softplus(x):
    return np.logaddexp(0.0, x)  # log(1 + e^x), stable


def np_sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


# --- independent references: (D loss, G loss) from each paper, on float64 numpy logits
def ref(name, lr, lf):
    if name in ("saturating", "ns", "bce"):
        # D: -E log sigmoid(l_r) - E log(1 - sigmoid(l_f))
        d = np.mean(np_softplus(-lr)) + np.mean(np_softplus(lf))
        g = np.mean(np.log1p(-np_sigmoid(lf))) if name == "saturating" else -np.mean(np.log(np_sigmoid(lf)))
        return d, g
    if name == "lsgan":
        return 0.5 * np.mean((lr - 1) ** 2) + 0.5 * np.mean(lf**2), 0.5 * np.mean((lf - 1) ** 2)
    if name in ("wgan", "wgan-gp"):
        return np.mean(lf) - np.mean(lr), -np.mean(lf)
    if name == "hinge":
        return np.mean(np.maximum(0, 1 - lr)) + np.mean(np.maximum(0, 1 + lf)), -np.mean(lf)
    raise KeyError(name)


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    return rng.normal(0, 3, 257), rng.normal(0, 3, 131)  # different batch sizes on purpose


def t64(a):
    return torch.tensor(a, dtype=torch.float64)


def test_registered_names_and_records():
    assert set(NAMES) <= set(LOSSES.names())
    for n in NAMES:
        loss = get_loss(n)
        assert isinstance(loss, AdversarialLoss) and loss.name == n and loss.doc
        assert LOSSES.describe(n) == loss.doc
    assert get_loss("wgan").clip and get_loss("wgan").penalty is None
    assert get_loss("wgan-gp").penalty == "gp" and not get_loss("wgan-gp").clip
    assert not any(get_loss(n).clip for n in NAMES if n != "wgan")


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as e:
        get_loss("wgan_gp")
    msg = str(e.value)
    assert "\n" not in msg and "wgan-gp" in msg and "hinge" in msg


@pytest.mark.parametrize("name", NAMES)
def test_matches_numpy_formula(name, logits):
    lr, lf = logits
    cfg = LossConfig(name=name)
    loss = get_loss(name)
    d_ref, g_ref = ref(name, lr, lf)
    d = loss.d_loss(t64(lr), t64(lf), cfg)
    g = loss.g_loss(t64(lf), cfg)
    assert d.dim() == 0 and g.dim() == 0 and d.dtype == torch.float64
    np.testing.assert_allclose(d.item(), d_ref, rtol=1e-6)
    np.testing.assert_allclose(g.item(), g_ref, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_extreme_logits_are_finite(name):
    l = torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4], dtype=torch.float32, requires_grad=True)
    loss = get_loss(name)
    cfg = LossConfig(name=name)
    (loss.d_loss(l, l, cfg) + loss.g_loss(l, cfg)).backward()
    assert torch.isfinite(l.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_batch_one_equals_batch_n(name, logits):
    lr, lf = logits[0][:50], logits[1][:50]
    loss, cfg = get_loss(name), LossConfig(name=name)
    d_n = loss.d_loss(t64(lr), t64(lf), cfg)
    d_1 = torch.stack([loss.d_loss(t64(lr[i : i + 1]), t64(lf[i : i + 1]), cfg) for i in range(50)]).mean()
    g_1 = torch.stack([loss.g_loss(t64(lf[i : i + 1]), cfg) for i in range(50)]).mean()
    torch.testing.assert_close(d_n, d_1)
    torch.testing.assert_close(loss.g_loss(t64(lf), cfg), g_1)


def test_patch_logits_average_over_all_elements(logits):
    lr, lf = logits[0][:64], logits[1][:64]
    for name in NAMES:
        loss, cfg = get_loss(name), LossConfig(name=name)
        d = loss.d_loss(t64(lr).reshape(4, 1, 4, 4), t64(lf).reshape(4, 1, 4, 4), cfg)
        np.testing.assert_allclose(d.item(), ref(name, lr, lf)[0], rtol=1e-6)


def _grad(fn, x):
    x = t64(x).requires_grad_(True)
    fn(x).backward()
    return x.grad.numpy()


def test_saturating_gradient_vanishes_non_saturating_does_not():
    """D confidently rejects the fakes (l << 0): minimax G gets ~0 gradient, NS G gets ~1."""
    l = np.full(8, -20.0)
    n = len(l)
    g_sat = n * _grad(lambda x: get_loss("saturating").g_loss(x, LossConfig()), l)  # per-sample dL/dl
    g_ns = n * _grad(lambda x: get_loss("ns").g_loss(x, LossConfig()), l)
    np.testing.assert_allclose(g_sat, -np_sigmoid(l), rtol=1e-9)  # ~ -2e-9
    np.testing.assert_allclose(g_ns, -np_sigmoid(-l), rtol=1e-9)  # ~ -1
    assert np.all(np.abs(g_sat) < 1e-8) and np.all(np.abs(g_ns + 1) < 1e-8)
    # both push the fake logits up (descent direction -grad > 0): G wants "more real"
    for name in NAMES:
        g = _grad(lambda x: get_loss(name).g_loss(x, LossConfig()), np.array([-3.0, -0.5, 0.0]))
        assert np.all(g < 0), name


@pytest.mark.parametrize("name", ["saturating", "ns", "wgan", "hinge"])
def test_d_pushes_real_up_and_fake_down(name):
    lr = np.linspace(-3, 0.9, 7)
    lf = np.linspace(-0.9, 3, 7)
    loss, cfg = get_loss(name), LossConfig(name=name)
    assert np.all(_grad(lambda x: loss.d_loss(x, t64(lf), cfg), lr) < 0)
    assert np.all(_grad(lambda x: loss.d_loss(t64(lr), x, cfg), lf) > 0)


def test_lsgan_minimum_at_its_codes():
    loss, cfg = get_loss("lsgan"), LossConfig(name="lsgan")
    assert loss.d_loss(torch.ones(5), torch.zeros(5), cfg).item() == 0.0  # a=0, b=1
    assert loss.g_loss(torch.ones(5), cfg).item() == 0.0  # c=1


def test_optimal_discriminator_value_is_js():
    """Goodfellow 2014, Thm 1: V(D*, G) = -log 4 + 2 JS(p_data || p_g), D* = p_data/(p_data+p_g)."""
    rng = np.random.default_rng(1)
    K = 12
    n_data, n_g = rng.integers(1, 40, K), rng.integers(1, 40, K)  # integer counts -> exact weights
    p_data, p_g = n_data / n_data.sum(), n_g / n_g.sum()
    d_star = p_data / (p_data + p_g)
    logit = torch.tensor(np.log(d_star) - np.log1p(-d_star), dtype=torch.float64, requires_grad=True)
    real = logit.repeat_interleave(torch.tensor(n_data))  # samples of p_data, D's logit at each
    fake = logit.repeat_interleave(torch.tensor(n_g))
    d = get_loss("saturating").d_loss(real, fake, LossConfig(name="saturating"))  # = -V(D, G)
    js = jensenshannon(p_data, p_g) ** 2  # scipy returns the JS distance (sqrt), natural log
    np.testing.assert_allclose(-d.item(), -np.log(4) + 2 * js, rtol=1e-10)
    d.backward()  # D* is the minimiser of D's loss: zero gradient in every logit
    np.testing.assert_allclose(logit.grad.numpy(), 0.0, atol=1e-12)
    same = get_loss("ns").d_loss(t64(np.zeros(4)), t64(np.zeros(4)), LossConfig())
    np.testing.assert_allclose(same.item(), np.log(4), rtol=1e-12)  # p_g = p_data: JS = 0


# --------------------------------------------------------------------------- label options


def recover_targets(cfg, lr, lf, seed):
    """Per-sample D targets from the gradient: d/dl [t sp(-l) + (1-t) sp(l)] = sigmoid(l) - t."""
    r, f = t64(lr).requires_grad_(True), t64(lf).requires_grad_(True)
    torch.manual_seed(seed)
    d = get_loss(cfg.name).d_loss(r, f, cfg)
    d.backward()
    t_r = np_sigmoid(lr) - len(lr) * r.grad.numpy()
    t_f = np_sigmoid(lf) - len(lf) * f.grad.numpy()
    return d.item(), t_r, t_f


def np_bce(l, t):
    return np.mean(t * np_softplus(-l) + (1 - t) * np_softplus(l))


@pytest.mark.parametrize("name", ["saturating", "ns", "bce"])
def test_smoothing_targets_uniform_in_intervals(name, logits):
    s = 0.2
    lr, lf = logits
    lr, lf = np.resize(lr, 4000), np.resize(lf, 4000)
    cfg = LossConfig(name=name, smoothing=s)
    d, t_r, t_f = recover_targets(cfg, lr, lf, seed=3)
    assert np.all((t_r >= 1 - s - 1e-9) & (t_r <= 1 + 1e-9))
    assert np.all((t_f >= -1e-9) & (t_f <= s + 1e-9))
    assert stats.kstest((1 - t_r) / s, "uniform").pvalue > 1e-3  # U[1-s, 1]
    assert stats.kstest(t_f / s, "uniform").pvalue > 1e-3  # U[0, s]
    np.testing.assert_allclose(d, np_bce(lr, t_r) + np_bce(lf, t_f), rtol=1e-6)
    # same seed -> same targets; fresh draws on every call
    _, t_r2, _ = recover_targets(cfg, lr, lf, seed=3)
    np.testing.assert_allclose(t_r, t_r2, atol=1e-9)
    torch.manual_seed(3)
    a = get_loss(name).d_loss(t64(lr), t64(lf), cfg)
    b = get_loss(name).d_loss(t64(lr), t64(lf), cfg)
    assert a.item() != b.item()


@pytest.mark.parametrize("name", ["saturating", "ns", "bce"])
def test_generator_targets_never_smoothed(name, logits):
    lf = t64(logits[1])
    plain = get_loss(name).g_loss(lf, LossConfig(name=name))
    for cfg in (LossConfig(name=name, smoothing=0.3), LossConfig(name=name, real_label=0.9), LossConfig(name=name, flip=0.3)):
        state = torch.get_rng_state()
        assert get_loss(name).g_loss(lf, cfg).item() == plain.item()
        assert torch.equal(torch.get_rng_state(), state)  # no random targets drawn for G


def test_one_sided_smoothing(logits):
    lr, lf = logits
    cfg = LossConfig(name="ns", real_label=0.9)
    d, t_r, t_f = recover_targets(cfg, lr, lf, seed=0)
    np.testing.assert_allclose(t_r, 0.9, atol=1e-9)
    np.testing.assert_allclose(t_f, 0.0, atol=1e-9)
    np.testing.assert_allclose(d, np_bce(lr, 0.9) + np.mean(np_softplus(lf)), rtol=1e-6)


def test_flip_statistics():
    n = 20000
    lr, lf = np.zeros(n), np.zeros(n)
    _, t_r, t_f = recover_targets(LossConfig(name="ns", flip=0.0), lr, lf, seed=0)
    np.testing.assert_allclose(t_r, 1.0, atol=1e-9)
    np.testing.assert_allclose(t_f, 0.0, atol=1e-9)
    p = 0.2
    _, t_r, t_f = recover_targets(LossConfig(name="ns", flip=p), lr, lf, seed=0)
    assert np.all(np.isclose(t_r, 0, atol=1e-9) | np.isclose(t_r, 1, atol=1e-9))
    sd = np.sqrt(p * (1 - p) / n)
    assert abs(np.mean(t_r < 0.5) - p) < 5 * sd  # real samples labelled fake
    assert abs(np.mean(t_f > 0.5) - p) < 5 * sd  # fake samples labelled real
    # flip with one-sided smoothing swaps the labels (0.9 <-> 0), it does not mirror them
    _, t_r, t_f = recover_targets(LossConfig(name="ns", flip=p, real_label=0.9), lr, lf, seed=1)
    assert set(np.round(t_r, 9)) == {0.0, 0.9} and set(np.round(t_f, 9)) == {0.0, 0.9}
    # flip with two-sided smoothing: flipped real samples get a fake target in [0, s]
    s = 0.1
    _, t_r, _ = recover_targets(LossConfig(name="ns", flip=p, smoothing=s), lr, lf, seed=2)
    assert np.all((t_r <= s + 1e-9) | (t_r >= 1 - s - 1e-9))
    assert abs(np.mean(t_r < 0.5) - p) < 5 * sd


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("name", ["lsgan", "wgan", "wgan-gp", "hinge"])
@pytest.mark.parametrize("opt", [{"smoothing": 0.1}, {"real_label": 0.9}, {"flip": 0.05}])
def test_label_options_rejected_for_non_bce(name, opt):
    with pytest.raises(ConfigError) as e:
        check_options(LossConfig(name=name, **opt))
    msg = str(e.value)
    assert "\n" not in msg and next(iter(opt)) in msg and "saturating" in msg and "ns" in msg


def test_check_options_accepts_and_rejects():
    for name in NAMES:
        assert check_options(LossConfig(name=name)) is get_loss(name)
    assert check_options(LossConfig(name="ns", smoothing=0.1, flip=0.05)).name == "ns"
    assert check_options(LossConfig(name="bce", real_label=0.9)).name == "bce"
    bad = [
        LossConfig(name="ns", smoothing=0.1, real_label=0.9),
        LossConfig(name="ns", smoothing=0.6),
        LossConfig(name="ns", flip=-0.1),
        LossConfig(name="ns", real_label=0.3),
        LossConfig(name="wgan", clip=0.0),
        LossConfig(name="ns", penalty="gradient"),
        LossConfig(name="hinge", penalty_weight=-1.0),
        LossConfig(name="nope"),
    ]
    for cfg in bad:
        with pytest.raises(ConfigError) as e:
            check_options(cfg)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="r1"):
        check_options(LossConfig(name="ns", penalty="gradient"))  # lists the valid regularizers


def test_penalty_name():
    assert penalty_name(LossConfig(name="wgan-gp")) == "gp"
    assert penalty_name(LossConfig(name="wgan-gp", penalty="dragan")) == "dragan"
    assert penalty_name(LossConfig(name="ns")) is None
    assert penalty_name(LossConfig(name="ns", penalty="r1")) == "r1"


def test_clip_weights_clamps_in_place():
    torch.manual_seed(0)
    d = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LeakyReLU(0.2), torch.nn.Linear(8, 1))
    with torch.no_grad():
        for p in d.parameters():
            p.mul_(10)
    before = [p.detach().clone() for p in d.parameters()]
    ids = [id(p) for p in d.parameters()]
    c = 0.01
    clip_weights_(d, c)
    for p, b, i in zip(d.parameters(), before, ids):
        assert id(p) == i  # same Parameter objects: the optimizer keeps working
        assert p.abs().max() <= c
        torch.testing.assert_close(p.detach(), b.clamp(-c, c))
    with pytest.raises(ValueError):
        clip_weights_(d, 0.0)
