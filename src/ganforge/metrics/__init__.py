"""Evaluation: feature extractors + FID / KID / IS / MODE / PR / DC / mode counting / diversity.

Every metric is a chain of small pure functions (features → statistics → number) and a
stateful object with ``update()`` / ``compute()`` / ``reset()`` (float64 accumulators):

=================  ==========================================  ===========================
module             pure functions                              stateful
=================  ==========================================  ===========================
frechet            fid, frechet_distance, gaussian_statistics  FID, GaussianStats
kid                kid, mmd2_unbiased, polynomial_kernel       KID
inception_score    inception_score, mode_score                 InceptionScore
prdc               precision_recall, density_coverage          PRDC
modes              count_modes_2d, count_classes               ModeCounter
diversity          diversity, mean_pairwise_distance           Diversity
=================  ==========================================  ===========================

Extractors (:data:`FEATURES`): ``inception``, ``classifier``, ``raw``. Metric names usable
in ``--metrics`` (:data:`METRICS`): fid, kid, is, mode_score, pr, dc, modes, diversity.
High-level entry points: :func:`evaluate_samples`, :func:`evaluate_run`.

>>> from ganforge.metrics import fid
>>> fid(real_features, fake_features)
"""

from __future__ import annotations

from ..registry import Registry
from . import features_classifier, features_inception, features_raw  # noqa: F401  (register extractors)
from .diversity import Diversity, diversity, mean_pairwise_distance
from .features import FEATURES, FeatureExtractor, cache_dir
from .frechet import FID, GaussianStats, fid, frechet_distance, frechet_distance_sqrtm, gaussian_statistics
from .inception_score import InceptionScore, inception_score, mode_score
from .kid import KID, kid, mmd2_unbiased, polynomial_kernel
from .modes import ModeCounter, count_classes, count_modes_2d, stacked_labels
from .prdc import PRDC, density_coverage, knn_radii, precision_recall

METRICS: Registry = Registry("metric")
"""Metric names for ``--metrics`` / ``eval.metrics``; values are the keys each one produces."""

for _name, _keys, _help in (
    ("fid", ("fid",), "Frechet distance of feature Gaussians (Heusel et al. 2017); lower is better"),
    ("kid", ("kid_mean", "kid_std"), "Kernel Inception Distance, unbiased cubic-kernel MMD^2 (Binkowski et al. 2018)"),
    ("is", ("is_mean", "is_std"), "Inception Score from the extractor's class probabilities (Salimans et al. 2016)"),
    ("mode_score", ("mode_score_mean", "mode_score_std"), "MODE score: IS that also compares with the data's labels (Che et al. 2017)"),
    ("pr", ("precision", "recall"), "improved precision and recall, k=3 (Kynkaanniemi et al. 2019)"),
    ("dc", ("density", "coverage"), "density and coverage, k=5 (Naeem et al. 2020)"),
    ("modes", ("modes", "hq", "rkl", "classes", "kl"), "mode counting: 2D modes/high quality/reverse KL, or classes covered/KL"),
    ("diversity", ("diversity", "diversity_real", "diversity_ratio"), "mean pairwise feature distance, generated vs real"),
):
    METRICS.register(_name, _keys, help=_help)

from .evaluate import evaluate_run, evaluate_samples  # noqa: E402

__all__ = [
    "METRICS", "FEATURES", "FeatureExtractor", "cache_dir",
    "fid", "frechet_distance", "frechet_distance_sqrtm", "gaussian_statistics", "FID", "GaussianStats",
    "kid", "mmd2_unbiased", "polynomial_kernel", "KID",
    "inception_score", "mode_score", "InceptionScore",
    "precision_recall", "density_coverage", "knn_radii", "PRDC",
    "count_modes_2d", "count_classes", "stacked_labels", "ModeCounter",
    "diversity", "mean_pairwise_distance", "Diversity",
    "evaluate_samples", "evaluate_run",
]
