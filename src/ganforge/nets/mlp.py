"""Multilayer perceptrons for 2D point sets and small images (Goodfellow et al. 2014).

Hidden layer: ``Linear(width) -> norm -> activation -> dropout``; with ``maxout = k > 0``
(discriminator only) a hidden layer is ``Maxout(width, k pieces) -> norm -> dropout``, the
maxout discriminator of the original GAN paper and the PacGAN 2D setup.

Generator input: with ``categories = K > 0`` the first latent coordinate becomes one of K
equiprobable one-hot codes (:class:`CategoricalCode`), for data made of disconnected modes.

Generator output: linear for points ``(d,)``; ``tanh`` then reshape for images
``(C, H, W)``. Discriminator: flatten -> hidden stack -> ``Linear(1)`` logit.

Norms: BatchNorm in an MLP discriminator is allowed, but ``norm=none`` is the usual choice
there (BN couples the samples of a batch, which interacts with gradient penalties and makes
D's score of one sample depend on the rest of its batch).

Weights keep PyTorch's default initialisation. A hidden linear layer has a bias only when
no norm follows it (a bias before BatchNorm is cancelled by the mean subtraction).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import NetConfig
from .base import Discriminator, Generator, NetFamily, numel, register_family
from .layers import Maxout, activation, norm1d, spectral_norm_


def hidden_stack(cfg: NetConfig, in_features: int, maxout: int = 0) -> nn.Sequential:
    """``cfg.depth`` hidden layers of ``cfg.width`` units; ``maxout > 0`` uses maxout units."""
    layers: list[nn.Module] = []
    bias = cfg.norm == "none"
    n = in_features
    for _ in range(cfg.depth):
        if maxout:
            layers.append(Maxout(n, cfg.width, maxout, bias=bias))
        else:
            layers.append(nn.Linear(n, cfg.width, bias=bias))
        if cfg.norm != "none":
            layers.append(norm1d(cfg.norm, cfg.width))
        if not maxout:
            layers.append(activation(cfg.activation, cfg.slope))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        n = cfg.width
    return nn.Sequential(*layers)


class CategoricalCode(nn.Module):
    """z [..., z_dim] -> [one_hot(c) [..., K], scale * z[..., 1:]] with ``c = floor(K * Phi(z_0))``.

    ``Phi`` is the standard normal CDF, so for ``z_0 ~ N(0, 1)`` the code ``c`` is uniform on
    ``{0, ..., K-1}``: the latent stays ``z ~ N(0, I)`` everywhere else in ganforge (samplers,
    fixed grids, EMA, seed ensembles) while the generator sees a discrete code and ``z_dim - 1``
    continuous coordinates shrunk by ``scale``. The prior is then a mixture of K small
    Gaussians with one-hot means, as in DeLiGAN (Gurumurthy et al. 2017, mixture latent) with
    fixed, equal weights.

    Why: a continuous G of a connected latent cannot put all its mass on disconnected modes;
    it leaves samples on the bridges between them (Khayatkhoei et al. 2018). With a code, each
    code can sit on one mode and the bridges need no mass. On grid25 each code ends up as one
    tight cluster inside one mode (``mode_spread`` in the benchmark measures how tight).
    """

    def __init__(self, categories: int, scale: float = 1.0):
        super().__init__()
        self.k, self.scale = int(categories), float(scale)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = torch.special.ndtr(z[..., :1].float())  # [..., 1] in (0, 1)
        c = (u * self.k).long().clamp_(0, self.k - 1)  # [..., 1]
        # one-hot by comparison (no data-dependent checks, so CUDA graphs can capture it)
        onehot = (c == torch.arange(self.k, device=z.device)).to(z.dtype)  # [..., K]
        return torch.cat([onehot, z[..., 1:] * self.scale], dim=-1)

    def extra_repr(self) -> str:
        return f"categories={self.k}, scale={self.scale}"


class MLPGenerator(Generator):
    """z [N, z_dim] -> (categorical code) -> hidden stack -> Linear -> points [N, d] or tanh images."""

    def __init__(self, cfg: NetConfig, z_dim: int, out_shape: tuple[int, ...]):
        super().__init__(z_dim, out_shape)
        if cfg.categories:  # (range and z_dim checked by build_generator)
            self.code = CategoricalCode(cfg.categories, cfg.code_scale)
        else:
            self.code = nn.Identity()
        self.body = hidden_stack(cfg, z_dim + cfg.categories - 1 if cfg.categories else z_dim)
        n = cfg.width if cfg.depth else z_dim
        self.out = nn.Linear(n, numel(self.out_shape))
        self.images = len(self.out_shape) > 1
        spectral_norm_(self, cfg.spectral_norm)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.out(self.body(self.code(z)))  # [N, prod(out_shape)]
        if self.images:
            y = torch.tanh(y)
        return y.reshape(-1, *self.out_shape)


class MLPDiscriminator(Discriminator):
    """x [N, *in_shape] -> flatten -> hidden stack (features [N, width]) -> Linear(1) -> [N]."""

    def __init__(self, cfg: NetConfig, in_shape: tuple[int, ...]):
        super().__init__(in_shape)
        self.body = hidden_stack(cfg, numel(self.in_shape), maxout=cfg.maxout)
        self.n_features = cfg.width if cfg.depth else numel(self.in_shape)
        self.head = nn.Linear(self.n_features, 1)
        spectral_norm_(self, cfg.spectral_norm)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))  # [N, F]


MLP = register_family(
    NetFamily(
        name="mlp",
        doc="multilayer perceptron G and D (maxout D option) for 2D points and small images",
        generator=MLPGenerator,
        discriminator=MLPDiscriminator,
    )
)
