"""The standard adversarial method: alternate D and G updates on one objective.

WGAN (clipping), WGAN-GP, LSGAN, hinge + spectral norm, label smoothing and flipping are
all this method with a different ``loss`` config, not methods of their own.
"""

from __future__ import annotations

import torch

from ..config import Experiment
from ..losses import check_options, clip_weights_, get_loss
from ..nets import build_discriminator, build_generator
from ..regularizers import REGULARIZERS
from .base import METHODS, Context, Method, Phase


@METHODS.register("standard")
def standard(cfg: Experiment, shape: tuple[int, ...], device: torch.device) -> Method:
    """Alternating D/G training (Goodfellow et al. 2014) with any adversarial loss."""
    G = build_generator(cfg.model.g, cfg.model.z_dim, shape).to(device)
    D = build_discriminator(cfg.model.d, shape).to(device)
    adv = get_loss(cfg.loss.name)
    check_options(cfg.loss)
    penalty_name = cfg.loss.penalty or adv.penalty
    penalty = REGULARIZERS.get(penalty_name) if penalty_name else None

    def d_loss(ctx: Context) -> torch.Tensor:
        real = ctx.real()  # [B, ...]
        with torch.no_grad():
            fake = G(ctx.z(real.shape[0]))
        real_logits, fake_logits = D(real), D(fake)  # [B], [B]; D sees all-real then all-fake batches
        loss = adv.d_loss(real_logits, fake_logits, cfg.loss)
        ctx.stats.report("loss/d", loss)
        ctx.stats.report("d/real", torch.sigmoid(real_logits))  # D(x)
        ctx.stats.report("d/fake", torch.sigmoid(fake_logits))  # D(G(z))
        ctx.stats.report("logits/real", real_logits)
        ctx.stats.report("logits/fake", fake_logits)
        if penalty is not None:
            pen = penalty(D, real, fake)
            ctx.stats.report(f"penalty/{penalty_name}", pen)
            loss = loss + cfg.loss.penalty_weight * pen
        return loss

    def g_loss(ctx: Context) -> torch.Tensor:
        fake_logits = D(G(ctx.z(cfg.train.batch)))
        loss = adv.g_loss(fake_logits, cfg.loss)
        ctx.stats.report("loss/g", loss)
        return loss

    clip = (lambda ctx: clip_weights_(D, cfg.loss.clip)) if adv.clip else None
    phases = [
        Phase("D", "d", d_loss, repeat=cfg.optim.n_critic, after_step=clip),
        Phase("G", "g", g_loss),
    ]
    return Method(modules={"g": G, "d": D}, phases=phases)
