"""Small image datasets: scikit-learn's bundled ``digits`` and torchvision's ``cifar10``."""

from __future__ import annotations

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from .base import DATASETS, Dataset, candidate_roots, download_root, to_unit_range

DIGITS_SPLIT_SEED = 0
"""Seed of the fixed permutation that splits ``digits``; independent of the run's seed."""

DIGITS_TRAIN_FRACTION = 0.8


def digits_split(labels: np.ndarray, fraction: float = DIGITS_TRAIN_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split → (train indices, test indices), each sorted.

    Within each class c (n_c images), a permutation drawn from
    ``numpy.random.default_rng(DIGITS_SPLIT_SEED)`` puts ``round(fraction * n_c)`` images in
    train and the rest in test; so class proportions match across splits, and the split is
    the same on every machine and for every run seed (the test set never changes).
    For the 1,797 digits this gives 1,438 train / 359 test images.
    """
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(idx.size)]
        k = int(round(fraction * idx.size))
        train.append(idx[:k])
        test.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@DATASETS.register("digits")
def digits(cfg: DataConfig, split: str, seed: int) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; 80/20 split), offline."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32)  # [1797, 8, 8], values 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)  # [1797]
    train, test = digits_split(labels)
    idx = train if split == "train" else test
    x = to_unit_range(torch.from_numpy(images[idx]), max_value=16.0).unsqueeze(1)  # [N, 1, 8, 8]
    return Dataset("digits", x, torch.from_numpy(labels[idx]), num_classes=10)


@DATASETS.register("cifar10")
def cifar10(cfg: DataConfig, split: str, seed: int) -> Dataset:
    """CIFAR-10, 32x32 RGB, 10 classes (torchvision layout in data_dir, or download)."""
    from torchvision.datasets import CIFAR10

    # torchvision reads the python batches with pickle: they are trusted dataset files, taken
    # only from the user's data_dir / ganforge's cache, after torchvision's md5 check.
    folder = CIFAR10.base_folder  # "cifar-10-batches-py"
    roots = []
    for r in candidate_roots(cfg):
        roots += [r.parent] if r.name == folder else [r]
    for root in roots:
        if (root / folder).is_dir():
            try:
                ds = CIFAR10(str(root), train=split == "train", download=False)
            except RuntimeError:  # torchvision: "Dataset not found or corrupted"
                raise DataError(
                    f"cifar10 files in {root / folder} are incomplete or corrupted (md5 check failed); "
                    "delete them and pass --set data.download=true, or point data.data_dir at a good copy"
                ) from None
            break
    else:
        if not cfg.download:
            raise DataError(
                "cifar10 not found: pass --set data.data_dir=DIR containing cifar-10-batches-py "
                "(torchvision layout), or --set data.download=true"
            )
        root = download_root(cfg)
        try:
            ds = CIFAR10(str(root), train=split == "train", download=True)
        except Exception as e:  # network, disk or checksum errors from torchvision
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"cifar10: download into {root} failed ({msg}); pass --set data.data_dir=DIR") from None
    u = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)  # [N, 32, 32, 3] -> [N, 3, 32, 32]
    x = to_unit_range(u).contiguous()
    y = torch.as_tensor(ds.targets, dtype=torch.int64)  # [N]
    return Dataset("cifar10", x, y, num_classes=10)
