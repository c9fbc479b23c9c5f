"""TensorBoard logging (``train.tensorboard=true``): scalars and fixed-noise sample grids.

:class:`TensorBoardLogger` is a training-loop callback writing to ``<run>/tensorboard``:
every numeric value of every log row as a scalar (``loss/d``, ``d/real``, ``monitor/modes``,
...) at its step, and at each ``train.sample_every`` step and at the end the fixed-noise
grid (images) or a scatter of 2,500 generated points over the data (2D). View with
``tensorboard --logdir runs/``. Without the ``tensorboard`` package it is a one-line error.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..errors import ConfigError

INSTALL = "train.tensorboard=true needs TensorBoard; install it with: pip install tensorboard"


def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line ConfigError naming the fix."""
    try:
        import tensorboard  # noqa: F401 -- torch's writer imports it lazily; fail early and clearly
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(INSTALL) from None
    return SummaryWriter


class TensorBoardLogger:
    """Training callback: ``on_log(trainer, row)`` writes scalars (and a sample grid on
    sample steps); ``on_end(trainer)`` writes the final grid and closes the file."""

    def __init__(self, log_dir: str | Path | None = None) -> None:
        self._cls = summary_writer_class()
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.writer = None

    def _writer(self, trainer):
        if self.writer is None:
            self.writer = self._cls(log_dir=str(self.log_dir or Path(trainer.run_dir) / "tensorboard"))
        return self.writer

    def on_log(self, trainer, row: dict) -> None:
        w = self._writer(trainer)
        step = int(row.get("step", trainer.step))
        for k, v in row.items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                w.add_scalar(k, v, step)
        every = trainer.cfg.train.sample_every
        if every and step % every == 0:
            self.add_samples(trainer, step)
        return None

    @torch.no_grad()
    def add_samples(self, trainer, step: int) -> None:
        w = self._writer(trainer)
        if trainer.data.kind == "points":
            w.add_figure("samples", _scatter_figure(trainer), step)
        else:
            from ..report.grids import image_grid

            w.add_image("samples", image_grid(trainer.sample(trainer.fixed_z)), step, dataformats="HWC")

    def on_end(self, trainer) -> None:
        self.add_samples(trainer, int(trainer.step))
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None


def _scatter_figure(trainer):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = torch.randn(2500, trainer.cfg.model.z_dim, generator=torch.Generator().manual_seed(0)).to(trainer.device)
    fake = trainer.sample(z).float().cpu().numpy()
    real = trainer.data.x[:2500].numpy()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    ax.scatter(real[:, 0], real[:, 1], s=2, c="0.75")
    ax.scatter(fake[:, 0], fake[:, 1], s=3, c="tab:blue", alpha=0.6)
    ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def callbacks_for(cfg) -> list:
    """``[TensorBoardLogger()]`` when ``cfg.train.tensorboard`` is set (the field may not
    exist in older configs), else ``[]``."""
    return [TensorBoardLogger()] if getattr(cfg.train, "tensorboard", False) else []
