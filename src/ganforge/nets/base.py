"""The network-family registry and the two builders the rest of ganforge calls.

Conventions (stated once, see docs/DESIGN.md): images are float NCHW in [-1, 1], 2D
points are (N, d); latent z ~ N(0, I) has shape (N, z_dim); a discriminator returns
logits of shape (N,), higher = more real, and exposes ``features(x) -> (N, F)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..config import NetConfig
from ..errors import ConfigError
from ..registry import Registry
from .layers import ACTIVATIONS, check_norm


def _any_shape(shape: tuple[int, ...]) -> None:
    """Accept every shape (the family handles points and images alike)."""


@dataclass(frozen=True)
class NetFamily:
    """A generator/discriminator pair registered under one name."""

    name: str
    doc: str  # one line for `ganforge list nets`
    generator: Callable[[NetConfig, int, tuple[int, ...]], nn.Module]  # (cfg, z_dim, out_shape) -> G
    discriminator: Callable[[NetConfig, tuple[int, ...]], nn.Module]  # (cfg, in_shape) -> D
    check_shape: Callable[[tuple[int, ...]], None] = _any_shape  # raises a one-line ConfigError


NETS: Registry[NetFamily] = Registry("net")


def register_family(family: NetFamily) -> NetFamily:
    NETS.register(family.name, family, help=family.doc)
    return family


class Generator(nn.Module):
    """Base of every generator: maps z [N, z_dim] to samples [N, *out_shape]."""

    def __init__(self, z_dim: int, out_shape: tuple[int, ...]):
        super().__init__()
        self.z_dim = int(z_dim)
        self.out_shape = tuple(int(s) for s in out_shape)


class Discriminator(nn.Module):
    """Base of every discriminator: ``forward(x) = head(features(x))`` as logits [N].

    Subclasses define ``features(x) -> [N, F]`` (penultimate activations, used for feature
    matching and minibatch discrimination) and the module ``head`` ([N, F] -> [N, 1, ...]).
    """

    head: nn.Module

    def __init__(self, in_shape: tuple[int, ...]):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).reshape(-1)  # [N] logits


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def validate(cfg: NetConfig, where: str) -> None:
    """Range checks of a :class:`NetConfig`; ``where`` is its config path, e.g. ``model.g``."""
    if cfg.width < 1:
        raise ConfigError(f"{where}.width must be at least 1, got {cfg.width}")
    if cfg.depth < 0:
        raise ConfigError(f"{where}.depth must be >= 0, got {cfg.depth}")
    check_norm(cfg.norm, f"{where}.norm")
    if cfg.activation not in ACTIVATIONS:
        raise ConfigError(f"unknown {where}.activation {cfg.activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if cfg.maxout < 0:
        raise ConfigError(f"{where}.maxout must be >= 0 (0: off), got {cfg.maxout}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError(f"{where}.dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.categories < 0 or cfg.categories == 1:
        raise ConfigError(f"{where}.categories must be 0 (off) or at least 2, got {cfg.categories}")
    if not cfg.code_scale > 0:
        raise ConfigError(f"{where}.code_scale must be > 0, got {cfg.code_scale}")
    if not cfg.init_std >= 0:
        raise ConfigError(f"{where}.init_std must be >= 0 (0: the family's default initialisation), got {cfg.init_std}")


def _check_shape(shape: tuple[int, ...], what: str) -> tuple[int, ...]:
    shape = tuple(shape)
    if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ConfigError(f"{what} must be a tuple of positive ints, (d,) or (C, H, W), got {shape!r}")
    return shape


def build_generator(cfg: NetConfig, z_dim: int, out_shape: tuple[int, ...], where: str = "model.g") -> nn.Module:
    """The generator of family ``cfg.name``: z [N, z_dim] -> samples [N, *out_shape]."""
    family = NETS.get(cfg.name)
    validate(cfg, where)
    if z_dim < 1:
        raise ConfigError(f"model.z_dim must be at least 1, got {z_dim}")
    if cfg.maxout:
        raise ConfigError(f"{where}.maxout={cfg.maxout}: maxout is for the mlp discriminator only; set {where}.maxout=0")
    if cfg.categories and cfg.name != "mlp":
        raise ConfigError(f"{where}.categories={cfg.categories}: the categorical latent code is an mlp generator option; "
                          f"set {where}.categories=0 or {where}.name=mlp")
    if cfg.categories and z_dim < 2:
        raise ConfigError(f"{where}.categories={cfg.categories} needs model.z_dim >= 2 (one coordinate for the code, "
                          f"the rest continuous), got {z_dim}")
    out_shape = _check_shape(out_shape, "generator output shape")
    family.check_shape(out_shape)
    return family.generator(cfg, z_dim, out_shape)


def build_discriminator(cfg: NetConfig, in_shape: tuple[int, ...], where: str = "model.d") -> nn.Module:
    """The discriminator of family ``cfg.name``: x [N, *in_shape] -> logits [N]."""
    family = NETS.get(cfg.name)
    validate(cfg, where)
    if cfg.categories:
        raise ConfigError(f"{where}.categories={cfg.categories}: the categorical latent code is a generator option; set {where}.categories=0")
    in_shape = _check_shape(in_shape, "discriminator input shape")
    family.check_shape(in_shape)
    return family.discriminator(cfg, in_shape)
