"""Generator / discriminator families, registered by name in :data:`NETS`.

``build_generator(cfg, z_dim, out_shape)`` and ``build_discriminator(cfg, in_shape)`` are
the entry points; ``ganforge list nets`` reads :data:`NETS`. Every discriminator has
``features(x) -> [N, F]`` and ``forward(x) -> [N]`` logits (higher = more real); every
generator has ``z_dim`` and ``out_shape``.
"""

from .base import NETS, Discriminator, Generator, NetFamily, build_discriminator, build_generator
from . import dcgan, mlp  # noqa: F401  (registers the families)

__all__ = ["NETS", "NetFamily", "Generator", "Discriminator", "build_generator", "build_discriminator"]
