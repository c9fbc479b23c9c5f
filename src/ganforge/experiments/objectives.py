"""What a sweep optimises: a number measured on a finished run, and its direction.

An objective names a key of :func:`ganforge.metrics.evaluate.evaluate_run`'s results, the
metric that computes it, and whether lower is better. Intermediate values (for pruning)
come from training log rows: an evaluation row (``eval/<key>`` or ``<key>``) when the loop
writes one, else the monitor's own numbers for the 2D coverage objectives
(``monitor/modes``, ``monitor/hq``: the same PacGAN counting on a fixed latent set).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError


@dataclass(frozen=True)
class Objective:
    name: str  # what the user types: --objective NAME
    metric: str  # the metric of `ganforge eval` that computes it
    key: str  # the key in eval.json's "metrics"
    minimize: bool  # lower is better
    monitor: str | None = None  # the monitor's row key that tracks it during training

    @property
    def direction(self) -> str:
        return "minimize" if self.minimize else "maximize"

    def better(self, a: float, b: float) -> bool:
        return a < b if self.minimize else a > b

    def row_value(self, row: dict) -> float | None:
        """The objective's value in a training log row, if the row has one (for pruning)."""
        for k in (f"eval/{self.key}", self.key, self.monitor):
            v = row.get(k) if k else None
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                return float(v)
        return None


OBJECTIVES = {o.name: o for o in [
    Objective("modes", "modes", "modes", False, "monitor/modes"),  # 2D: modes covered (PacGAN)
    Objective("hq", "modes", "hq", False, "monitor/hq"),  # 2D: share of high-quality samples
    Objective("rkl", "modes", "rkl", True),  # 2D: KL(q || p) of the mode histogram
    Objective("classes", "modes", "classes", False),  # labelled images: classes predicted
    Objective("kl", "modes", "kl", True),  # labelled images: KL of the class histogram
    Objective("fid", "fid", "fid", True),
    Objective("kid", "kid", "kid_mean", True),
    Objective("is", "is", "is_mean", False),
    Objective("precision", "pr", "precision", False),
    Objective("recall", "pr", "recall", False),
    Objective("density", "dc", "density", False),
    Objective("coverage", "dc", "coverage", False),
    Objective("diversity", "diversity", "diversity_ratio", False, "monitor/diversity_ratio"),
]}


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; valid objectives: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def default_objective(kind: str) -> Objective:
    """``modes`` for 2D mixtures, ``fid`` (classifier features) for images."""
    return OBJECTIVES["modes" if kind == "points" else "fid"]


def measure(run_dir: str | Path, objective: Objective, n: int = 2500, device: str = "cpu") -> float:
    """The objective on a finished run: eval.json's value when it holds it, else evaluate
    ``n`` samples now (which writes eval.json)."""
    p = Path(run_dir) / "eval.json"
    if p.is_file():
        try:
            v = json.loads(p.read_text(encoding="utf-8")).get("metrics", {}).get(objective.key)
        except json.JSONDecodeError:
            v = None
        if isinstance(v, (int, float)):
            return float(v)
    from ..metrics.evaluate import evaluate_run

    result = evaluate_run(run_dir, [objective.metric], n=n, device=device, progress=False)
    return float(result["metrics"][objective.key])
