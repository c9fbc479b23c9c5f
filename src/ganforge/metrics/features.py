"""Feature extractors: the registry, the common interface and the cache directory.

An extractor maps samples (images ``[N, C, H, W]`` in [-1, 1], or points ``[N, d]``) to
features ``[N, D]`` (FID, KID, PR, DC, diversity) and, when it is a classifier, to class
logits ``[N, C]`` (IS, MODE score, mode counting). Builders are registered in
:data:`FEATURES` as ``build(dataset, **opts) -> FeatureExtractor``:

* ``inception``  — FID-standard InceptionV3 pool3, 2048-d (:mod:`.features_inception`);
* ``classifier`` — ganforge's small CNN trained on the dataset (:mod:`.features_classifier`);
* ``raw``        — the data itself, flattened (:mod:`.features_raw`).

Numbers from different extractors live in different feature spaces and are *not*
comparable: always report the extractor, the reference set and the sample count.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..registry import Registry

FEATURES: Registry = Registry("feature extractor")
"""Registered extractor builders, ``(dataset, **opts) -> FeatureExtractor``."""


def cache_dir() -> Path:
    """ganforge's cache root: ``$GANFORGE_CACHE`` or ``~/.cache/ganforge``."""
    root = os.environ.get("GANFORGE_CACHE")
    return Path(root).expanduser() if root else Path("~/.cache/ganforge").expanduser()


class FeatureExtractor:
    """Base class: subclasses implement :meth:`_features` (and :meth:`_logits` if a classifier).

    ``name`` is the registry name; ``key`` identifies the exact extractor (weights,
    resolution) for caches and reports; ``dim`` the feature size.
    """

    name = "?"
    has_logits = False

    def __init__(self, key: str, dim: int) -> None:
        self.key, self.dim = key, dim
        self.device = torch.device("cpu")

    def to(self, device) -> "FeatureExtractor":
        self.device = torch.device(device)
        return self

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One batch on ``self.device`` → (features [B, D], logits [B, C] or None)."""
        raise NotImplementedError

    @torch.no_grad()
    def extract(self, x: torch.Tensor, batch: int = 500, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """All of ``x`` in batches → (features [N, D] float32 CPU, logits [N, C] float32 CPU or None)."""
        feats, logits = [], []
        it = range(0, x.shape[0], batch)
        if progress and self.name != "raw" and len(it) > 1:  # raw features are instant
            from tqdm import tqdm

            it = tqdm(it, desc=f"{self.name} features", unit="batch", leave=False)
        for i in it:
            f, lg = self._features(x[i : i + batch].to(self.device, torch.float32))
            feats.append(f.float().cpu())
            if lg is not None:
                logits.append(lg.float().cpu())
        f = torch.cat(feats) if feats else torch.empty(0, self.dim)
        return f, (torch.cat(logits) if logits else None)

    def features(self, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
        return self.extract(x, batch)[0]

    def describe(self) -> str:
        return self.key
