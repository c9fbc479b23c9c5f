"""Multilayer perceptrons for 2D point sets and small images (Goodfellow et al. 2014).

Hidden layer: ``Linear(width) -> norm -> activation -> dropout``; with ``maxout = k > 0``
(discriminator only) a hidden layer is ``Maxout(width, k pieces) -> norm -> dropout``, the
maxout discriminator of the original GAN paper and the PacGAN 2D setup.

Dropout (Srivastava et al. 2014), ``dropout = p``: in training ``h -> m * h / (1 - p)`` with
``m ~ Bernoulli(1 - p)`` per unit, the identity in eval mode. In G it is a second noise source
beside z (Isola et al. 2017's pix2pix G); samples are drawn in eval mode, without it.

Generator input: with ``categories = K > 0`` the first latent coordinate becomes one of K
equiprobable one-hot codes (:class:`CategoricalCode`), for data made of disconnected modes.

Generator output: linear for points ``(d,)``; ``tanh`` then reshape for images
``(C, H, W)``. Discriminator: flatten -> hidden stack -> ``Linear(1)`` logit.

Norms: BatchNorm in an MLP discriminator is allowed, but ``norm=none`` is the usual choice
there (BN couples the samples of a batch, which interacts with gradient penalties and makes
D's score of one sample depend on the rest of its batch).

Weights keep PyTorch's default initialisation unless ``init_std > 0``: then weights ~ N(0,
init_std^2), biases 0, norm scales ~ N(1, init_std^2) (``init_dcgan_``; the PacGAN authors' 2D
runs use 0.02 for G and D). A hidden linear layer has a bias only when
no norm follows it (a bias before BatchNorm is cancelled by the mean subtraction).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import NetConfig
from .base import Discriminator, Generator, NetFamily, numel, register_family
from .layers import Maxout, activation, init_dcgan_, norm1d, spectral_norm_


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


def _init(net: nn.Module, cfg: NetConfig) -> None:
    """``cfg.init_std`` initialisation (when > 0), then spectral norm (fitted to those weights)."""
    if cfg.init_std > 0:
        init_dcgan_(net, cfg.init_std)
    spectral_norm_(net, cfg.spectral_norm)


class CategoricalCode(nn.Module):
    """z [..., z_dim] -> [one_hot(c) [..., K], scale * z[..., 1:]], the code c drawn from z_0.

    ``c = min{j : u < F_j}`` with ``u = Phi(z_0)`` (``Phi`` the standard normal CDF) and
    ``F_j = pi_0 + ... + pi_j`` the CDF of the code prior ``pi = softmax(log_weights)``. For
    ``z_0 ~ N(0, 1)``, u is uniform, so c ~ pi; with the default uniform prior
    ``c = floor(K * u)``. The latent thus stays ``z ~ N(0, I)`` everywhere else in ganforge
    (samplers, fixed grids, EMA, seed ensembles) while the generator sees a discrete code and
    ``z_dim - 1`` continuous coordinates shrunk by ``scale``: a mixture of K small Gaussians
    with one-hot means, as in DeLiGAN (Gurumurthy et al. 2017), with weights ``pi`` that
    ``remedies.code_balance`` can learn during training (:func:`ganforge.remedies.code_balance_`).

    Why: a continuous G of a connected latent cannot put all its mass on disconnected modes;
    it leaves samples on the bridges between them (Khayatkhoei et al. 2018). With a code, each
    code can sit on one mode and the bridges need no mass.
    """

    def __init__(self, categories: int, scale: float = 1.0):
        super().__init__()
        self.k, self.scale = int(categories), float(scale)
        self.register_buffer("log_weights", torch.zeros(self.k))  # log pi up to a constant; zeros: uniform

    def codes(self, z: torch.Tensor, log_weights: torch.Tensor | None = None) -> torch.Tensor:
        """The code index of each latent, ``z [..., z_dim] -> [...]`` (int64).

        ``log_weights``: ``[K]``, or ``[S, K]`` for a stack of S generators with z ``[S, N, z_dim]``."""
        lw = self.log_weights if log_weights is None else log_weights
        cdf = torch.softmax(lw.float(), dim=-1).cumsum(dim=-1)  # [..., K]
        u = torch.special.ndtr(z[..., 0].float()).contiguous()  # [...] in (0, 1)
        return torch.searchsorted(cdf, u, right=True).clamp_(max=self.k - 1)

    def embed(self, c: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        """What the generator body sees for codes ``c [...]`` and continuous parts ``rest [..., z_dim - 1]``."""
        # one-hot by comparison (no data-dependent checks, so CUDA graphs can capture it)
        onehot = (c.unsqueeze(-1) == torch.arange(self.k, device=c.device)).to(rest.dtype)  # [..., K]
        return torch.cat([onehot, rest * self.scale], dim=-1)

    def forward(self, z: torch.Tensor, log_weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.embed(self.codes(z, log_weights), z[..., 1:])

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
        n_in = z_dim + cfg.categories - 1 if cfg.categories else z_dim  # the body's input features
        self.body = hidden_stack(cfg, n_in)
        n = cfg.width if cfg.depth else n_in
        self.out = nn.Linear(n, numel(self.out_shape))
        self.images = len(self.out_shape) > 1
        _init(self, cfg)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode(self.code(z))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """The body's input ``h [N, in]`` (z, or a code's embedding) -> samples."""
        y = self.out(self.body(h))  # [N, prod(out_shape)]
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
        _init(self, cfg)

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
