"""Multi-process data-parallel training launched by ``torchrun`` (see docs/distributed.md).

Imported only when ``WORLD_SIZE`` > 1 is set in the environment (torchrun sets it, with
``RANK`` and ``LOCAL_RANK``); a plain ``ganforge train`` never imports this module.

What each rank does:

- device ``cuda:LOCAL_RANK`` when ``train.device`` is auto/cuda and CUDA is available, else
  the CPU; backend ``nccl`` on CUDA, ``gloo`` on the CPU;
- builds the same modules from the same seed (rank 0's states are then broadcast, so the
  replicas start identical even where initialisation is not deterministic), draws its own
  disjoint slice of each global permutation of the data (:class:`~.data_stream.DataStream`
  with ``rank``/``world``), and its own latents (per-rank RNG seed);
- after each phase's ``backward()``, the gradients of the module that phase trains are
  averaged over the ranks with one all-reduce (what ``DistributedDataParallel`` does, done
  per phase -- see "Why not the DDP wrapper" below), so every optimiser step is identical on
  every rank and the replicas stay in sync;
- at log steps only, the logged statistics are averaged over ranks and stop requests
  (Ctrl-C, the monitor's divergence stop, a sweep's pruner) are agreed on;
- at checkpoint events, buffers (BatchNorm running statistics) are broadcast from rank 0,
  every rank's RNG state is gathered, and rank 0 alone writes ``last.pt`` (with the per-rank
  RNG states under ``dist``), then all ranks pass a barrier.

Why not the ``DistributedDataParallel`` wrapper: DDP synchronises gradients only for
forward passes that go through the wrapper object, but a method's phases are closures over
its raw modules (``methods/standard.py`` calls ``G(z)`` and ``D(x)`` directly), and G's loss
backpropagates through D, gradient penalties take a ``create_graph`` gradient through D and
the unrolled GAN calls D through ``torch.func.functional_call`` -- all cases where DDP needs
``find_unused_parameters``, ``no_sync`` or has documented limitations (double backward).
Averaging the trained module's gradients after each phase's backward (as StyleGAN2-ADA's
training loop does) is mathematically what DDP computes (mean of per-rank gradients),
works for every method and phase schedule (n_critic, lazy regularisation), gradient
penalties included, and costs one all-reduce per optimiser step. What it gives up is DDP's
overlap of communication with the backward pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import rng_state, save_checkpoint, set_rng_state

if TYPE_CHECKING:
    from .loop import Trainer

RANK_SEED_STRIDE = 104_729  # rank r > 0 draws latents from seed + r * stride
SYNC_BN_ENV = "GANFORGE_SYNC_BN"  # =1: convert BatchNorm layers to SyncBatchNorm (CUDA only)

_current: "Distributed | None" = None


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Distributed:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str
    owns_group: bool = True  # False when the caller had initialised the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ collectives
    def barrier(self) -> None:
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        else:
            dist.barrier()

    def broadcast_object(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank."""
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self) -> dict[str, int]:
        """Keyword arguments of :class:`~.data_stream.DataStream` for this rank."""
        return {"rank": self.rank, "world": self.world}

    @torch.no_grad()
    def sync_grads(self, module: nn.Module) -> None:
        """Average the gradients of ``module`` over the ranks (one flat all-reduce).

        Parameters without a gradient are skipped; every rank runs the same phases on the
        same modules, so the set of parameters with gradients is the same on every rank.
        """
        params = [p for p in module.parameters() if p.grad is not None]
        if not params:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat.div_(self.world)
        offset = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n

    @torch.no_grad()
    def broadcast_states(self, modules: list[nn.Module], buffers_only: bool = False) -> None:
        """Rank 0's parameters (unless ``buffers_only``) and buffers on every rank."""
        for m in modules:
            tensors = list(m.buffers()) if buffers_only else [*m.parameters(), *m.buffers()]
            for t in tensors:
                dist.broadcast(t.data, src=0)

    def mean_stats(self, means: dict[str, float]) -> dict[str, float]:
        """Per-key mean over ranks of the ranks' logged means (every rank calls it; the
        ranks report the same statistics the same number of times, so this is the mean
        over the global batch). Only at log steps: one small object all-gather."""
        rows: list[dict[str, float]] = [{} for _ in range(self.world)]
        dist.all_gather_object(rows, means)
        out = {}
        for k in means:  # rank order of keys, as single-process
            vals = [r[k] for r in rows if k in r]
            out[k] = sum(vals) / len(vals)
        return out

    def agree_stop(self, local: bool) -> bool:
        """True on every rank when any rank wants to stop (Ctrl-C, a callback)."""
        flag = torch.tensor([1.0 if local else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)

    # ------------------------------------------------------------------ trainer hooks
    def setup_trainer(self, trainer: "Trainer") -> None:
        """After the trainer is built (same seed on every rank): identical replicas from
        rank 0, optional SyncBatchNorm, then a per-rank RNG seed for latents and noise."""
        mods = list(trainer.modules.values()) + ([trainer.ema.module] if trainer.ema is not None else [])
        self.broadcast_states(mods)
        if _env_flag(SYNC_BN_ENV):
            if self.device.type != "cuda":
                from ..errors import ConfigError

                raise ConfigError(f"{SYNC_BN_ENV}=1 needs CUDA (torch's SyncBatchNorm has no CPU kernel); unset it")
            for m in trainer.modules.values():
                # children are replaced inside m (same Parameter objects: optimisers stay valid)
                nn.SyncBatchNorm.convert_sync_batchnorm(m)
        if self.rank > 0:
            self.reseed(trainer.cfg.train.seed)

    def reseed(self, seed: int, offset: int = 0) -> None:
        from .loop import seed_everything

        seed_everything(seed + RANK_SEED_STRIDE * self.rank + offset)

    def sync_buffers(self, trainer: "Trainer") -> None:
        mods = list(trainer.modules.values()) + ([trainer.ema.module] if trainer.ema is not None else [])
        self.broadcast_states(mods, buffers_only=True)

    def checkpoint(self, trainer: "Trainer", name: str = "last.pt") -> Path:
        """Collective: rank 0 writes ``checkpoints/<name>`` with every rank's RNG state."""
        self.sync_buffers(trainer)  # BatchNorm statistics: rank 0's, so a resume is exact on every rank
        rngs: list[Any] = [None] * self.world
        dist.all_gather_object(rngs, rng_state())
        path = trainer.run_dir / "checkpoints" / name
        if self.is_main:
            s = trainer.state_dict()
            s["dist"] = {"world_size": self.world, "rng": rngs}
            save_checkpoint(path, s)
        self.barrier()  # the file is complete before any rank goes on (or reads it)
        return path

    def restore_rng(self, ckpt: dict[str, Any], trainer: "Trainer") -> None:
        """After every rank loaded rank 0's checkpoint: this rank's own RNG state when the
        checkpoint was written by as many ranks; else a fresh per-rank seed (not exact)."""
        d = ckpt.get("dist") or {}
        if int(d.get("world_size", 0)) == self.world and len(d.get("rng", [])) == self.world:
            set_rng_state(d["rng"][self.rank])
        elif self.rank > 0:
            self.reseed(trainer.cfg.train.seed, offset=trainer.step)

    def close(self) -> None:
        """Destroy the process group (unless the caller created it)."""
        global _current
        if self.owns_group and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        _current = None


def _device_for(name: str, local_rank: int) -> torch.device:
    if name in ("auto", "cuda") or name.startswith("cuda:"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if name != "auto":
            from ..errors import ConfigError

            raise ConfigError(f"train.device={name} but no CUDA device is available; use --set train.device=cpu")
    return torch.device("cpu")  # mps and others: not supported by torch.distributed here


def setup(train_device: str = "auto") -> Distributed:
    """The process group of this torchrun job (initialised on the first call)."""
    global _current
    if _current is not None:
        return _current
    world = world_size_from_env()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device_for(train_device, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    else:
        backend = str(dist.get_backend())
    _current = Distributed(rank=rank, world=world, local_rank=local_rank, device=device, backend=backend,
                           owns_group=owns)
    return _current


def current() -> Distributed | None:
    return _current
