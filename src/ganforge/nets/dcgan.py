"""DCGAN (Radford, Metz & Chintala 2016): all-convolutional G and D.

Generator: ``z -> ConvT(b x b from 1 x 1) -> [ConvT 4x4 stride 2] * (stages - 1) ->
ConvT 4x4 stride 2 to C channels -> tanh``, with norm + activation (BN + ReLU by default)
after every layer but the output; ``b = 4`` for powers of two and ``b = 7`` for 28 x 28.
Channels halve per stage from ``width * 2**(stages - 1)`` down to ``width``.

Discriminator, the mirror image: strided 4x4 convs (no pooling, no hidden fully-connected
layer) with activation (LeakyReLU(0.2) by default) and norm on every layer but the first;
``features(x)`` is the flattened [N, width * 2**(stages-1) * b * b] map that the head, a
``b x b`` conv to one channel, turns into the logit.

The first layer of G and the head of D are computed as one matmul each
(``DenseConvTranspose2d`` / ``DenseConv2d``: the same parameters and result as torch's convs,
1.10-1.12x faster training steps on one CPU thread, 1.0-1.07x on two; ``benchmarks/dense_layers.py``).

``norm='none'`` removes the norm layers (with ``spectral_norm=True``: the SN-GAN
discriminator of Miyato et al. 2018). A conv has a bias only when ``norm='none'`` (a bias
before BatchNorm is cancelled by it); with ``norm='batch'`` and ``width=64`` the 64 x 64
nets are exactly pytorch/examples' dcgan (3,576,704 G / 2,765,568 D parameters for
z_dim=100, 3 channels). Weights: ``init_dcgan_`` (N(0, 0.02), or ``init_std``; norm scales N(1, the same)).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import NetConfig
from ..errors import ConfigError
from .base import Discriminator, Generator, NetFamily, register_family
from .layers import DenseConv2d, DenseConvTranspose2d, activation, init_dcgan_, norm2d, spectral_norm_

SIZES = (8, 16, 28, 32, 64, 128)  # supported square image sides


def check_image_shape(shape: tuple[int, ...]) -> None:
    """One-line ConfigError unless ``shape`` is (C, S, S) with S in :data:`SIZES`."""
    sizes = ", ".join(map(str, SIZES))
    if len(shape) != 3:
        raise ConfigError(
            f"dcgan needs images of shape (C, H, W), got {tuple(shape)}; "
            "for 2D points use --set model.g.name=mlp --set model.d.name=mlp"
        )
    c, h, w = shape
    if h != w or h not in SIZES:
        best = min(SIZES, key=lambda s: (abs(s - max(h, w)), s))
        raise ConfigError(
            f"dcgan supports square images of side {sizes}; got {c}x{h}x{w}; "
            f"resize with --set data.image_size={best}"
        )


def plan(size: int) -> tuple[int, int]:
    """(b, stages): the base side b (4 or 7) and the number of hidden feature maps."""
    base = 7 if size % 7 == 0 else 4
    return base, (size // base).bit_length() - 1  # size = base * 2**stages


def _hidden(cfg: NetConfig, norm: bool, channels: int) -> list[nn.Module]:
    """norm -> activation -> dropout after a hidden conv."""
    layers = [norm2d(cfg.norm, channels)] if norm and cfg.norm != "none" else []
    layers.append(activation(cfg.activation, cfg.slope))
    if cfg.dropout > 0:
        layers.append(nn.Dropout(cfg.dropout))
    return layers


class DCGANGenerator(Generator):
    """z [N, z_dim] -> images [N, C, S, S] in [-1, 1]."""

    def __init__(self, cfg: NetConfig, z_dim: int, out_shape: tuple[int, ...]):
        super().__init__(z_dim, out_shape)
        check_image_shape(self.out_shape)
        c, size, _ = self.out_shape
        base, stages = plan(size)
        ch = [cfg.width * 2 ** (stages - 1 - i) for i in range(stages)]
        bias = cfg.norm == "none"
        layers: list[nn.Module] = [DenseConvTranspose2d(z_dim, ch[0], base, 1, 0, bias=bias)]  # [N, ch0, b, b]
        layers += _hidden(cfg, True, ch[0])
        for i in range(1, stages):  # side doubles per stage
            layers.append(nn.ConvTranspose2d(ch[i - 1], ch[i], 4, 2, 1, bias=bias))
            layers += _hidden(cfg, True, ch[i])
        layers += [nn.ConvTranspose2d(ch[-1], c, 4, 2, 1, bias=bias), nn.Tanh()]  # [N, C, S, S]
        self.net = nn.Sequential(*layers)
        init_dcgan_(self, cfg.init_std or 0.02)
        spectral_norm_(self, cfg.spectral_norm)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], self.z_dim, 1, 1))


class DCGANDiscriminator(Discriminator):
    """images [N, C, S, S] -> logits [N]; ``features`` -> [N, width * 2**(stages-1) * b * b]."""

    def __init__(self, cfg: NetConfig, in_shape: tuple[int, ...]):
        super().__init__(in_shape)
        check_image_shape(self.in_shape)
        if cfg.maxout:
            raise ConfigError(f"maxout={cfg.maxout} is for the mlp discriminator; set model.d.maxout=0 or model.d.name=mlp")
        c, size, _ = self.in_shape
        base, stages = plan(size)
        ch = [cfg.width * 2**i for i in range(stages)]
        bias = cfg.norm == "none"
        layers: list[nn.Module] = []
        for i in range(stages):  # side halves per stage; no norm on the first layer
            layers.append(nn.Conv2d(c if i == 0 else ch[i - 1], ch[i], 4, 2, 1, bias=bias))
            layers += _hidden(cfg, i > 0, ch[i])
        self.body = nn.Sequential(*layers)  # [N, ch[-1], b, b]
        self.n_features = ch[-1] * base * base
        self.head = nn.Sequential(
            nn.Unflatten(1, (ch[-1], base, base)),
            DenseConv2d(ch[-1], 1, base, 1, 0, bias=bias),  # [N, 1, 1, 1], as a linear map
        )
        init_dcgan_(self, cfg.init_std or 0.02)
        spectral_norm_(self, cfg.spectral_norm)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)  # [N, F]


DCGAN = register_family(
    NetFamily(
        name="dcgan",
        doc=f"DCGAN all-conv G/D (Radford et al. 2016), BN or none, spectral norm option; square sides {', '.join(map(str, SIZES))}",
        generator=DCGANGenerator,
        discriminator=DCGANDiscriminator,
        check_shape=check_image_shape,
    )
)
