"""Per-seed bookkeeping of a seed ensemble (training/ensemble.py): its optimiser over the
stacked tensors, per-seed running statistics, and the view of one seed a Trainer callback sees."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .ensemble import _Ensemble


def _optimizer(cfg, params: list[Tensor]) -> torch.optim.Optimizer:
    """The configured optimiser over stacked tensors; Adam as the fused kernel (one pass per
    tensor, the same update as the Trainer's Adam up to rounding), else ``build_optimizer``."""
    from .optim import build_optimizer

    if cfg.name == "adam":
        try:
            return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, fused=True)
        except (RuntimeError, ValueError):  # no fused kernel for this device / dtype
            pass
    return build_optimizer(cfg, params)


class _SeedStats:
    """Per-seed running sums ([S] tensors) of the Trainer's statistics, read once per log."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}

    def report(self, name: str, value: Tensor) -> None:  # value: [S]
        v = value.detach().float()
        self.sums[name] = self.sums[name] + v if name in self.sums else v.clone()
        self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> list[dict[str, float]]:
        names = list(self.sums)
        vals = torch.stack([self.sums[n] / self.counts[n] for n in names], 1).cpu().tolist()  # [S, K]
        self.sums.clear()
        self.counts.clear()
        return [dict(zip(names, row)) for row in vals]


class _SeedView:
    """What a Trainer callback (the monitor) sees of one seed of the ensemble."""

    def __init__(self, ens: "_Ensemble", s: int):
        self.ens, self.s = ens, s
        self.cfg, self.data, self.run_dir = ens.cfgs[s], ens.datasets[s], ens.dirs[s]
        self.device = ens.device

    @property
    def step(self) -> int:
        return self.ens.step

    def sample(self, z: Tensor) -> Tensor:
        return self.ens.sample(z)[self.s]
