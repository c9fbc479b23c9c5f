"""Unrolled GAN (Metz et al. 2016, ICLR 2017: "Unrolled generative adversarial networks").

G's loss is taken against the discriminator *after k more D updates*, not against D as it
is now. With theta_D^0 = theta_D:

    theta_D^{k+1} = theta_D^k - eta * grad_{theta_D} L_D(theta_G, theta_D^k)      (SGD, eta = unrolled_lr)
    L_G^unrolled(theta_G) = L_G(theta_G, theta_D^K)

and G's gradient flows through all K surrogate updates (``create_graph=True``: the
second-order term of Metz et al. eq. 12, which is what makes G anticipate D's reaction).
The surrogate D is a functional copy (``torch.func.functional_call`` on updated
parameter tensors, buffers cloned so BatchNorm statistics and spectral-norm vectors of the
real D are untouched); the real D is then updated normally by its own phase. This is *not*
"k G steps per D step". The surrogate uses plain SGD on the adversarial D loss (no
penalty, no historical average). Every surrogate step sees the same batches -- one real
batch and the fakes G's loss is taken on -- as in the authors' reference code, where the
unrolled loss is D's loss on one minibatch with D's parameters substituted k times; so G
runs forward once per step, and the unroll costs k double-backward passes through D only.
The paper unrolls D's own optimiser (Adam), which we do not.

Enabled by ``remedies.unrolled_steps = k > 0`` in the standard method; ``method: unrolled``
is the same method, registered under the paper's name, requiring k >= 1.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..config import Experiment
from ..errors import ConfigError
from .base import METHODS, Method

DFunction = Callable[[Tensor], Tensor]


def unrolled_discriminator(D: nn.Module, d_loss: Callable[[DFunction], Tensor], steps: int, lr: float) -> DFunction:
    """D after ``steps`` differentiable SGD steps on ``d_loss``, as a function x -> logits.

    ``d_loss(f)`` returns D's loss when the discriminator is the function ``f``; it should
    draw its batches itself and leave the fake ones attached to G's graph. ``steps = 0``
    returns ``D`` itself.
    """
    if steps == 0:
        return D
    params = dict(D.named_parameters())
    buffers = {k: b.clone() for k, b in D.named_buffers()}

    def as_function(p: dict[str, Tensor]) -> DFunction:
        return lambda x: functional_call(D, {**p, **buffers}, (x,))

    for _ in range(steps):
        loss = d_loss(as_function(params))
        names = list(params)
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True, allow_unused=True)
        params = {n: params[n] if g is None else params[n] - lr * g for n, g in zip(names, grads)}
    return as_function(params)


@METHODS.register("unrolled")
def unrolled(cfg: Experiment, shape: tuple[int, ...], device: torch.device) -> Method:
    """Unrolled GAN (Metz et al. 2016): G's loss through k differentiable D updates."""
    if cfg.remedies.unrolled_steps < 1:
        raise ConfigError("method unrolled needs remedies.unrolled_steps >= 1 (Metz et al. use 5 to 10), "
                          f"got {cfg.remedies.unrolled_steps}")
    from .standard import build_standard

    return build_standard(cfg, shape, device, method="unrolled")
