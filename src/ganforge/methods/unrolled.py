"""Unrolled GAN (Metz et al. 2016, ICLR 2017: "Unrolled generative adversarial networks").

G's loss is taken against the discriminator *after k more D updates*, not against D as it
is now. With theta_D^0 = theta_D and U the update rule of D's optimiser:

    theta_D^{k+1} = U(theta_D^k, grad_{theta_D} L_D(theta_G, theta_D^k))
    L_G^unrolled(theta_G) = L_G(theta_G, theta_D^K)

and G's gradient flows through all K surrogate updates (``create_graph=True``: the
second-order term of Metz et al. eq. 12, which is what makes G anticipate D's reaction).

The update rule (``remedies.unrolled_optimizer``): ``adam`` (default) unrolls D's own Adam,
continuing its moment estimates and step count -- Metz et al. sec. 2.2 ("we unroll the
optimizer") and their code, which replaces D's variables by Keras Adam's update ops k times:

    t <- t + 1;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    theta <- theta - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

(g += weight_decay * theta first, as torch.optim.Adam), so the first surrogate step is the
step D's optimiser would take. ``sgd`` is theta <- theta - lr g. With Adam's step of about
lr per weight, the surrogate D moves as far as k real D steps; plain SGD at D's lr moves
it by lr * |g|, orders of magnitude less for the small gradients of a trained D (so that an
SGD unroll at D's lr is close to no unrolling at all). ``remedies.unrolled_lr`` = 0 uses D's
current learning rate.

The surrogate D is a functional copy (``torch.func.functional_call`` on updated
parameter tensors, buffers cloned so BatchNorm statistics and spectral-norm vectors of the
real D are untouched); the real D and its optimiser state are then updated normally by D's
own phase. This is *not* "k G steps per D step". The surrogate's loss is the adversarial D
loss (no penalty, no historical average). Every surrogate step sees the same batches -- one
real batch and the fakes G's loss is taken on -- as in the authors' reference code, where
the unrolled loss is D's loss on one minibatch with D's parameters substituted k times; so G
runs forward once per step, and the unroll costs k double-backward passes through D only.

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


Update = Callable[[dict[str, Tensor], list[Tensor | None]], dict[str, Tensor]]


def sgd_update(lr: float | Tensor) -> Update:
    """The surrogate step theta - lr * g (a parameter without a gradient stays)."""

    def step(params: dict[str, Tensor], grads: list[Tensor | None]) -> dict[str, Tensor]:
        return {n: p if g is None else p - lr * g for (n, p), g in zip(params.items(), grads)}

    return step


class AdamUpdate:
    """Differentiable Adam steps (Kingma & Ba 2015) that continue an optimiser's state.

    ``params``: the discriminator's named parameters; ``optimizer``: its torch Adam, whose
    per-parameter ``step`` / ``exp_avg`` / ``exp_avg_sq`` are the starting state (read, never
    written: each step makes new tensors, so the real optimiser is not touched); None or a parameter without state starts at zero, as a
    fresh Adam does. Each call is one step of torch.optim.Adam's rule (no amsgrad), written
    with tensors that keep the graph, so G's gradient flows through the moments as well.
    """

    def __init__(self, params: dict[str, Tensor], optimizer: torch.optim.Optimizer | None, lr: float | Tensor,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, weight_decay
        state = optimizer.state if optimizer is not None else {}
        self.t: list[Tensor | float] = []
        self.m: list[Tensor | None] = []
        self.v: list[Tensor | None] = []
        for p in params.values():
            s = state.get(p, {})
            step = s.get("step", 0)
            # a CPU step count becomes a Python number (scalar bias corrections, fewer tensor ops);
            # a device one (capturable Adam, CUDA graphs) stays a tensor: reading it would sync
            self.t.append(step.detach().clone() if torch.is_tensor(step) and step.device.type != "cpu" else float(step))
            self.m.append(s["exp_avg"].detach() if "exp_avg" in s else None)  # never written to: no copy needed
            self.v.append(s["exp_avg_sq"].detach() if "exp_avg_sq" in s else None)

    def __call__(self, params: dict[str, Tensor], grads: list[Tensor | None]) -> dict[str, Tensor]:
        out = {}
        for i, ((n, p), g) in enumerate(zip(params.items(), grads)):
            if g is None:
                out[n] = p
                continue
            if self.wd:
                g = g + self.wd * p
            m0, v0 = self.m[i], self.v[i]
            self.t[i] = t = self.t[i] + 1
            # m = b1 m0 + (1 - b1) g and v = b2 v0 + (1 - b2) g^2, as lerps (one op each)
            self.m[i] = m = (1 - self.b1) * g if m0 is None else torch.lerp(m0, g, 1 - self.b1)
            self.v[i] = v = (1 - self.b2) * g.square() if v0 is None else torch.lerp(v0, g.square(), 1 - self.b2)
            bc1, bc2 = 1 - self.b1**t, 1 - self.b2**t
            # sqrt's derivative is infinite at 0: clamp first (v = 0 only where every gradient so far was 0)
            denom = (v / bc2).clamp_min(1e-30).sqrt().add(self.eps)
            out[n] = torch.addcdiv(p, m, denom, value=-self.lr / bc1) if isinstance(bc1, float) and isinstance(self.lr, float) \
                else p - (self.lr / bc1) * m / denom
        return out


def unrolled_discriminator(D: nn.Module, d_loss: Callable[[DFunction], Tensor], steps: int,
                           update: float | Update) -> DFunction:
    """D after ``steps`` differentiable updates on ``d_loss``, as a function x -> logits.

    ``d_loss(f)`` returns D's loss when the discriminator is the function ``f``; it should
    draw its batches itself and leave the fake ones attached to G's graph. ``update`` maps
    (parameters, their gradients) to the next parameters (:func:`sgd_update`,
    :class:`AdamUpdate`); a number is SGD with that step size. ``steps = 0`` returns ``D``.
    """
    if steps == 0:
        return D
    if not callable(update):
        update = sgd_update(update)
    params = dict(D.named_parameters())
    buffers = {k: b.clone() for k, b in D.named_buffers()}

    def as_function(p: dict[str, Tensor]) -> DFunction:
        return lambda x: functional_call(D, {**p, **buffers}, (x,))

    for _ in range(steps):
        loss = d_loss(as_function(params))
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True, allow_unused=True)
        params = update(params, list(grads))
    return as_function(params)


def surrogate_update(cfg: Experiment, D: nn.Module, optimizer: torch.optim.Optimizer | None) -> Update:
    """The surrogate update ``remedies.unrolled_optimizer`` names, for D and its optimiser
    (None: a fresh one with ``cfg.optim.d``'s settings). Step size: ``remedies.unrolled_lr``,
    or D's current learning rate (after its schedule) when that is 0."""
    r, o = cfg.remedies, cfg.optim.d
    lr = r.unrolled_lr or (optimizer.param_groups[0]["lr"] if optimizer is not None else o.lr)
    if r.unrolled_optimizer == "sgd":
        return sgd_update(lr)
    group = optimizer.param_groups[0] if optimizer is not None else {}
    return AdamUpdate(dict(D.named_parameters()), optimizer, lr, group.get("betas", (o.beta1, o.beta2)), group.get("eps", 1e-8),
                      group.get("weight_decay", o.weight_decay))


@METHODS.register("unrolled")
def unrolled(cfg: Experiment, shape: tuple[int, ...], device: torch.device) -> Method:
    """Unrolled GAN (Metz et al. 2016): G's loss through k differentiable D updates."""
    if cfg.remedies.unrolled_steps < 1:
        raise ConfigError("method unrolled needs remedies.unrolled_steps >= 1 (Metz et al. use 5 to 10), "
                          f"got {cfg.remedies.unrolled_steps}")
    from .standard import build_standard

    return build_standard(cfg, shape, device, method="unrolled")
