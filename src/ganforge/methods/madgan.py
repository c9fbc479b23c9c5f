"""MAD-GAN (Ghosh et al. 2018, "Multi-agent diverse generative adversarial networks").

k generators G_1..G_k (``remedies.generators``) and one discriminator with k + 1 outputs:
a softmax over "made by G_1", ..., "made by G_k" and "real" (class index k here; the paper's
class k+1). With D_j(x) the softmax probability of class j:

    D:    min  -E_x log D_real(x) - sum_i E_z log D_i(G_i(z))           (multi-class cross-entropy)
    G_i:  min  -E_z log D_real(G_i(z))                                  (non-saturating form)

Each expectation is a batch mean; the generator terms are summed over i (each G_i only
receives the gradient of its own term). The paper writes G_i's objective in the minimax
form E log(1 - D_real(G_i(z))) and trains with the non-saturating one, as we do. Diversity
comes from D: to name which generator made a sample it must find where they differ, which
pushes the generators towards different modes.

Similarity penalty (``remedies.madgan_sim`` = lambda > 0; the paper's MAD-GAN-Sim idea): all
k generators receive the same z, and G's loss gains

    lambda * mean_{i<j} E_z cos(phi(G_i(z)), phi(G_j(z)))

with phi D's penultimate features (``D.features``) and cos(a, b) = a.b / (|a| |b|), so the
generators are pushed to make different samples from the same z. The paper's MAD-GAN-Sim
states this as a constraint that ties D's scores of the generators' samples for the same z to
their feature similarity; its exact form was not available to us, so this is the plain penalty
on the similarity as secondary sources describe it, not the paper's constraint. D's objective
is unchanged.

Sampling: the run's generator (module key ``g``) is a :class:`MixtureGenerator` that sends
each z to one of the k generators uniformly at random, as a deterministic function of z, so
``ganforge.load(run).sample(n, seed)`` stays reproducible. The loss options must be those of
the plain BCE objective (``loss.name`` ns/bce, no smoothing, flipping or penalty); the
remedies of D (minibatch layers, pack, instance noise) and the G-side terms (feature
matching, pull-away, historical averaging) apply; unrolling does not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import Experiment
from ..errors import ConfigError
from ..nets import build_generator
from ..remedies import Remedies
from .base import METHODS, Context, Method, Phase


class MixtureGenerator(nn.Module):
    """k generators behind one ``forward(z)``: each sample comes from a uniformly random one.

    The choice is read off z itself: with u = Phi(z_1) ~ U[0, 1) (Phi: the normal CDF),
    generator i = floor(k u), and z_1 is replaced by Phi^-1(k u - i). The fractional part of
    k u is again U[0, 1) and independent of i, so every G_i receives z ~ N(0, I) and the
    choice is uniform; no random number generator is used.
    """

    def __init__(self, generators: list[nn.Module]):
        super().__init__()
        if not generators:
            raise ValueError("a mixture needs at least one generator")
        self.gens = nn.ModuleList(generators)
        self.z_dim = generators[0].z_dim
        self.out_shape = tuple(generators[0].out_shape)

    def __len__(self) -> int:
        return len(self.gens)

    def choose(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(index [N] long, z' [N, z_dim]): which generator each z goes to, and its input."""
        k = len(self.gens)
        z1 = z[:, 0].double() if z.device.type in ("cpu", "cuda") else z[:, 0].float()
        u = torch.special.ndtr(z1) * k  # [N] in [0, k]
        idx = u.floor().clamp(0, k - 1)
        eps = 1e-12 if z1.dtype == torch.float64 else 1e-6  # keep Phi^-1 finite
        frac = (u - idx).clamp(eps, 1 - eps)
        z2 = z.clone()
        z2[:, 0] = torch.special.ndtri(frac).to(z.dtype)
        return idx.long(), z2

    def forward(self, z: Tensor) -> Tensor:
        idx, z2 = self.choose(z)
        out = z.new_empty((z.shape[0],) + self.out_shape)
        for i, g in enumerate(self.gens):
            sel = (idx == i).nonzero().squeeze(1)
            if sel.numel():
                out[sel] = g(z2[sel])
        return out


def build_mixture_generator(cfg: Experiment, shape: tuple[int, ...]) -> MixtureGenerator:
    """The k = ``remedies.generators`` generators of ``model.g``, as one module."""
    return MixtureGenerator([build_generator(cfg.model.g, cfg.model.z_dim, shape) for _ in range(cfg.remedies.generators)])


def madgan_d_loss(real_logits: Tensor, fake_logits: list[Tensor]) -> Tensor:
    """-E log D_real(x) - sum_i E log D_i(G_i(z)); logits [N, k+1], real class = k."""
    k = len(fake_logits)
    loss = F.cross_entropy(real_logits, torch.full((real_logits.shape[0],), k, device=real_logits.device))
    for i, lg in enumerate(fake_logits):
        loss = loss + F.cross_entropy(lg, torch.full((lg.shape[0],), i, device=lg.device))
    return loss


def madgan_g_loss(fake_logits: list[Tensor]) -> Tensor:
    """sum_i -E log D_real(G_i(z)): each generator wants its samples called real (class k)."""
    k = len(fake_logits)
    return sum(F.cross_entropy(lg, torch.full((lg.shape[0],), k, device=lg.device)) for lg in fake_logits)


def generator_similarity(features: list[Tensor], eps: float = 1e-8) -> Tensor:
    """mean over pairs i < j of the batch mean of cos(f_i[n], f_j[n]); k >= 2 tensors [N, F].

    Row n of every tensor must come from the same z (the similarity penalty above).
    """
    if len(features) < 2:
        raise ValueError("the similarity of generators needs at least two of them")
    unit = [F.normalize(f.flatten(1), dim=1, eps=eps) for f in features]
    pairs = [(u * v).sum(1).mean() for i, u in enumerate(unit) for v in unit[i + 1:]]
    return torch.stack(pairs).mean()


def real_log_odds(logits: Tensor) -> Tensor:
    """log D_real / (1 - D_real) = l_real - logsumexp(l_generators); [N, k+1] -> [N]."""
    return logits[:, -1] - torch.logsumexp(logits[:, :-1], dim=1)


def _check_loss(cfg: Experiment) -> None:
    L = cfg.loss
    if L.name not in ("ns", "bce") or L.smoothing or L.flip or L.real_label != 1.0 or L.penalty:
        raise ConfigError("method madgan uses its (k+1)-way cross-entropy: set loss.name=ns with no "
                          "loss.smoothing, loss.flip, loss.real_label or loss.penalty")


@METHODS.register("madgan")
def madgan(cfg: Experiment, shape: tuple[int, ...], device: torch.device) -> Method:
    """MAD-GAN (Ghosh et al. 2018): k generators, a (k+1)-way discriminator."""
    _check_loss(cfg)
    if cfg.remedies.madgan_sim and cfg.remedies.generators < 2:
        raise ConfigError(f"remedies.madgan_sim={cfg.remedies.madgan_sim} compares the generators' samples but "
                          f"remedies.generators={cfg.remedies.generators}; set remedies.generators >= 2 or remedies.madgan_sim=0")
    R = Remedies(cfg, "madgan")
    G = build_mixture_generator(cfg, shape).to(device)
    k = len(G)
    D = R.discriminator(cfg.model.d, shape, outputs=k + 1).to(device)
    B = cfg.train.batch

    def d_loss(ctx: Context) -> Tensor:
        real_logits = D(R.d_input(ctx.real(), ctx))  # [B, k+1]
        with torch.no_grad():
            fakes = [g(ctx.z(B)) for g in G.gens]
        fake_logits = [D(R.d_input(f, ctx)) for f in fakes]
        loss = madgan_d_loss(real_logits, fake_logits)
        ctx.stats.report("loss/d", loss)
        fl = torch.cat(fake_logits)
        ctx.stats.report("d/real", torch.softmax(real_logits, 1)[:, -1])  # D_real(x)
        ctx.stats.report("d/fake", torch.softmax(fl, 1)[:, -1])  # D_real(G_i(z))
        ctx.stats.report("logits/real", real_log_odds(real_logits))
        ctx.stats.report("logits/fake", real_log_odds(fl))
        if ctx.log_step:  # how often D names the right generator among the k
            who = torch.cat([torch.full((lg.shape[0],), i, device=lg.device) for i, lg in enumerate(fake_logits)])
            ctx.stats.report("madgan/which_acc", (fl[:, :-1].argmax(1) == who).float())
        return loss + R.average_term(ctx, "d")

    sim = cfg.remedies.madgan_sim

    def g_loss(ctx: Context) -> Tensor:
        if sim:  # one z for all generators: the penalty compares G_i(z) with G_j(z)
            z = ctx.z(B)
            fake_in = [R.d_input(g(z), ctx) for g in G.gens]
        else:
            fake_in = [R.d_input(g(ctx.z(B)), ctx) for g in G.gens]
        loss = madgan_g_loss([D(f) for f in fake_in])
        ctx.stats.report("loss/g", loss)
        if sim:
            s = generator_similarity([D.features(f) for f in fake_in])
            ctx.stats.report("madgan/similarity", s)
            loss = loss + sim * s
        return loss + R.g_terms(ctx, D, torch.cat(fake_in))

    phases = [Phase("D", "d", d_loss, repeat=cfg.optim.n_critic), Phase("G", "g", g_loss)]
    return Method(modules={"g": G, "d": D, **R.averages(g=G, d=D)}, phases=phases)
