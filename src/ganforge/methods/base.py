"""Methods and phases.

A *method* (standard adversarial training, unrolled GAN, MAD-GAN, ...) builds its modules
and declares a list of :class:`Phase`\\ s. Each phase names the module it trains, how often
it runs, and a loss function of a :class:`Context`. The training loop only runs phases: it
knows nothing about any method (as in stylegan2-ada's ``Dmain``/``Dreg``/``Gmain`` phases).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..config import Experiment
from ..registry import Registry


class Stats:
    """Running sums of scalar statistics kept on the device (no host sync per step).

    ``report(name, value)`` may be called from any phase; the loop reads the means every
    ``train.log_every`` steps with a single transfer.
    """

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def report(self, name: str, value: torch.Tensor | float) -> None:
        v = value.detach().float().mean() if torch.is_tensor(value) else torch.tensor(float(value))
        buf = self._sums.get(name)
        if buf is None or buf.device != v.device:
            self._sums[name] = v.clone()
            self._counts[name] = 1
        else:  # in place: a captured CUDA graph (training/graphs.py) keeps adding into the same buffer
            buf.add_(v)
            self._counts[name] += 1

    def means(self) -> dict[str, float]:
        """Means since the last call (one device→host transfer), then reset to zero in place."""
        names = [n for n, c in self._counts.items() if c > 0]
        if not names:
            return {}
        on_device = [n for n in names if self._sums[n].device.type != "cpu"]
        values = dict(zip(on_device, torch.stack([self._sums[n] for n in on_device]).cpu().tolist() if on_device else []))
        values.update({n: self._sums[n].item() for n in names if n not in values})  # reported as Python numbers
        out = {n: values[n] / self._counts[n] for n in names}
        for n in names:
            self._sums[n].zero_()
            self._counts[n] = 0
        return out

    def add_counts(self, counts: dict[str, int]) -> None:
        """Count reports whose values a replayed CUDA graph added on the device."""
        for n, c in counts.items():
            self._counts[n] += c


@dataclass
class Context:
    """What a phase's loss function may use."""

    modules: dict[str, nn.Module]  # e.g. {"g": G, "d": D}
    cfg: Experiment
    real: Callable[[], torch.Tensor]  # draws a batch of real data, [B, ...] on the device
    z: Callable[[int], torch.Tensor]  # draws latents, [n, z_dim] ~ N(0, I)
    stats: Stats
    step: int = 0
    log_step: bool = False  # True on steps whose statistics are logged (report extras here)
    optims: dict[str, torch.optim.Optimizer] = field(default_factory=dict)  # the trainer's optimisers, by module key


@dataclass
class Phase:
    name: str  # e.g. "D", "G"; statistics are reported under this name
    module: str  # key of the module (and optimiser) this phase trains
    loss: Callable[[Context], torch.Tensor]  # returns the scalar to minimise
    every: int = 1  # run on steps where step % every == 0 (lazy regularisation)
    repeat: int = 1  # consecutive updates per run (n_critic)
    after_step: Callable[[Context], None] | None = None  # e.g. WGAN weight clipping


@dataclass
class Method:
    """A method's modules and phases. ``generator`` is the key of the module that samples."""

    modules: dict[str, nn.Module]
    phases: list[Phase]
    generator: str = "g"
    extra_state: dict = field(default_factory=dict)


METHODS: Registry[Callable[[Experiment, tuple[int, ...], torch.device], Method]] = Registry("method")
