"""Shared building blocks of the network families: activations, norms, maxout, spectral
norm and the DCGAN weight initialisation.

Every factory validates its argument and raises a one-line :class:`ConfigError` that lists
the valid values, so a bad recipe fails at build time with the fix in the message.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import ConfigError

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "elu")
NORMS = ("batch", "layer", "none")
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def activation(name: str, slope: float = 0.2, where: str = "activation") -> nn.Module:
    """Hidden activation by name: relu | leaky_relu (negative slope ``slope``) | tanh | elu."""
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(slope)
    if name == "tanh":
        return nn.Tanh()
    if name == "elu":
        return nn.ELU()
    raise ConfigError(f"unknown {where} {name!r}; valid: {', '.join(ACTIVATIONS)}")


def check_norm(kind: str, where: str = "norm") -> None:
    if kind not in NORMS:
        raise ConfigError(f"unknown {where} {kind!r}; valid: {', '.join(NORMS)}")


def norm1d(kind: str, features: int) -> nn.Module:
    """Normalisation of (N, F) activations: BatchNorm1d | LayerNorm(F) | Identity."""
    check_norm(kind)
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    return nn.Identity()


def norm2d(kind: str, channels: int) -> nn.Module:
    """Normalisation of (N, C, H, W) maps: BatchNorm2d | layer norm over (C, H, W) | Identity.

    Layer norm is ``GroupNorm(1, C)``: statistics over C, H, W of each sample (as WGAN-GP
    recommends for a critic), a per-channel affine, and no dependence on the spatial size.
    """
    check_norm(kind)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class Maxout(nn.Module):
    """Maxout layer (Goodfellow et al. 2013): ``y_j = max_k (x W_{jk} + b_{jk})``.

    One linear map to ``out_features * pieces`` units, viewed as [N, out, pieces], max over
    the pieces. Piece ``k`` of unit ``j`` is output column ``j * pieces + k`` of ``linear``.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int, bias: bool = True):
        super().__init__()
        if pieces < 1:
            raise ConfigError(f"maxout needs at least 1 piece per unit, got {pieces}")
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)  # [N, out * pieces]
        # max, not amax: same values, and its backward routes the gradient by the argmax index
        # (amax's compares, counts and divides among ties: 26% of a plain ring8 run's CPU time, docs/benchmarks.md)
        return y.reshape(*y.shape[:-1], self.out_features, self.pieces).max(-1).values  # [N, out]

    def extra_repr(self) -> str:
        return f"out_features={self.out_features}, pieces={self.pieces}"


class DenseConvTranspose2d(nn.ConvTranspose2d):
    """A transposed conv applied to 1 x 1 inputs (DCGAN's first layer), computed as one matmul.

    On a [N, C, 1, 1] input (no padding or dilation), ``y[n, o, i, j] = sum_c x[n, c]
    W[c, o, i, j] + b[o]``: ``x.flatten(1) @ W.flatten(1)``, the same parameters, state-dict
    keys and result as ``nn.ConvTranspose2d``, and ~3x faster forward + backward on one CPU thread
    than the transposed-conv kernel for DCGAN's shapes (docs/benchmarks.md, Training throughput).
    Other inputs take the ordinary conv path.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if (x.ndim != 4 or x.shape[-2:] != (1, 1) or self.padding != (0, 0) or self.output_padding != (0, 0)
                or self.dilation != (1, 1) or self.groups != 1 or output_size is not None):
            return super().forward(x, output_size)
        n, w = x.shape[0], self.weight  # [C_in, C_out, k, k]
        y = (x.reshape(n, -1) @ w.reshape(w.shape[0], -1)).view(n, self.out_channels, *self.kernel_size)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        if w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous():  # train.channels_last
            y = y.contiguous(memory_format=torch.channels_last)
        return y


class DenseConv2d(nn.Conv2d):
    """A conv whose kernel covers its whole unpadded input (a DCGAN head), computed as a linear map.

    On a [N, C, k, k] input with a k x k kernel (no padding or dilation), ``y[n, o] = <x[n], W[o]> + b[o]``:
    ``F.linear(x.flatten(1), W.flatten(1), b)`` viewed as [N, O, 1, 1]; the same parameters,
    state-dict keys and result as ``nn.Conv2d``. Other inputs take the ordinary conv path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[-2:] != self.kernel_size or self.padding != (0, 0) or self.dilation != (1, 1) or self.groups != 1:
            return super().forward(x)
        w = self.weight
        return nn.functional.linear(x.flatten(1), w.reshape(w.shape[0], -1), self.bias).view(x.shape[0], -1, 1, 1)


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap a weight layer with spectral normalisation (Miyato et al. 2018) when ``enabled``.

    Uses ``torch.nn.utils.parametrizations.spectral_norm``: the weight is divided by its
    largest singular value, estimated by one power iteration per training forward pass
    (transposed convs are normalised along their output-channel dim, as torch does).
    """
    return spectral_norm(module) if enabled else module


def spectral_norm_(net: nn.Module, enabled: bool = True) -> nn.Module:
    """Spectral-normalise every linear/conv layer of ``net`` in place; returns ``net``.

    Call after initialising the weights: the power-iteration vectors are fitted to the
    weight at registration time.
    """
    if enabled:
        for m in list(net.modules()):
            if isinstance(m, WEIGHT_LAYERS) and not parametrize.is_parametrized(m, "weight"):
                maybe_sn(m, True)
    return net


def _raw_weight(m: nn.Module) -> torch.Tensor:
    """The trainable weight tensor (the original one under a parametrisation)."""
    if parametrize.is_parametrized(m, "weight"):
        return m.parametrizations.weight.original
    return m.weight


@torch.no_grad()
def init_dcgan_(net: nn.Module, std: float = 0.02) -> nn.Module:
    """DCGAN initialisation (Radford et al. 2016) in place; returns ``net``.

    Conv / transposed-conv / linear weights ~ N(0, std), biases 0; norm-layer scales
    ~ N(1, std), shifts 0.
    """
    for m in net.modules():
        if isinstance(m, WEIGHT_LAYERS):
            _raw_weight(m).normal_(0.0, std)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, NORM_LAYERS) and getattr(m, "weight", None) is not None:
            m.weight.normal_(1.0, std)
            m.bias.zero_()
    return net
