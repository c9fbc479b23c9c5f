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

The paper's two-step manifold-diffusion training is the method ``mdgan`` (:func:`mdgan`
below). E has ``model.d``'s architecture (its features) with a linear
map to z_dim; it is module ``e``, trained in its own phase after G's (the training loop
gives modules other than g the ``optim.d`` settings). D's remedies and G's extra terms of
``cfg.remedies`` apply as in the standard method; unrolling does not.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import Experiment
from ..errors import ConfigError
from ..losses import get_loss
from ..nets import build_discriminator, build_generator
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


@METHODS.register("mdgan")
def mdgan(cfg: Experiment, shape: tuple[int, ...], device: torch.device) -> Method:
    """Manifold-diffusion GAN (Che et al. 2017, sec. 3.3): an encoder and two discriminators.

    Each iteration runs the paper's two steps, with G's adversarial loss of ``loss.name``
    (ns: -log D) and lambda = ``remedies.mrgan_lambda1``:

    - manifold step: D1 learns x (real) against G(E(x)) (fake); G and E, each in its own
      phase, minimise  -log D1(G(E(x))) + lambda ||x - G(E(x))||_2^2,  which pulls the
      reconstructions onto the data manifold;
    - diffusion step: D2 learns G(E(x)) (as "real") against G(z); G minimises -log D2(G(z)),
      which spreads G(z) over the manifold as the reconstructions of the data are spread.

    Modules: ``g``, ``e`` (:class:`Encoder`), ``d`` (D1) and ``d2`` (D2; both built like
    ``model.d`` with D's remedies, both trained with ``optim.d``). Statistics: ``loss/d`` and
    ``d/real`` come from D1 (on data), ``loss/d2`` and ``d/fake`` from D2 (on G(z), the
    samples), ``loss/g`` is the diffusion step's G loss. D's input remedies (noise, packing)
    apply to both discriminators; top-k training, feature matching and pull-away to the
    diffusion step's G loss (against D2); loss penalties, weight clipping, historical
    averaging, unrolling and code balancing do not.
    """
    if cfg.loss.penalty or get_loss(cfg.loss.name).penalty or get_loss(cfg.loss.name).clip:
        raise ConfigError(f"method mdgan does not apply loss penalties or weight clipping (loss.name={cfg.loss.name!r}, "
                          f"loss.penalty={cfg.loss.penalty!r}); use loss.name=ns with no loss.penalty")
    R = Remedies(cfg, "mdgan")
    G = build_generator(cfg.model.g, cfg.model.z_dim, shape).to(device)
    E = Encoder(cfg, shape).to(device)
    D1 = R.discriminator(cfg.model.d, shape).to(device)  # manifold: x vs G(E(x))
    D2 = R.discriminator(cfg.model.d, shape).to(device)  # diffusion: G(E(x)) vs G(z)
    adv = get_loss(cfg.loss.name)
    lam, B = cfg.remedies.mrgan_lambda1, cfg.train.batch

    def discriminator_loss(ctx: Context, D: nn.Module, target: Tensor, fake: Tensor, name: str, side: str) -> Tensor:
        """D's loss on ``target`` (as real) against ``fake``; reports it as ``name`` and D's
        outputs on the ``side`` ("real": the target, "fake": the fakes) as d/ and logits/."""
        target_logits, fake_logits = D(R.d_input(target, ctx)), D(R.d_input(fake, ctx))
        loss = adv.d_loss(target_logits, fake_logits, cfg.loss)
        shown = target_logits if side == "real" else fake_logits
        ctx.stats.report(name, loss)
        ctx.stats.report(f"d/{side}", torch.sigmoid(shown))
        ctx.stats.report(f"logits/{side}", shown)
        return loss

    def d1_loss(ctx: Context) -> Tensor:
        x = ctx.real()
        with torch.no_grad():
            rec = G(E(x))
        return discriminator_loss(ctx, D1, x, rec, "loss/d", "real")

    def manifold_loss(ctx: Context, who: str) -> Tensor:
        x = ctx.real()
        rec = G(E(x))
        geo = geometric_term(x, rec)
        fool = adv.g_loss(D1(R.d_input(rec, ctx)), cfg.loss)
        ctx.stats.report(f"mdgan/geometric_{who}", geo)
        ctx.stats.report(f"mdgan/manifold_{who}", fool)
        return fool + lam * geo

    def d2_loss(ctx: Context) -> Tensor:
        with torch.no_grad():
            target, fake = G(E(ctx.real())), G(ctx.z(B))
        return discriminator_loss(ctx, D2, target, fake, "loss/d2", "fake")

    def diffusion_g_loss(ctx: Context) -> Tensor:
        fake_in = R.d_input(G(ctx.z(B)), ctx)
        loss = adv.g_loss(R.g_logits(D2(fake_in), ctx), cfg.loss)
        ctx.stats.report("loss/g", loss)
        return loss + R.g_terms(ctx, D2, fake_in)

    n = cfg.optim.n_critic
    phases = [Phase("D", "d", d1_loss, repeat=n), Phase("Gm", "g", lambda ctx: manifold_loss(ctx, "g")),
              Phase("E", "e", lambda ctx: manifold_loss(ctx, "e")), Phase("D2", "d2", d2_loss, repeat=n),
              Phase("G", "g", diffusion_g_loss)]
    return Method(modules={"g": G, "e": E, "d": D1, "d2": D2}, phases=phases)
