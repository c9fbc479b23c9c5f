"""The ``raw`` extractor: the data itself, flattened (2D points, or tiny images)."""

from __future__ import annotations

import math

import torch

from .features import FEATURES, FeatureExtractor


class RawFeatures(FeatureExtractor):
    """Identity features: ``x.reshape(N, -1)``; no logits."""

    name = "raw"

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__(key="raw", dim=math.prod(shape))

    def _features(self, x: torch.Tensor):
        return x.reshape(x.shape[0], -1), None


@FEATURES.register("raw")
def build_raw(dataset=None, **opts) -> RawFeatures:
    """The data itself, flattened (2D points)."""
    shape = tuple(dataset.shape) if dataset is not None else (2,)
    return RawFeatures(shape)
