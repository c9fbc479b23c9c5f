"""Adversarial objectives: pure functions of the discriminator's logits.

Convention: D returns logits l (unbounded, higher = more real), shape ``[N]`` (any
``[N, ...]``, e.g. PatchGAN maps, also works: losses average over all elements and
per-sample targets broadcast over the trailing dims). For the BCE family,
D(x) = sigmoid(l), and every log-sigmoid is written with softplus:

    -log(sigmoid(l))     = softplus(-l)
    -log(1 - sigmoid(l)) = softplus(l)

Each loss is an :class:`AdversarialLoss` with ``d_loss(real_logits, fake_logits, cfg)``
(minimised by D) and ``g_loss(fake_logits, cfg)`` (minimised by G). Both return scalars:
each expectation is a mean over its batch, and D's real and fake terms are *summed*
(so the BCE D loss at equilibrium is log 4, not log 2).

Label options of the BCE family (``saturating``, ``ns``, ``bce``), D side only:
``loss.smoothing = s`` draws real targets from U[1-s, 1] and fake targets from U[0, s]
per sample, fresh every call (torch global RNG); ``loss.real_label`` (e.g. 0.9) is
one-sided smoothing (fake targets stay 0); ``loss.flip = p`` swaps each sample's target
with the other class's with probability p. G's targets are never smoothed or flipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import LossConfig
from .errors import ConfigError
from .registry import Registry

DLoss = Callable[[Tensor, Tensor, LossConfig], Tensor]
GLoss = Callable[[Tensor, LossConfig], Tensor]


@dataclass(frozen=True)
class AdversarialLoss:
    """One adversarial objective: D's and G's losses plus their training options."""

    name: str  # registered name
    d_loss: DLoss  # (real_logits, fake_logits, cfg) -> scalar, minimised by D
    g_loss: GLoss  # (fake_logits, cfg) -> scalar, minimised by G
    penalty: str | None = None  # default regularizer (regularizers.py) when loss.penalty is None
    clip: bool = False  # clamp D's parameters to [-cfg.clip, cfg.clip] after each D step
    doc: str = ""  # one line for `ganforge list losses`


LOSSES: Registry[AdversarialLoss] = Registry("loss")

BCE_LOSSES = ("saturating", "ns", "bce")  # the losses that accept smoothing / real_label / flip


def _register(loss: AdversarialLoss) -> AdversarialLoss:
    return LOSSES.register(loss.name, loss, help=loss.doc)


def get_loss(name: str) -> AdversarialLoss:
    """The loss registered as ``name``; an unknown name is a one-line ConfigError."""
    return LOSSES.get(name)


# --------------------------------------------------------------------------- BCE family


def _bce(logits: Tensor, target: Tensor) -> Tensor:
    """Elementwise binary cross-entropy of sigmoid(logits) against soft targets in [0, 1].

    t * softplus(-l) + (1 - t) * softplus(l)   # -t log sigmoid(l) - (1-t) log(1 - sigmoid(l))
    """
    return target * F.softplus(-logits) + (1 - target) * F.softplus(logits)


def _draw_targets(n: int, real: bool, cfg: LossConfig, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Unflipped D targets for n samples of one class. Shape [n]."""
    s = cfg.smoothing
    if s > 0:
        u = s * torch.rand(n, dtype=like.dtype, device=like.device, generator=generator)  # U[0, s]
        return 1 - u if real else u  # real: U[1-s, 1], fake: U[0, s]
    value = cfg.real_label if real else 0.0  # real_label < 1: one-sided smoothing
    return torch.full((n,), value, dtype=like.dtype, device=like.device)


def d_targets(logits: Tensor, real: bool, cfg: LossConfig, generator: torch.Generator | None = None) -> Tensor:
    """D's targets for a batch of real (``real=True``) or fake logits, shaped to broadcast.

    RNG use (``generator``, default the torch global RNG): smoothing draws this class's
    targets, then, if flip > 0, the other class's targets and one U[0, 1] per sample for
    the swap decision.
    """
    if cfg.smoothing > 0 and cfg.real_label != 1.0:
        raise ConfigError("loss.smoothing and loss.real_label are two kinds of label smoothing; set only one")
    n = logits.shape[0]
    t = _draw_targets(n, real, cfg, logits, generator)  # [N]
    if cfg.flip > 0:
        other = _draw_targets(n, not real, cfg, logits, generator)  # [N]
        swap = torch.rand(n, device=logits.device, generator=generator) < cfg.flip  # [N] bool, P(True) = flip
        t = torch.where(swap, other, t)
    return t.reshape((n,) + (1,) * (logits.dim() - 1))  # [N, 1, ...]


def bce_d_loss(real_logits: Tensor, fake_logits: Tensor, cfg: LossConfig) -> Tensor:
    """Goodfellow et al. 2014, D side: -E[log D(x)] - E[log(1 - D(G(z)))].

    = mean softplus(-l_real) + mean softplus(l_fake) with hard targets 1/0; with the label
    options, the BCE of each sample against its (smoothed/flipped) target.
    """
    t_real = d_targets(real_logits, True, cfg)
    t_fake = d_targets(fake_logits, False, cfg)
    return _bce(real_logits, t_real).mean() + _bce(fake_logits, t_fake).mean()


def saturating_g_loss(fake_logits: Tensor, cfg: LossConfig) -> Tensor:
    """Minimax G (Goodfellow et al. 2014): minimise E[log(1 - D(G(z)))] = -E[softplus(l)].

    log(1 - sigmoid(l)) = -softplus(l). Its gradient -sigmoid(l) vanishes when D confidently
    rejects the fakes (l << 0): the saturation the paper warns about.
    """
    return -F.softplus(fake_logits).mean()


def ns_g_loss(fake_logits: Tensor, cfg: LossConfig) -> Tensor:
    """Non-saturating G (Goodfellow et al. 2014): minimise -E[log D(G(z))] = E[softplus(-l)].

    -log(sigmoid(l)) = softplus(-l); gradient -sigmoid(-l) -> -1 when l << 0. Hard target 1.
    """
    return F.softplus(-fake_logits).mean()


_register(AdversarialLoss(
    "saturating", bce_d_loss, saturating_g_loss,
    doc="minimax GAN (Goodfellow 2014): G minimises log(1 - D(G(z))); saturates early on",
))
_register(AdversarialLoss(
    "ns", bce_d_loss, ns_g_loss,
    doc="non-saturating GAN (Goodfellow 2014): G minimises -log D(G(z)); BCE on logits",
))
_register(AdversarialLoss(
    "bce", bce_d_loss, ns_g_loss,
    doc="alias of ns: the BCE-with-logits objective of DCGAN code (label options apply)",
))


# --------------------------------------------------------------------------- LSGAN


def lsgan_d_loss(real_logits: Tensor, fake_logits: Tensor, cfg: LossConfig) -> Tensor:
    """LSGAN (Mao et al. 2017), a-b-c = 0-1-1, D: 0.5 E[(D(x) - 1)^2] + 0.5 E[D(G(z))^2].

    D(.) is the raw output (the logits), with no sigmoid.
    """
    return 0.5 * (real_logits - 1).pow(2).mean() + 0.5 * fake_logits.pow(2).mean()


def lsgan_g_loss(fake_logits: Tensor, cfg: LossConfig) -> Tensor:
    """LSGAN (Mao et al. 2017), c = 1, G: 0.5 E[(D(G(z)) - 1)^2]."""
    return 0.5 * (fake_logits - 1).pow(2).mean()


_register(AdversarialLoss(
    "lsgan", lsgan_d_loss, lsgan_g_loss,
    doc="least squares GAN (Mao 2017), 0-1-1 coding: D to 1 on real, 0 on fake; G to 1",
))


# --------------------------------------------------------------------------- Wasserstein


def wgan_d_loss(real_logits: Tensor, fake_logits: Tensor, cfg: LossConfig) -> Tensor:
    """WGAN critic (Arjovsky et al. 2017): E[D(G(z))] - E[D(x)], the negated W1 estimate.

    Needs a Lipschitz critic: weight clipping (``wgan``) or a gradient penalty (``wgan-gp``).
    """
    return fake_logits.mean() - real_logits.mean()


def wgan_g_loss(fake_logits: Tensor, cfg: LossConfig) -> Tensor:
    """WGAN generator (Arjovsky et al. 2017): -E[D(G(z))]."""
    return -fake_logits.mean()


_register(AdversarialLoss(
    "wgan", wgan_d_loss, wgan_g_loss, clip=True,
    doc="Wasserstein GAN (Arjovsky 2017): critic E[D(fake)] - E[D(real)], weights clipped to loss.clip",
))
_register(AdversarialLoss(
    "wgan-gp", wgan_d_loss, wgan_g_loss, penalty="gp",
    doc="WGAN-GP (Gulrajani 2017): WGAN losses + gradient penalty (weight 10), no clipping",
))


# --------------------------------------------------------------------------- hinge


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor, cfg: LossConfig) -> Tensor:
    """Hinge D (Lim & Ye 2017; Miyato et al. 2018): E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: Tensor, cfg: LossConfig) -> Tensor:
    """Hinge G (Lim & Ye 2017; Miyato et al. 2018): -E[D(G(z))] (no hinge on G's side)."""
    return -fake_logits.mean()


_register(AdversarialLoss(
    "hinge", hinge_d_loss, hinge_g_loss,
    doc="hinge loss (Lim & Ye 2017, SN-GAN): D relu(1 - D(real)) + relu(1 + D(fake)); G -D(fake)",
))


# --------------------------------------------------------------------------- options


def check_options(cfg: LossConfig) -> AdversarialLoss:
    """Validate ``cfg`` against its loss and return the loss; one-line ConfigError if not."""
    loss = get_loss(cfg.name)
    bce = ", ".join(BCE_LOSSES)
    if cfg.name not in BCE_LOSSES:
        for key, unset in (("smoothing", 0.0), ("real_label", 1.0), ("flip", 0.0)):
            if getattr(cfg, key) != unset:
                raise ConfigError(
                    f"loss.{key} applies only to the BCE losses ({bce}), not {cfg.name!r}; "
                    f"unset it (loss.{key}={unset}) or pick one of them"
                )
    if not 0.0 <= cfg.smoothing < 0.5:
        raise ConfigError(f"loss.smoothing must be in [0, 0.5), got {cfg.smoothing}")
    if not 0.0 <= cfg.flip < 0.5:
        raise ConfigError(f"loss.flip must be in [0, 0.5), got {cfg.flip}")
    if not 0.5 < cfg.real_label <= 1.0:
        raise ConfigError(f"loss.real_label must be in (0.5, 1] (one-sided smoothing uses 0.9), got {cfg.real_label}")
    if cfg.smoothing > 0 and cfg.real_label != 1.0:
        raise ConfigError("loss.smoothing and loss.real_label are two kinds of label smoothing; set only one")
    if loss.clip and not cfg.clip > 0:
        raise ConfigError(f"loss.clip must be positive for {cfg.name!r} (WGAN uses 0.01), got {cfg.clip}")
    if cfg.penalty is not None:
        from .regularizers import REGULARIZERS

        REGULARIZERS.get(cfg.penalty)  # unknown name: ConfigError listing the valid ones
    if cfg.penalty_weight < 0:
        raise ConfigError(f"loss.penalty_weight must be >= 0, got {cfg.penalty_weight}")
    return loss


def penalty_name(cfg: LossConfig) -> str | None:
    """The regularizer to apply: ``loss.penalty`` if set, else the loss's default (or None)."""
    return cfg.penalty if cfg.penalty is not None else get_loss(cfg.name).penalty


@torch.no_grad()
def clip_weights_(module: nn.Module, c: float) -> None:
    """WGAN weight clipping (Arjovsky et al. 2017): clamp every parameter of D to [-c, c] in place."""
    if not c > 0:
        raise ValueError(f"clip bound must be positive, got {c}")
    for p in module.parameters():
        p.clamp_(-c, c)
