"""The training loop: run a method's phases, log, sample, checkpoint, resume.

The loop knows nothing about any GAN method. Per step it runs every phase whose turn it is
(``step % every == 0``), ``repeat`` times, each time: loss → backward → optimiser step →
``after_step``. Then the EMA of G and the learning-rate schedules advance. Statistics stay
on the device and reach the host once per ``train.log_every`` steps.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import Experiment, validate
from ..data import load_dataset
from ..io import write_text
from ..methods import METHODS, Context, Stats
from ..report import plot_curves, read_metrics, save_image_grid, save_scatter
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .data_stream import DataStream
from .ema import EMA
from .optim import build_optimizer, build_scheduler, grad_norm


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from ..errors import ConfigError

        raise ConfigError(f"train.device={name} but no CUDA device is available; use --set train.device=cpu")
    return torch.device(name)


def _distributed():
    """The torchrun process group when ``WORLD_SIZE`` > 1 (training/distributed.py), else None:
    a single-process run imports nothing distributed."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return None
    from .distributed import setup

    return setup


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _StopFlag:
    """First Ctrl-C (SIGINT) or SIGTERM (a scheduler's preemption, ``kill``): finish the current
    step, checkpoint, exit. A second one: stop at once."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.requested = False
        self._old: dict = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\nganforge: {what}: stopping after this step and saving a checkpoint (again to abort)", file=sys.stderr)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU with bf16 support, or a CPU
    with AVX512-BF16 or AMX (oneDNN's check). Elsewhere bf16 autocast is emulated: on an
    AVX2-only CPU a DCGAN step runs ~15x slower than in float32 (docs/benchmarks.md)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # no oneDNN in this build: no native path either
            return False
    return True  # other backends (mps, xpu): trust autocast


def effective_amp(amp: str, device: torch.device) -> str:
    """``train.amp`` as it runs on ``device``: ``auto`` becomes bf16 where it is native, else none;
    an explicit bf16 stays bf16 (with a warning where it is emulated and slow)."""
    if amp == "auto":
        return "bf16" if native_bf16(device) else "none"
    if amp == "bf16" and not native_bf16(device):
        import warnings

        what = "CPU has no native bfloat16 (AVX512-BF16 or AMX)" if device.type == "cpu" else f"{device.type} device has no native bfloat16"
        warnings.warn(f"train.amp=bf16: this {what}, so autocast emulates it and runs many times slower than float32; "
                      "use train.amp=auto or none", stacklevel=3)
    return amp


class Interrupted(Exception):
    """Training stopped early by Ctrl-C, SIGTERM or a callback; a checkpoint was written."""

    def __init__(self, step: int, run_dir: Path, how: str | None = None):
        how = how or f"ganforge train --resume --out {run_dir}"
        super().__init__(f"interrupted at step {step}; continue with: {how}")
        self.step, self.run_dir = step, run_dir


class Trainer:
    """Holds the state of one run; :meth:`fit` runs it to ``cfg.train.steps``."""

    def __init__(self, cfg: Experiment, run_dir: Path, callbacks: list[Any] = ()):
        validate(cfg)
        self.cfg, self.run_dir = cfg, Path(run_dir)
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        # --- distributed: None in a single process; else device cuda:LOCAL_RANK (or cpu)
        dist_setup = _distributed()
        self.dist = dist_setup(t.device) if dist_setup is not None else None
        self.device = resolve_device(t.device) if self.dist is None else self.dist.device
        # --- end distributed
        seed_everything(t.seed)
        self.data = load_dataset(cfg.data, "train", seed=t.seed)
        self.x = self.data.x.to(self.device)  # the whole training set on the device
        self.method = METHODS.get(cfg.method)(cfg, tuple(self.data.shape), self.device)
        self.modules = self.method.modules
        self.autocast = self._fast_paths()
        trained = sorted({p.module for p in self.method.phases})
        opt_cfg = {"g": cfg.optim.g, "d": cfg.optim.d}
        impl = "foreach" if t.fused == "foreach" else "fused"  # fused Adam: ~9x faster step on CPU, one launch on CUDA
        capturable = t.cuda_graph and self.device.type == "cuda"
        self.optims = {k: build_optimizer(opt_cfg.get(k, cfg.optim.d), self.modules[k].parameters(), impl, capturable)
                       for k in trained}
        self._phase_params = {k: [p for g in o.param_groups for p in g["params"]] for k, o in self.optims.items()}
        self.scheds = {k: build_scheduler(opt_cfg.get(k, cfg.optim.d), o, t.steps) for k, o in self.optims.items()}
        G = self.modules[self.method.generator]
        self.ema = EMA(G, t.ema) if t.ema > 0 else None
        self.stream = DataStream(self.x, t.batch, seed=t.seed, **({} if self.dist is None else self.dist.shard()))
        gen = torch.Generator().manual_seed(t.seed + 1)
        self.fixed_z = torch.randn(t.grid or 64, cfg.model.z_dim, generator=gen).to(self.device)
        self.stats = Stats()
        self.step = 0
        self.callbacks = list(callbacks)
        self.elapsed = 0.0
        if self.dist is not None:  # --- distributed: identical replicas, then per-rank latent seeds
            self.dist.setup_trainer(self)
        self.graph = None
        if t.cuda_graph:
            from .graphs import StepGraph, unsupported

            why = unsupported(self)
            if why is None:
                self.graph = StepGraph(self)
            else:
                import warnings

                warnings.warn(f"train.cuda_graph=true is not used with {why}; running eagerly", stacklevel=2)

    def _fast_paths(self):
        """Optional speed-ups (train.channels_last / amp / compile); each falls back cleanly.

        Returns the autocast context used around every phase's forward pass."""
        import contextlib
        import shutil
        import warnings

        t = self.cfg.train
        if t.channels_last and self.x.ndim == 4:
            self.x = self.x.contiguous(memory_format=torch.channels_last)
            for m in self.modules.values():
                m.to(memory_format=torch.channels_last)
        if t.compile:
            if self.device.type == "cpu" and not (shutil.which("cc") or shutil.which("gcc")):
                warnings.warn("train.compile=true needs a C compiler on the CPU; running eagerly", stacklevel=2)
            else:
                for m in self.modules.values():
                    m.compile()  # in place: state_dict keys are unchanged
        self.amp = effective_amp(t.amp, self.device)
        if self.amp == "bf16":  # no weight-cast cache under CUDA-graph capture (it would outlive the capture)
            return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=not t.cuda_graph)
        return contextlib.nullcontext()

    @property
    def is_main(self) -> bool:
        """True in a single process and on rank 0: the only process that writes the run directory."""
        return self.dist is None or self.dist.is_main

    def checkpoint(self) -> None:
        """Write checkpoints/last.pt: :meth:`save` in a single process; with torchrun a
        collective (every rank calls it; rank 0 writes, with every rank's RNG state)."""
        if self.dist is None:
            self.save()
        else:
            self.dist.checkpoint(self)

    # ------------------------------------------------------------------ sampling
    @property
    def generator(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.modules[self.method.generator]

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        G = self.generator
        was = G.training
        G.eval()
        out = torch.cat([G(c) for c in z.split(1000)])
        G.train(was)
        return out

    def z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.model.z_dim, device=self.device)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        s = {
            "step": self.step,
            "elapsed": self.elapsed,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optims": {k: o.state_dict() for k, o in self.optims.items()},
            "scheds": {k: s.state_dict() for k, s in self.scheds.items()},
            "stream": self.stream.state_dict(),
            "fixed_z": self.fixed_z.cpu(),
            "rng": rng_state(),
            "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else {} for cb in self.callbacks],
        }
        if self.ema is not None:
            s["ema"] = self.ema.module.state_dict()
        return s

    def load_state_dict(self, s: dict[str, Any]) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(s["modules"][k])
        for k, o in self.optims.items():
            o.load_state_dict(s["optims"][k])
        for k, sc in self.scheds.items():
            sc.load_state_dict(s["scheds"][k])
        if self.ema is not None and "ema" in s:
            self.ema.module.load_state_dict(s["ema"])
        self.stream.load_state_dict(s["stream"])
        self.fixed_z = s["fixed_z"].to(self.device)
        self.step, self.elapsed = int(s["step"]), float(s.get("elapsed", 0.0))
        for cb, st in zip(self.callbacks, s.get("callbacks", [])):
            if hasattr(cb, "load_state_dict") and st:
                cb.load_state_dict(st)
        set_rng_state(s["rng"])

    def save(self, name: str = "last.pt") -> Path:
        path = self.run_dir / "checkpoints" / name
        save_checkpoint(path, self.state_dict())
        return path

    def resume(self) -> bool:
        """Load checkpoints/last.pt when present; drop log rows written after it (all of them
        when a run stopped before its first checkpoint: it starts again from step 0)."""
        path = self.run_dir / "checkpoints" / "last.pt"
        if not path.is_file():
            log = self.run_dir / "metrics.jsonl"
            if self.is_main and log.is_file():
                write_text(log, "")
            return False
        ckpt = load_checkpoint(path)
        self.load_state_dict(ckpt)
        if self.dist is not None:  # --- distributed: this rank's own RNG state
            self.dist.restore_rng(ckpt, self)
        if self.is_main:
            log = self.run_dir / "metrics.jsonl"
            rows = [r for r in read_metrics(log) if r.get("step", 0) <= self.step]
            write_text(log, "".join(json.dumps(r) + "\n" for r in rows))
        return True

    # ------------------------------------------------------------------ outputs
    def write_samples(self, tag: str) -> Path:
        out = self.run_dir / "samples" / f"{tag}.png"
        x = self.sample(self.fixed_z)
        if self.data.kind == "points":
            many = self.sample(torch.randn(2500, self.cfg.model.z_dim, generator=torch.Generator().manual_seed(0)).to(self.device))
            real = self.data.x[torch.randperm(len(self.data.x), generator=torch.Generator().manual_seed(0))[:2500]]
            return save_scatter(many, out, real=real, modes=self.data.modes, title=f"{self.cfg.name} {tag}")
        return save_image_grid(x, out)

    def _log(self, row: dict[str, Any], bar: tqdm) -> None:
        # callbacks leave the RNG streams as they found them: the global RNG draws the training
        # latents, and loading a classifier or Inception (monitor, eval.every) initialises modules from it
        state = rng_state()
        try:
            for cb in self.callbacks:
                if hasattr(cb, "on_log"):
                    extra = cb.on_log(self, row)
                    if extra:
                        row.update(extra)
        finally:
            set_rng_state(state)
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        post = {k.split("/")[-1] if k.startswith("loss/") else k: f"{row[k]:.3f}" for k in ("loss/d", "loss/g", "d/real", "d/fake") if k in row}
        bar.set_postfix(post, refresh=False)

    # ------------------------------------------------------------------ the loop
    def iteration(self, ctx: Context) -> None:
        """One training iteration: every phase due at ``ctx.step`` (its optimiser steps), then EMA."""
        for phase in self.method.phases:
            if ctx.step % phase.every:
                continue
            module, opt = self.modules[phase.module], self.optims[phase.module]
            for _ in range(phase.repeat):
                with self.autocast:
                    loss = phase.loss(ctx)
                opt.zero_grad(set_to_none=True)
                # gradients for this phase's optimiser only: the G phase's backward through D
                # skips D's weight gradients (they were thrown away at D's next zero_grad)
                loss.backward(inputs=self._phase_params[phase.module])
                if self.dist is not None:  # --- distributed: mean gradient over ranks
                    self.dist.sync_grads(module)
                if ctx.log_step:
                    self.stats.report(f"grad/{phase.name}", grad_norm(module))
                opt.step()
                if phase.after_step is not None:
                    phase.after_step(ctx)
        if self.ema is not None:
            self.ema.update(self.modules[self.method.generator])

    def fit(self) -> None:
        t = self.cfg.train
        ctx = Context(modules=self.modules, cfg=self.cfg, real=self.stream.next, z=self.z, stats=self.stats, optims=self.optims)
        for m in self.modules.values():
            m.train()
        bar = tqdm(total=t.steps, initial=self.step, disable=not (t.progress and self.is_main), desc=self.cfg.name, unit="step",
                   dynamic_ncols=True, file=sys.stderr)
        start = time.perf_counter() - self.elapsed
        with _StopFlag() as stop:
            while self.step < t.steps:
                step = self.step
                ctx.step = step
                ctx.log_step = (t.log_every > 0 and ((step + 1) % t.log_every == 0 or step + 1 == t.steps)) or (
                    self.cfg.eval.every > 0 and (step + 1) % self.cfg.eval.every == 0)
                if self.graph is None or not self.graph.run(ctx):
                    self.iteration(ctx)
                for s in self.scheds.values():
                    s.step()
                self.step = step + 1
                bar.update(1)
                self.elapsed = time.perf_counter() - start
                if ctx.log_step:
                    means = self.stats.means()
                    if self.dist is not None:  # --- distributed: means over ranks, logged by rank 0
                        means = self.dist.mean_stats(means)
                    if self.is_main:
                        row = {"step": self.step, "time": round(self.elapsed, 3), **means}
                        row.update({f"lr/{k}": float(o.param_groups[0]["lr"]) for k, o in self.optims.items()})
                        self._log(row, bar)
                if t.sample_every and self.step % t.sample_every == 0 and self.step < t.steps and self.is_main:
                    self.write_samples(f"step_{self.step:07d}")
                if t.checkpoint_every and self.step % t.checkpoint_every == 0 and self.step < t.steps:
                    self.checkpoint()
                stopping = stop.requested or any(getattr(cb, "stop_requested", False) for cb in self.callbacks)
                if self.dist is not None:  # --- distributed: agreed at log steps only (no per-step sync)
                    stopping = self.dist.agree_stop(stopping) if ctx.log_step else False
                if stopping:
                    self.checkpoint()
                    bar.close()
                    raise Interrupted(self.step, self.run_dir)
        bar.close()
        self.finish()

    def finish(self) -> None:
        """Final checkpoint, sample grid, curves and exported weights (written by rank 0 alone
        under torchrun; every rank calls this)."""
        self.checkpoint()
        if self.is_main:
            self.write_samples("final")
            plot_curves(read_metrics(self.run_dir / "metrics.jsonl"), self.run_dir / "curves.png", title=self.cfg.name)
            for cb in self.callbacks:
                if hasattr(cb, "on_end"):
                    cb.on_end(self)
            from ..api import export_generator

            export_generator(self.generator, self.cfg, tuple(self.data.shape), self.run_dir / "generator.safetensors")
        if self.dist is not None:  # --- distributed: outputs complete before any rank returns
            self.dist.barrier()
