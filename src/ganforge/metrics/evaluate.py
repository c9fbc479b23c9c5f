"""Evaluate generated samples against a dataset: :func:`evaluate_samples`, :func:`evaluate_run`.

Which features feed which metric:

* fid, kid, pr, dc, diversity — the chosen extractor's features (``features="auto"``:
  ``raw`` for points, ``classifier`` for images);
* is — the extractor's class probabilities (inception: 1008 ImageNet classes; classifier:
  the dataset's classes); mode_score — the classifier's probabilities and the data's label
  distribution ``p*(y)``;
* modes — points with mode centres: the samples themselves (PacGAN / VEEGAN counting, no
  extractor, no reference: cheap enough for every ``eval.every`` step); labelled images:
  the classifier's predicted classes (stacked data: per channel, ``100a + 10b + c``).

The reference is ``dataset`` (the caller's split, ``reference_split`` names it), ``n_ref``
samples of it (default: as many as generated samples, at most all), cached by
:mod:`.reference`. Results are plain floats; :func:`evaluate_run` also records the
extractor, the reference set and the sample counts, which must accompany any number.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, GanforgeError
from .diversity import diversity
from .features import FEATURES, FeatureExtractor
from .frechet import frechet_distance, gaussian_statistics
from .inception_score import inception_score, label_distribution, mode_score, probabilities
from .kid import kid
from .modes import channel_kl, count_classes, count_modes_2d
from .prdc import density_coverage, precision_recall
from .reference import reference_statistics

FEATURE_METRICS = {"fid", "kid", "pr", "dc", "diversity"}


def parse_metrics(metrics) -> list[str]:
    """``"fid,kid"`` or a list → checked names (unknown name: one-line ConfigError)."""
    from . import METRICS

    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m and m.strip()]
    if not names:
        raise ConfigError(f"no metrics given; valid metrics: {', '.join(METRICS.names())}")
    for m in names:
        METRICS.get(m)
    return list(dict.fromkeys(names))


def resolve_features(features: str, dataset) -> str:
    if features == "auto":
        return "raw" if dataset.kind == "points" else "classifier"
    FEATURES.get(features)
    return features


def build_extractor(name: str, dataset, device="cpu", **opts) -> FeatureExtractor:
    return FEATURES.get(name)(dataset, **opts).to(device)


def _evaluate(fake: torch.Tensor, dataset, metrics, features: str = "auto", n: int | None = None, device="cpu",
              reference_split: str = "train", batch: int = 500, n_ref: int | None = None, progress: bool = False,
              **opts) -> tuple[dict[str, float], dict]:
    names = parse_metrics(metrics)
    if not isinstance(fake, torch.Tensor):
        fake = torch.as_tensor(np.asarray(fake))
    fake = fake.detach().cpu().to(torch.float32)
    if n is not None:
        if n > len(fake):
            raise GanforgeError(f"asked for {n} samples but got {len(fake)}")
        fake = fake[:n]
    if tuple(fake.shape[1:]) != tuple(dataset.shape):
        raise GanforgeError(f"generated samples have shape {tuple(fake.shape[1:])}, dataset {dataset.name!r} has {tuple(dataset.shape)}")
    if len(fake) < 2:
        raise GanforgeError(f"need at least 2 generated samples, got {len(fake)}")
    feat_name = resolve_features(features, dataset)
    info: dict = {"samples": len(fake), "dataset": dataset.name, "reference_split": reference_split}
    out: dict[str, float] = {}
    ext_opts = {k: opts[k] for k in ("inception_weights", "data_dir", "download") if k in opts}
    extractors: dict[str, FeatureExtractor] = {}

    def extractor(name: str) -> FeatureExtractor:
        if name not in extractors:
            # a first-use classifier training / weight download shows its bar unless told to be quiet
            extractors[name] = build_extractor(name, dataset, device, progress=opts.get("setup_progress", True), **ext_opts)
        return extractors[name]

    fake_cache: dict[str, tuple] = {}

    def fake_outputs(name: str):
        if name not in fake_cache:
            fake_cache[name] = extractor(name).extract(fake, batch=batch, progress=progress)
        return fake_cache[name]

    # ------------------------------------------------------------------ feature metrics
    if FEATURE_METRICS & set(names):
        ext = extractor(feat_name)
        ref = reference_statistics(dataset, ext, n_ref if n_ref is not None else len(fake), reference_split, batch, progress)
        f_fake, _ = fake_outputs(feat_name)
        info.update(extractor=ext.key, reference=ref.describe(), reference_samples=ref.n, reference_cache=ref.cached)
        if "fid" in names:
            mu, sigma = gaussian_statistics(f_fake)
            out["fid"] = frechet_distance(ref.mu, ref.sigma, mu, sigma)
        if "kid" in names:
            size = min(int(opts.get("kid_subset_size", 1000)), len(f_fake), ref.n)
            out["kid_mean"], out["kid_std"] = kid(ref.features, f_fake, int(opts.get("kid_subsets", 100)), size, seed=int(opts.get("seed", 0)))
            info["kid_subset_size"] = size
        chunk = int(opts.get("chunk", 1024))
        if "pr" in names:
            out["precision"], out["recall"] = precision_recall(ref.features, f_fake, int(opts.get("k_pr", 3)), chunk)
        if "dc" in names:
            out["density"], out["coverage"] = density_coverage(ref.features, f_fake, int(opts.get("k_dc", 5)), chunk)
        if "diversity" in names:
            out.update(diversity(f_fake, ref.features, int(opts.get("diversity_samples", 2000)), int(opts.get("seed", 0))))

    # ------------------------------------------------------------------ class-probability metrics
    splits = min(int(opts.get("splits", 10)), len(fake))
    if "is" in names:
        if dataset.kind != "image":
            raise GanforgeError("the Inception Score needs images; for 2D points use --metrics modes")
        name = "classifier" if feat_name == "raw" else feat_name  # raw has no class probabilities
        _, logits = fake_outputs(name)
        out["is_mean"], out["is_std"] = inception_score(probabilities(logits), splits)
        info["is_extractor"] = extractor(name).key
    if "mode_score" in names:
        if dataset.kind != "image" or dataset.labels is None:
            raise GanforgeError(f"the MODE score needs labelled images; dataset {dataset.name!r} has none")
        _, logits = fake_outputs("classifier")
        p_star = label_distribution(dataset.labels, logits.shape[1])
        out["mode_score_mean"], out["mode_score_std"] = mode_score(probabilities(logits), p_star, splits)
        info["mode_score_extractor"] = extractor("classifier").key

    # ------------------------------------------------------------------ mode counting
    if "modes" in names:
        if dataset.kind == "points":
            if dataset.modes is None or dataset.mode_std is None:
                raise GanforgeError(f"mode counting on points needs mode centres; dataset {dataset.name!r} has none")
            out.update(count_modes_2d(fake, dataset.modes, dataset.mode_std, float(opts.get("threshold", 3.0))))
        else:
            if dataset.labels is None or dataset.num_classes is None:
                raise GanforgeError(f"mode counting on images needs labels; dataset {dataset.name!r} has none")
            _, logits = fake_outputs("classifier")
            predicted = logits.argmax(1)
            k = int(dataset.num_classes)
            stacked = k == 1000 and extractor("classifier").stacked
            reference = None if stacked else label_distribution(dataset.labels, k)
            out.update(count_classes(predicted, k, reference))
            if stacked:  # how much of the KL is each channel's own class imbalance
                out.update({f"kl_channel{i}": v for i, v in enumerate(channel_kl(predicted))})
            info["modes_extractor"] = extractor("classifier").key
    if "classifier" in extractors and getattr(extractors["classifier"], "info", None):
        cinfo = extractors["classifier"].info
        info["classifier_test_accuracy"] = cinfo.get("test_accuracy")
        info.update({f"classifier_{k}": cinfo[k] for k in ("sha256", "source") if k in cinfo})
    return out, info


def evaluate_samples(fake: torch.Tensor, dataset, metrics: list[str], features: str = "auto", n: int | None = None,
                     device="cpu", reference_split: str = "train", **opts) -> dict[str, float]:
    """Metrics of generated ``fake`` ``[N, *dataset.shape]`` against ``dataset`` → ``{key: float}``.

    Keys: fid; kid_mean, kid_std; is_mean, is_std; mode_score_mean, mode_score_std;
    precision, recall; density, coverage; modes, hq, rkl (2D) or classes, kl (labelled);
    diversity, diversity_real, diversity_ratio. Options: ``batch`` (500), ``n_ref``
    (reference samples; default len(fake)), ``inception_weights``, ``data_dir``,
    ``kid_subsets`` (100), ``kid_subset_size`` (1000, capped by the sample counts),
    ``splits`` (10), ``k_pr`` (3), ``k_dc`` (5), ``chunk`` (1024), ``threshold`` (3 std),
    ``seed`` (0), ``progress`` (False), ``setup_progress`` (True: a bar while a missing
    classifier trains or weights download).
    """
    return _evaluate(fake, dataset, metrics, features, n, device, reference_split, **opts)[0]


def evaluate_run(run_dir, metrics, n: int = 10000, features: str = "auto", device="cpu", batch: int = 500,
                 reference_split: str = "train", seed: int = 0, progress: bool = True, **opts) -> dict:
    """Sample ``n`` images/points from the run, evaluate, write ``<run_dir>/eval.json``, return it.

    The JSON holds the metric values plus ``extractor``, ``reference`` (set and size),
    ``samples``, ``dataset`` and timing, so a number is never separated from its context.
    """
    import ganforge
    from ..data import load_dataset
    from ..io import write_json

    t0 = time.time()
    run = ganforge.load(run_dir, device=device)
    dataset = load_dataset(run.config.data, reference_split, seed=0)
    if run.config.data.data_dir and "data_dir" not in opts:
        opts["data_dir"] = run.config.data.data_dir  # where the classifier's training data lives
    fake = run.sample(n, seed=seed)
    opts.setdefault("setup_progress", progress)
    values, info = _evaluate(fake, dataset, metrics, features, None, device, reference_split,
                             batch=batch, progress=progress, **opts)
    result = {**info, "metrics": values, "features": resolve_features(features, dataset),
              "run": str(Path(run.run_dir)), "seconds": round(time.time() - t0, 2)}
    if "extractor" not in result:
        result["extractor"] = "none (samples compared with the mode centres)" if dataset.kind == "points" else result.get("modes_extractor", "")
        result.setdefault("reference", f"{dataset.name} mode centres" if dataset.kind == "points" else f"{dataset.name}/{reference_split} labels")
    write_json(Path(run.run_dir) / "eval.json", result)
    return result
