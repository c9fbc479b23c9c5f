"""Optimisers and learning-rate schedules, one per trained module (TTUR: separate lrs)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import OptimConfig


def build_optimizer(cfg: OptimConfig, params, impl: str = "foreach", capturable: bool = False) -> torch.optim.Optimizer:
    """Adam, SGD or RMSprop from an :class:`OptimConfig`.

    ``impl``: ``foreach`` (multi-tensor kernels, torch's default) or ``fused`` (Adam as one
    fused kernel per step; same update rule, results differ from foreach by float rounding).
    ``capturable``: Adam with its learning rate and step count as device tensors, so that
    ``step()`` can be captured in a CUDA graph and a schedule can still change the lr
    (training/graphs.py). Falls back to foreach where the device has no fused kernel.
    """
    params = [p for p in params if p.requires_grad]
    if cfg.name == "adam":
        kw = dict(betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
        if impl == "fused" or capturable:
            device = params[0].device if params else torch.device("cpu")
            lr = torch.tensor(cfg.lr, device=device) if capturable else cfg.lr
            try:
                return torch.optim.Adam(params, lr=lr, fused=True, capturable=capturable, **kw)
            except (RuntimeError, ValueError):  # no fused kernel for this device / dtype
                pass
        return torch.optim.Adam(params, lr=cfg.lr, **kw)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(cfg.name)  # validate() rejects unknown names first


def lr_factor(cfg: OptimConfig, step: int, total: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total`` steps.

    constant: 1;  exponential: gamma^step;  cosine: m + (1 - m) (1 + cos(pi t / T)) / 2
    with m = min_lr / lr (Loshchilov & Hutter 2017, no restarts).
    """
    if cfg.schedule == "exponential":
        return cfg.gamma**step
    if cfg.schedule == "cosine":
        m = cfg.min_lr / cfg.lr
        return m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    return 1.0


def build_scheduler(cfg: OptimConfig, opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s, total))


def grad_norm(module: nn.Module) -> torch.Tensor:
    """L2 norm of all gradients of ``module`` as a device tensor (no host sync)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
