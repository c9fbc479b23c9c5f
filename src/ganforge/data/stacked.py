"""Stacked datasets (Stacked MNIST protocol, Metz et al. 2017 / Srivastava et al. 2017).

Each sample stacks three independently, uniformly drawn grey images of a base dataset as
the R, G, B channels: ``x_i = [b_{j1}, b_{j2}, b_{j3}]`` with ``j ~ U{0..M-1}^3``, and gets
the label ``100 * l_{j1} + 10 * l_{j2} + l_{j3}``: 1,000 modes, which a classifier on the
base data counts in generated samples.

``stacked-digits`` (base ``digits``) works offline; ``stacked-mnist`` and
``stacked-fashion`` need the base IDX files (see :mod:`ganforge.data.idx`).
Size: ``min(data.samples, cap)`` samples (caps in :data:`STACKED`), or ``data.limit`` if
smaller; the draw is seeded by the run seed (the test split uses the base test images and
a derived seed). Images keep the base's native size unless ``data.image_size`` is set.
"""

from __future__ import annotations

import dataclasses

import torch

from ..config import DataConfig
from ..errors import DataError
from .base import DATASETS, Dataset, split_seed

STACKED = {  # name -> (base dataset, cap on the number of samples)
    "stacked-digits": ("digits", 25_000),
    "stacked-mnist": ("mnist", 50_000),
    "stacked-fashion": ("fashion-mnist", 50_000),
}


def stack_channels(base: Dataset, n: int, generator: torch.Generator, name: str) -> Dataset:
    """Draw ``n`` stacked samples from the grey, 10-class ``base`` (see module docstring)."""
    if base.kind != "image" or base.shape[0] != 1 or base.labels is None or base.num_classes != 10:
        raise DataError(f"{name} needs a grey 10-class base dataset, got {base.name} of shape {base.shape}")
    idx = torch.randint(0, len(base), (n, 3), generator=generator)  # [n, 3]
    x = base.x[idx.reshape(-1), 0].reshape(n, 3, *base.shape[1:])  # [n, 3, H, W]
    lab = base.labels[idx]  # [n, 3]
    y = 100 * lab[:, 0] + 10 * lab[:, 1] + lab[:, 2]  # [n] in 0..999
    return Dataset(name, x, y.to(torch.int64), num_classes=1000)


def _make(name: str):
    base_name, cap = STACKED[name]

    def load(cfg: DataConfig, split: str, seed: int) -> Dataset:
        base_cfg = dataclasses.replace(cfg, name=base_name, limit=None, image_size=None)
        base = DATASETS.get(base_name)(base_cfg, split, seed)
        n = min(cfg.samples, cap, cfg.limit or cap)
        if n < 1:
            raise DataError(f"{name}: data.samples must be at least 1, got {cfg.samples}")
        g = torch.Generator().manual_seed(split_seed(seed, split))
        return stack_channels(base, n, g, name)

    load.__name__ = name.replace("-", "_")
    load.__doc__ = f"Three {base_name} images as RGB channels, 1,000 classes (Stacked MNIST protocol); up to {cap:,} samples."
    return load


for _name in STACKED:
    DATASETS.register(_name, _make(_name))
