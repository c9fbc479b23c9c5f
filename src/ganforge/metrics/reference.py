"""Reference-set features and statistics, computed once and cached.

The reference of an evaluation is ``n`` samples of a dataset split (all of it if ``n`` is
None or larger; otherwise a fixed, seed-0 random subset), passed through an extractor.
Its features (float32), Gaussian statistics (float64 ``mu``, ``sigma``) and the number of
samples are cached

* in memory, keyed by (dataset tensor, split, extractor key, n) — repeated evaluations
  during training cost nothing;
* on disk for learned extractors (not ``raw``), as
  ``$GANFORGE_CACHE/reference/<dataset>-<split>-<extractor key>-n<count>-<content hash>.safetensors``
  (default cache ``~/.cache/ganforge``); the content hash covers the selected samples, so
  a changed dataset (resolution, limit, files) never reuses stale statistics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from ..io import atomic_path
from .features import FeatureExtractor, cache_dir
from .frechet import gaussian_statistics


@dataclass
class Reference:
    """Reference features and statistics of one (dataset, split, extractor, n)."""

    name: str  # e.g. "digits/train"
    n: int  # number of reference samples
    features: torch.Tensor  # [n, D] float32
    mu: np.ndarray  # [D] float64
    sigma: np.ndarray  # [D, D] float64
    indices: torch.Tensor  # [n] rows of the dataset used
    cached: str = "computed"  # "computed" | "memory" | "disk"

    def describe(self) -> str:
        return f"{self.name} ({self.n} samples)"


_MEMORY: dict[tuple, tuple[weakref.ref, Reference]] = {}
_MEMORY_MAX = 8


def reference_indices(size: int, n: int | None, seed: int = 0) -> torch.Tensor:
    """All rows (``n`` None or >= size), else a seeded random subset of ``n`` rows, sorted."""
    if n is None or n >= size:
        return torch.arange(size)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(size, generator=g)[:n].sort().values


def _content_hash(x: torch.Tensor) -> str:
    h = hashlib.sha1()
    h.update(str(tuple(x.shape)).encode())
    h.update(x.contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def clear_memory_cache() -> None:
    _MEMORY.clear()


def reference_statistics(dataset, extractor: FeatureExtractor, n: int | None = None, split: str = "train", batch: int = 500, progress: bool = False, disk: bool | None = None) -> Reference:
    """The :class:`Reference` of ``dataset`` (already loaded ``split``) under ``extractor``."""
    idx = reference_indices(len(dataset), n)
    mem_key = (id(dataset.x), tuple(dataset.x.shape), dataset.name, split, extractor.key, len(idx))
    entry = _MEMORY.get(mem_key)
    if entry is not None and entry[0]() is dataset.x:  # the same tensor, not a reused id
        return dataclasses.replace(entry[1], cached="memory")  # shares the tensors
    x = dataset.x[idx]
    disk = extractor.name != "raw" if disk is None else disk
    path = None
    if disk:
        fname = f"{dataset.name}-{split}-{extractor.key}-n{len(idx)}-{_content_hash(x)}.safetensors"
        path = cache_dir() / "reference" / fname
    ref = _load(path, dataset, split, idx) if path is not None and path.is_file() else None
    if ref is None:
        feats, _ = extractor.extract(x, batch=batch, progress=progress)
        mu, sigma = gaussian_statistics(feats)
        ref = Reference(f"{dataset.name}/{split}", len(idx), feats, mu, sigma, idx)
        if path is not None:
            _save(path, ref)
    if len(_MEMORY) >= _MEMORY_MAX:
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[mem_key] = (weakref.ref(dataset.x), ref)
    return ref


def _save(path, ref: Reference) -> None:
    from safetensors.torch import save_file

    tensors = {
        "features": ref.features.contiguous(),
        "mu": torch.from_numpy(ref.mu),
        "sigma": torch.from_numpy(np.ascontiguousarray(ref.sigma)),
        "indices": ref.indices.contiguous(),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"name": ref.name, "n": str(ref.n)})


def _load(path, dataset, split: str, idx: torch.Tensor) -> Reference | None:
    from safetensors.torch import load_file

    try:
        t = load_file(str(path))
    except Exception:  # a damaged cache file is recomputed (and overwritten)
        return None
    if not torch.equal(t["indices"], idx):
        return None
    return Reference(f"{dataset.name}/{split}", len(idx), t["features"], t["mu"].numpy(), t["sigma"].numpy(), idx, cached="disk")
