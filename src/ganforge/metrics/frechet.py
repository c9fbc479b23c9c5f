"""Frechet distance between Gaussians fitted to two feature sets (FID; Heusel et al. 2017).

    FID = ||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2})

"GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
Heusel, Ramsauer, Unterthiner, Nessler, Hochreiter, NeurIPS 2017. With InceptionV3 pool3
features it is the FID; with other extractors it is a Frechet distance in *their* feature
space (not comparable across extractors).

The chain: features → :func:`gaussian_statistics` (float64) → :func:`frechet_distance`.

**The trace term.** pytorch-fid / torch-fidelity compute ``scipy.linalg.sqrtm(S_1 @ S_2)``
(a Schur decomposition of a non-symmetric matrix, ~12 s at d = 2048) and drop the
imaginary part. Here, for any factor ``A`` with ``A A^T = S_1`` (``sqrt(S_1)`` is one), the
matrix ``M = A^T S_2 A`` is symmetric PSD and has the same non-zero eigenvalues as
``S_1 S_2 = A (A^T S_2 A) A^{-1}``, so

    tr((S_1 S_2)^{1/2}) = sum_i sqrt(lambda_i(M))

``A`` is the Cholesky factor when ``S_1`` is positive definite (fast), else
``V diag(sqrt(max(w, 0)))`` from ``S_1 = V diag(w) V^T``; then two matrix products and one
symmetric eigenvalue solve (LAPACK ``syevr``).

**Singular / ill-conditioned covariances** (fewer samples than dimensions, duplicated or
constant features): covariances are symmetrised; when Cholesky fails, the eigenvalues of
``S_1`` below zero (rounding noise of a PSD matrix) are clamped to 0 and their directions
dropped; eigenvalues of ``M`` below zero are clamped to 0 before the square root. No ``eps * I``
is added (pytorch-fid adds ``1e-6 I`` only when ``sqrtm`` fails), so the result is the exact
Frechet distance of the PSD matrices, always finite and real. The final value is clamped at
0 (it can come out as -1e-12 for identical statistics).
"""

from __future__ import annotations

import contextlib

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import torch

from ..errors import GanforgeError



def _np64(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def gaussian_statistics(features, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """``(mu [d], sigma [d, d])`` of ``features [N, d]`` in float64 (sigma with ``N - 1``).

    Accumulated over row chunks with :class:`GaussianStats`, so float32 inputs are never
    copied whole to float64.
    """
    acc = GaussianStats()
    x = features
    n = x.shape[0]
    for i in range(0, n, chunk):
        acc.update(x[i : i + chunk])
    return acc.compute()


class GaussianStats:
    """Running float64 mean and covariance of feature batches (Chan et al. merge).

    ``update(x [B, d])`` merges the batch's mean and centred scatter matrix into the
    running ones: ``M2 = M2_a + M2_b + delta delta^T n_a n_b / n``, which stays accurate
    when the mean is large compared with the spread (unlike ``sum x x^T - n mu mu^T``).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None  # [d] float64
        self.m2: np.ndarray | None = None  # [d, d] float64, sum of centred outer products

    def update(self, x) -> None:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            xb = x.to(torch.float64).numpy()
        else:
            xb = np.asarray(x, dtype=np.float64)
        if xb.ndim != 2:
            raise GanforgeError(f"features must be a [N, d] matrix, got shape {xb.shape}")
        nb = xb.shape[0]
        if nb == 0:
            return
        mb = xb.mean(axis=0)
        xc = xb - mb
        m2b = xc.T @ xc  # [d, d]
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        if mb.shape != self.mean.shape:
            raise GanforgeError(f"feature dimension changed from {self.mean.shape[0]} to {mb.shape[0]}")
        n = self.n + nb
        delta = mb - self.mean
        self.m2 = self.m2 + m2b + np.outer(delta, delta) * (self.n * nb / n)
        self.mean = self.mean + delta * (nb / n)
        self.n = n

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise GanforgeError(f"need at least 2 feature vectors for a covariance, got {self.n}")
        return self.mean.copy(), self.m2 / (self.n - 1)


def _symmetric(s: np.ndarray) -> np.ndarray:
    return 0.5 * (s + s.T)


def _blas_threads(n: int):
    """Limit BLAS/LAPACK threads (OpenBLAS workers spin-wait: on a loaded 2-core machine two
    threads made the 2048-d eigendecomposition 10x slower than one)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


LINALG_THREADS = 1
"""BLAS threads for :func:`trace_sqrt_product` (its LAPACK calls scale poorly anyway)."""


def _congruence(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """``M = A^T S_2 A`` for some ``A`` with ``A A^T = S_1``: the Cholesky factor if ``S_1``
    is positive definite (triangular products, BLAS ``trmm``), else
    ``V diag(sqrt(max(w, 0)))`` from ``S_1 = V diag(w) V^T`` (zero eigenvalues dropped)."""
    try:
        a = scipy.linalg.cholesky(s1, lower=True, check_finite=False)  # [d, d] lower
    except np.linalg.LinAlgError:
        w, v = scipy.linalg.eigh(s1, driver="evr", check_finite=False)
        keep = w > 0
        a = v[:, keep] * np.sqrt(w[keep])  # [d, r]
        return a.T @ (s2 @ a)  # [r, r]
    trmm = scipy.linalg.blas.dtrmm
    s2a = trmm(1.0, a, s2, side=1, lower=1)  # S_2 A
    return trmm(1.0, a, s2a, side=0, lower=1, trans_a=1)  # A^T S_2 A


def trace_sqrt_product(sigma1, sigma2) -> float:
    """``tr((S_1 S_2)^{1/2})`` for symmetric PSD ``S_1, S_2`` (see module doc).

    With any ``A`` such that ``A A^T = S_1``, ``M = A^T S_2 A`` is symmetric PSD and has
    the non-zero eigenvalues of ``S_1 S_2``; the trace is ``sum sqrt(max(lambda(M), 0))``.
    """
    s1 = _symmetric(_np64(sigma1))
    s2 = _symmetric(_np64(sigma2))
    with _blas_threads(LINALG_THREADS):
        m = _symmetric(_congruence(s1, s2))  # [r, r]
        if m.size == 0:
            return 0.0
        lam = scipy.linalg.eigh(m, eigvals_only=True, driver="evr", check_finite=False)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """``||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1 S_2)^{1/2})`` in float64, >= 0."""
    mu1, mu2 = _np64(mu1), _np64(mu2)
    s1, s2 = _np64(sigma1), _np64(sigma2)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0],) * 2:
        raise GanforgeError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}"
        )
    for name, a in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.all(np.isfinite(a)):
            raise GanforgeError(f"{name} has NaN or inf entries; check the features (did the generator diverge?)")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2)
    return float(max(value, 0.0))


def frechet_distance_sqrtm(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """The pytorch-fid / torch-fidelity formula with ``scipy.linalg.sqrtm`` (slow reference).

    Kept for comparison (benchmarks) and for users who want the historical numerics:
    ``sqrtm(S_1 S_2)``, ``eps * I`` added to both if the result is not finite, the real part.
    """
    mu1, mu2 = _np64(mu1), _np64(mu2)
    s1, s2 = _np64(sigma1), _np64(sigma2)
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid(features1, features2) -> float:
    """Frechet distance between Gaussians fitted to ``features1 [N1, d]`` and ``features2 [N2, d]``."""
    mu1, s1 = gaussian_statistics(features1)
    mu2, s2 = gaussian_statistics(features2)
    return frechet_distance(mu1, s1, mu2, s2)


class FID:
    """Stateful FID: ``update(features, real=bool)`` per batch, ``compute()``, ``reset()``.

    Real statistics can be given up front (``FID(real_stats=(mu, sigma))``), e.g. from the
    reference cache, and are kept by ``reset()``.
    """

    def __init__(self, real_stats: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.real_stats = real_stats
        self.real = GaussianStats()
        self.fake = GaussianStats()

    def update(self, features, real: bool = False) -> None:
        (self.real if real else self.fake).update(features)

    def compute(self) -> float:
        mu1, s1 = self.real_stats if self.real_stats is not None else self.real.compute()
        mu2, s2 = self.fake.compute()
        return frechet_distance(mu1, s1, mu2, s2)

    def reset(self) -> None:
        self.real.reset()
        self.fake.reset()
