"""The standard adversarial method: alternate D and G updates on one objective.

WGAN (clipping), WGAN-GP, LSGAN, hinge + spectral norm, label smoothing and flipping are
all this method with a different ``loss`` config, not methods of their own. The
mode-collapse remedies of ``cfg.remedies`` (remedies.py) plug in here: D's architecture
and inputs, extra G/D terms, and the unrolled D of methods/unrolled.py.
"""

from __future__ import annotations

import torch

from ..config import Experiment
from ..losses import check_options, clip_weights_, get_loss
from ..nets import build_generator
from ..regularizers import REGULARIZERS
from ..remedies import Remedies
from .base import METHODS, Context, Method, Phase
from .unrolled import surrogate_update, unrolled_discriminator


@METHODS.register("standard")
def standard(cfg: Experiment, shape: tuple[int, ...], device: torch.device) -> Method:
    """Alternating D/G training (Goodfellow et al. 2014) with any adversarial loss."""
    return build_standard(cfg, shape, device)


def build_standard(cfg: Experiment, shape: tuple[int, ...], device: torch.device, method: str = "standard") -> Method:
    R = Remedies(cfg, method)
    G = build_generator(cfg.model.g, cfg.model.z_dim, shape).to(device)
    D = R.discriminator(cfg.model.d, shape).to(device)
    adv = get_loss(cfg.loss.name)
    check_options(cfg.loss)
    penalty_name = cfg.loss.penalty or adv.penalty
    penalty = REGULARIZERS.get(penalty_name) if penalty_name else None

    def d_loss(ctx: Context) -> torch.Tensor:
        real = ctx.real()  # [B, ...]
        with torch.no_grad():
            fake = G(ctx.z(real.shape[0]))
        real_in, fake_in = R.d_input(real, ctx), R.d_input(fake, ctx)  # noisy, packed
        real_logits, fake_logits = D(real_in), D(fake_in)  # [B], [B]; D sees all-real then all-fake batches
        loss = adv.d_loss(real_logits, fake_logits, cfg.loss)
        ctx.stats.report("loss/d", loss)
        ctx.stats.report("d/real", torch.sigmoid(real_logits))  # D(x)
        ctx.stats.report("d/fake", torch.sigmoid(fake_logits))  # D(G(z))
        ctx.stats.report("logits/real", real_logits)
        ctx.stats.report("logits/fake", fake_logits)
        if penalty is not None:
            pen = penalty(D, real_in, fake_in)
            ctx.stats.report(f"penalty/{penalty_name}", pen)
            loss = loss + cfg.loss.penalty_weight * pen
        return loss + R.average_term(ctx, "d")

    def g_loss(ctx: Context) -> torch.Tensor:
        fake_in = R.d_input(G(ctx.z(cfg.train.batch)), ctx)
        k = cfg.remedies.unrolled_steps
        Dk = D
        if k:  # the surrogate D's steps see one real batch and G's own fakes (still attached to G)
            real_in = R.d_input(ctx.real(), ctx)
            update = surrogate_update(cfg, D, ctx.optims.get("d"))
            Dk = unrolled_discriminator(D, lambda f: adv.d_loss(f(real_in), f(fake_in), cfg.loss), k, update)
        loss = adv.g_loss(R.g_logits(Dk(fake_in), ctx), cfg.loss)  # top-k training keeps D's k best fakes
        ctx.stats.report("loss/g", loss)
        return loss + R.g_terms(ctx, D, fake_in)

    clip = (lambda ctx: clip_weights_(D, cfg.loss.clip)) if adv.clip else None
    phases = [
        Phase("D", "d", d_loss, repeat=cfg.optim.n_critic, after_step=clip),
        Phase("G", "g", g_loss, after_step=R.after_g_step(G, D)),
    ]
    return Method(modules={"g": G, "d": D, **R.averages(g=G, d=D)}, phases=phases)
