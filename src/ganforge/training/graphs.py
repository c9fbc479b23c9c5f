"""One training iteration captured as a CUDA graph and replayed (``train.cuda_graph=true``).

Small GANs on a data-centre GPU are bound by kernel launches and Python, not arithmetic: a
32x32 DCGAN iteration is ~150 kernels of a few microseconds each. Replaying the whole
iteration (D and G forward, backward, fused Adam steps, EMA) as one graph removes the
per-kernel launch cost and the interpreter from the step.

How it stays equivalent to the eager loop:

- **data**: each ``ctx.real()`` of the captured iteration reads ``x[idx]`` through a static
  index buffer; before every replay the next indices of the ordinary
  :class:`~.data_stream.DataStream` are copied into it on the device, so the data order is
  the eager order.
- **noise**: ``torch.randn`` inside the graph draws from the default CUDA generator's
  Philox stream, which PyTorch advances on every replay (fresh noise each step; the values
  differ from an eager run's, the distribution does not).
- **optimisers**: Adam with ``capturable=True`` and its learning rate as a device tensor
  (optim.py), so the schedulers still change the lr between replays.
- **statistics**: :class:`~ganforge.methods.base.Stats` accumulates in place into
  buffers that exist before capture; the counts of the captured reports are added on the
  host after each replay.
- **EMA**: the averaged weights are updated in the graph; the host marks the EMA copy's
  BatchNorm statistics stale after each replay, as an eager update does (ema.py).
- **log steps** run eagerly (they report gradient norms and read the statistics), on the
  same parameters and optimiser states.

What cannot be captured runs eagerly with a warning: any device but CUDA, torchrun,
methods other than ``standard``, phases that skip steps, and remedies whose values depend on
the step on the host (annealed instance noise, a decaying top-k, historical averaging). A capture that fails
(an op that syncs with the host, say) also falls back to eager, with the error in the
warning.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..methods.base import Context
    from .loop import Trainer

WARMUP = 3  # eager iterations on a side stream before capture (lazy inits: Adam state, cuBLAS/cuDNN workspaces)


def unsupported(trainer: Trainer) -> str | None:
    """Why this run cannot be captured, or None when it can."""
    cfg = trainer.cfg
    if trainer.device.type != "cuda":
        return f"device {trainer.device.type}"
    if trainer.dist is not None:
        return "torchrun (gradients are averaged across processes between backward and step)"
    if cfg.method != "standard":
        return f"method {cfg.method!r}"
    if any(p.every != 1 for p in trainer.method.phases):
        return "a phase that runs every few steps (lazy regularisation)"
    r = cfg.remedies
    if r.instance_noise > 0:
        return "annealed instance noise (its std changes every step on the host)"
    if r.historical_averaging > 0:
        return "historical averaging (a running mean with a host-side count)"
    if getattr(r, "code_balance", 0):
        return "code balancing (a host-side update every few steps)"
    if getattr(r, "top_k", 0) and getattr(r, "top_k_decay", 0):
        return "a decaying top-k (k changes with the step on the host)"
    if any(o.__class__ is not torch.optim.Adam for o in trainer.optims.values()):
        return "an optimiser other than Adam (only Adam is built capturable)"
    return None


class StepGraph:
    """Runs :meth:`Trainer.iteration` eagerly for ``WARMUP`` steps, then captures it once and
    replays it on every non-log step."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False
        self.warm = 0
        self.real_calls = 0  # ctx.real() calls per iteration, counted during warm-up
        self.idx: list[torch.Tensor] = []  # static index buffers, one per real() call
        self.counts: dict[str, int] = {}  # Stats reports per captured iteration

    def run(self, ctx: Context) -> bool:
        """One training iteration; False when the caller must run it eagerly itself."""
        if self.failed or ctx.log_step:
            return False
        if self.graph is None:
            if self.warm < WARMUP:
                self._warmup(ctx)
                return True
            self._capture(ctx)
            if self.graph is None:
                return False
        tr = self.trainer
        for buf in self.idx:
            buf.copy_(tr.stream.next_index())
        self.graph.replay()
        tr.stats.add_counts(self.counts)
        if tr.ema is not None:
            tr.ema.mark_updated()
        return True

    def _warmup(self, ctx: Context) -> None:
        calls = 0

        def real() -> torch.Tensor:
            nonlocal calls
            calls += 1
            return self.trainer.stream.next()

        side = torch.cuda.Stream(self.trainer.device)
        side.wait_stream(torch.cuda.current_stream(self.trainer.device))
        with torch.cuda.stream(side):
            self.trainer.iteration(dataclasses.replace(ctx, real=real))
        torch.cuda.current_stream(self.trainer.device).wait_stream(side)
        self.real_calls = calls
        self.warm += 1

    def _capture(self, ctx: Context) -> None:
        tr = self.trainer
        self.idx = [torch.empty(tr.cfg.train.batch, dtype=torch.long, device=tr.device) for _ in range(self.real_calls)]
        calls = iter(self.idx)
        counts: dict[str, int] = {}
        stats = tr.stats

        class Recording:  # the trainer's Stats, counting what the captured iteration reports
            def report(self, name, value):
                if not torch.is_tensor(value) or value.device.type != "cuda":
                    raise RuntimeError(f"statistic {name!r} is computed on the host")
                counts[name] = counts.get(name, 0) + 1
                stats.report(name, value)

        def real() -> torch.Tensor:
            return tr.stream.x[next(calls)]

        saved = dict(stats._counts)
        torch.cuda.synchronize(tr.device)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                tr.iteration(dataclasses.replace(ctx, real=real, stats=Recording()))
        except Exception as e:  # noqa: BLE001 -- any failure: run eagerly instead
            self.failed = True
            warnings.warn(f"train.cuda_graph: capture failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                          "running eagerly", stacklevel=2)
            torch.cuda.synchronize(tr.device)
            return
        finally:
            stats._counts.clear()  # capture ran no kernels: nothing was added yet
            stats._counts.update(saved)
        self.graph, self.counts = graph, counts
