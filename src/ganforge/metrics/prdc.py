"""Improved precision/recall and density/coverage, with chunked nearest-neighbour distances.

Improved precision and recall ("Improved Precision and Recall Metric for Assessing
Generative Models", Kynkaanniemi, Karras, Laine, Lehtinen, Aila, NeurIPS 2019), k = 3.
With ``r_k(phi)`` the distance from ``phi`` to its k-th nearest neighbour within its own
set (itself excluded):

    precision = 1/M sum_j 1[ exists i: ||f_j - r_i|| <= r_k(r_i) ]     (fake inside real manifold)
    recall    = 1/N sum_i 1[ exists j: ||r_i - f_j|| <= r_k(f_j) ]     (real inside fake manifold)

Density and coverage ("Reliable Fidelity and Diversity Metrics for Generative Models",
Naeem, Oh, Uh, Choi, Yoo, ICML 2020), k = 5, balls around real samples only:

    density  = 1/(k M) sum_j sum_i 1[ ||f_j - r_i|| <= r_k(r_i) ]
    coverage = 1/N sum_i 1[ min_j ||r_i - f_j|| <= r_k(r_i) ]

Distances are computed ``chunk`` rows at a time as ``||a||^2 + ||b||^2 - 2 a.b`` (squared
distances are compared, no square roots), in the inputs' dtype (float32 for speed; pass
float64 for exact comparisons), so memory is ``chunk x max(N, M)`` and 50k x 50k fits.
One pass over real x fake rows gives all four numbers; two more give the radii.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError


def _tensor(a, dtype: torch.dtype | None = None) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(a)
    a = a.detach().cpu()
    if a.dtype not in (torch.float32, torch.float64):
        a = a.to(torch.float32)
    return a if dtype is None else a.to(dtype)


def squared_distances(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor | None = None) -> torch.Tensor:
    """``||a_i - b_j||^2`` → ``[len(a), len(b)]``, clamped at 0 (``b_sq`` may be precomputed)."""
    b_sq = (b * b).sum(1) if b_sq is None else b_sq
    d = (a * a).sum(1, keepdim=True) + b_sq[None, :] - 2.0 * (a @ b.T)
    return d.clamp_(min=0.0)


def knn_radii(x, k: int, chunk: int = 1024) -> torch.Tensor:
    """Squared distance of every row of ``x [N, d]`` to its k-th nearest other row → ``[N]``."""
    x = _tensor(x)
    n = x.shape[0]
    if not 1 <= k < n:
        raise GanforgeError(f"k-NN radius needs 1 <= k < number of samples, got k={k} with {n} samples")
    x_sq = (x * x).sum(1)
    out = torch.empty(n, dtype=x.dtype)
    for i in range(0, n, chunk):
        d = squared_distances(x[i : i + chunk], x, x_sq)  # [c, N], includes self at ~0
        out[i : i + chunk] = d.topk(k + 1, dim=1, largest=False).values[:, k]
    return out


def _prdc_pass(real: torch.Tensor, fake: torch.Tensor, r_real: torch.Tensor, r_fake: torch.Tensor | None, chunk: int) -> dict[str, torch.Tensor]:
    """One chunked pass over real rows: per-real recall/coverage hits, per-fake ball counts."""
    n, m = real.shape[0], fake.shape[0]
    fake_sq = (fake * fake).sum(1)
    in_real_balls = torch.zeros(m, dtype=torch.int64)  # sum_i 1[f_j in B(r_i)]
    recall_hit = torch.zeros(n, dtype=torch.bool)
    coverage_hit = torch.zeros(n, dtype=torch.bool)
    for i in range(0, n, chunk):
        d = squared_distances(real[i : i + chunk], fake, fake_sq)  # [c, M]
        inside = d <= r_real[i : i + chunk, None]  # f_j in ball of r_i
        in_real_balls += inside.sum(0)
        coverage_hit[i : i + chunk] = inside.any(1)  # == min_j d_ij <= r_i
        if r_fake is not None:
            recall_hit[i : i + chunk] = (d <= r_fake[None, :]).any(1)
    return {"in_real_balls": in_real_balls, "recall_hit": recall_hit, "coverage_hit": coverage_hit}


def precision_recall(real, fake, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of ``fake`` against ``real``."""
    real, fake = _common(real, fake)
    r_real, r_fake = knn_radii(real, k, chunk), knn_radii(fake, k, chunk)
    p = _prdc_pass(real, fake, r_real, r_fake, chunk)
    return float((p["in_real_balls"] > 0).double().mean()), float(p["recall_hit"].double().mean())


def density_coverage(real, fake, k: int = 5, chunk: int = 1024) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) of ``fake`` against ``real``."""
    real, fake = _common(real, fake)
    r_real = knn_radii(real, k, chunk)
    p = _prdc_pass(real, fake, r_real, None, chunk)
    density = p["in_real_balls"].double().sum() / (k * fake.shape[0])
    return float(density), float(p["coverage_hit"].double().mean())


def _common(real, fake) -> tuple[torch.Tensor, torch.Tensor]:
    real, fake = _tensor(real), _tensor(fake)
    dtype = torch.promote_types(real.dtype, fake.dtype)
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise GanforgeError(f"need two [N, d] feature matrices of the same d, got {tuple(real.shape)} and {tuple(fake.shape)}")
    return real.to(dtype), fake.to(dtype)


class PRDC:
    """Stateful precision/recall/density/coverage: keeps the feature batches.

    ``compute()`` → ``{"precision", "recall", "density", "coverage"}``.
    """

    def __init__(self, k_pr: int = 3, k_dc: int = 5, chunk: int = 1024) -> None:
        self.k_pr, self.k_dc, self.chunk = k_pr, k_dc, chunk
        self.reset()

    def update(self, features, real: bool = False) -> None:
        (self.real if real else self.fake).append(_tensor(features))

    def compute(self) -> dict[str, float]:
        if not self.real or not self.fake:
            raise GanforgeError("PRDC needs real and fake features; call update(..., real=True) and update(..., real=False)")
        real, fake = torch.cat(self.real), torch.cat(self.fake)
        precision, recall = precision_recall(real, fake, self.k_pr, self.chunk)
        density, coverage = density_coverage(real, fake, self.k_dc, self.chunk)
        return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}

    def reset(self) -> None:
        self.real: list[torch.Tensor] = []
        self.fake: list[torch.Tensor] = []
