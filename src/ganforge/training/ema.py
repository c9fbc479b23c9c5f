"""Exponential moving average of the generator's weights (Karras et al. 2018, Yazici et al. 2019).

    theta_ema <- decay * theta_ema + (1 - decay) * theta        after every G step

**BatchNorm.** A BN layer's running mean/var are not weights: they are statistics of the
layer's inputs, and those inputs depend on every weight before the layer. The live G's
statistics describe the live weights' activations, not the averaged weights' ones, so
copying them into the average (what this class did before) shifts a BN generator's samples
off the data (it visibly did on ring8/grid25). Instead the EMA copy's statistics are
*recomputed* for the averaged weights, as SWA does (Izmailov et al. 2018,
``torch.optim.swa_utils.update_bn``): forward passes of ``bn_samples`` fresh latents with
only the BN layers in train mode, and every BN layer's running mean and (unbiased) variance
set to the float64 mean/var of its inputs over all those latents (exactly what a single
forward pass with ``momentum=None`` stores, whatever the chunking).

The recomputation is lazy: :meth:`update` only marks the statistics stale, and reading
:attr:`module` (sampling, evaluation, checkpoints, exports) recomputes them first, so a
training step costs one ``lerp`` as before. The latents come from a private generator with
a fixed seed, so the statistics are a deterministic function of the averaged weights: the
training RNG streams are untouched and a resumed run is bit-for-bit the uninterrupted one.
A generator without BN layers, or without a ``z_dim`` attribute to draw latents for, keeps
the old behaviour (buffers copied).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

BN_SEED = 0x5EED  # seed of the private latent generator used to recompute BN statistics


def batch_norms(module: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``module`` that keep running statistics."""
    return [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_bn(module: nn.Module, z: torch.Tensor, batch: int = 512) -> None:
    """Set every BN layer's running mean / unbiased var to the float64 statistics of its
    inputs over the latents ``z [n, z_dim]``, fed through ``module`` in chunks of ``batch``.

    Only the BN layers run in train mode (so each one normalises by its chunk's statistics,
    as in training); dropout and spectral-norm power iterations stay off. The module's
    train/eval flags are restored."""
    bns = batch_norms(module)
    if not bns:
        return
    if z.shape[0] < 2:
        raise ValueError(f"recomputing BatchNorm statistics needs at least 2 latents, got {z.shape[0]}")
    sums: dict[_BatchNorm, list] = {bn: [0, 0.0, 0.0] for bn in bns}  # [count, sum [C], sum of squares [C]]

    def hook(bn, args):
        x = args[0].detach().double().transpose(0, 1).reshape(bn.num_features, -1)  # [C, N * spatial]
        s = sums[bn]
        s[0] += x.shape[1]
        s[1] = s[1] + x.sum(1)
        s[2] = s[2] + (x * x).sum(1)

    modes = {m: m.training for m in module.modules()}
    handles = [bn.register_forward_pre_hook(hook) for bn in bns]
    try:
        module.eval()
        for bn in bns:
            bn.train()
        for c in z.split(max(2, batch)):
            if c.shape[0] < 2:  # a BN layer in train mode cannot normalise a single sample
                continue
            module(c)
    finally:
        for h in handles:
            h.remove()
        for m, was in modes.items():
            m.training = was
    for bn in bns:
        n, s1, s2 = sums[bn]
        mean = s1 / n
        var = (s2 - n * mean * mean).clamp_min(0) / max(n - 1, 1)  # unbiased, as BN stores it
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.num_batches_tracked.fill_(1)


@torch.no_grad()
def refresh_bn(module: nn.Module, n: int = 2048, batch: int = 512) -> None:
    """:func:`recompute_bn` from ``n`` latents ~ N(0, I) of ``module.z_dim`` drawn from a private
    generator seeded with :data:`BN_SEED` (the same latents every time; no global RNG used)."""
    p = next(module.parameters())
    z = torch.randn(n, module.z_dim, generator=torch.Generator().manual_seed(BN_SEED))
    recompute_bn(module, z.to(device=p.device, dtype=p.dtype), batch)


class EMA:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, after every G step.

    ``module``: the averaged copy, always consistent: its BN statistics are recomputed for
    the averaged weights (from ``bn_samples`` latents, ``bn_batch`` at a time) when read
    after an :meth:`update` (see the module doc).
    """

    def __init__(self, module: nn.Module, decay: float, bn_samples: int = 2048, bn_batch: int = 512):
        self.decay = decay
        self.bn_samples, self.bn_batch = bn_samples, bn_batch
        self._module = copy.deepcopy(module).eval().requires_grad_(False)
        bns = batch_norms(self._module)
        self._bn_buffers = {id(b) for bn in bns for b in (bn.running_mean, bn.running_var, bn.num_batches_tracked)}
        self.recomputes = bool(bns) and isinstance(getattr(self._module, "z_dim", None), int)
        self._stale = self.recomputes
        # loading a state (resume) may bring statistics of other weights: recompute when read
        self._module.register_load_state_dict_post_hook(lambda m, keys: setattr(self, "_stale", self.recomputes))

    @property
    def module(self) -> nn.Module:
        """The averaged generator, with BN statistics that match its weights."""
        if self._stale:
            self.refresh()
        return self._module

    @torch.no_grad()
    def refresh(self) -> None:
        """Recompute the BN statistics of the averaged weights now (no-op without BN)."""
        self._stale = False
        if self.recomputes:
            refresh_bn(self._module, self.bn_samples, self.bn_batch)

    def mark_updated(self) -> None:
        """The averaged weights changed without :meth:`update` on the host (a replayed CUDA
        graph, training/graphs.py): recompute the BN statistics when next read."""
        self._stale = self.recomputes

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        ema_p = list(self._module.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in module.parameters()], 1.0 - self.decay)
        for b_ema, b in zip(self._module.buffers(), module.buffers()):
            if not (self.recomputes and id(b_ema) in self._bn_buffers):  # BN statistics: recomputed when read
                b_ema.copy_(b)
        self._stale = self.recomputes
