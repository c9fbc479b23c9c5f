"""N runs of one configuration with different seeds → mean, std and a 95% bootstrap interval.

``ganforge seeds RECIPE --n N`` trains ``OUT/seed-0 .. seed-{N-1}`` (``train.seed`` = the
recipe's seed + i), measures the objective on each and writes ``OUT/seeds.json``:

    {"objective": ..., "direction": ..., "runs": [{"run", "seed", "value", "metrics"}, ...],
     "summary": {key: {"n", "mean", "std", "ci95": [lo, hi]}, ...}}

with one summary entry per numeric metric that every run's eval.json holds. Configurations
that training/ensemble.py supports (standard method, MLP nets: the ring8 / grid25 recipes)
train their new seeds at once as a vectorised seed ensemble; ``GANFORGE_ENSEMBLE=0`` (or
``run_seeds(..., ensemble=False)``) trains them one after another instead. ``std`` is the
sample standard deviation (ddof=1; 0 for one run). The interval is the percentile bootstrap
of the mean: ``n_boot`` resamples of the N values with replacement, drawn by NumPy's
``default_rng(seed)`` (fixed: the same values give the same interval), and the 2.5% and
97.5% quantiles of the resampled means.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from ..io import write_json
from .objectives import Objective, default_objective, get_objective, measure

BOOT_SEED = 0  # bootstrap resampling seed: intervals are reproducible
N_BOOT = 10_000  # bootstrap resamples


def bootstrap_ci(values: Sequence[float], level: float = 0.95, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``: ``(lo, hi)``.

    Resamples are drawn in one ``[n_boot, N]`` index matrix, ``rng.integers(0, N, (n_boot, N))``
    with ``rng = np.random.default_rng(seed)``; the bounds are the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles (NumPy's default linear interpolation) of the row means.
    One value gives ``(v, v)``; no value gives ``(nan, nan)``.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (math.nan, math.nan)
    if not 0 < level < 1:
        raise ConfigError(f"confidence level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))  # [n_boot, N]
    means = x[idx].mean(axis=1)  # [n_boot]
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


def aggregate(values: Sequence[float], level: float = 0.95) -> dict:
    """``{"n", "mean", "std", "ci95", "values"}`` of finite ``values`` (non-finite ones are
    dropped and counted in ``"dropped"``)."""
    v = [float(a) for a in values]
    finite = [a for a in v if math.isfinite(a)]
    n = len(finite)
    mean = float(np.mean(finite)) if n else math.nan
    std = float(np.std(finite, ddof=1)) if n > 1 else (0.0 if n == 1 else math.nan)
    out = {"n": n, "mean": mean, "std": std, "ci95": list(bootstrap_ci(finite, level)), "values": v}
    if n < len(v):
        out["dropped"] = len(v) - n
    return out


def format_aggregate(a: dict, digits: int = 4) -> str:
    """``mean ± std [lo, hi]`` in ``digits`` significant digits."""
    if not a.get("n"):
        return "n/a"
    g = f".{digits}g"
    lo, hi = a["ci95"]
    return f"{a['mean']:{g}} ± {a['std']:{g}} [{lo:{g}}, {hi:{g}}]"


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _eval_metrics(run_dir: Path) -> dict:
    p = run_dir / "eval.json"
    if not p.is_file():
        return {}
    try:
        m = json.loads(p.read_text(encoding="utf-8")).get("metrics", {})
    except json.JSONDecodeError:
        return {}
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def summarize_seeds(run_dirs: Sequence[str | Path], objective: Objective | str | None = None,
                    out: str | Path | None = None, measure_missing: bool = True) -> dict:
    """Summarise finished runs of one configuration (see the module doc); writes ``out`` (a
    seeds.json path) when given. ``measure_missing``: evaluate runs whose eval.json lacks the
    objective (else they count as NaN)."""
    from ..training.rundir import read_config

    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ConfigError("no runs to summarise")
    cfgs = [read_config(d) for d in dirs]
    if objective is None:
        objective = default_objective(data_kind(cfgs[0]))
    obj = get_objective(objective) if isinstance(objective, str) else objective
    runs = []
    for d, cfg in zip(dirs, cfgs):
        m = _eval_metrics(d)
        if obj.key not in m and measure_missing:
            measure(d, obj)
            m = _eval_metrics(d)
        runs.append({"run": str(d), "seed": cfg.train.seed, "value": m.get(obj.key, math.nan), "metrics": m})
    keys = [k for k in runs[0]["metrics"] if all(k in r["metrics"] for r in runs)]
    summary = {k: aggregate([r["metrics"][k] for r in runs]) for k in keys}
    summary[obj.key] = aggregate([r["value"] for r in runs])
    result = {"objective": obj.name, "key": obj.key, "direction": obj.direction, "n_boot": N_BOOT,
              "boot_seed": BOOT_SEED, "runs": runs, "summary": summary}
    if out is not None:
        write_json(out, _json_safe(result))
    return result


def run_seeds(recipe, n: int, out: str | Path | None = None, overrides: Sequence[str] = (),
              objective: str | None = None, callbacks: Sequence = (), quiet: bool = False,
              ensemble: bool | None = None) -> dict:
    """Train ``n`` runs of ``recipe`` (a name, YAML path or Experiment) with seeds
    ``seed, seed + 1, ...`` under ``out`` (default ``runs/<name>-seeds``), then
    :func:`summarize_seeds` into ``out/seeds.json``. Finished seeds are reused; interrupted
    ones continue from their checkpoints (an interrupted ensemble as an ensemble).

    ``ensemble``: train the new seeds at once as a vectorised seed ensemble
    (training/ensemble.py: same initialisation, data order and latents per seed as a
    sequential run; numbers equal up to floating-point rounding). None (default): the
    environment variable ``GANFORGE_ENSEMBLE`` (1 / 0) decides, else automatic -- on when the
    config is supported (standard method, MLP nets, BCE loss, packing as the only remedy),
    at least two seeds are new and no ``callbacks`` are given. True: require it
    (ConfigError if unsupported); False: always one run after another."""
    import copy

    import ganforge
    from ..config import Experiment, resolve, validate
    from ..training.rundir import default_out

    if n < 1:
        raise ConfigError(f"--n/--seeds must be at least 1, got {n}")
    base = recipe if isinstance(recipe, Experiment) else resolve(recipe, list(overrides))
    validate(base)
    parent = Path(out) if out is not None else default_out(base).with_name(f"{base.name}-seeds")
    dirs = []
    fresh = [i for i in range(n) if not (parent / f"seed-{i}" / "config.yaml").is_file()]
    cut = [i for i in range(n) if i not in fresh and not (parent / f"seed-{i}" / "generator.safetensors").is_file()]
    if len(cut) >= 2 and _use_ensemble(base, ensemble, len(cut), callbacks):  # an interrupted ensemble: continue it
        from ..training.ensemble import resume_point, train_ensemble

        if resume_point([parent / f"seed-{i}" for i in cut]) is not None:
            train_ensemble(base, [base.train.seed + i for i in cut], parent, names=[f"seed-{i}" for i in cut], resume=True)
    if _use_ensemble(base, ensemble, len(fresh), callbacks):  # the new seeds at once
        from ..training.ensemble import train_ensemble

        train_ensemble(base, [base.train.seed + i for i in fresh], parent, names=[f"seed-{i}" for i in fresh])
    for i in range(n):
        cfg = copy.deepcopy(base)
        cfg.train.seed = base.train.seed + i
        d = parent / f"seed-{i}"
        done = (d / "generator.safetensors").is_file() and (d / "config.yaml").is_file()
        if not done:
            # a seed stopped before its first checkpoint (config.yaml, no last.pt) starts again in place
            ganforge.train(cfg, out=d, resume=(d / "config.yaml").is_file(), callbacks=list(callbacks))
        if not quiet:
            print(f"seed {cfg.train.seed}: {d}{' (already done)' if done else ''}")
        dirs.append(d)
    if objective is None:
        objective = default_objective(data_kind(base)).name
    return summarize_seeds(dirs, objective, out=parent / "seeds.json")


def _use_ensemble(cfg, ensemble: bool | None, fresh: int, callbacks: Sequence) -> bool:
    """Whether :func:`run_seeds` trains its ``fresh`` new seeds as one seed ensemble."""
    import os

    from ..training.ensemble import check_ensemble, ensemble_unsupported

    if ensemble is None:
        env = os.environ.get("GANFORGE_ENSEMBLE", "").strip().lower()
        if env in ("0", "false", "no", "off"):
            return False
        ensemble = True if env in ("1", "true", "yes", "on") else None
    if ensemble:
        check_ensemble(cfg)
        if callbacks:
            raise ConfigError("seed ensembles do not run training callbacks; pass ensemble=False to use them")
        return fresh >= 1
    if ensemble is None:
        return fresh >= 2 and not callbacks and ensemble_unsupported(cfg) is None
    return False


def data_kind(cfg) -> str:
    """``"points"`` or ``"image"``: the kind of ``cfg``'s dataset (2D mixtures load 64 points)."""
    import dataclasses

    from ..data import load_dataset

    small = dataclasses.replace(cfg.data, samples=64, limit=64)
    return "points" if load_dataset(small, "train", seed=0).x.dim() == 2 else "image"
