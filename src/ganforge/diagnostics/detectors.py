"""Detectors: small pure functions of the logged history that name a training condition.

Two kinds of history feed them:

- **rows**: the log rows of ``metrics.jsonl`` (means over ``train.log_every`` steps of
  ``loss/d``, ``loss/g``, ``d/real`` = mean sigmoid(D(x)), ``d/fake`` = mean
  sigmoid(D(G(z))), ``grad/G``, ``grad/D``, ...), oldest first;
- **checks**: the sample statistics the monitor computes every few rows on a fixed latent
  set (:func:`sample_statistics`): ``diversity_ratio`` = MPD(fake) / MPD(real) with MPD the
  mean pairwise distance, and for 2D mixtures the PacGAN/VEEGAN numbers ``modes`` (modes
  holding at least one sample within 3 std of their centre), ``hq`` (fraction of such
  samples) and ``hist`` (high-quality samples per mode), plus the chance levels that make
  these numbers readable when few samples are high quality: ``hq_chance`` (the ``hq`` of
  points spread uniformly over the data's bounding box, :func:`chance_levels`) and
  ``modes_above_chance`` (modes holding clearly more high-quality samples than such a
  uniform spread would put there); for labelled images, when a classifier for them is at
  hand (cached or packaged, :mod:`ganforge.metrics.features_classifier`), the class
  coverage (:func:`class_statistics`): ``classes`` predicted among the samples against
  ``classes_real`` in a real sample of the same size, and their ratio ``class_ratio``.

Each detector returns ``None`` or an *evidence* dict of numbers. Thresholds live in one
:class:`Thresholds` dataclass, documented per field; they were set on the ring8/grid25
benchmarks so that a healthy run raises nothing (see tests/test_diagnostics.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Any

import torch

from ..metrics.diversity import mean_pairwise_distance
from ..metrics.modes import assign_modes

Row = dict[str, Any]
Check = dict[str, Any]

# log-row keys that carry training statistics (others, e.g. time and lr/*, are bookkeeping)
STAT_PREFIXES = ("loss/", "d/", "logits/", "grad/", "penalty/", "monitor/")


@dataclass
class Thresholds:
    """Named thresholds of the detectors (defaults tuned on ring8/grid25)."""

    patience_logs: int = 4  # consecutive log rows a loss/gradient sign must hold
    patience_checks: int = 3  # consecutive sample checks a coverage/diversity sign must hold
    baseline_logs: int = 5  # first log rows that define the "early level" of a statistic
    warmup: float = 0.05  # fraction of train.steps before sample checks count (G just initialised)
    image_warmup: float = 0.25  # the same for images: early image samples are near-identical blobs
    d_real_high: float = 0.9  # overpowering: D(x) at least this ...
    d_fake_low: float = 0.1  # ... and D(G(z)) at most this (also "D wins" for vanishing gradient)
    grad_ratio: float = 0.1  # vanishing gradient: grad/G below this fraction of its early median
    explode_factor: float = 100.0  # divergence: |loss| above this many times its early median (floor 1)
    explode_logs: int = 2  # divergence: consecutive rows a loss must stay exploded
    diversity_low: float = 0.5  # collapse: MPD(fake) / MPD(real) below this ...
    recovery: float = 0.1  # ... unless it rose by more than this across the window (still growing)
    hq_min: float = 0.2  # mode counts are trusted only when this fraction of samples is high quality
    quality_warmup: float = 0.5  # low quality: fraction of train.steps before it is judged (samples sharpen late)
    hq_lift: float = 5.0  # low quality: hq below min(hq_min, hq_lift x hq of a uniform spread over the data's box)
    coverage_low: float = 0.5  # collapse / hopping: covered modes at most this fraction of all modes
    coverage_fall: float = 0.3  # collapse: lost this fraction of the best coverage seen so far
    class_coverage_low: float = 0.5  # collapse (labelled images): classes predicted at most this fraction of a real sample's
    hop_tv: float = 0.5  # hopping: total variation between consecutive mode histograms at least this
    hop_count: int = 2  # hopping: this many hops within the last patience_checks + 1 checks


# --------------------------------------------------------------------------- helpers


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _early(rows: list[Row], key: str, n: int, absolute: bool = False) -> float | None:
    """Median of ``key`` (or ``|key|``) over the first ``n`` rows that hold a finite value of it."""
    vals = [abs(r[key]) if absolute else r[key] for r in rows if _finite(r.get(key))][:n]
    return median(vals) if len(vals) == n else None


def _window(rows: list[Row], n: int, *keys: str) -> list[Row] | None:
    """The last ``n`` rows when each holds finite values of ``keys``; else None."""
    w = rows[-n:]
    if len(w) < n or not all(_finite(r.get(k)) for r in w for k in keys):
        return None
    return w


def _mean(w: list[Row], key: str) -> float:
    return sum(r[key] for r in w) / len(w)


# --------------------------------------------------------------------------- row detectors


def detect_divergence(rows: list[Row], th: Thresholds = Thresholds()) -> dict | None:
    """NaN/inf in any statistic of the last row, or a loss exploded for ``explode_logs`` rows.

    Explosion: ``|loss| > explode_factor * max(1, early median |loss|)``.
    """
    if not rows:
        return None
    last = rows[-1]
    bad = sorted(k for k, v in last.items() if k.startswith(STAT_PREFIXES) and isinstance(v, float) and not math.isfinite(v))
    if bad:
        return {"nonfinite": bad, "values": [str(last[k]) for k in bad]}
    for key in ("loss/d", "loss/g"):
        early = _early(rows, key, th.baseline_logs, absolute=True)
        w = _window(rows, th.explode_logs, key)
        if early is None or w is None or len(rows) < th.baseline_logs + th.explode_logs:
            continue
        limit = th.explode_factor * max(1.0, early)
        if all(abs(r[key]) > limit for r in w):
            return {"loss": key, "value": w[-1][key], "early": early, "limit": limit}
    return None


def detect_discriminator_overpowering(rows: list[Row], th: Thresholds = Thresholds()) -> dict | None:
    """D(x) >= ``d_real_high`` and D(G(z)) <= ``d_fake_low`` on each of the last ``patience_logs`` rows."""
    w = _window(rows, th.patience_logs, "d/real", "d/fake")
    if w is None or not all(r["d/real"] >= th.d_real_high and r["d/fake"] <= th.d_fake_low for r in w):
        return None
    ev = {"d_real": _mean(w, "d/real"), "d_fake": _mean(w, "d/fake"), "rows": len(w)}
    if all(_finite(r.get("loss/d")) for r in w):
        ev["loss_d"] = _mean(w, "loss/d")
    return ev


def detect_vanishing_generator_gradient(rows: list[Row], th: Thresholds = Thresholds()) -> dict | None:
    """grad/G below ``grad_ratio`` x its early median while D wins (D(G(z)) <= ``d_fake_low``),
    on each of the last ``patience_logs`` rows. The saturating loss's signature: the gradient
    of log(1 - D(G(z))) w.r.t. D's logit is -D(G(z)), which goes to 0 as D wins."""
    if len(rows) < th.baseline_logs + th.patience_logs:
        return None
    early = _early(rows, "grad/G", th.baseline_logs)
    w = _window(rows, th.patience_logs, "grad/G", "d/fake")
    if early is None or w is None or early <= 0:
        return None
    if not all(r["grad/G"] < th.grad_ratio * early and r["d/fake"] <= th.d_fake_low for r in w):
        return None
    return {"grad_g": _mean(w, "grad/G"), "grad_g_early": early, "ratio": _mean(w, "grad/G") / early, "d_fake": _mean(w, "d/fake")}


# --------------------------------------------------------------------------- sample checks


def chance_levels(modes, std: float, threshold: float = 3.0, grid: int = 256) -> torch.Tensor:
    """Per-mode chance levels ``p [K]``: the fraction of the data's bounding box (the mode
    centres' box widened by ``threshold * std`` on each side) whose nearest centre is mode k
    within ``threshold * std``, i.e. where a *high-quality* sample of mode k lies. Points
    spread uniformly over the box are high quality with probability ``p.sum()``.

    Each mode's region is measured on the cube of side ``2 threshold std`` around it: on the
    midpoints of a ``grid``-per-side lattice (2D) or, in more dimensions, on ``grid ** 2``
    seeded uniform points. With disjoint discs inside the box this is
    ``K pi (threshold std)^2 / box area`` (tests/test_diagnostics.py checks that)."""
    mu = torch.as_tensor(modes, dtype=torch.float64).cpu()  # [K, d]
    k, d = mu.shape
    r = threshold * float(std)
    lo, hi = mu.min(0).values - r, mu.max(0).values + r  # [d] the data's box
    if d == 2:
        t = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid  # [G] cell midpoints in (0, 1)
        u = torch.cartesian_prod(t, t)  # [G^2, 2]
    else:
        u = torch.rand(grid * grid, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = torch.zeros(k, dtype=torch.float64)
    for i in range(k):
        x = mu[i] - r + 2 * r * u  # [G^2, d] the cube around mode i
        idx, hq = assign_modes(x, mu, std, threshold)
        inside = ((x >= lo) & (x <= hi)).all(1)
        p[i] = (hq & inside & (idx == i)).double().mean() * (2 * r) ** d
    return p / float((hi - lo).prod())


def above_chance(hist, n: int, chance: torch.Tensor, z: float = 3.0) -> int:
    """Modes whose high-quality count ``hist[k]`` exceeds what ``n`` points spread uniformly
    over the data's box would put there, ``n p_k``, by more than ``z`` Poisson standard
    deviations ``sqrt(n p_k)``."""
    expected = n * chance.double()  # [K]
    return int((torch.as_tensor(hist, dtype=torch.float64) > expected + z * expected.sqrt()).sum())


def sample_statistics(fake: torch.Tensor, real_mpd: float, modes=None, std: float | None = None,
                      max_pairs: int = 1000, chance: torch.Tensor | None = None) -> Check:
    """One check's numbers from generated samples ``fake [N, ...]`` (see module doc).

    ``real_mpd``: the data's mean pairwise distance on a sample of the same kind;
    ``modes [K, d]``/``std``: the mixture's centres for 2D data (else no mode numbers);
    ``chance [K]``: :func:`chance_levels` of those modes (computed when not given).
    """
    fake = fake.detach().float().cpu().reshape(fake.shape[0], -1)  # [N, D]
    ok = torch.isfinite(fake).all(dim=1)
    if not bool(ok.all()):
        return {"diversity_ratio": float("nan"), "nonfinite": float((~ok).float().mean())}
    mpd = mean_pairwise_distance(fake, max_samples=max_pairs, seed=0)
    out: Check = {"diversity": mpd, "diversity_ratio": mpd / real_mpd if real_mpd > 0 else float("nan")}
    if modes is not None:
        idx, hq = assign_modes(fake, modes, std)  # nearest centre, within 3 std
        hist = torch.bincount(idx[hq], minlength=len(modes))  # [K]
        out.update(modes=int((hist > 0).sum()), modes_total=len(modes), hq=float(hq.double().mean()), hist=hist.tolist())
        chance = chance_levels(modes, std) if chance is None else chance
        out.update(hq_chance=float(chance.sum()), modes_above_chance=above_chance(hist, len(fake), chance))
    return out


def class_statistics(pred_fake: torch.Tensor, pred_real: torch.Tensor, num_classes: int | None = None) -> Check:
    """Class coverage of generated samples: ``classes`` (distinct classes a classifier
    predicts for them), ``classes_real`` (the same for a real sample of the same size: what
    a perfect generator would reach, e.g. ~226 of 1,000 stacked classes for 256 samples) and
    ``class_ratio`` = classes / classes_real. With ``num_classes`` (K), a class counts when it
    holds at least a quarter of its uniform share, ``max(1, n // (4K))`` of n predictions, so a
    classifier's stray errors on a collapsed generator (a few samples each) add no classes."""

    def count(pred: torch.Tensor) -> int:
        least = max(1, len(pred) // (4 * num_classes)) if num_classes else 1
        return int((torch.unique(pred, return_counts=True)[1] >= least).sum())

    classes, real = count(pred_fake), count(pred_real)
    return {"classes": classes, "classes_real": real, "class_ratio": classes / real if real else float("nan")}


def _trusted(c: Check, th: Thresholds) -> bool:
    return "hist" in c and c.get("hq", 0.0) >= th.hq_min


def detect_mode_collapse(checks: list[Check], th: Thresholds = Thresholds()) -> dict | None:
    """Sustained over the last ``patience_checks`` checks, any of:

    - diversity: ``diversity_ratio < diversity_low`` and not recovering (rose by less than
      ``recovery`` across the window);
    - low coverage (2D): enough high-quality samples (``hq >= hq_min``) but at most
      ``coverage_low`` of the modes hold them;
    - falling coverage (2D): at most ``1 - coverage_fall`` of the best trusted coverage so far;
    - low class coverage (labelled images): ``class_ratio <= class_coverage_low`` and not
      recovering (rose by less than ``recovery``: early image samples gain classes fast);
    - falling class coverage: ``class_ratio`` at most ``1 - coverage_fall`` of its best so far.
    """
    w = checks[-th.patience_checks:]
    if len(w) < th.patience_checks:
        return None
    ratios = [c.get("diversity_ratio") for c in w]
    if all(_finite(r) and r < th.diversity_low for r in ratios) and ratios[-1] - ratios[0] < th.recovery:
        return {"sign": "low diversity", "diversity_ratio": ratios[-1], "window": ratios}
    cr = [c.get("class_ratio") for c in w]
    if all(_finite(r) for r in cr):
        ev = {"classes": w[-1].get("classes"), "classes_real": w[-1].get("classes_real"), "class_ratio": cr[-1], "window": cr}
        if all(r <= th.class_coverage_low for r in cr) and cr[-1] - cr[0] < th.recovery:  # not still rising
            return {"sign": "low class coverage", **ev}
        peak = max(c["class_ratio"] for c in checks if _finite(c.get("class_ratio")))
        if all(r <= (1 - th.coverage_fall) * peak for r in cr):
            return {"sign": "falling class coverage", **ev, "peak": peak}
    if not all(_trusted(c, th) for c in w):
        return None
    k, covered = w[-1]["modes_total"], [c["modes"] for c in w]
    if all(m <= th.coverage_low * k for m in covered):
        return {"sign": "low coverage", "modes": covered[-1], "modes_total": k, "hq": w[-1]["hq"], "window": covered}
    peak = max(c["modes"] for c in checks if _trusted(c, th))
    if all(m <= (1 - th.coverage_fall) * peak for m in covered):
        return {"sign": "falling coverage", "modes": covered[-1], "peak": peak, "modes_total": k, "window": covered}
    return None


def total_variation(p: list[float], q: list[float]) -> float:
    """``0.5 * sum |p/|p| - q/|q||`` of two histograms."""
    sp, sq = sum(p), sum(q)
    return 0.5 * sum(abs(a / sp - b / sq) for a, b in zip(p, q))


def detect_oscillation(checks: list[Check], th: Thresholds = Thresholds()) -> dict | None:
    """Mode hopping (2D): over the last ``patience_checks + 1`` checks, at least ``hop_count``
    consecutive pairs whose mode histograms differ by total variation >= ``hop_tv``, while
    coverage stays at most ``coverage_low`` of the modes (every check trusted, hq >= hq_min)."""
    w = checks[-(th.patience_checks + 1):]
    if len(w) < th.patience_checks + 1 or not all(_trusted(c, th) for c in w):
        return None
    if not all(c["modes"] <= th.coverage_low * c["modes_total"] for c in w):
        return None
    tv = [total_variation(a["hist"], b["hist"]) for a, b in zip(w, w[1:])]
    hops = sum(t >= th.hop_tv for t in tv)
    if hops < th.hop_count:
        return None
    return {"hops": hops, "tv": tv, "modes": [c["modes"] for c in w], "modes_total": w[-1]["modes_total"]}


def detect_low_quality(checks: list[Check], th: Thresholds = Thresholds(), final: bool = False) -> dict | None:
    """Samples off the data manifold (2D): on each of the last ``patience_checks`` checks
    the high-quality fraction ``hq`` is below ``min(hq_min, hq_lift * hq_chance)``: too few
    samples for mode counts to mean anything, and barely more than a uniform spread over the
    data's box would give (``hq_chance``). Judged after ``quality_warmup`` (the monitor
    passes only those checks). ``final``: the checks end with the last step's, and the run's
    result is judged on the checks there are (at least one): a short run has fewer than
    ``patience_checks`` checks after the warm-up. The evidence carries the coverage that can
    still be read: modes hit at all, and modes holding clearly more samples than chance.

    Images: the analogue would be the fraction of samples a trained classifier labels
    confidently; not implemented (a blurry but varied sample can be labelled confidently),
    so this is 2D only; the monitor's classifier feeds class coverage instead."""
    w = checks[-th.patience_checks:]
    if not w or (len(w) < th.patience_checks and not final):
        return None
    if not all(_finite(c.get("hq")) and _finite(c.get("hq_chance")) for c in w):
        return None
    chance = w[-1]["hq_chance"]
    limit = min(th.hq_min, th.hq_lift * chance)
    hq = [c["hq"] for c in w]
    if not all(h < limit for h in hq):
        return None
    first, last = hq[0], hq[-1]
    trend = "rising" if last > 1.25 * first + 1e-9 else "falling" if last < 0.8 * first else "flat"
    return {"hq": last, "hq_chance": chance, "lift": last / chance if chance > 0 else float("inf"),
            "modes_above_chance": w[-1].get("modes_above_chance"), "modes": w[-1].get("modes"),
            "modes_total": w[-1].get("modes_total"), "trend": trend, "window": hq, "hq_limit": limit}


ROW_DETECTORS = {
    "divergence": detect_divergence,
    "discriminator_overpowering": detect_discriminator_overpowering,
    "vanishing_generator_gradient": detect_vanishing_generator_gradient,
}
CHECK_DETECTORS = {
    "mode_collapse": detect_mode_collapse,
    "oscillation": detect_oscillation,
    "low_quality": detect_low_quality,
}
# check detectors judged only after a later warm-up than Thresholds.warmup: name -> Thresholds field
CHECK_WARMUP = {"low_quality": "quality_warmup"}
# check detectors that also judge the run's result at its last step (called with final=True there)
FINAL_VERDICT = ("low_quality",)
