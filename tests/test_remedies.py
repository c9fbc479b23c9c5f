"""Mode-collapse remedies: each formula against an independent float64 reference."""

import numpy as np
import pytest
import torch

from ganforge.config import resolve
from ganforge.errors import ConfigError
from ganforge.nets import build_discriminator
from ganforge.nets.minibatch import MinibatchDiscrimination, MinibatchDiscriminator, MinibatchStdDev
from ganforge.remedies import (HistoricalAverage, Remedies, add_instance_noise, check_remedies, feature_matching,
                               instance_noise_std, pack, packed_shape, pull_away, top_k_count, top_k_logits)



def rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- minibatch layers


def test_minibatch_discrimination_matches_a_double_loop():
    torch.manual_seed(0)
    A, B, C, N = 6, 4, 3, 7
    layer = MinibatchDiscrimination(A, B, C).double()
    f = torch.randn(N, A, dtype=torch.float64)
    got = layer(f).detach().numpy()
    T = layer.T.detach().numpy().reshape(A, B, C)
    M = np.einsum("na,abc->nbc", f.numpy(), T)  # M_i = f_i T
    want = np.zeros((N, B))
    for i in range(N):
        for j in range(N):
            if j != i:  # the self term exp(0) = 1 is left out
                want[i] += np.exp(-np.abs(M[i] - M[j]).sum(-1))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert layer(f[:1]).abs().max() == 0  # batch of one: nothing to compare with


def test_minibatch_discrimination_separates_a_collapsed_batch():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(5, 8, 3)
    same = torch.randn(1, 5).expand(16, 5)
    diverse = 100 * torch.randn(16, 5)
    assert torch.allclose(layer(same), torch.full((16, 8), 15.0))  # every c_b = 1
    assert layer(diverse).mean() < 1.0  # far-apart samples: c_b near 0


def test_minibatch_std_matches_numpy():
    f = rng(1).normal(size=(9, 5)) * np.arange(1, 6)
    got = MinibatchStdDev()(torch.from_numpy(f))
    want = np.sqrt(f.var(0) + 1e-8).mean()  # population variance over the batch
    assert got.shape == (9, 1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("net,shape", [("mlp", (2,)), ("dcgan", (1, 8, 8))])
def test_minibatch_discriminator_wraps_any_d(net, shape):
    cfg = resolve("ring8" if net == "mlp" else "digits-dcgan")
    cfg.model.d.width, cfg.model.d.maxout = 8, 0
    base = build_discriminator(cfg.model.d, shape)
    F = base.features(torch.randn(3, *shape)).shape[1]
    D = MinibatchDiscriminator(base, kernels=4, kernel_dim=2, std=True)
    x = torch.randn(5, *shape)
    f = D.features(x)
    assert f.shape == (5, F + 4 + 1) and D(x).shape == (5,)
    assert torch.allclose(f[:, :F], D.base.features(x))  # the wrapped D's features come first
    assert torch.allclose(D(x), D.head(f).reshape(-1))
    assert MinibatchDiscriminator(build_discriminator(cfg.model.d, shape), outputs=4)(x).shape == (5, 4)


# --------------------------------------------------------------------------- G / D terms


def test_feature_matching_value():
    a, b = rng(2).normal(size=(8, 6)), rng(3).normal(size=(5, 6))
    got = feature_matching(torch.from_numpy(a), torch.from_numpy(b)).item()
    assert got == pytest.approx(((a.mean(0) - b.mean(0)) ** 2).sum(), rel=1e-12)


def test_pull_away_matches_a_double_loop():
    s = rng(4).normal(size=(6, 4))
    got = pull_away(torch.from_numpy(s)).item()
    n, want = len(s), 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                want += (s[i] @ s[j] / (np.linalg.norm(s[i]) * np.linalg.norm(s[j]))) ** 2
    assert got == pytest.approx(want / (n * (n - 1)), rel=1e-12)
    same = torch.ones(4, 3)
    assert pull_away(same).item() == pytest.approx(1.0)  # collapsed batch: maximal


def test_historical_average_is_the_mean_of_past_parameters():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2).double()
    avg = HistoricalAverage(net)
    snaps = []
    for _ in range(4):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        avg.update_(net)
        snaps.append([p.detach().numpy().copy() for p in net.parameters()])
    assert int(avg.count) == 4
    means = [np.mean([s[k] for s in snaps], axis=0) for k in range(2)]
    np.testing.assert_allclose(avg.weight.numpy(), means[0], rtol=1e-12)
    np.testing.assert_allclose(avg.bias.numpy(), means[1], rtol=1e-12)
    want = sum(((p.detach().numpy() - m) ** 2).sum() for p, m in zip(net.parameters(), means))
    assert avg.penalty(net).item() == pytest.approx(want, rel=1e-12)
    assert set(avg.state_dict()) == {"count", "weight", "bias"}  # buffers: in every checkpoint


def test_instance_noise_schedule():
    assert [instance_noise_std(0.2, t, 4) for t in (0, 1, 2, 3, 4, 10)] == pytest.approx([0.2, 0.15, 0.1, 0.05, 0, 0])
    cfg = resolve("ring8", ["remedies.instance_noise=0.5", "train.steps=10"])
    R = Remedies(cfg, "standard")
    assert R.noise_std(5) == pytest.approx(0.25)  # instance_noise_steps=0: anneal over train.steps
    cfg.remedies.instance_noise_steps = 5
    assert Remedies(cfg, "standard").noise_std(4) == pytest.approx(0.1)
    x = torch.zeros(20000, 2)
    torch.manual_seed(1)
    y = add_instance_noise(x, 0.3)
    torch.manual_seed(1)
    assert torch.equal(y, 0.3 * torch.randn(20000, 2))
    assert add_instance_noise(x, 0.0) is x


# --------------------------------------------------------------------------- PacGAN


def test_pack_puts_consecutive_samples_together():
    x = torch.arange(6 * 3 * 2 * 2).reshape(6, 3, 2, 2)  # 6 images of 3 channels
    p = pack(x, 3)
    assert p.shape == (2, 9, 2, 2)
    for i in range(2):
        for j in range(3):
            assert torch.equal(p[i, 3 * j:3 * j + 3], x[3 * i + j])  # sample 3i+j at channels 3j..3j+2
    pts = torch.arange(8 * 2).reshape(8, 2)
    assert torch.equal(pack(pts, 4), torch.cat([pts[0:4].reshape(1, -1), pts[4:8].reshape(1, -1)]))
    assert pack(pts, 1) is pts
    assert packed_shape((3, 8, 8), 2) == (6, 8, 8) and packed_shape((2,), 4) == (8,)
    with pytest.raises(ConfigError, match="multiple of 4"):
        pack(torch.zeros(6, 2), 4)


def test_packed_discriminator_sees_m_samples():
    cfg = resolve("digits-dcgan", ["remedies.pack=4", "train.batch=16"])
    cfg.model.d.width = 8
    D = Remedies(cfg, "standard").discriminator(cfg.model.d, (1, 8, 8))
    assert D.in_shape == (4, 8, 8)
    assert D(pack(torch.randn(16, 1, 8, 8), 4)).shape == (4,)


@pytest.mark.parametrize("override,match", [
    (["remedies.pack=3"], "divisible by remedies.pack=3"),
    (["remedies.pack=0"], "remedies.pack must be at least 1"),
    (["remedies.feature_matching=-1"], "feature_matching must be >= 0"),
    (["remedies.unrolled_lr=-1"], "unrolled_lr must be >= 0"),
    (["remedies.unrolled_optimizer=rmsprop"], "unrolled_optimizer must be adam or sgd"),
    (["remedies.unrolled_steps=2", "optim.d.name=sgd"], "set remedies.unrolled_optimizer=sgd or optim.d.name=adam"),
    (["remedies.unrolled_steps=2", "method=madgan"], "not supported by method 'madgan'"),
    (["remedies.top_k=1.5"], "top_k must lie in"),
    (["remedies.top_k=-0.1"], "top_k must lie in"),
    (["remedies.top_k=0.5", "remedies.top_k_decay=0"], "top_k_decay must lie in"),
    (["remedies.code_balance=0.5", "model.g.categories=0"], "set model.g.name=mlp and model.g.categories"),
    (["remedies.code_balance=-1"], "code_balance must be >= 0"),
    (["remedies.code_balance=0.2", "model.g.categories=8", "remedies.code_balance_start=1"], "code_balance_start must lie in"),
    (["remedies.code_balance=0.5", "model.g.categories=8", "remedies.code_balance_every=0"], "code_balance_every must be at least 1"),
    (["remedies.code_balance=0.5", "model.g.categories=8", "method=madgan"], "not supported by method 'madgan'"),
])
def test_bad_remedy_settings_are_one_line_errors(override, match):
    cfg = resolve("ring8", ["train.batch=16"] + override)
    with pytest.raises(ConfigError, match=match) as e:
        check_remedies(cfg, cfg.method)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- top-k training


@pytest.mark.parametrize("n,nu,gamma", [(100, 0.5, 0.99), (64, 0.75, 0.9), (7, 0.3, 0.5), (50, 1.0, 0.99)])
def test_top_k_count_follows_the_published_schedule(n, nu, gamma):
    """k_t = max(ceil(nu n), round(n gamma^(t/100))) (Sinha et al. 2020), recomputed in float64."""
    ks = [top_k_count(n, nu, gamma, t) for t in range(0, 20_000, 37)]
    for t, k in zip(range(0, 20_000, 37), ks):
        want = max(int(np.ceil(nu * n)), int(np.round(n * np.float64(gamma) ** (t / 100))))
        assert k == min(n, max(1, want))
    assert ks[0] == n  # the whole batch at the start
    assert ks[-1] == int(np.ceil(nu * n))  # the floor at the end
    assert all(a >= b for a, b in zip(ks, ks[1:]))  # never grows
    assert top_k_count(n, 0.0, gamma, 10_000) == n  # nu = 0: off


def test_top_k_logits_are_the_k_largest():
    x = torch.from_numpy(rng(3).normal(size=50))
    for k in (1, 13, 49, 50, 80):
        got = np.sort(top_k_logits(x, k).numpy())
        want = np.sort(x.numpy())[::-1][:min(k, 50)][::-1]
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------- code balancing (learned code prior)


class _LinearLogit(torch.nn.Module):
    """A fixed 'discriminator' with logit w . x (per sample; with packing, summed over the pack)."""

    def __init__(self, w, pack=1):
        super().__init__()
        self.w = torch.tensor(np.tile(w, pack), dtype=torch.float32)

    def forward(self, x):
        return x.flatten(1) @ self.w


def _coded_generator(k, scale, means, b):
    """Depth-0 MLP G with a K-way code: G(c, r) = means[c] + b @ (scale * r), exactly."""
    from ganforge.config import NetConfig
    from ganforge.nets import build_generator

    G = build_generator(NetConfig(name="mlp", depth=0, categories=k, code_scale=scale), 3, (2,))
    with torch.no_grad():
        G.out.weight.copy_(torch.cat([torch.tensor(means, dtype=torch.float32).t(), torch.tensor(b, dtype=torch.float32)], dim=1))
        G.out.bias.zero_()
    return G


@pytest.mark.parametrize("pack_m", [1, 2])
def test_code_balance_step_matches_the_formula(pack_m):
    """log pi <- log_softmax(log pi + eta log r_c), r_c = mean_j exp(logit D(G(c, z_j))), in float64 NumPy
    on the same latents; with packing the companions' constant cancels."""
    from ganforge.remedies import code_balance_

    k, m, eta, scale = 4, 50, 0.7, 0.3
    r = rng(5)
    means, b, w = r.normal(size=(k, 2)), r.normal(size=(2, 2)), np.array([0.8, -0.5])
    G = _coded_generator(k, scale, means, b)
    G.code.log_weights.copy_(torch.tensor(np.log([0.1, 0.2, 0.3, 0.4]), dtype=torch.float32))
    D = _LinearLogit(w, pack_m)
    pi = code_balance_(G, D, eta, samples=m, pack=pack_m, generator=torch.Generator().manual_seed(9))
    rest = torch.randn(k * m, 2, generator=torch.Generator().manual_seed(9)).double().numpy()  # the same draws
    x = np.repeat(means, m, axis=0) + scale * rest @ b.T  # [K*m, 2]
    d = (x @ w).reshape(k, m)
    log_r = np.log(np.exp(d).mean(axis=1))
    logit = np.log([0.1, 0.2, 0.3, 0.4]) + eta * log_r
    want = np.exp(logit - logit.max()) / np.exp(logit - logit.max()).sum()
    np.testing.assert_allclose(pi.double().numpy(), want, rtol=1e-4)
    np.testing.assert_allclose(G.code.log_weights.exp().double().numpy(), want, rtol=1e-4)


def test_code_balance_moves_mass_to_the_codes_d_prefers_and_sampling_follows_the_prior():
    from scipy import stats

    from ganforge.remedies import code_balance_

    k = 5
    G = _coded_generator(k, 1.0, np.stack([np.arange(k), np.zeros(k)], 1).astype(float), np.zeros((2, 2)))  # b = 0: no spread
    D = _LinearLogit(np.array([-1.0, 0.0]))  # logit -x: code c has log r_c = -c exactly
    for _ in range(3):
        pi = code_balance_(G, D, 0.5, samples=4).double().numpy()
    want = np.exp(-1.5 * np.arange(k)) / np.exp(-1.5 * np.arange(k)).sum()  # three steps of eta 0.5
    np.testing.assert_allclose(pi, want, rtol=1e-5)
    # sampling: z_0 -> code through the learned prior's CDF
    z = torch.randn(40_000, 3, generator=torch.Generator().manual_seed(2))
    counts = np.bincount(G.code.codes(z).numpy(), minlength=k)
    assert stats.chisquare(counts, 40_000 * want).pvalue > 1e-3


def test_code_balance_trains_logs_and_resumes_exactly(tmp_path):
    import ganforge

    ov = ["model.g.categories=8", "model.z_dim=3", "model.g.code_scale=0.1", "remedies.code_balance=0.5",
          "remedies.code_balance_every=5", "remedies.code_balance_samples=8", "remedies.code_balance_start=0", "train.batch=32", "model.g.width=32",
          "model.d.width=16", "train.log_every=5", "train.progress=false", "train.monitor=false",
          "train.sample_every=0", "train.threads=1", "train.checkpoint_every=0",
          "optim.g.schedule=constant", "optim.d.schedule=constant"]  # (cosine's horizon is train.steps)
    full = ganforge.train("grid25", out=tmp_path / "full", overrides=ov + ["train.steps=20"])
    lw = full.generator.code.log_weights
    assert not torch.allclose(lw, torch.zeros(8))  # the prior moved
    rows = [r for r in full.metrics() if "remedy/code_perplexity" in r]
    assert len(rows) == 4 and all(1.0 <= r["remedy/code_perplexity"] <= 8.0 + 1e-4 for r in rows)
    ganforge.train("grid25", out=tmp_path / "half", overrides=ov + ["train.steps=10"])
    resumed = ganforge.train("grid25", out=tmp_path / "half", overrides=ov + ["train.steps=20"], resume=True)
    assert torch.equal(resumed.generator.code.log_weights, lw)
    loaded = ganforge.load(tmp_path / "full")  # exported weights carry the prior
    assert torch.equal(loaded.generator.code.log_weights, lw)


def test_code_balance_starts_after_its_fraction_of_training():
    from types import SimpleNamespace

    from ganforge.remedies import code_balance_due

    r = SimpleNamespace(code_balance=0.2, code_balance_start=0.25, code_balance_every=10)
    assert [t for t in range(100) if code_balance_due(r, t, 100)] == [29, 39, 49, 59, 69, 79, 89, 99]
    assert not any(code_balance_due(SimpleNamespace(code_balance=0.0, code_balance_start=0.0, code_balance_every=1), t, 10)
                   for t in range(10))
