"""The dataset contract, the dataset registry and :func:`load_dataset`.

Every dataset, whatever its source, becomes one :class:`Dataset`: a single float32 CPU
tensor ``x`` (images ``[N, C, H, W]`` in [-1, 1], or points ``[N, d]``) plus optional
integer labels. Batches are later drawn by index from that tensor (on the training
device), so nothing here runs per sample during training.

A loader is a function ``(cfg: DataConfig, split: str, seed: int) -> Dataset`` registered
in :data:`DATASETS`; its first docstring line is what ``ganforge list datasets`` shows.
:func:`load_dataset` is the one entry point: it checks the split, calls the loader, then
applies ``cfg.limit`` and ``cfg.image_size`` once, at load time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..config import DataConfig
from ..errors import ConfigError, DataError
from ..registry import Registry

SPLITS = ("train", "test")

CACHE_DIR = Path("~/.cache/ganforge/data").expanduser()
"""Where ``data.download=true`` puts files when ``data.data_dir`` is not given."""


@dataclass
class Dataset:
    """An in-memory dataset in ganforge's one convention.

    Images are float32 ``[N, C, H, W]`` scaled to [-1, 1] (for 8-bit pixels
    ``x = 2 * u / 255 - 1``); point clouds are float32 ``[N, d]``. ``labels`` are int64
    ``[N]`` in ``[0, num_classes)``, or ``None`` for unlabelled data. 2D Gaussian mixtures
    also carry their centres ``modes`` ``[K, d]`` and the per-mode std ``mode_std``, which
    the mode-coverage metrics use ("high quality" = within 3 std of a centre).
    """

    name: str
    x: torch.Tensor  # float32, CPU: [N, C, H, W] in [-1, 1], or [N, d]
    labels: torch.Tensor | None  # int64 [N], or None
    num_classes: int | None
    modes: torch.Tensor | None = None  # [K, d] mixture centres (2D mixtures only)
    mode_std: float | None = None  # per-mode std of 2D mixtures

    def __post_init__(self) -> None:
        if self.x.dim() not in (2, 4):
            raise DataError(f"dataset {self.name!r}: x must be [N, d] or [N, C, H, W], got shape {tuple(self.x.shape)}")
        if self.labels is not None and self.labels.shape != (self.x.shape[0],):
            raise DataError(
                f"dataset {self.name!r}: {tuple(self.labels.shape)} labels for {self.x.shape[0]} samples"
            )

    @property
    def kind(self) -> str:
        """``"image"`` for ``[N, C, H, W]`` data, ``"points"`` for ``[N, d]``."""
        return "image" if self.x.dim() == 4 else "points"

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` or ``(d,)``."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])


Loader = Callable[[DataConfig, str, int], Dataset]

DATASETS: Registry[Loader] = Registry("dataset")
"""Registered dataset loaders, ``(cfg, split, seed) -> Dataset``."""


def load_dataset(cfg: DataConfig, split: str = "train", seed: int = 0) -> Dataset:
    """Load dataset ``cfg.name`` in the ganforge convention.

    ``split`` is ``"train"`` or ``"test"``; ``seed`` drives generated data (2D mixtures,
    stacked datasets) and nothing else. Then, in this order:

    * ``cfg.limit = n`` keeps the first ``n`` samples (of either split);
    * ``cfg.image_size = s`` resizes images to ``s x s`` with antialiased bilinear
      interpolation on the float tensor (a convex combination of pixels, so the range
      stays within [-1, 1]). Non-square images are resized without cropping;
      ``image-folder`` already centre-crops to squares when it reads the files.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"data.limit must be at least 1 (or none for all), got {cfg.limit}")
    if cfg.image_size is not None and cfg.image_size < 1:
        raise ConfigError(f"data.image_size must be at least 1 (or none for native), got {cfg.image_size}")
    loader = DATASETS.get(cfg.name)
    if cfg.data_dir and not cfg.download and not Path(cfg.data_dir).expanduser().exists():
        # an explicit directory that is not there is a mistake, not a cue to look elsewhere
        raise DataError(f"data.data_dir {cfg.data_dir} does not exist; pass the directory that holds the "
                        f"{cfg.name} files, or drop data.data_dir to use the standard locations")
    ds = loader(cfg, split, seed)
    if cfg.limit is not None and cfg.limit < len(ds):
        ds = dataclasses.replace(
            ds,
            x=ds.x[: cfg.limit].clone(),
            labels=None if ds.labels is None else ds.labels[: cfg.limit].clone(),
        )
    if ds.kind == "image" and cfg.image_size is not None:
        ds = dataclasses.replace(ds, x=resize(ds.x, cfg.image_size))
    ds.x = ds.x.to(torch.float32).contiguous()
    return ds


def resize(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize images ``[N, C, H, W]`` to ``[N, C, size, size]`` (antialiased bilinear).

    Works in chunks of ``chunk`` images to bound the temporary memory; the result is
    clamped to [-1, 1] against rounding.
    """
    if tuple(x.shape[-2:]) == (size, size):
        return x
    out = torch.empty(x.shape[0], x.shape[1], size, size, dtype=torch.float32)  # [N, C, s, s]
    for i in range(0, x.shape[0], chunk):
        xi = x[i : i + chunk].to(torch.float32)
        out[i : i + chunk] = F.interpolate(xi, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.clamp_(-1.0, 1.0)


def to_unit_range(u: torch.Tensor, max_value: float = 255.0) -> torch.Tensor:
    """Pixel values in ``[0, max_value]`` → float32 in [-1, 1]: ``x = 2 * u / max_value - 1``."""
    return (u.to(torch.float32) * (2.0 / max_value) - 1.0).clamp_(-1.0, 1.0)


def split_seed(seed: int, split: str) -> int:
    """The generator seed of ``split``: ``seed`` for train, a fixed offset of it for test.

    The offset (the 64-bit golden-ratio constant) keeps the test draw of seed ``s`` distinct
    from the train draws of all small seeds.
    """
    return seed % 2**63 if split == "train" else (seed + 0x9E3779B97F4A7C15) % 2**63


def candidate_roots(cfg: DataConfig) -> list[Path]:
    """Directories a downloadable dataset is looked for in: ``data_dir``, then the cache."""
    roots = [Path(cfg.data_dir).expanduser()] if cfg.data_dir else []
    return roots + [CACHE_DIR]


def download_root(cfg: DataConfig) -> Path:
    """Where ``data.download=true`` writes: ``data_dir`` if given, else :data:`CACHE_DIR`."""
    return Path(cfg.data_dir).expanduser() if cfg.data_dir else CACHE_DIR
