"""Penalties on the discriminator: WGAN-GP, R1, R2, DRAGAN.

Every regularizer has the signature ``fn(D, real, fake) -> scalar`` and returns the
*unweighted* penalty; the caller multiplies it by ``loss.penalty_weight`` (and, for lazy
regularization, by the interval k). ``D`` maps a batch ``x`` of shape ``[N, ...]``
(points ``[N, d]`` or images ``[N, C, H, W]``) to logits ``[N]``.

Conventions shared by all penalties:

- Gradients are taken with ``torch.autograd.grad(..., create_graph=True)``, so the penalty
  is differentiable in D's parameters and its ``backward()`` trains D.
- ``real`` and ``fake`` are detached first: a penalty never sends gradients to G.
- The gradient norm of a sample is the L2 norm over all its non-batch dimensions.
- The per-sample input gradient is read from ``grad(D(x).sum(), x)``; this equals the
  per-sample gradient only when D treats samples independently, i.e. a D without
  BatchNorm (Gulrajani et al. 2017 use no batch norm in the critic for this reason).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .registry import Registry

Regularizer = Callable[[Callable[[Tensor], Tensor], Tensor, Tensor], Tensor]

REGULARIZERS: Registry[Regularizer] = Registry("regularizer")


def get_regularizer(name: str) -> Regularizer:
    """The regularizer registered as ``name``; an unknown name is a one-line ConfigError."""
    return REGULARIZERS.get(name)


def input_gradient(D: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """grad_x sum_i D(x)_i, with the graph kept (create_graph) so it can be trained through.

    ``x`` must be a leaf that requires grad. Returns a tensor shaped like ``x``.
    """
    out = D(x)  # [N] logits
    (g,) = torch.autograd.grad(outputs=out.sum(), inputs=x, create_graph=True)
    return g  # [N, ...]


def gradient_norm(D: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Per-sample ||grad_x D(x)||_2 over all non-batch dims, differentiable in D. Shape [N]."""
    x = x.detach().requires_grad_(True)
    return input_gradient(D, x).flatten(1).norm(2, dim=1)  # [N]


def _check_pair(real: Tensor, fake: Tensor, who: str) -> None:
    if real.shape != fake.shape:
        raise ValueError(f"{who}: real {tuple(real.shape)} and fake {tuple(fake.shape)} batches must have the same shape")


def _per_sample(shape: torch.Size, like: Tensor) -> Tensor:
    """U[0, 1] draws of shape [N, 1, ..., 1] (one per sample, broadcast over features)."""
    return torch.rand((shape[0],) + (1,) * (len(shape) - 1), dtype=like.dtype, device=like.device)


@REGULARIZERS.register("gp")
def gradient_penalty(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)||_2 - 1)^2] at random interpolates.

    x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1] drawn once per sample (torch global
    RNG). Paper weight lambda = 10 (``loss.penalty_weight``). Taken at interpolates, not at
    the real samples (that would be R1 with a different target).
    """
    _check_pair(real, fake, "gp")
    real, fake = real.detach(), fake.detach()
    eps = _per_sample(real.shape, real)  # [N, 1, ...]
    x_hat = eps * real + (1 - eps) * fake  # [N, ...] on the segment fake -> real
    norm = gradient_norm(D, x_hat)  # [N]
    return ((norm - 1) ** 2).mean()


@REGULARIZERS.register("r1")
def r1_penalty(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E[||grad_x D(x)||_2^2] at real x; weight = gamma/2.

    The paper's regularizer is (gamma/2) * E_real[||grad D||^2]; this returns the
    expectation only, so set ``loss.penalty_weight = gamma / 2`` (e.g. gamma = 10 -> 5).
    ``fake`` is ignored.
    """
    x = real.detach().requires_grad_(True)
    g = input_gradient(D, x).flatten(1)  # [N, F]
    return g.pow(2).sum(1).mean()


@REGULARIZERS.register("r2")
def r2_penalty(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """R2 (Mescheder et al. 2018): E[||grad_x D(x)||_2^2] at fake x; weight = gamma/2.

    Same as R1 but at generated samples (detached: G gets no gradient). ``real`` is ignored.
    """
    x = fake.detach().requires_grad_(True)
    g = input_gradient(D, x).flatten(1)  # [N, F]
    return g.pow(2).sum(1).mean()


DRAGAN_SCALE = 0.5  # perturbation scale c, in units of the real batch's std (DRAGAN code)
DRAGAN_TARGET = 1.0  # target gradient norm k (paper: k = 1)


@REGULARIZERS.register("dragan")
def dragan_penalty(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor) -> Tensor:
    """DRAGAN (Kodali et al. 2017): E[(||grad D(x_hat)|| - 1)^2] near the real data.

    As the authors' code: a perturbed batch x_p = real + 0.5 * std(real) * u, u ~ U[0, 1]
    per element, then x_hat = real + alpha * (x_p - real), alpha ~ U[0, 1] per sample (drawn
    in that order from torch's global RNG). std(real) is one number: the population std
    (ddof=0) of the whole real batch, as ``X.std()`` there. Constants: scale 0.5
    (DRAGAN_SCALE), target norm k = 1 (DRAGAN_TARGET); paper weight lambda = 10. The paper
    writes the perturbation as delta ~ N(0, cI); the code's uniform, std-scaled and
    interpolated form is what its results used. ``fake`` is ignored.
    """
    real = real.detach()
    std = real.std(unbiased=False)  # scalar over the whole batch
    u = torch.rand_like(real)  # [N, ...]
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), dtype=real.dtype, device=real.device)  # [N, 1, ...]
    x_hat = real + alpha * (DRAGAN_SCALE * std * u)
    norm = gradient_norm(D, x_hat)  # [N]
    return ((norm - DRAGAN_TARGET) ** 2).mean()
