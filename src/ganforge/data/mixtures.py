"""2D Gaussian mixtures: the standard mode-collapse benchmarks (PacGAN / VEEGAN protocol).

``ring8``: 8 modes evenly spaced on the unit circle, std 0.01.
``grid25``: 25 modes at {-4, -2, 0, 2, 4}^2, std 0.05.

A sample is "high quality" when it lies within 3 std of its nearest centre; a mode is
"covered" when enough generated samples fall on it. :class:`~ganforge.data.base.Dataset`
carries ``modes`` and ``mode_std`` for those metrics.
"""

from __future__ import annotations

import math

import torch

from ..config import DataConfig
from ..errors import ConfigError
from .base import DATASETS, Dataset, split_seed

RING8_RADIUS = 1.0
RING8_STD = 0.01
GRID25_STD = 0.05


def gaussian_mixture(centres: torch.Tensor, std: float, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` points of the equal-weight isotropic mixture ``1/K sum_k N(mu_k, std^2 I)``.

    Equal weights are realised exactly: labels are ``arange(n) % K`` in a random order, so
    every mode gets ``floor(n / K)`` or ``ceil(n / K)`` points (exactly ``n / K`` when K
    divides n), then ``x_i = mu_{l_i} + std * eps_i`` with ``eps_i ~ N(0, I)``.

    Returns ``(x [n, d] float32, labels [n] int64)``.
    """
    if n < 1:
        raise ConfigError(f"data.samples must be at least 1, got {n}")
    centres = centres.to(torch.float32)  # [K, d]
    k, d = centres.shape
    labels = (torch.arange(n) % k)[torch.randperm(n, generator=generator)]  # [n]
    eps = torch.randn(n, d, generator=generator)  # [n, d]
    x = centres[labels] + std * eps  # [n, d]
    return x, labels.to(torch.int64)


def ring_centres(k: int = 8, radius: float = RING8_RADIUS) -> torch.Tensor:
    """``mu_j = r (cos 2 pi j / k, sin 2 pi j / k)``, j = 0..k-1 → ``[k, 2]``."""
    angle = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return (radius * torch.stack([angle.cos(), angle.sin()], dim=1)).to(torch.float32)


def grid_centres(values: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0)) -> torch.Tensor:
    """The grid ``values x values`` in row-major order (x varies slowest) → ``[len^2, 2]``."""
    v = torch.tensor(values, dtype=torch.float32)
    gx, gy = torch.meshgrid(v, v, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def _mixture(name: str, centres: torch.Tensor, std: float, cfg: DataConfig, split: str, seed: int) -> Dataset:
    g = torch.Generator().manual_seed(split_seed(seed, split))
    x, labels = gaussian_mixture(centres, std, cfg.samples, g)
    return Dataset(name, x, labels, num_classes=centres.shape[0], modes=centres.clone(), mode_std=std)


@DATASETS.register("ring8")
def ring8(cfg: DataConfig, split: str, seed: int) -> Dataset:
    """8 Gaussians on the unit circle, std 0.01 (PacGAN 2D ring); data.samples points."""
    return _mixture("ring8", ring_centres(), RING8_STD, cfg, split, seed)


@DATASETS.register("grid25")
def grid25(cfg: DataConfig, split: str, seed: int) -> Dataset:
    """25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (PacGAN 2D grid); data.samples points."""
    return _mixture("grid25", grid_centres(), GRID25_STD, cfg, split, seed)
