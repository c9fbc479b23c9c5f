"""D-guided sampling (ganforge.sampling) on analytic G and D whose target distribution is known.

With G(z) = a z + b (z ~ N(0, 1), so p_g = N(b, a^2)) and D's logit set to the exact
log p_d(x) - log p_g(x), both refiners must produce samples from p_d, which the tests check
against float64 NumPy/SciPy: moments, a Kolmogorov-Smirnov test, the acceptance rate of
rejection sampling (1 / max p_d/p_g), and the exact stationary variance of the unadjusted
Langevin chain; MH-GAN's chains against the acceptance rate of an independence sampler at
stationarity (a float64 NumPy Monte Carlo estimate).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import ganforge
from ganforge.config import resolve
from ganforge.errors import ConfigError
from ganforge.sampling import drs, langevin, load_discriminator, log_density_ratio, mh, refine, refine_run


class AffineG(nn.Module):
    """x = a z + b: p_g = N(b, a^2) per coordinate."""

    def __init__(self, a: float, b: float, dim: int = 1):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.b = nn.Parameter(torch.tensor(b))
        self.dim = dim

    def forward(self, z):
        return self.a * z + self.b


def log_normal(x, mu, sd):
    return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)


class RatioD(nn.Module):
    """The optimal logit log p_d(x) - log p_g(x) for p_d a (diagonal) Gaussian mixture, p_g = N(b, a^2)."""

    def __init__(self, a, b, means, sd, weights=None):
        super().__init__()
        self.a, self.b, self.means, self.sd = a, b, means, sd
        self.w = weights or [1.0 / len(means)] * len(means)

    def log_pd(self, x):  # x [N, d]
        terms = [math.log(w) + log_normal(x, torch.as_tensor(m, dtype=x.dtype), self.sd).sum(1) for w, m in zip(self.w, self.means)]
        return torch.logsumexp(torch.stack(terms), 0)

    def forward(self, x):
        return self.log_pd(x) - log_normal(x, self.b, self.a).sum(1)


def test_drs_draws_from_the_data_distribution_1d():
    a, b, mu, sd = 1.0, 0.0, 0.5, 0.5
    x, info = refine(AffineG(a, b), RatioD(a, b, [[mu]], sd), 20_000, "drs", z_dim=1, seed=1)
    x = x[:, 0].double().numpy()
    assert x.shape == (20_000,)
    assert abs(x.mean() - mu) < 4 * sd / math.sqrt(len(x))
    assert abs(x.std() - sd) < 0.02
    assert stats.kstest(x, stats.norm(mu, sd).cdf).pvalue > 1e-3
    # acceptance = 1 / sup p_d/p_g; sup at x* = mu / (1 - sd^2) (float64 formula)
    xs = mu / (1 - sd**2)
    m = math.exp(log_normal(xs, mu, sd) - log_normal(xs, 0.0, 1.0))
    assert info["accept"] == pytest.approx(1 / m, rel=0.05)
    # and the plain generator is far from it: the refinement did the work
    assert stats.kstest(np.random.default_rng(0).normal(b, a, 5000), stats.norm(mu, sd).cdf).pvalue < 1e-6


def test_drs_reweights_a_2d_generator_onto_a_mixture():
    """p_g = N(0, 1.5^2 I) in 2D, p_d = 0.25 N((-1,0), 0.3^2) + 0.75 N((1,1), 0.3^2):
    the refined samples' mode weights and per-mode moments match the mixture."""
    means, w = [[-1.0, 0.0], [1.0, 1.0]], [0.25, 0.75]
    G, D = AffineG(1.5, 0.0), RatioD(1.5, 0.0, means, 0.3, w)
    x, info = drs(G, D, 8000, 2, seed=3, burn_in=50_000)
    x = x.double().numpy()
    near = np.argmin(((x[:, None, :] - np.array(means)[None]) ** 2).sum(-1), 1)
    frac = np.bincount(near, minlength=2) / len(x)
    assert abs(frac[1] - 0.75) < 4 * math.sqrt(0.75 * 0.25 / len(x))
    for k in range(2):
        xk = x[near == k]
        np.testing.assert_allclose(xk.mean(0), means[k], atol=0.03)
        np.testing.assert_allclose(xk.std(0), [0.3, 0.3], atol=0.03)
    assert 0 < info["accept"] < 1 and info["draws"] >= 8000


def test_drs_gamma_softens_the_correction():
    """gamma < 0 accepts more samples and moves them less far from p_g (sigmoid(F) > exp(d - d*))."""
    a, b, mu, sd = 1.0, 0.0, 1.0, 0.5
    G, D = AffineG(a, b), RatioD(a, b, [[mu]], sd)
    x0, i0 = drs(G, D, 5000, 1, seed=0)
    x1, i1 = drs(G, D, 5000, 1, seed=0, gamma=-3.0)
    assert i1["accept"] > i0["accept"]
    assert abs(float(x1.mean()) - mu) > abs(float(x0.mean()) - mu) + 0.05


def test_langevin_reaches_the_exact_stationary_law():
    """G(z) = z, d = log N(x; mu, s^2) - log N(x; 0, 1): E(z) = (z - mu)^2 / (2 s^2) + const.
    The unadjusted chain z' = z - (h/2) lam (z - mu) + sqrt(h) xi (lam = 1/s^2) has the exact
    stationary law N(mu, 1 / (lam (1 - h lam / 4)))."""
    mu, sd, h = 0.7, 0.5, 0.02
    lam = 1 / sd**2
    x, info = langevin(AffineG(1.0, 0.0), RatioD(1.0, 0.0, [[mu]], sd), 20_000, 1, steps=400, step_size=h, batch=20_000, seed=2)
    x = x[:, 0].double().numpy()
    var = 1 / (lam * (1 - h * lam / 4))
    assert abs(x.mean() - mu) < 4 * math.sqrt(var / len(x))
    assert abs(x.var() - var) < 4 * var * math.sqrt(2 / len(x))
    assert stats.kstest(x, stats.norm(mu, math.sqrt(var)).cdf).pvalue > 1e-3
    assert info["steps"] == 400 and info["mean_dz"] > 0


def test_mh_chains_converge_to_the_data_distribution_1d():
    """p_g = N(0, 1), p_d = N(0.5, 0.5^2), chains started at *wrong* "real" points (N(-2, 0.1^2)):
    after 640 proposals the final states follow p_d (the kernel's stationary law, not the start),
    and the acceptance rate is that of the independence sampler at stationarity,
    E_{x ~ p_d, x' ~ p_g} min(1, w(x') / w(x)), w = p_d / p_g (float64 Monte Carlo)."""
    a, b, mu, sd = 1.0, 0.0, 0.5, 0.5
    start = torch.from_numpy(np.random.default_rng(0).normal(-2.0, 0.1, (500, 1))).float()
    x, info = mh(AffineG(a, b), RatioD(a, b, [[mu]], sd), 8000, 1, real=start, seed=1, batch=4000)
    x = x[:, 0].double().numpy()
    assert abs(x.mean() - mu) < 4 * sd / math.sqrt(len(x))
    assert abs(x.std() - sd) < 0.02
    assert stats.kstest(x, stats.norm(mu, sd).cdf).pvalue > 1e-3
    rng = np.random.default_rng(1)
    xd, xg = rng.normal(mu, sd, 1_000_000), rng.normal(b, a, 1_000_000)
    logw = lambda v: log_normal(v, mu, sd) - log_normal(v, b, a)  # noqa: E731
    ref = np.minimum(1.0, np.exp(logw(xg) - logw(xd))).mean()
    assert info["accept"] == pytest.approx(ref, rel=0.03)
    assert info["restarted"] == 0.0 and info["chain_length"] == 640


def test_mh_reweights_a_2d_generator_onto_a_mixture():
    """The DRS mixture case (weights 0.25 / 0.75) through MH chains started at the mixture itself."""
    means, w = [[-1.0, 0.0], [1.0, 1.0]], [0.25, 0.75]
    rng = np.random.default_rng(2)
    comp = rng.choice(2, 4000, p=w)
    real = torch.from_numpy(np.array(means)[comp] + 0.3 * rng.standard_normal((4000, 2))).float()
    x, info = refine(AffineG(1.5, 0.0), RatioD(1.5, 0.0, means, 0.3, w), 6000, "mh", z_dim=2, real=real, seed=3,
                     chain_length=300)
    x = x.double().numpy()
    near = np.argmin(((x[:, None, :] - np.array(means)[None]) ** 2).sum(-1), 1)
    assert abs(np.mean(near == 1) - 0.75) < 4 * math.sqrt(0.75 * 0.25 / len(x))
    for k in range(2):
        np.testing.assert_allclose(x[near == k].std(0), [0.3, 0.3], atol=0.03)
    assert 0 < info["accept"] < 1 and info["method"] == "mh"


def test_mh_never_returns_a_real_sample():
    """A D that scores the real starts far above every generator sample makes every proposal fail
    (acceptance exp(-100)): each chain is rerun from a generator sample, so the output is G's."""

    class Far(nn.Module):
        def forward(self, x):
            return 10.0 * x[:, 0]

    real = torch.full((50, 1), 10.0)
    x, info = mh(AffineG(1.0, 0.0), Far(), 200, 1, real=real, chain_length=5, seed=0)
    assert info["restarted"] == 1.0 and x.abs().max() < 6.0
    assert not torch.isin(x, real).any()


def test_langevin_through_a_nonlinear_generator_matches_drs():
    """A non-identity G (x = 2 z - 1): both refiners target the same p_d."""
    G, D = AffineG(2.0, -1.0), RatioD(2.0, -1.0, [[0.5]], 0.4)
    xl, _ = langevin(G, D, 10_000, 1, steps=300, step_size=0.005, batch=10_000, seed=5)
    xd, _ = drs(G, D, 10_000, 1, seed=5)
    for x in (xl, xd):
        assert abs(float(x.mean()) - 0.5) < 0.02 and abs(float(x.std()) - 0.4) < 0.02


def test_log_density_ratio_of_a_packed_d_is_the_per_sample_logit():
    """A packed D scoring sum_i d(x_i) is read back as d(x) by packing x with itself."""

    class PackedSum(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m, self.inner = m, RatioD(1.0, 0.0, [[0.3, -0.2]], 0.5)

        def forward(self, x):  # [N, m*2]
            return sum(self.inner(x[:, 2 * j:2 * j + 2]) for j in range(self.m))

    x = torch.randn(9, 2, dtype=torch.float64)
    for m in (1, 2, 4):
        torch.testing.assert_close(log_density_ratio(PackedSum(m), x, m), PackedSum(1)(x))
        if m > 1:  # fixed companions: d(x) + the mean over sets of sum_j d(c_j), a constant in x
            comp = torch.randn(5, m - 1, 2, dtype=torch.float64)
            const = np.mean([sum(float(PackedSum(1)(c[j:j + 1])) for j in range(m - 1)) for c in comp])
            torch.testing.assert_close(log_density_ratio(PackedSum(m), x, m, comp), PackedSum(1)(x) + const)
            with pytest.raises(ConfigError, match="companion sets of"):
                log_density_ratio(PackedSum(m), x, m, comp[:, :0])


def test_refine_is_seeded_and_restores_modes():
    G, D = AffineG(1.0, 0.0), RatioD(1.0, 0.0, [[0.2]], 0.7)
    G.train()
    a, _ = refine(G, D, 500, "drs", z_dim=1, seed=4)
    b, _ = refine(G, D, 500, "drs", z_dim=1, seed=4)
    assert torch.equal(a, b) and G.training and D.training


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "mcmc"}, "unknown refinement 'mcmc'; valid: drs, langevin, mh"),
    ({"method": "mh"}, "MH-GAN needs the real data: pass real="),
    ({"method": "mh", "chain_length": 0, "real": torch.zeros(3, 1)}, "chain_length >= 1"),
    ({"method": "drs", "n": 0}, "n >= 1"),
    ({"method": "langevin", "step_size": 0.0}, "step_size > 0"),
    ({"method": "drs", "gamma": 50.0, "max_draws": 2000}, "rejection sampling accepted"),
])
def test_bad_refinement_settings_are_one_line_errors(kwargs, match):
    G, D = AffineG(1.0, 0.0), RatioD(1.0, 0.0, [[0.2]], 0.7)
    kw = {"n": 100, **kwargs}
    with pytest.raises(ConfigError, match=match) as e:
        refine(G, D, kw.pop("n"), kw.pop("method"), z_dim=1, **kw)
    assert "\n" not in str(e.value)


def test_refine_a_trained_run_and_the_cli(tmp_path, capsys):
    """End to end: a tiny packed ring8 run; D reloads from the checkpoint with the trained
    weights; both refiners and `ganforge sample --refine` produce finite points."""
    from ganforge.cli import main

    cfg = resolve("ring8", ["train.steps=5", "train.batch=16", "train.progress=false", "train.sample_every=0",
                            "train.checkpoint_every=0", "train.threads=1", "train.monitor=false", "remedies.pack=2",
                            "model.g.width=16", "model.d.width=16"])
    run = ganforge.train(cfg, out=tmp_path / "r")
    D, pack = load_discriminator(run.run_dir)
    assert pack == 2
    ckpt = torch.load(run.run_dir / "checkpoints" / "last.pt", weights_only=True)
    for k, v in D.state_dict().items():
        assert torch.equal(v, ckpt["modules"]["d"][k])
    for method, opts in (("drs", {}), ("langevin", {"steps": 3}), ("mh", {"chain_length": 4})):
        x, info = refine_run(run, 64, method, seed=0, **opts)
        assert x.shape == (64, 2) and torch.isfinite(x).all() and info["method"] == method
    out = tmp_path / "s.npy"
    assert main(["sample", str(run.run_dir), "--n", "32", "--out", str(out), "--refine", "drs"]) == 0
    assert np.load(out).shape == (32, 2)
    assert "drs" in capsys.readouterr().out
    assert main(["sample", str(run.run_dir), "--n", "8", "--out", str(out), "--refine", "langevin", "--langevin-steps", "2"]) == 0
    assert main(["sample", str(run.run_dir), "--n", "8", "--out", str(out), "--refine", "mh", "--mh-chain", "3"]) == 0
    assert "chain_length 3" in capsys.readouterr().out
    assert main(["sample", str(run.run_dir), "--n", "8", "--out", str(out), "--refine", "bogus"]) == 2
    # calibrated on the run's own training data (reloaded from its config)
    x, info = refine_run(run, 64, "drs", seed=0, calibrate=5)
    assert x.shape == (64, 2) and info["calibrate_steps"] == 5 and math.isfinite(info["calibrate_loss"])
    assert main(["sample", str(run.run_dir), "--n", "8", "--out", str(out), "--refine", "drs", "--calibrate", "5"]) == 0
    assert "calibrate_steps 5" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["drs", "langevin", "mh"])
def test_a_packed_discriminator_gives_the_same_target(method):
    """PacGAN D with m = 3 scoring sum_i d(x_i): refinement through fixed fake companions
    still targets p_d = N(0.5, 0.5^2)."""
    inner = RatioD(1.0, 0.0, [[0.5]], 0.5)

    class Packed(nn.Module):
        def forward(self, x):  # [N, 3]
            return sum(inner(x[:, j:j + 1]) for j in range(3))

    opts = {"langevin": {"steps": 300, "step_size": 0.01, "batch": 10_000}, "mh": {"chain_length": 200, "batch": 10_000}}.get(method, {})
    real = _gauss(1000, 0.5, 0.5, 0) if method == "mh" else None
    x, _ = refine(AffineG(1.0, 0.0), Packed(), 10_000, method, z_dim=1, pack=3, seed=7, real=real, **opts)
    x = x[:, 0].double().numpy()
    assert abs(x.mean() - 0.5) < 0.02 and abs(x.std() - 0.5) < 0.02


def _mlp(inputs: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(inputs, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))


def _gauss(n, mu, sd, seed):
    return torch.from_numpy(np.random.default_rng(seed).normal(mu, sd, (n, 1))).float()


def test_calibration_learns_the_log_density_ratio():
    """Fine-tuning an untrained D on the frozen G (p_g = N(0, 1)) against p_d = N(0.5, 0.5^2)
    with BCE brings its logit to log p_d(x) - log p_g(x) (float64 formula) where both have
    mass, and DRS through it then samples p_d; the D passed in is left untouched."""
    from ganforge.sampling import calibrate_discriminator

    mu, sd = 0.5, 0.5
    D = _mlp(1)
    before = {k: v.clone() for k, v in D.state_dict().items()}
    Dc, info = calibrate_discriminator(AffineG(1.0, 0.0), D, _gauss(50_000, mu, sd, 0), 1, steps=1500,
                                       batch=512, lr=2e-3, seed=0)
    assert all(torch.equal(v, before[k]) for k, v in D.state_dict().items()) and not Dc.training
    xs = np.linspace(-0.5, 1.5, 41)
    exact = np.array([log_normal(x, mu, sd) - log_normal(x, 0.0, 1.0) for x in xs])
    with torch.no_grad():
        got = Dc(torch.tensor(xs, dtype=torch.float32)[:, None]).reshape(-1).double().numpy()
    err = np.abs(got - exact)
    assert err.mean() < 0.1 and err.max() < 0.35, (err.mean(), err.max())
    # the converged BCE is the optimal value 2 log 2 - 2 JS(p_d, p_g) < log 4, not the chance value
    assert info["calibrate_steps"] == 1500 and 0.5 < info["calibrate_loss"] < 2 * math.log(2) - 0.05
    x, _ = drs(AffineG(1.0, 0.0), Dc, 20_000, 1, seed=1)
    x = x[:, 0].double().numpy()
    assert abs(x.mean() - mu) < 0.05 and abs(x.std() - sd) < 0.05  # G alone: mean 0, std 1


def test_calibration_repairs_a_miscalibrated_discriminator():
    """A D whose logit is 4x the log ratio (overconfident, like a hinge critic) makes DRS
    over-sharpen p_d; refine(calibrate=...) fine-tunes it back and the samples match p_d."""
    mu, sd = 0.5, 0.5

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _mlp(1)
            self.scale = 4.0

        def forward(self, x):
            return self.scale * self.net(x)

    D = Scaled()
    # pre-train the inner net to the exact ratio, so D = 4 x ratio
    ratio = RatioD(1.0, 0.0, [[mu]], sd)
    opt = torch.optim.Adam(D.net.parameters(), lr=3e-3)
    for _ in range(400):
        x = torch.randn(512, 1) * 1.5 + 0.25
        loss = (D.net(x).reshape(-1) - ratio(x)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    G = AffineG(1.0, 0.0)
    x0, _ = refine(G, D, 10_000, "drs", z_dim=1, seed=2)
    assert float(x0.std()) < 0.8 * sd  # over-sharpened: the uncalibrated D is wrong
    x1, info = refine(G, D, 10_000, "drs", z_dim=1, seed=2, calibrate=800, real=_gauss(50_000, mu, sd, 1))
    assert abs(float(x1.mean()) - mu) < 0.04 and abs(float(x1.std()) - sd) < 0.04
    assert info["calibrate_steps"] == 800 and D.scale == 4.0


def test_calibration_of_a_packed_discriminator():
    """PacGAN m = 2: D is calibrated on packs of real / fake pairs and read back per sample."""
    mu, sd = 0.5, 0.5
    x, info = refine(AffineG(1.0, 0.0), _mlp(2), 10_000, "drs", z_dim=1, pack=2, seed=3, calibrate=1500,
                     real=_gauss(50_000, mu, sd, 2))
    x = x[:, 0].double().numpy()
    assert abs(x.mean() - mu) < 0.05 and abs(x.std() - sd) < 0.05


@pytest.mark.parametrize("kwargs,match", [
    ({"calibrate": -1}, "calibration steps must be >= 0"),
    ({"calibrate": 10}, "needs the real data"),
])
def test_bad_calibration_settings_are_one_line_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        refine(AffineG(1.0, 0.0), _mlp(1), 10, "drs", z_dim=1, **kwargs)


def test_scalar_logit_of_a_madgan_discriminator():
    """k + 1 logits (G_1..G_k, real) with the optimal values log p_{g_i}, log p_d: the scalar
    logit is log p_d - log((1/k) sum_i p_{g_i}) (float64 NumPy), and DRS through it samples p_d."""
    from ganforge.sampling import scalar_logit

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4))  # k = 3 generators + real
    want = logits[:, -1] - np.log(np.exp(logits[:, :-1]).mean(1))
    np.testing.assert_allclose(scalar_logit(torch.from_numpy(logits)).numpy(), want, rtol=1e-12, atol=1e-12)
    assert scalar_logit(torch.from_numpy(logits[:, :1])).shape == (50,)  # one output: as is

    mu, sd = 0.5, 0.5

    class MadD(nn.Module):  # two generators that both draw N(0, 1): the mixture is N(0, 1)
        def forward(self, x):
            lg = log_normal(x[:, 0], 0.0, 1.0)
            return torch.stack([lg, lg, log_normal(x[:, 0], mu, sd)], 1)

    x, _ = refine(AffineG(1.0, 0.0), MadD(), 10_000, "drs", z_dim=1, seed=6)
    assert abs(float(x.mean()) - mu) < 0.03 and abs(float(x.std()) - sd) < 0.03


def test_refine_a_madgan_run(tmp_path):
    """A MAD-GAN run's (k+1)-way D drives every refiner and calibration (was a shape error)."""
    cfg = resolve("ring8", ["method=madgan", "remedies.generators=3", "remedies.code_balance=0", "model.g.categories=0",
                            "train.steps=4", "train.batch=16", "train.progress=false", "train.sample_every=0",
                            "train.threads=1", "train.monitor=false", "model.g.width=16", "model.d.width=16"])
    run = ganforge.train(cfg, out=tmp_path / "m")
    for method, opts in (("drs", {}), ("drs", {"calibrate": 3}), ("langevin", {"steps": 2}), ("mh", {"chain_length": 3})):
        x, info = refine_run(run, 32, method, seed=0, **opts)
        assert x.shape == (32, 2) and torch.isfinite(x).all()
