"""Datasets → one contract: float32 NCHW in [-1, 1] (or ``[N, d]`` points), labels optional.

>>> from ganforge.config import DataConfig
>>> ds = load_dataset(DataConfig(name="digits", image_size=16))
>>> ds.x.shape, ds.kind, ds.num_classes
(torch.Size([1438, 1, 16, 16]), 'image', 10)

Importing this package registers every built-in loader in :data:`DATASETS`.
"""

from .base import DATASETS, Dataset, load_dataset, resize
from . import folder, idx, images, mixtures, stacked  # noqa: F401  (register the loaders)
from .idx import read_idx
from .mixtures import gaussian_mixture, grid_centres, ring_centres

__all__ = [
    "DATASETS",
    "Dataset",
    "load_dataset",
    "resize",
    "read_idx",
    "gaussian_mixture",
    "grid_centres",
    "ring_centres",
]
