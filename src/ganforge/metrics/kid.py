"""Kernel Inception Distance (KID; Binkowski et al. 2018).

"Demystifying MMD GANs", Binkowski, Sutherland, Arbel, Gretton, ICLR 2018. The unbiased
estimator of the squared MMD with the cubic polynomial kernel

    k(x, y) = (x . y / d + 1)^3
    MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] - 2/m^2 sum_{i, j} k(x_i, y_j)

averaged over ``subsets`` random subsets of ``subset_size`` samples from each set (drawn
without replacement within a subset); the result is the mean and the (population) std over
subsets, as in torch-fidelity (defaults: 100 subsets of 1,000). Computed in float64.

The chain: features → :func:`polynomial_kernel` → :func:`mmd2_unbiased` → :func:`kid`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError


def _t64(a) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(a)
    return a.detach().cpu().to(torch.float64)


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> torch.Tensor:
    """``(gamma x . y + coef0)^degree`` for all pairs → ``[N, M]``; ``gamma = 1/d`` by default."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(k_xx: torch.Tensor, k_yy: torch.Tensor, k_xy: torch.Tensor) -> float:
    """Unbiased MMD^2 from the three kernel matrices of two m-sample sets (diagonals excluded)."""
    m = k_xx.shape[0]
    if m < 2:
        raise GanforgeError("MMD needs subsets of at least 2 samples")
    sum_xx = k_xx.sum() - k_xx.diagonal().sum()
    sum_yy = k_yy.sum() - k_yy.diagonal().sum()
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kid(features1, features2, subsets: int = 100, subset_size: int = 1000, seed: int = 0, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> tuple[float, float]:
    """``(mean, std)`` of the unbiased polynomial-kernel MMD^2 over random subsets.

    ``subset_size`` may not exceed either set's size (a one-line error says so).
    """
    x, y = _t64(features1), _t64(features2)
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise GanforgeError(f"KID needs two [N, d] feature matrices of the same d, got {tuple(x.shape)} and {tuple(y.shape)}")
    n = min(x.shape[0], y.shape[0])
    if subset_size > n:
        raise GanforgeError(f"KID subset size {subset_size} exceeds the number of samples ({n}); pass a smaller kid_subset_size or more samples")
    rng = np.random.default_rng(seed)
    values = np.empty(subsets, dtype=np.float64)
    for s in range(subsets):
        ix = torch.from_numpy(rng.choice(x.shape[0], subset_size, replace=False))
        iy = torch.from_numpy(rng.choice(y.shape[0], subset_size, replace=False))
        a, b = x[ix], y[iy]
        values[s] = mmd2_unbiased(
            polynomial_kernel(a, a, degree, gamma, coef0),
            polynomial_kernel(b, b, degree, gamma, coef0),
            polynomial_kernel(a, b, degree, gamma, coef0),
        )
    return float(values.mean()), float(values.std())


class KID:
    """Stateful KID: keeps the feature batches (a kernel estimate has no running sums)."""

    def __init__(self, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> None:
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed
        self.reset()

    def update(self, features, real: bool = False) -> None:
        f = torch.from_numpy(features) if isinstance(features, np.ndarray) else features
        (self.real if real else self.fake).append(f.detach().cpu())  # promoted to float64 in compute

    def compute(self) -> tuple[float, float]:
        if not self.real or not self.fake:
            raise GanforgeError("KID needs real and fake features; call update(..., real=True) and update(..., real=False)")
        return kid(torch.cat(self.real), torch.cat(self.fake), self.subsets, self.subset_size, self.seed)

    def reset(self) -> None:
        self.real: list[torch.Tensor] = []
        self.fake: list[torch.Tensor] = []
