"""Sample diversity: mean pairwise feature distance, generated vs real (a collapse monitor).

    MPD(X) = 2 / (n (n - 1)) sum_{i < j} ||x_i - x_j||

Mode collapse shrinks the generated MPD while the real one stays put, so the ratio
``MPD(fake) / MPD(real)`` (~1 for a healthy generator, -> 0 under collapse) is a cheap
online signal. Sets larger than ``max_samples`` are subsampled (seeded) to bound the
O(n^2) cost; distances are computed in float64 in row chunks.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError


def mean_pairwise_distance(x, max_samples: int = 2000, seed: int = 0, chunk: int = 1024) -> float:
    """``MPD(x)`` over distinct pairs of rows of ``x [N, d]`` (N >= 2)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    x = x.detach().cpu().reshape(x.shape[0], -1).to(torch.float64)
    n = x.shape[0]
    if n < 2:
        raise GanforgeError(f"diversity needs at least 2 samples, got {n}")
    if n > max_samples:
        g = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(n, generator=g)[:max_samples]]
        n = max_samples
    total = 0.0
    for i in range(0, n, chunk):
        total += float(torch.cdist(x[i : i + chunk], x, compute_mode="donot_use_mm_for_euclid_dist").sum())  # self-distances are 0
    return total / (n * (n - 1))


def diversity(fake, real=None, max_samples: int = 2000, seed: int = 0) -> dict[str, float]:
    """``{"diversity": MPD(fake)}`` plus ``"diversity_real"`` and ``"diversity_ratio"`` if ``real``."""
    out = {"diversity": mean_pairwise_distance(fake, max_samples, seed)}
    if real is not None:
        out["diversity_real"] = mean_pairwise_distance(real, max_samples, seed)
        out["diversity_ratio"] = out["diversity"] / out["diversity_real"] if out["diversity_real"] > 0 else float("nan")
    return out


class Diversity:
    """Stateful diversity: keeps batches (up to ``max_samples`` each), ``compute()`` as :func:`diversity`."""

    def __init__(self, max_samples: int = 2000, seed: int = 0) -> None:
        self.max_samples, self.seed = max_samples, seed
        self.reset()

    def update(self, features, real: bool = False) -> None:
        f = torch.from_numpy(features) if isinstance(features, np.ndarray) else features.detach().cpu()
        (self.real if real else self.fake).append(f.reshape(f.shape[0], -1))

    def compute(self) -> dict[str, float]:
        if not self.fake:
            raise GanforgeError("diversity needs generated features; call update(features)")
        real = torch.cat(self.real) if self.real else None
        return diversity(torch.cat(self.fake), real, self.max_samples, self.seed)

    def reset(self) -> None:
        self.real: list[torch.Tensor] = []
        self.fake: list[torch.Tensor] = []
