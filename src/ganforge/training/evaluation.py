"""Evaluation during training: every ``eval.every`` steps, metrics into metrics.jsonl and
``checkpoints/best.pt`` kept by ``eval.best``."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ConfigError

# Metrics where a larger value is better; every other key (fid, kid_mean, rkl, kl, ...) is
# better when smaller.
HIGHER_IS_BETTER = {"modes", "hq", "classes", "precision", "recall", "density", "coverage", "is_mean",
                    "mode_score_mean", "diversity_ratio"}


def better(key: str, new: float, old: float | None) -> bool:
    if old is None or (isinstance(old, float) and math.isnan(old)):
        return not math.isnan(new)
    return new > old if key in HIGHER_IS_BETTER else new < old


class Evaluator:
    """A training callback: evaluates the (EMA) generator on ``eval.n`` samples from a fixed
    latent set, adds ``eval/<key>`` to the logged row, and saves ``best.pt`` when the
    ``eval.best`` key improves."""

    def __init__(self, cfg):
        from ..metrics.evaluate import parse_metrics

        self.cfg = cfg
        self.metrics = parse_metrics(cfg.eval.metrics)
        self.best_key = cfg.eval.best
        self.best: float | None = None
        self.best_step = 0

    def due(self, step: int) -> bool:
        e = self.cfg.eval
        return bool(e.every) and (step % e.every == 0 or step == self.cfg.train.steps)

    def on_log(self, trainer, row: dict[str, Any]) -> dict[str, Any] | None:
        if not self.due(trainer.step):
            return None
        from ..metrics.evaluate import evaluate_samples

        e = self.cfg.eval
        z = torch.randn(e.n, self.cfg.model.z_dim, generator=torch.Generator().manual_seed(12345)).to(trainer.device)
        fake = trainer.sample(z).float().cpu()
        values = evaluate_samples(fake, trainer.data, self.metrics, features=e.features, device=str(trainer.device),
                                  data_dir=self.cfg.data.data_dir)
        out = {f"eval/{k}": float(v) for k, v in values.items()}
        if self.best_key:
            if self.best_key not in values:
                raise ConfigError(f"eval.best={self.best_key!r} is not among the computed values ({', '.join(sorted(values))}); pick one of them")
            v = float(values[self.best_key])
            if better(self.best_key, v, self.best):
                self.best, self.best_step = v, trainer.step
                trainer.save("best.pt")
            out[f"eval/best_{self.best_key}"] = self.best
        return out

    def state_dict(self) -> dict:
        return {"best": self.best if self.best is not None else float("nan"), "best_step": self.best_step}

    def load_state_dict(self, s: dict) -> None:
        b = float(s.get("best", float("nan")))
        self.best = None if math.isnan(b) else b
        self.best_step = int(s.get("best_step", 0))
