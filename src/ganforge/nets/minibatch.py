"""Minibatch layers of the discriminator and the wrapper that puts them on any D.

- :class:`MinibatchDiscrimination` (Salimans et al. 2016, "Improved techniques for training
  GANs", sec. 3.2): lets D compare each sample with the rest of its batch, so a collapsed
  batch of near-identical samples is easy to spot.
- :class:`MinibatchStdDev` (Karras et al. 2018, ProGAN, sec. 3): one scalar, the average
  over features of the per-feature standard deviation over the batch.
- :class:`MinibatchDiscriminator`: ``features(x) = [f(x), o(f(x)), std(f(x))]`` on top of
  the wrapped D's features ``f``, and a new linear head with ``outputs`` logits (1 for the
  standard objective, k + 1 for MAD-GAN's (k+1)-way discriminator).

Both layers make D's output for one sample depend on the rest of its batch: D sees real and
fake batches separately (as ganforge's methods do), and per-sample gradient penalties
(gp, r1, dragan) are then only approximate (see regularizers.py).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Discriminator
from .layers import maybe_sn


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016: features f [N, A] -> o(f) [N, B].

        M_i = f_i T                               # T: A x B x C tensor, M_i: B x C
        c_b(x_i, x_j) = exp(-||M_i,b - M_j,b||_L1)
        o(x_i)_b = sum_{j != i} c_b(x_i, x_j)

    The paper's sum runs over all j, including j = i (whose term is exp(0) = 1); we leave it
    out, which subtracts the constant 1 (absorbed by the head's bias) and makes o = 0 for a
    batch of one. T is initialised N(0, 0.05^2) as in the authors' code.
    """

    def __init__(self, in_features: int, kernels: int, kernel_dim: int):
        super().__init__()
        self.kernels, self.kernel_dim = int(kernels), int(kernel_dim)
        self.T = nn.Parameter(0.05 * torch.randn(in_features, kernels * kernel_dim))  # A x (B * C)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        n = f.shape[0]
        M = (f @ self.T).reshape(n, self.kernels, self.kernel_dim)  # [N, B, C]
        Mb = M.transpose(0, 1).contiguous()  # [B, N, C]
        l1 = torch.cdist(Mb, Mb, p=1)  # [B, N, N]: ||M_i,b - M_j,b||_L1
        c = torch.exp(-l1)  # c_b(x_i, x_j), 1 on the diagonal
        return (c.sum(2) - 1).transpose(0, 1)  # [N, B], j = i excluded

    def extra_repr(self) -> str:
        return f"kernels={self.kernels}, kernel_dim={self.kernel_dim}"


class MinibatchStdDev(nn.Module):
    """Karras et al. 2018: features f [N, F] -> [N, 1], the same scalar for every sample.

        s = mean_k sqrt(Var_i f_ik + 1e-8)        # population variance over the batch

    ProGAN computes it on D's last conv map, over every (channel, position), and appends it
    as a constant feature map before the last conv block. Here f is D's flattened last map,
    so s is the same number (with the group = the whole batch); it is appended as one more
    feature, which for ganforge's linear head is the same as a constant channel under a
    conv covering the whole map.
    """

    eps = 1e-8

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(f.var(0, unbiased=False) + self.eps)  # [F]
        return std.mean().expand(f.shape[0], 1)  # [N, 1]


def feature_count(D: nn.Module) -> int:
    """Width F of ``D.features(x)`` ([N, F]): ``D.n_features`` or one dummy forward."""
    n = getattr(D, "n_features", None)
    if n is not None:
        return int(n)
    was = D.training
    D.eval()
    with torch.no_grad():
        p = next(D.parameters())
        n = D.features(torch.zeros(2, *D.in_shape, device=p.device, dtype=p.dtype)).shape[1]
    D.train(was)
    return int(n)


class MinibatchDiscriminator(Discriminator):
    """Any discriminator with minibatch layers on its features and a new linear head.

    ``features(x) = cat[f(x), o(f(x)) (kernels > 0), s(f(x)) (std)]``  [N, F + B + 1]
    ``forward(x) = head(features(x))``: logits [N] (``outputs = 1``) or [N, outputs].
    The wrapped D's own head is dropped.
    """

    def __init__(self, base: Discriminator, kernels: int = 0, kernel_dim: int = 5, std: bool = False,
                 outputs: int = 1, spectral_norm: bool = False):
        super().__init__(base.in_shape)
        n = feature_count(base)
        base.head = nn.Identity()  # replaced by self.head
        self.base = base
        self.mbd = MinibatchDiscrimination(n, kernels, kernel_dim) if kernels > 0 else None
        self.std = MinibatchStdDev() if std else None
        self.outputs = int(outputs)
        self.n_features = n + max(kernels, 0) + int(std)
        self.head = maybe_sn(nn.Linear(self.n_features, self.outputs), spectral_norm)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.base.features(x)  # [N, F]
        parts = [f]
        if self.mbd is not None:
            parts.append(self.mbd(f))  # [N, B]
        if self.std is not None:
            parts.append(self.std(f))  # [N, 1]
        return torch.cat(parts, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.features(x))  # [N, outputs]
        return out.reshape(-1) if self.outputs == 1 else out
