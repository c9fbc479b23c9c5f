"""Training methods (`ganforge list methods`)."""

from __future__ import annotations

import torch

from ..config import Experiment
from .base import METHODS, Context, Method, Phase, Stats
from . import standard, unrolled, madgan, mrgan  # noqa: F401,E401  (register the methods)

# Methods whose sampling module (Method.generator) is not a plain model.g generator: how
# ganforge.load / export rebuild it from a config and the sample shape.
GENERATOR_BUILDERS = {"madgan": madgan.build_mixture_generator}


def build_method_generator(cfg: Experiment, shape: tuple[int, ...]) -> torch.nn.Module:
    """The module that samples for a run of ``cfg.method`` (what ``ganforge.load`` fills)."""
    builder = GENERATOR_BUILDERS.get(cfg.method)
    if builder is not None:
        return builder(cfg, tuple(shape))
    from ..nets import build_generator

    return build_generator(cfg.model.g, cfg.model.z_dim, tuple(shape))


__all__ = ["METHODS", "Context", "Method", "Phase", "Stats", "GENERATOR_BUILDERS", "build_method_generator"]
