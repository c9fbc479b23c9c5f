"""The Python API: ``ganforge.train(cfg)`` and ``ganforge.load(run_dir)``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import Experiment, resolve
from .errors import CheckpointError
from .io import atomic_path, write_text
from .report import read_metrics


def export_generator(G: torch.nn.Module, cfg: Experiment, shape: tuple[int, ...], path: Path) -> Path:
    """G's weights as safetensors (safe to share); the metadata holds the resolved config and
    the sample shape, so :func:`load` needs no dataset."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    meta = {"format": "ganforge", "config": json.dumps(cfg.to_dict()), "shape": json.dumps(list(shape))}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def _build_generator(cfg: Experiment, shape: tuple[int, ...]) -> torch.nn.Module:
    from .methods import build_method_generator  # e.g. MAD-GAN's mixture of k generators

    return build_method_generator(cfg, shape)


def _data_shape(cfg: Experiment, meta: dict) -> tuple[int, ...]:
    if "shape" in meta:
        return tuple(json.loads(meta["shape"]))
    from .data import load_dataset

    return tuple(load_dataset(cfg.data, "train", seed=cfg.train.seed).shape)


@dataclass
class Run:
    """A trained run: its directory, config and generator (EMA weights when EMA was on)."""

    run_dir: Path
    config: Experiment
    generator: torch.nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = 0, batch: int = 1000) -> torch.Tensor:
        """``n`` samples (images in [-1, 1] as (n, C, H, W), or points (n, d)) on the CPU."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.config.model.z_dim, generator=gen)
        self.generator.eval()
        return torch.cat([self.generator(c.to(self.device)).float().cpu() for c in z.split(batch)]) if n else z

    def metrics(self) -> list[dict]:
        """Rows of metrics.jsonl."""
        return read_metrics(self.run_dir / "metrics.jsonl")

    def to(self, device: str | torch.device) -> "Run":
        self.generator.to(device)
        return self


def load(run_dir: str | Path, device: str | torch.device = "cpu") -> Run:
    """Load a run's generator from ``generator.safetensors`` (or its last checkpoint)."""
    from .training.rundir import read_config

    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    st = run_dir / "generator.safetensors"
    if st.is_file():
        try:
            with safe_open(str(st), framework="pt") as f:
                meta = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:
            raise CheckpointError(f"cannot read {st} ({str(e)[:120]}); re-export it with `ganforge train --resume --out {run_dir}`") from None
    else:
        from .io import load_torch

        ckpt = load_torch(run_dir / "checkpoints" / "last.pt")
        state = ckpt.get("ema") or ckpt["modules"]["g"]
        meta = {}
    G = _build_generator(cfg, _data_shape(cfg, meta))
    try:
        G.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"weights in {run_dir} do not match its config.yaml ({str(e).splitlines()[0][:120]})") from None
    G.eval().to(device)
    return Run(run_dir, cfg, G)


def train(
    config: Experiment | str = "digits-dcgan",
    out: str | Path | None = None,
    resume: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    callbacks: list | tuple = (),
) -> Run:
    """Train a GAN; returns the :class:`Run`.

    ``config`` is an :class:`Experiment` or a recipe name/path (then ``overrides`` apply).
    ``out`` defaults to ``runs/<name>`` (``runs/<name>-2``, ... if taken; with ``resume``, the
    latest such directory).
    """
    from .training.loop import Trainer
    from .training.rundir import check_out_dir, default_out, latest_run, read_config

    cfg = resolve(config, overrides) if isinstance(config, str) else config

    def prepare(cfg: Experiment, out: str | Path | None) -> tuple[Experiment, Path]:
        if out is None:
            out = (latest_run(cfg) if resume else None) or default_out(cfg)
            if resume and not (Path(out) / "config.yaml").is_file():
                raise CheckpointError(f"no run named {cfg.name} to resume under runs/; pass --out DIR")
        out = Path(out)
        if resume and isinstance(config, str) and (out / "config.yaml").is_file():
            # Resuming by recipe name: the stored config is the truth; the overrides still apply.
            from .config import apply_override, validate

            cfg = read_config(out)
            for o in overrides:
                apply_override(cfg, o)
            validate(cfg)
        cfg = check_out_dir(out, cfg, resume)
        out.mkdir(parents=True, exist_ok=True)
        return cfg, out

    # --- distributed (training/distributed.py): under torchrun (WORLD_SIZE > 1) rank 0 alone
    # picks and checks the run directory and writes it; the other ranks get its answer.
    dist = None
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        from .training.distributed import setup

        dist = setup(cfg.train.device)
    if dist is None:
        cfg, out = prepare(cfg, out)
    else:
        try:
            answer = prepare(cfg, out) if dist.is_main else None
        except Exception as e:  # every rank raises rank 0's error, none hangs
            dist.broadcast_object(e)
            dist.close()
            raise
        answer = dist.broadcast_object(answer)
        if isinstance(answer, Exception):
            dist.close()
            raise answer
        cfg, out = answer
    try:
        # --- end distributed
        if cfg.train.monitor and (dist is None or dist.is_main):  # health / mode-collapse monitor first: it writes diagnosis.json
            from .diagnostics import Monitor

            callbacks = [Monitor(cfg), *callbacks]
        if cfg.eval.every and (dist is None or dist.is_main):  # metrics during training, best.pt by eval.best
            from .training.evaluation import Evaluator

            callbacks = [Evaluator(cfg), *callbacks]
        if cfg.train.tensorboard and (dist is None or dist.is_main):
            from .experiments.tensorboard import callbacks_for

            callbacks = [*callbacks, *callbacks_for(cfg)]
        trainer = Trainer(cfg, out, callbacks=list(callbacks))
        if trainer.is_main:
            write_text(out / "config.yaml", cfg.to_yaml())
        if resume and trainer.resume() and trainer.step >= cfg.train.steps:
            trainer.finish()  # already complete: re-export outputs only
        else:
            trainer.fit()
        return Run(out, cfg, trainer.generator.eval())
    finally:
        if dist is not None:  # --- distributed: destroy the process group at exit
            dist.close()

