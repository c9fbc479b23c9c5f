"""MRGAN, mode-regularized GAN (Che et al. 2017, "Mode regularized generative adversarial networks").

An encoder E maps data to latents; G(E(x)) must reconstruct x (the geometric metric
regularizer) and be judged real by D (the mode regularizer). With the non-saturating G
objective, the objectives (Che et al. eq. 3) are

    T_G = -E_z log D(G(z)) + E_x[ lambda1 ||x - G(E(x))||_2^2 + lambda2 (-log D(G(E(x)))) ]
    T_E =                    E_x[ lambda1 ||x - G(E(x))||_2^2 + lambda2 (-log D(G(E(x)))) ]

and D is trained as in the standard method, on real x against G(z). The paper prints the
mode term as "+ lambda2 log D(G(E(x)))"; minimised literally, that would push G(E(x))
towards *fake*, against the paper's stated purpose (reconstructions near every data mode
should look real, so that G is rewarded for covering the modes). We use the intended
direction and, more generally, G's adversarial loss of ``loss.name`` evaluated at G(E(x))
(for ns: -log D(G(E(x))) = softplus(-l)). ||.||_2^2 is summed over the sample's dims,
averaged over the batch. lambda1, lambda2 = ``remedies.mrgan_lambda1``/``mrgan_lambda2``
(paper: 0.2, 0.4).

Not implemented: the two-step manifold-diffusion variant (MDGAN, a second discriminator
between G(E(x)) and G(z)). E has ``model.d``'s architecture (its features) with a linear
map to z_dim; it is module ``e``, trained in its own phase after G's (the training loop
gives modules other than g the ``optim.d`` settings). D's remedies and G's extra terms of
``cfg.remedies`` apply as in the standard method; unrolling does not.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import Experiment
from ..losses import get_loss
from ..nets import build_discriminator
from ..nets.minibatch import feature_count
from ..remedies import Remedies
from .base import METHODS, Context, Method, Phase
from .standard import build_standard


class Encoder(nn.Module):
    """x [N, *shape] -> z [N, z_dim]: a ``model.d`` body's features, then a linear map."""

    def __init__(self, cfg: Experiment, shape: tuple[int, ...]):
        super().__init__()
        body = build_discriminator(cfg.model.d, shape)
        n = feature_count(body)
        body.head = nn.Identity()  # only the features are used
        self.body = body
        self.out = nn.Linear(n, cfg.model.z_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body.features(x))


def geometric_term(x: Tensor, x_rec: Tensor) -> Tensor:
    """E_x ||x - G(E(x))||_2^2: squared L2 over each sample's dims, mean over the batch."""
    return (x - x_rec).flatten(1).pow(2).sum(1).mean()


@METHODS.register("mrgan")
def mrgan(cfg: Experiment, shape: tuple[int, ...], device: torch.device) -> Method:
    """Mode-regularized GAN (Che et al. 2017): encoder, reconstruction and mode regularizers."""
    method = build_standard(cfg, shape, device, method="mrgan")
    G, D = method.modules["g"], method.modules["d"]
    E = Encoder(cfg, shape).to(device)
    R = Remedies(cfg, "mrgan")  # for D's inputs only (noise, packing)
    adv = get_loss(cfg.loss.name)
    lam1, lam2 = cfg.remedies.mrgan_lambda1, cfg.remedies.mrgan_lambda2

    def regularizers(ctx: Context, who: str) -> Tensor:
        x = ctx.real()
        x_rec = G(E(x))  # G(E(x))
        geo = geometric_term(x, x_rec)
        mode = adv.g_loss(D(R.d_input(x_rec, ctx)), cfg.loss)  # ns: -log D(G(E(x)))
        ctx.stats.report(f"mrgan/geometric_{who}", geo)
        ctx.stats.report(f"mrgan/mode_{who}", mode)
        return lam1 * geo + lam2 * mode

    g_phase = next(p for p in method.phases if p.module == "g")
    adversarial_g = g_phase.loss
    g_phase.loss = lambda ctx: adversarial_g(ctx) + regularizers(ctx, "g")
    method.phases.append(Phase("E", "e", lambda ctx: regularizers(ctx, "e")))
    method.modules["e"] = E
    return method
