"""Seed ensembles: S independent runs of the standard method with MLP nets, trained at once.

For toy sweeps (ring8 / grid25) one seed's step is a chain of small matrix products that
leaves most of a CPU core idle; S seeds stacked on a leading dimension turn each product
into one batched product (``torch.bmm`` / ``torch.baddbmm``), so S seeds cost far less
than S sequential runs. There is no Python loop over models in a training step.

What each seed s gets is what ``ganforge.train`` with ``train.seed = s`` would do:

- **initialisation**: ``seed_everything(s)``, the dataset, then the method's G and D built
  by the registered ``standard`` builder, exactly in the :class:`~.loop.Trainer`'s order:
  identical weights; the S models are then stacked (``torch.func.stack_module_state``);
- **data order**: the seed's own :class:`~.data_stream.DataStream` (seeded with s);
- **latents**: a private ``torch.Generator`` that starts from the global RNG state the
  sequential run has after building its nets, drawn in the same order (D's batch, then
  G's): the same z as the sequential run;
- **optimiser**: one optimiser of the configured kind over the stacked tensors. Adam, SGD
  and RMSprop (with their weight decay, an L2 term added to the gradient) act elementwise,
  so this is the per-seed optimiser; the lr schedule is shared (same factor per step);
- **loss**: each seed's own loss (the BCE family batched, other registered losses seed by
  seed); the total is the *sum* over seeds, so seed s's gradient is its own loss's gradient;
- **randomness inside a step** -- dropout masks in G, instance noise, smoothed / flipped
  labels, WGAN-GP interpolates, DRAGAN perturbations: drawn from the seed's private
  generator in the order the sequential run draws them from the global RNG (dropout as
  ``F.dropout`` on the CPU draws its [N, F] mask), so they are the sequential run's draws;
- **penalties** (``loss.penalty`` gp / r1 / r2 / dragan): the input gradient of the sum of
  all seeds' logits is each sample's own gradient (seeds and, without BN, samples are
  independent), then the formulas of regularizers.py per seed;
- **historical averaging, feature matching, pull-away** (remedies.py): per seed, on the
  stacked parameters / D's features ``[S, F, N]``; the running means go into the checkpoint
  as the Trainer's ``avg_g`` / ``avg_d`` modules, so ``--resume`` continues them;
- **BatchNorm**: per-seed batch statistics in training mode; the running statistics are
  stacked buffers updated like ``nn.BatchNorm1d`` (momentum, unbiased variance) on every
  training-mode G pass -- twice per step, as in the Trainer (its D phase runs G in train
  mode under ``no_grad``). Sampling uses eval mode (running statistics), as
  ``Trainer.sample`` and ``ganforge.load`` do, and the exported generator carries them.

The numbers differ from a sequential run only by floating-point rounding (batched vs
single matrix products), which GAN training amplifies over thousands of steps: seeds are
equivalent in distribution, identical over a few steps (tests/test_ensemble.py).

Supported: method ``standard``; ``mlp`` G and D (any width/depth/activation, norm batch |
layer | none, maxout D, G's categorical code, dropout in G); every registered loss with its
label options, weight clipping and penalty; remedies ``pack``, ``top_k``, ``code_balance``
(with a D without BatchNorm), ``instance_noise``, ``historical_averaging``,
``feature_matching`` and ``pull_away``; any optimiser, schedule, n_critic, EMA. Not
supported (a one-line ConfigError from :func:`check_ensemble` listing what is): spectral
norm, dropout in D, minibatch discrimination / std, unrolled GAN, the other methods.

Outputs: one ordinary run directory per seed (config.yaml with ``train.seed = s``,
metrics.jsonl, samples/, curves.png, generator.safetensors, checkpoints/last.pt and, with
``train.monitor``, diagnosis.json), so ``ganforge eval/report/runs`` and ``ganforge.load``
work on them, and ``ganforge train --resume --out DIR`` continues one seed sequentially.
Divergence noticed by the monitor is recorded but does not stop the ensemble (the seeds
are independent). Every seed is checkpointed every ``train.checkpoint_every`` steps, at the end,
and on Ctrl-C / SIGTERM; ``train_ensemble(..., resume=True)`` loads them all (the inverse of
each seed's checkpoint: stacked weights, optimiser and schedule state, data streams, latent
RNGs, EMA, running means, monitor state) and continues bit for bit.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..config import Experiment, validate
from ..errors import ConfigError
from ..losses import BCE_LOSSES, _bce, d_targets, get_loss, penalty_name
from ..regularizers import DRAGAN_SCALE, DRAGAN_TARGET
from ..remedies import code_balance_due, code_prior_step, instance_noise_std, perplexity
from .ensemble_nets import SUPPORTED, StackedNet
from .ensemble_support import check_ensemble, ensemble_unsupported
from .ensemble_outputs import _checkpoint, _restore, _write_samples
from .ensemble_state import _optimizer, _SeedStats, _SeedView


class _Ensemble:
    def __init__(self, cfg: Experiment, seeds: Sequence[int], dirs: Sequence[Path]):
        from ..data import load_dataset
        from ..methods import METHODS
        from .data_stream import DataStream
        from .loop import resolve_device, seed_everything
        from .optim import build_scheduler

        t = cfg.train
        self.device = resolve_device(t.device)
        self.cfgs, self.dirs = [], [Path(d) for d in dirs]
        self.datasets, self.streams, self.gens, Gs, Ds = [], [], [], [], []
        for s in seeds:  # set-up only: the Trainer's order, seed by seed
            c = copy.deepcopy(cfg)
            c.train.seed = int(s)
            seed_everything(c.train.seed)
            data = load_dataset(c.data, "train", seed=c.train.seed)
            if self.datasets and torch.equal(data.x, self.datasets[0].x):
                data.x = self.datasets[0].x  # share identical data (e.g. image sets that ignore the seed)
            method = METHODS.get(c.method)(c, tuple(data.shape), self.device)
            Gs.append(method.modules["g"])
            Ds.append(method.modules["d"])
            gen = torch.Generator(device=self.device)
            gen.set_state(torch.get_rng_state() if self.device.type == "cpu" else torch.cuda.get_rng_state(self.device))
            self.gens.append(gen)  # the global RNG as the sequential run has it now: its latents
            self.streams.append(DataStream(data.x.to(self.device), t.batch, seed=c.train.seed))
            self.cfgs.append(c)
            self.datasets.append(data)
        self.cfg, self.S, self.shape = cfg, len(seeds), tuple(self.datasets[0].shape)
        self.G, self.D = StackedNet(Gs), StackedNet(Ds)
        self.G.gens = self.D.gens = self.gens  # dropout masks: each seed's latent RNG, in the Trainer's order
        self.g_params, self.d_params = list(self.G.params.values()), list(self.D.params.values())
        self.opt = {"d": _optimizer(cfg.optim.d, self.d_params), "g": _optimizer(cfg.optim.g, self.g_params)}
        self.sched = {k: build_scheduler(getattr(cfg.optim, k), o, t.steps) for k, o in self.opt.items()}
        self.ema = {k: v.detach().clone() for k, v in self.G.params.items()} if t.ema > 0 else None
        self._ema_gens: dict[tuple[int, int], nn.Module] = {}  # (step, seed) -> EMA generator with its BN statistics
        self.stats = _SeedStats()
        self.step = 0
        self.elapsed = 0.0
        self._cache: tuple | None = None
        self.pack = cfg.remedies.pack
        r, L = cfg.remedies, cfg.loss
        self.adv, self.penalty_name = get_loss(L.name), penalty_name(L)
        self.labels = L.name in BCE_LOSSES and (L.smoothing > 0 or L.flip > 0 or L.real_label != 1.0)
        self.noise_steps = r.instance_noise_steps or t.steps
        # historical averaging (remedies.HistoricalAverage per seed): running means of G's and D's parameters
        self.hist = ({k: {n: v.detach().clone() for n, v in net.params.items()} for k, net in (("g", self.G), ("d", self.D))}
                     if r.historical_averaging else {})
        self.hist_count = {"g": 0, "d": 0}

    # ------------------------------------------------------------------ draws
    def real(self) -> Tensor:
        return torch.stack([st.next() for st in self.streams])  # [S, B, ...]

    def z(self, n: int) -> Tensor:
        zd = self.cfg.model.z_dim
        return torch.stack([torch.randn(n, zd, generator=g, device=self.device) for g in self.gens])  # [S, n, z]

    def d_input(self, x: Tensor) -> Tensor:
        """What D sees of a batch [S, B, ...]: instance noise from each seed's RNG (``randn_like``
        of the seed's batch, as :meth:`Remedies.d_input`), then PacGAN packing."""
        sigma = instance_noise_std(self.cfg.remedies.instance_noise, self.step, self.noise_steps)
        if sigma > 0:
            x = x + sigma * torch.stack([torch.randn(x.shape[1:], dtype=x.dtype, device=x.device, generator=g) for g in self.gens])
        return self.packed(x)

    def packed(self, x: Tensor) -> Tensor:
        """PacGAN per seed: [S, B, ...] -> [S, B/m, m * C, ...] (remedies.pack)."""
        m = self.pack
        return x if m == 1 else x.reshape(x.shape[0], x.shape[1] // m, m * x.shape[2], *x.shape[3:])

    # ------------------------------------------------------------------ phases
    def d_loss(self, lr_: Tensor, lf: Tensor) -> Tensor:
        """Every seed's adversarial D loss [S] from its logits [S, N]: the BCE fast path, BCE
        against targets drawn from each seed's RNG (label options), or the registered loss per seed."""
        L = self.cfg.loss
        if self.labels:
            t = [(d_targets(lr_[s], True, L, g), d_targets(lf[s], False, L, g)) for s, g in enumerate(self.gens)]
            return _bce(lr_, torch.stack([a for a, _ in t])).mean(1) + _bce(lf, torch.stack([b for _, b in t])).mean(1)
        if L.name in BCE_LOSSES:
            return F.softplus(-lr_).mean(1) + F.softplus(lf).mean(1)  # -log D(x) - log(1 - D(G(z)))
        return torch.stack([self.adv.d_loss(a, b, L) for a, b in zip(lr_, lf)])

    def penalty(self, r_in: Tensor, f_in: Tensor) -> Tensor:
        """Every seed's unweighted ``loss.penalty`` [S] (regularizers.py, with each seed's RNG)."""
        name, S, gens = self.penalty_name, self.S, self.gens
        real, fake = r_in.detach(), f_in.detach()
        ones = (1,) * (real.dim() - 2)
        if name == "r1":
            x = real
        elif name == "r2":
            x = fake
        elif name == "gp":  # interpolates, eps ~ U[0, 1] per sample
            eps = torch.stack([torch.rand((real.shape[1], *ones), dtype=real.dtype, device=real.device, generator=g) for g in gens])
            x = eps * real + (1 - eps) * fake
        else:  # dragan: towards the real batch perturbed by 0.5 * its std * U[0, 1] per element, alpha ~ U[0, 1] per sample
            std = real.flatten(1).std(1, unbiased=False).reshape(S, 1, *ones)
            u, alpha = [], []
            for g in gens:  # per seed: u first, then alpha, as regularizers.dragan_penalty draws them
                u.append(torch.rand(real.shape[1:], dtype=real.dtype, device=real.device, generator=g))
                alpha.append(torch.rand((real.shape[1], *ones), dtype=real.dtype, device=real.device, generator=g))
            x = real + torch.stack(alpha) * (DRAGAN_SCALE * std * torch.stack(u))
        x = x.requires_grad_(True)
        (grad,) = torch.autograd.grad(self.D.discriminator(x).sum(), x, create_graph=True)  # per sample: seeds and samples independent
        if name in ("r1", "r2"):
            return grad.flatten(2).pow(2).sum(2).mean(1)
        return (grad.flatten(2).norm(2, dim=2) - (1.0 if name == "gp" else DRAGAN_TARGET)).pow(2).mean(1)

    def average_term(self, k: str) -> Tensor:
        """Weighted historical-averaging penalty [S] of net k after adding its parameters to
        the running mean (:meth:`Remedies.average_term`)."""
        net, avg = (self.G, self.hist["g"]) if k == "g" else (self.D, self.hist["d"])
        self.hist_count[k] += 1
        pen = 0.0
        with torch.no_grad():
            for n, p in net.params.items():
                avg[n].add_((p.detach() - avg[n]) / self.hist_count[k])
        for n, p in net.params.items():
            pen = pen + (p - avg[n]).pow(2).flatten(1).sum(1)
        self.stats.report(f"remedy/hist_avg_{k}", pen)
        return self.cfg.remedies.historical_averaging * pen

    def d_step(self, log: bool) -> None:
        real = self.real()
        with torch.no_grad():
            fake = self.G.generator(self.z(real.shape[1]), train=True)  # G in train mode, as in the Trainer
        r_in, f_in = self.d_input(real), self.d_input(fake)
        if self.D.has_batch_norm:  # D sees all-real then all-fake batches (its BN statistics per call)
            lr_, lf = self.D.discriminator(r_in), self.D.discriminator(f_in)
        else:  # one batched pass over both (no BN: identical up to rounding)
            lr_, lf = self.D.discriminator(torch.cat([r_in, f_in], 1)).split([r_in.shape[1], f_in.shape[1]], 1)
        loss = self.d_loss(lr_, lf)  # [S]
        st = self.stats
        st.report("loss/d", loss)
        if self.penalty_name is not None:
            pen = self.penalty(r_in, f_in)
            st.report(f"penalty/{self.penalty_name}", pen)
            loss = loss + self.cfg.loss.penalty_weight * pen
        if self.hist:
            loss = loss + self.average_term("d")
        grads = torch.autograd.grad(loss.sum(), self.d_params)  # sum over seeds: each seed's own gradient
        self._apply("d", self.d_params, grads)
        if self.adv.clip:  # WGAN weight clipping
            with torch.no_grad():
                for p in self.d_params:
                    p.clamp_(-self.cfg.loss.clip, self.cfg.loss.clip)
        st.report("d/real", torch.sigmoid(lr_).mean(1))
        st.report("d/fake", torch.sigmoid(lf).mean(1))
        st.report("logits/real", lr_.mean(1))
        st.report("logits/fake", lf.mean(1))
        if log:
            st.report("grad/D", self.D.grad_norms(grads))

    def g_step(self, log: bool) -> None:
        fake_in = self.d_input(self.G.generator(self.z(self.cfg.train.batch), train=True))
        h = self.D.features(fake_in)  # [S, F, B/m]
        logits = self.D.head(h)  # [S, B/m]
        r = self.cfg.remedies
        if r.top_k:  # top-k training (remedies.top_k_count): G's loss on each seed's k best-scored fakes
            from ..remedies import top_k_count

            k = top_k_count(logits.shape[1], r.top_k, r.top_k_decay, self.step)
            if k < logits.shape[1]:
                logits = torch.topk(logits, k, dim=1, sorted=False).values
            if log:
                self.stats.report("remedy/top_k", torch.full((self.S,), float(k), device=logits.device))
        if self.cfg.loss.name == "saturating":
            loss = -F.softplus(logits).mean(1)  # minimise log(1 - D(G(z)))
        elif self.cfg.loss.name in BCE_LOSSES:
            loss = F.softplus(-logits).mean(1)  # non-saturating: -log D(G(z))
        else:
            loss = torch.stack([self.adv.g_loss(lg, self.cfg.loss) for lg in logits])
        self.stats.report("loss/g", loss)
        if self.D.has_batch_norm and (r.feature_matching or r.pull_away):
            h = self.D.features(fake_in)  # the Trainer's second pass (D.features): its BN statistics move again
        total = loss + self.g_terms(h, log)
        grads = torch.autograd.grad(total.sum(), self.g_params)  # D's weights get no gradient here
        self._apply("g", self.g_params, grads)
        if log:
            self.stats.report("grad/G", self.G.grad_norms(grads))

    def g_terms(self, h_fake: Tensor, log: bool) -> Tensor | float:
        """G's extra terms per seed (:meth:`Remedies.g_terms`) on D's features of the fakes [S, F, N]."""
        r, out = self.cfg.remedies, 0.0
        if self.hist:
            out = out + self.average_term("g")
        if r.feature_matching:  # ||E f(x) - E f(G(z))||^2 against a fresh (noisy, packed) real batch
            with torch.no_grad():
                h_real = self.D.features(self.d_input(self.real()))
            fm = (h_real.mean(2) - h_fake.mean(2)).pow(2).sum(1)
            self.stats.report("remedy/feature_matching", fm)
            out = out + r.feature_matching * fm
        if r.pull_away:  # mean squared cosine similarity of distinct fakes' features
            u = h_fake / h_fake.norm(dim=1, keepdim=True).clamp_min(1e-12)
            cos2 = torch.bmm(u.transpose(1, 2), u).pow(2)  # [S, N, N]
            n = cos2.shape[1]
            pt = (cos2.sum((1, 2)) - cos2.diagonal(dim1=1, dim2=2).sum(1)) / (n * (n - 1))
            self.stats.report("remedy/pull_away", pt)
            out = out + r.pull_away * pt
        if r.instance_noise and log:
            sigma = instance_noise_std(r.instance_noise, self.step, self.noise_steps)
            self.stats.report("remedy/instance_noise", torch.full((self.S,), sigma, device=self.device))
        return out

    @torch.no_grad()
    def code_balance(self) -> None:
        """:func:`ganforge.remedies.code_balance_` for every seed at once, drawing each seed's
        latents and companions from its own generator in the sequential run's order."""
        r, zd, m = self.cfg.remedies, self.cfg.model.z_dim, self.cfg.remedies.code_balance_samples
        lw = self.G.buffers["code.log_weights"]  # [S, K]
        k = lw.shape[1]
        codes = torch.arange(k, device=self.device).repeat_interleave(m).expand(self.S, -1)  # [S, K*m]
        rest = torch.stack([torch.randn(k * m, zd - 1, generator=g, device=self.device) for g in self.gens])
        x = self.G.generator(rest, train=False, codes=codes)  # [S, K*m, ...]
        if self.pack == 1:
            d = self.D.discriminator(x)  # [S, K*m]
        else:  # 4 fixed sets of pack-1 generated companions per seed (sampling.log_density_ratio)
            cz = torch.stack([torch.randn(4 * (self.pack - 1), zd, generator=g, device=self.device) for g in self.gens])
            comp = self.G.generator(cz, train=False).reshape(self.S, 4, -1)  # [S, 4, (m-1)*d]
            d = sum(self.D.discriminator(torch.cat([x.flatten(2), c.unsqueeze(1).expand(-1, x.shape[1], -1)], 2))
                    for c in comp.unbind(1)) / 4
        lw.copy_(code_prior_step(lw, d.reshape(self.S, k, m), r.code_balance))
        self.stats.report("remedy/code_perplexity", perplexity(lw))

    def _apply(self, k: str, params: list[Tensor], grads: Sequence[Tensor]) -> None:
        for p, g in zip(params, grads):
            # the fused Adam kernel reads a gradient with the parameter's strides; a double backward
            # (gradient penalties) can return a transposed one
            p.grad = g if g.stride() == p.stride() else g.contiguous()
        self.opt[k].step()
        for p in params:
            p.grad = None

    def train_step(self, log: bool) -> None:
        for _ in range(self.cfg.optim.n_critic):
            self.d_step(log)
        self.g_step(log)
        if code_balance_due(self.cfg.remedies, self.step, self.cfg.train.steps):  # as Remedies.after_g_step
            self.code_balance()
        if self.ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(self.ema.values()), [p.detach() for p in self.g_params], 1.0 - self.cfg.train.ema)
        for sc in self.sched.values():
            sc.step()
        self.step += 1

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, z: Tensor) -> Tensor:
        """Every seed's samples of the same z [n, z_dim] in eval mode (EMA weights when on): [S, n, ...]."""
        if self._cache is not None and self._cache[0] == self.step and self._cache[1] is z:
            return self._cache[2]
        if self.ema is not None and self._ema_needs_bn():  # per seed: BN statistics recomputed for the EMA weights
            zd = z.to(self.device)
            out = torch.stack([torch.cat([self.generator(s)(c) for c in zd.split(1000)]) for s in range(self.S)])
            self._cache = (self.step, z, out)
            return out
        params = self.G.params
        if self.ema is not None:
            self.G.params = self.ema
        try:
            zs = z.to(self.device).unsqueeze(0).expand(self.S, *z.shape)
            out = torch.cat([self.G.generator(c, train=False) for c in zs.split(1000, dim=1)], 1)
        finally:
            self.G.params = params
        self._cache = (self.step, z, out)  # the monitor's views ask for the same z once per seed
        return out

    def _ema_needs_bn(self) -> bool:
        return any(k.endswith("running_mean") for k in self.G.state_dict(0))

    def generator(self, s: int) -> nn.Module:
        """Seed s's generator as an ordinary module (what the Trainer would export): with EMA,
        the averaged weights and BN statistics recomputed for them (training/ema.py), cached
        per step."""
        from ..nets import build_generator
        from .ema import refresh_bn

        key = (self.step, s)
        if self.ema is not None and key in self._ema_gens:
            return self._ema_gens[key]
        G = build_generator(self.cfg.model.g, self.cfg.model.z_dim, self.shape).to(self.device)
        G.load_state_dict(self.G.state_dict(s, self.ema))
        if self.ema is not None:
            refresh_bn(G)
            self._ema_gens = {k: v for k, v in self._ema_gens.items() if k[0] == self.step}
            self._ema_gens[key] = G.eval()
        return G.eval()


# --------------------------------------------------------------------------- entry point


def resume_point(dirs: Sequence[str | Path]) -> dict | None:
    """The checkpoint an interrupted seed ensemble in ``dirs`` continues from with
    ``train_ensemble(..., resume=True)``: every run's ``checkpoints/last.pt`` readable and at the
    same step (the first one is returned, for its step and seconds); else None."""
    from .checkpoint import load_checkpoint

    lasts = [Path(d) / "checkpoints" / "last.pt" for d in dirs]
    if not lasts or not all(p.is_file() and (p.parent.parent / "config.yaml").is_file() for p in lasts):
        return None
    try:
        ckpts = [load_checkpoint(p) for p in lasts]
    except Exception:  # e.g. killed while one was written: the runs go on one by one, or afresh
        return None
    return ckpts[0] if len({int(c["step"]) for c in ckpts}) == 1 else None


def train_ensemble(cfg: Experiment, seeds: Sequence[int], out: str | Path,
                   names: Sequence[str] | None = None, resume: bool = False) -> list:
    """Train one run of ``cfg`` per seed in ``seeds`` at once; returns their :class:`~ganforge.api.Run`\\ s.

    Seed s's run directory is ``out/seed-<s>`` (or ``out/<names[i]>``); each must be new or
    empty, or, with ``resume``, hold that seed's run with ``checkpoints/last.pt`` (all at the
    same step), which is continued as if it had not stopped. Every seed is checkpointed each
    ``train.checkpoint_every`` steps; Ctrl-C or SIGTERM checkpoints them all and raises
    :class:`~ganforge.training.Interrupted`. See the module doc for what is identical to
    ``ganforge.train`` and what is supported (others: one-line ConfigError).
    """
    from ..api import Run, export_generator
    from ..errors import CheckpointError
    from ..io import write_text
    from ..report import plot_curves, read_metrics
    from .checkpoint import load_checkpoint
    from .loop import Interrupted, _StopFlag
    from .rundir import check_out_dir

    validate(cfg)
    check_ensemble(cfg)
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"train_ensemble needs distinct seeds, got {seeds}")
    names = list(names) if names is not None else [f"seed-{s}" for s in seeds]
    if len(names) != len(seeds):
        raise ConfigError(f"{len(names)} run names for {len(seeds)} seeds")
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    dirs = [Path(out) / n for n in names]
    for d, s in zip(dirs, seeds):
        c = copy.deepcopy(cfg)
        c.train.seed = s
        check_out_dir(d, c, resume=resume)
        if resume and not (d / "checkpoints" / "last.pt").is_file():
            raise CheckpointError(f"nothing to resume in {d} (no checkpoints/last.pt); retrain the ensemble without resume")
    ckpts = [load_checkpoint(d / "checkpoints" / "last.pt") for d in dirs] if resume else None
    ens = _Ensemble(cfg, seeds, dirs)
    callbacks = []
    for c, d in zip(ens.cfgs, dirs):
        d.mkdir(parents=True, exist_ok=True)
        write_text(d / "config.yaml", c.to_yaml())
        if t.monitor:
            from ..diagnostics import Monitor

            callbacks.append([Monitor(c)])
        else:
            callbacks.append([])
    if ckpts is not None:
        _restore(ens, ckpts, callbacks)
        for d in dirs:  # drop log rows written after the checkpoint, as Trainer.resume does
            rows = [r for r in read_metrics(d / "metrics.jsonl") if r.get("step", 0) <= ens.step]
            write_text(d / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    def checkpoint_all() -> None:
        for i in range(ens.S):
            _checkpoint(ens, i, callbacks[i])

    views = [_SeedView(ens, i) for i in range(ens.S)]
    bar = tqdm(total=t.steps, initial=ens.step, disable=not t.progress, desc=f"{cfg.name} x{ens.S} seeds", unit="step",
               dynamic_ncols=True, file=sys.stderr)
    start = time.perf_counter() - ens.elapsed
    with _StopFlag() as stop:
        while ens.step < t.steps:
            step = ens.step
            log = t.log_every > 0 and ((step + 1) % t.log_every == 0 or step + 1 == t.steps)
            ens.train_step(log)
            bar.update(1)
            ens.elapsed = time.perf_counter() - start
            if log:
                lrs = {f"lr/{k}": o.param_groups[0]["lr"] for k, o in ens.opt.items()}
                for i, means in enumerate(ens.stats.means()):
                    row = {"step": ens.step, "time": round(ens.elapsed, 3), **means, **lrs}
                    for cb in callbacks[i]:
                        row.update(cb.on_log(views[i], row) or {})
                    with open(dirs[i] / "metrics.jsonl", "a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
            if t.sample_every and ens.step % t.sample_every == 0 and ens.step < t.steps:
                _write_samples(ens, f"step_{ens.step:07d}")
            if stop.requested or (t.checkpoint_every and ens.step % t.checkpoint_every == 0 and ens.step < t.steps):
                checkpoint_all()
            if stop.requested:
                bar.close()
                raise Interrupted(ens.step, Path(out), how=f"the same `ganforge seeds` command, or "
                                  f"train_ensemble(..., resume=True) on {out}")
    bar.close()
    runs = []
    _write_samples(ens, "final")
    for i, (c, d) in enumerate(zip(ens.cfgs, dirs)):
        _checkpoint(ens, i, callbacks[i])
        plot_curves(read_metrics(d / "metrics.jsonl"), d / "curves.png", title=c.name)
        for cb in callbacks[i]:
            cb.on_end(views[i])
        G = ens.generator(i)
        export_generator(G, c, ens.shape, d / "generator.safetensors")
        runs.append(Run(d, c, G))
    return runs


__all__ = ["train_ensemble", "resume_point", "check_ensemble", "ensemble_unsupported", "StackedNet", "SUPPORTED"]
