"""Metric numerics against independent float64 references (SciPy, brute-force loops, closed forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.distance import cdist, pdist

from ganforge.errors import ConfigError, GanforgeError
from ganforge.metrics import (
    FID, KID, METRICS, PRDC, Diversity, GaussianStats, InceptionScore, ModeCounter, count_classes, count_modes_2d,
    density_coverage, diversity, fid, frechet_distance, gaussian_statistics, inception_score, kid, knn_radii,
    mode_score, precision_recall, stacked_labels,
)



def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


# ----------------------------------------------------------------------------- FID


def sqrtm_fid(mu1, s1, mu2, s2) -> float:
    """pytorch-fid / torch-fidelity formula (scipy sqrtm of S1 S2, real part)."""
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def random_spd(rng, d, cond=10.0):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    w = np.exp(rng.uniform(0, math.log(cond), d))
    return (q * w) @ q.T


@pytest.mark.parametrize("d", [2, 16, 64])
def test_frechet_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    for _ in range(3):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = random_spd(rng, d), random_spd(rng, d)
        assert rel(frechet_distance(mu1, s1, mu2, s2), sqrtm_fid(mu1, s1, mu2, s2)) < 1e-6


def test_frechet_closed_form_commuting_covariances():
    # S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute: tr sqrt(S1 S2) = sum sqrt(a b)
    rng = np.random.default_rng(1)
    d = 32
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    exact = np.sum((mu1 - mu2) ** 2) + np.sum(a) + np.sum(b) - 2 * np.sum(np.sqrt(a * b))
    assert rel(frechet_distance(mu1, (q * a) @ q.T, mu2, (q * b) @ q.T), exact) < 1e-9
    # diagonal: the 1D formula (mu1 - mu2)^2 + (sqrt a - sqrt b)^2 summed
    exact_diag = np.sum((mu1 - mu2) ** 2 + (np.sqrt(a) - np.sqrt(b)) ** 2)
    assert rel(frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), exact_diag) < 1e-9


def test_fid_of_features_and_stats_float64():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 8)) @ rng.standard_normal((8, 8)) + 3.0
    y = rng.standard_normal((400, 8)) * 1.5
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    got_mu, got_s = gaussian_statistics(torch.from_numpy(x).float())
    assert got_mu.dtype == np.float64 and got_s.dtype == np.float64
    np.testing.assert_allclose(got_mu, x.astype(np.float32).astype(np.float64).mean(0), rtol=1e-12)
    assert rel(fid(x, y), sqrtm_fid(mu1, s1, mu2, s2)) < 1e-6


def test_fid_real_vs_real_near_zero():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((20000, 4))
    b = rng.standard_normal((20000, 4))
    assert fid(a, a) < 1e-10
    assert fid(a, b) < 0.01  # sampling noise only; tr(S) = 4


def test_fid_singular_covariance_is_finite_and_exact():
    # n < d: rank-deficient covariances; reference: tr sqrt(S1 S2) = nuclear norm of Xc1 Xc2^T / sqrt((n1-1)(n2-1))
    rng = np.random.default_rng(4)
    d, n1, n2 = 64, 20, 30
    x, y = rng.standard_normal((n1, d)), rng.standard_normal((n2, d)) + 0.5
    xc, yc = x - x.mean(0), y - y.mean(0)
    tr_sqrt = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / math.sqrt((n1 - 1) * (n2 - 1))
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    exact = np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    got = fid(x, y)
    assert np.isfinite(got) and isinstance(got, float)
    assert rel(got, exact) < 1e-8
    # constant features (zero rows/columns) and identical statistics
    z = np.concatenate([x, np.ones((n1, 3))], axis=1)
    assert np.isfinite(fid(z, z)) and fid(z, z) < 1e-8
    # exactly singular S_1 (zero-variance columns): Cholesky fails, the eigh factor is used
    x2, y2 = rng.standard_normal((200, 6)), rng.standard_normal((150, 6)) * 2
    zx = np.concatenate([x2, np.ones((200, 2))], axis=1)
    zy = np.concatenate([y2, np.ones((150, 2))], axis=1)
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(np.cov(zx, rowvar=False))
    assert rel(fid(zx, zy), fid(x2, y2)) < 1e-9


def test_fid_ill_conditioned_no_nan():
    rng = np.random.default_rng(5)
    d = 50
    s1 = random_spd(rng, d, cond=1e14)
    s2 = random_spd(rng, d, cond=1e14)
    s1[0, 1] += 1e-13  # slightly asymmetric
    v = frechet_distance(np.zeros(d), s1, np.zeros(d), s2)
    assert np.isfinite(v) and v >= 0


def test_fid_stateful_equals_pure_and_stable_merge():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1000, 5)) * 0.01 + 1e4  # large mean, small spread
    y = rng.standard_normal((800, 5)) * 0.01 + 1e4
    m = FID()
    for chunk in np.array_split(x, 7):
        m.update(torch.from_numpy(chunk), real=True)
    for chunk in np.array_split(y, 3):
        m.update(chunk, real=False)
    assert rel(m.compute(), fid(x, y)) < 1e-6  # FID ~2e-6 here: trace terms cancel
    acc = GaussianStats()
    for chunk in np.array_split(x, 9):
        acc.update(chunk)
    np.testing.assert_allclose(acc.compute()[1], np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)  # var ~1e-4
    m.reset()
    with pytest.raises(GanforgeError):
        m.compute()


def test_fid_rejects_nan():
    with pytest.raises(GanforgeError):
        frechet_distance(np.zeros(2), np.eye(2), np.array([np.nan, 0]), np.eye(2))


# ----------------------------------------------------------------------------- KID


def brute_mmd2(x, y):
    m, d = len(x), x.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2 * sxy / (m * m)


def test_kid_matches_brute_force_mmd():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((15, 4)), rng.standard_normal((15, 4)) + 0.3
    mean, std = kid(x, y, subsets=1, subset_size=15)  # full sets: permutation-invariant
    assert rel(mean, brute_mmd2(x, y)) < 1e-10 and std == 0.0
    # several subsets, reproducing the documented draw (x then y per subset, default_rng(seed))
    xs, ys = rng.standard_normal((30, 3)), rng.standard_normal((25, 3)) * 1.2
    mean, std = kid(xs, ys, subsets=4, subset_size=10, seed=3)
    r = np.random.default_rng(3)
    vals = []
    for _ in range(4):
        ix, iy = r.choice(30, 10, replace=False), r.choice(25, 10, replace=False)
        vals.append(brute_mmd2(xs[ix], ys[iy]))
    assert rel(mean, np.mean(vals)) < 1e-10 and rel(std, np.std(vals)) < 1e-8


def test_kid_same_distribution_near_zero_and_stateful():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((600, 6)), rng.standard_normal((600, 6))
    mean, std = kid(x, y, subsets=20, subset_size=300)
    assert abs(mean) < 3 * std + 1e-3
    far, _ = kid(x, y + 2.0, subsets=20, subset_size=300)
    assert far > 10 * abs(mean)
    m = KID(subsets=20, subset_size=300)
    m.update(torch.from_numpy(x[:300]), real=True)
    m.update(torch.from_numpy(x[300:]), real=True)
    m.update(y, real=False)
    assert m.compute() == (mean, std)
    with pytest.raises(GanforgeError, match="subset size"):
        kid(x[:10], y, subset_size=100)


# ----------------------------------------------------------------------------- IS / MODE


def direct_is(p, splits):
    n = len(p)
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        py = part.mean(0)
        kl = [sum(pc * math.log(pc / qc) for pc, qc in zip(row, py) if pc > 0) for row in part]
        scores.append(math.exp(np.mean(kl)))
    return np.mean(scores), np.std(scores)


def test_inception_score_matches_direct_formula():
    rng = np.random.default_rng(9)
    p = rng.dirichlet(np.full(10, 0.3), size=203)
    p[0] = np.eye(10)[3]  # exact zeros: 0 log 0 = 0
    got = inception_score(torch.from_numpy(p), splits=10)
    ref = direct_is(p, 10)
    assert rel(got[0], ref[0]) < 1e-10 and rel(got[1], ref[1]) < 1e-8
    # perfect, uniformly spread one-hot predictions: IS = number of classes
    onehot = np.eye(10)[np.arange(1000) % 10]
    assert abs(inception_score(onehot, splits=1)[0] - 10) < 1e-9
    s = InceptionScore(splits=10)
    for part in np.array_split(p, 4):
        s.update(part)
    assert s.compute() == got


def test_mode_score_matches_direct_formula():
    rng = np.random.default_rng(10)
    p = rng.dirichlet(np.full(5, 0.5), size=300)
    p_star = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
    marginal = p.mean(0)
    direct = math.exp(
        np.mean([np.sum(row * np.log(row / p_star)) for row in p]) - np.sum(marginal * np.log(marginal / p_star))
    )
    mean, std = mode_score(p, p_star, splits=1)
    assert rel(mean, direct) < 1e-10 and std == 0.0
    # with p* equal to the generated marginal it is the Inception Score
    assert rel(mode_score(p, marginal, splits=1)[0], inception_score(p, splits=1)[0]) < 1e-10
    # collapsed onto one class: IS ~ 1 and MODE well below IS of a matching distribution
    collapsed = np.tile(np.eye(5)[0], (100, 1)) * 0.999 + 0.0002
    assert mode_score(collapsed, p_star, splits=1)[0] < mode_score(np.eye(5)[np.arange(100) % 5], np.full(5, 0.2), splits=1)[0]
    s = InceptionScore(splits=1, data_distribution=p_star)
    s.update(p)
    assert s.compute_mode_score() == (mean, std)


# ----------------------------------------------------------------------------- PR / DC


def brute_prdc(real, fake, k_pr=3, k_dc=5):
    drr, dff, drf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_real3 = np.sort(drr, axis=1)[:, k_pr]  # column 0 is the point itself
    r_fake3 = np.sort(dff, axis=1)[:, k_pr]
    precision = np.mean([(drf[:, j] <= r_real3).any() for j in range(len(fake))])
    recall = np.mean([(drf[i, :] <= r_fake3).any() for i in range(len(real))])
    r_real5 = np.sort(drr, axis=1)[:, k_dc]
    density = sum((drf[:, j] <= r_real5).sum() for j in range(len(fake))) / (k_dc * len(fake))
    coverage = np.mean([drf[i].min() <= r_real5[i] for i in range(len(real))])
    return precision, recall, density, coverage


def test_prdc_matches_brute_force_knn_with_small_chunks():
    rng = np.random.default_rng(11)
    real = rng.standard_normal((83, 5))
    fake = rng.standard_normal((61, 5)) * 1.3 + 0.4
    ref = brute_prdc(real, fake)
    for chunk in (7, 10_000):
        p, r = precision_recall(real, fake, k=3, chunk=chunk)
        d, c = density_coverage(real, fake, k=5, chunk=chunk)
        assert (p, r, d, c) == pytest.approx(ref, abs=1e-12)
    m = PRDC(chunk=13)
    m.update(torch.from_numpy(real), real=True)
    m.update(torch.from_numpy(fake[:30]))
    m.update(torch.from_numpy(fake[30:]))
    assert list(m.compute().values()) == pytest.approx(ref, abs=1e-12)


def test_knn_radii_and_float32_chunked_equal_unchunked():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    ref = np.sort(cdist(x.astype(np.float64), x.astype(np.float64)), axis=1)[:, 3] ** 2
    np.testing.assert_allclose(knn_radii(torch.from_numpy(x), 3, chunk=9).numpy(), ref, rtol=1e-4)
    y = rng.standard_normal((150, 16)).astype(np.float32) + 0.2
    assert precision_recall(x, y, chunk=11) == precision_recall(x, y, chunk=100_000)
    assert density_coverage(x, y, chunk=11) == density_coverage(x, y, chunk=100_000)


def test_prdc_collapse_behaviour():
    rng = np.random.default_rng(13)
    real = rng.standard_normal((300, 2))
    p, r = precision_recall(real, real[:5].repeat(60, axis=0) + 1e-6 * rng.standard_normal((300, 2)))
    assert p > 0.95 and r < 0.2  # faithful but not diverse
    d, c = density_coverage(real, real + 0.0)
    assert c == 1.0 and d > 0.9


# ----------------------------------------------------------------------------- modes


def ring(k=8, r=1.0):
    a = np.arange(k) * 2 * np.pi / k
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def test_count_modes_2d_ring_full_and_collapsed():
    rng = np.random.default_rng(14)
    modes, std = ring(), 0.01
    labels = np.arange(2500) % 8
    full = modes[labels] + std * rng.standard_normal((2500, 2))
    out = count_modes_2d(full, modes, std)
    assert out["modes"] == 8 and out["hq"] > 0.98 and out["rkl"] < 0.01
    collapsed = modes[labels % 2] + std * rng.standard_normal((2500, 2))  # modes 0 and 1 only
    out = count_modes_2d(torch.from_numpy(collapsed).float(), torch.from_numpy(modes), std)
    assert out["modes"] == 2 and abs(out["rkl"] - math.log(4)) < 0.01
    # half the samples far off any mode: not high quality, not counted
    off = np.concatenate([full[:1250], rng.uniform(-0.5, 0.5, (1250, 2)) * 0.6])
    out = count_modes_2d(off, modes, std)
    assert abs(out["hq"] - 0.5) < 0.01 and out["modes"] == 8
    # nothing high quality: rkl reported as log K
    out = count_modes_2d(np.zeros((10, 2)), modes, std)
    assert out == {"modes": 0, "hq": 0.0, "rkl": pytest.approx(math.log(8))}


def test_count_modes_2d_grid_threshold_and_stateful():
    g = np.array([[x, y] for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)], dtype=float)
    std = 0.05
    # one sample per mode at 2.9 std and one at 3.1 std (along x)
    near = g + np.array([2.9 * std, 0])
    far = g + np.array([3.1 * std, 0])
    assert count_modes_2d(near, g, std)["modes"] == 25
    assert count_modes_2d(far, g, std) == {"modes": 0, "hq": 0.0, "rkl": pytest.approx(math.log(25))}
    x = np.concatenate([near[:10], far, near[10:12]])
    counter = ModeCounter(modes=g, std=std)
    for part in np.array_split(x, 3):
        counter.update(part)
    assert counter.compute() == pytest.approx(count_modes_2d(x, g, std))


def test_count_classes_and_stacked():
    pred = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    ref = np.array([0.25, 0.25, 0.25, 0.25])
    out = count_classes(pred, 4, ref)
    q = np.array([2, 2, 4, 0]) / 8
    assert out["classes"] == 3
    assert out["kl"] == pytest.approx(sum(qi * math.log(qi / 0.25) for qi in q if qi > 0), abs=1e-12)
    assert count_classes(np.arange(1000), 1000) == {"classes": 1000, "kl": pytest.approx(0.0, abs=1e-12)}
    labels = stacked_labels(torch.tensor([[1, 2, 3], [9, 0, 9]]))
    assert labels.tolist() == [123, 909]
    counter = ModeCounter(num_classes=4, reference=ref)
    counter.update(pred[:3])
    counter.update(torch.from_numpy(pred[3:]))
    assert counter.compute() == pytest.approx(out)
    with pytest.raises(GanforgeError):
        count_classes(np.array([5]), 4)


def test_channel_kl_decomposes_the_stacked_kl():
    from ganforge.metrics.modes import channel_kl

    rng = np.random.default_rng(3)
    # independent, unbalanced channels: the stacked KL is the sum of the channel KLs (+ sampling noise)
    probs = [rng.dirichlet(np.full(10, 3.0)) for _ in range(3)]
    digits = np.stack([rng.choice(10, 200_000, p=p) for p in probs], 1)
    y = 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]
    got = channel_kl(torch.from_numpy(y))
    for i in range(3):
        q = np.bincount(digits[:, i], minlength=10) / len(y)
        assert got[i] == pytest.approx(float(np.sum(q[q > 0] * np.log(q[q > 0] / 0.1))), abs=1e-12)
    assert sum(got) == pytest.approx(count_classes(y, 1000)["kl"], abs=5e-3)
    with pytest.raises(GanforgeError, match=r"\[0, 1000\)"):
        channel_kl(torch.tensor([1000]))


# ----------------------------------------------------------------------------- diversity + registry


def test_diversity_matches_pdist_and_detects_collapse():
    rng = np.random.default_rng(15)
    real = rng.standard_normal((120, 3))
    fake = rng.standard_normal((100, 3))
    out = diversity(fake, real)
    assert out["diversity"] == pytest.approx(pdist(fake).mean(), rel=1e-12)
    assert out["diversity_real"] == pytest.approx(pdist(real).mean(), rel=1e-12)
    collapsed = np.repeat(fake[:2], 50, axis=0)
    assert diversity(collapsed, real)["diversity_ratio"] < 0.7 * out["diversity_ratio"]
    m = Diversity()
    m.update(fake[:40])
    m.update(fake[40:])
    m.update(real, real=True)
    assert m.compute() == pytest.approx(out)


def test_metrics_registry_names():
    assert set(METRICS.names()) == {"fid", "kid", "is", "mode_score", "pr", "dc", "modes", "diversity"}
    with pytest.raises(ConfigError, match="valid metrics: dc, diversity, fid"):
        METRICS.get("fdi")


def test_mode_spread_matches_numpy_and_the_data_scores_its_closed_form():
    from scipy import integrate, stats

    from ganforge.metrics.modes import data_spread, mode_spread

    r = np.random.default_rng(4)
    modes, std = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]]), 0.2
    x = modes[r.integers(0, 3, 500)] + r.normal(scale=0.35, size=(500, 2))  # wider than the data: some not HQ
    d2 = ((x[:, None, :] - modes[None]) ** 2).sum(-1)  # [N, K]
    near = d2.min(1)
    hq = np.sqrt(near) < 3 * std
    want = np.sqrt(near[hq].mean() / 2) / std
    assert mode_spread(torch.from_numpy(x), torch.from_numpy(modes), std) == pytest.approx(want, rel=1e-9)
    assert math.isnan(mode_spread(torch.full((4, 2), 50.0), torch.from_numpy(modes), std))
    # the data's own value: E[r^2 | r^2 < 9] / d for r^2 ~ chi2_d, by numerical integration
    for d in (2, 3):
        num, _ = integrate.quad(lambda u: u * stats.chi2.pdf(u, d), 0, 9)
        assert data_spread(d) == pytest.approx(math.sqrt(num / stats.chi2.cdf(9, d) / d), rel=1e-8)
    big = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(1)) * std  # one mode at 0
    assert mode_spread(big, torch.zeros(1, 2), std) == pytest.approx(data_spread(2), rel=5e-3)
