"""Mode-collapse remedies (``cfg.remedies``): formulas, and the :class:`Remedies` bundle that
the standard, unrolled, MAD-GAN and MRGAN methods plug into their phases.

Where each remedy acts:

- on D's architecture: minibatch discrimination, minibatch std (nets/minibatch.py) and
  PacGAN packing (D is built for packed inputs) -- :meth:`Remedies.discriminator`;
- on D's inputs, real and fake alike, in every phase: instance noise, then packing --
  :meth:`Remedies.d_input`;
- extra loss terms: historical averaging on D and G (:meth:`Remedies.average_term`),
  feature matching and the EBGAN pull-away term on G (:meth:`Remedies.g_terms`);
- which fakes G's adversarial loss averages over: top-k training (:meth:`Remedies.g_logits`);
- unrolled GAN changes which D G's loss is taken against (methods/unrolled.py);
- the prior of G's categorical latent code (``model.g.categories``): code balancing, after
  the G step every few steps (:func:`code_balance_`, :meth:`Remedies.after_g_step`).

Remedies done elsewhere: label smoothing/flipping (``loss.*``), dropout (``model.*.dropout``),
spectral norm (``model.*.spectral_norm``), WGAN-GP/DRAGAN/R1/R2 (``loss.penalty``), TTUR
(``optim.g.lr`` vs ``optim.d.lr``), EMA of G (``train.ema``).

The regularizers in ``loss.penalty`` see D's actual inputs (noisy, packed).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .config import Experiment, NetConfig
from .errors import ConfigError

if TYPE_CHECKING:
    from .methods.base import Context

# remedies that only some methods support: name -> methods that do
ONLY_FOR = {"unrolled_steps": ("standard", "unrolled"), "code_balance": ("standard", "unrolled"),
            "historical_averaging": ("standard", "unrolled", "madgan", "mrgan"), "madgan_sim": ("madgan",)}


# --------------------------------------------------------------------------- checks


def check_remedies(cfg: Experiment, method: str) -> None:
    """Range checks of ``cfg.remedies`` and what ``method`` supports; one-line ConfigErrors."""
    r = cfg.remedies
    for key in ("minibatch_discrimination", "unrolled_steps", "instance_noise_steps"):
        if getattr(r, key) < 0:
            raise ConfigError(f"remedies.{key} must be >= 0 (0: off), got {getattr(r, key)}")
    for key in ("feature_matching", "historical_averaging", "instance_noise", "pull_away",
                "mrgan_lambda1", "mrgan_lambda2", "madgan_sim"):
        if getattr(r, key) < 0:
            raise ConfigError(f"remedies.{key} must be >= 0, got {getattr(r, key)}")
    for key in ("mbd_dim", "pack", "generators"):
        if getattr(r, key) < 1:
            raise ConfigError(f"remedies.{key} must be at least 1, got {getattr(r, key)}")
    if not 0 <= r.top_k <= 1:
        raise ConfigError(f"remedies.top_k must lie in [0, 1] (the fraction of fakes kept at the end; 0: off), got {r.top_k}")
    if not 0 < r.top_k_decay <= 1:
        raise ConfigError(f"remedies.top_k_decay must lie in (0, 1], got {r.top_k_decay}")
    if not r.unrolled_lr >= 0:
        raise ConfigError(f"remedies.unrolled_lr must be >= 0 (0: D's learning rate), got {r.unrolled_lr}")
    if r.unrolled_optimizer not in ("adam", "sgd"):
        raise ConfigError(f"remedies.unrolled_optimizer must be adam or sgd, got {r.unrolled_optimizer!r}")
    if r.unrolled_steps and r.unrolled_optimizer == "adam" and cfg.optim.d.name != "adam":
        raise ConfigError(f"remedies.unrolled_optimizer=adam unrolls D's Adam but optim.d.name is {cfg.optim.d.name!r}; "
                          "set remedies.unrolled_optimizer=sgd or optim.d.name=adam")
    if r.code_balance < 0:
        raise ConfigError(f"remedies.code_balance must be >= 0 (0: off), got {r.code_balance}")
    if r.code_balance and not (cfg.model.g.name == "mlp" and cfg.model.g.categories):
        raise ConfigError("remedies.code_balance learns the prior of G's categorical latent code; "
                          "set model.g.name=mlp and model.g.categories (e.g. 100), or remedies.code_balance=0")
    for key in ("code_balance_every", "code_balance_samples"):
        if getattr(r, key) < 1:
            raise ConfigError(f"remedies.{key} must be at least 1, got {getattr(r, key)}")
    if not 0 <= r.code_balance_start < 1:
        raise ConfigError(f"remedies.code_balance_start must lie in [0, 1) (a fraction of train.steps), got {r.code_balance_start}")
    if cfg.train.batch % r.pack:
        raise ConfigError(f"train.batch={cfg.train.batch} must be divisible by remedies.pack={r.pack} "
                          f"(PacGAN packs {r.pack} samples into one D input)")
    for key, methods in ONLY_FOR.items():
        if getattr(r, key) and method not in methods:
            raise ConfigError(f"remedies.{key} is not supported by method {method!r} (only {', '.join(methods)}); set it to 0")


# --------------------------------------------------------------------------- formulas


def pack(x: Tensor, m: int) -> Tensor:
    """PacGAN (Lin et al. 2018): [B, C, ...] -> [B/m, m*C, ...] (points: [B, d] -> [B/m, m*d]).

    Pack i holds samples i*m, ..., i*m + m - 1 (consecutive ones), concatenated along the
    first non-batch dim: channels j*C .. (j+1)*C - 1 of pack i are sample i*m + j.
    """
    if m == 1:
        return x
    b = x.shape[0]
    if b % m:
        raise ConfigError(f"a batch of {b} cannot be packed by remedies.pack={m}; make the batch a multiple of {m}")
    return x.reshape(b // m, m * x.shape[1], *x.shape[2:])


def packed_shape(shape: tuple[int, ...], m: int) -> tuple[int, ...]:
    """D's input shape under packing: (m*C, H, W) or (m*d,)."""
    return (m * shape[0],) + tuple(shape[1:])


def instance_noise_std(sigma0: float, step: int, total: int) -> float:
    """Instance noise (Sonderby et al. 2016; Arjovsky & Bottou 2017), linear annealing:

        sigma_t = sigma0 * max(0, 1 - t / T)      # t: 0-based step, T: anneal steps
    """
    return sigma0 * max(0.0, 1.0 - step / max(total, 1))


def add_instance_noise(x: Tensor, sigma: float) -> Tensor:
    """x + sigma * eps, eps ~ N(0, I) per element (torch RNG); identity when sigma = 0."""
    return x + sigma * torch.randn_like(x) if sigma > 0 else x


def feature_matching(f_real: Tensor, f_fake: Tensor) -> Tensor:
    """Feature matching (Salimans et al. 2016): ||E_x f(x) - E_z f(G(z))||_2^2.

    ``f_real`` [N, F], ``f_fake`` [M, F]: batch means of D's features; squared L2 norm
    (summed over the F features, not averaged).
    """
    return (f_real.mean(0) - f_fake.mean(0)).pow(2).sum()


def pull_away(s: Tensor) -> Tensor:
    """EBGAN pull-away term (Zhao et al. 2017) of a batch of features ``s`` [N, F], N >= 2:

        PT(S) = 1 / (N (N - 1)) sum_{i != j} (S_i . S_j / (|S_i| |S_j|))^2
    """
    n = s.shape[0]
    if n < 2:
        raise ValueError("the pull-away term needs a batch of at least 2 samples")
    u = s.flatten(1)
    u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)  # S_i / |S_i|
    cos2 = (u @ u.t()).pow(2)  # [N, N] squared cosine similarities
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


def top_k_count(n: int, nu: float, gamma: float, step: int, period: int = 100) -> int:
    """Top-k training (Sinha et al., NeurIPS 2020): how many of ``n`` fakes G's loss keeps at ``step``:

        k_t = max(ceil(nu * n), round(n * gamma ** (t / period)))    # t: 0-based step

    k starts at the whole batch and decays geometrically (the paper: gamma = 0.99 per epoch;
    here per ``period`` steps) to the floor ``nu * n`` (the paper: nu = 0.5 .. 0.75).
    ``nu = 0`` means off: all ``n``. Always 1 <= k <= n.
    """
    if nu <= 0:
        return n
    k = max(math.ceil(nu * n), round(n * gamma ** (step / period)))
    return max(1, min(n, k))


def top_k_logits(logits: Tensor, k: int) -> Tensor:
    """The ``k`` largest of D's logits on a fake batch ``[N] -> [k]`` (the fakes D finds most
    realistic). G's loss averages over these only, so the gradient of the worst fakes --
    those D confidently rejects, typically off every mode -- is zeroed (Sinha et al. 2020)."""
    return logits if k >= logits.shape[0] else torch.topk(logits, k, sorted=False).values


def code_balance_due(r, step: int, steps: int) -> bool:
    """Whether code balancing updates the prior after 0-based ``step`` (``r``: ``cfg.remedies``)."""
    return bool(r.code_balance) and step >= r.code_balance_start * steps and (step + 1) % r.code_balance_every == 0


def code_prior_step(log_weights: Tensor, logits: Tensor, eta: float) -> Tensor:
    """``log_softmax(log pi + eta * log r)`` with ``log r_c = log mean_j exp(logits[c, j])``.

    ``log_weights [..., K]``, ``logits [..., K, m]`` (D's logits on m samples of each code);
    returns the new log prior, floored at -30 so that it stays finite."""
    log_r = torch.logsumexp(logits.float(), dim=-1) - math.log(logits.shape[-1])  # [..., K]
    return torch.log_softmax(log_weights.float() + eta * log_r, dim=-1).clamp_(min=-30.0)


def perplexity(log_pi: Tensor) -> Tensor:
    """``exp(H(pi))`` over the last dimension: the effective number of codes."""
    return torch.exp(-(log_pi.exp() * log_pi).sum(-1))


@torch.no_grad()
def code_balance_(G: nn.Module, D: nn.Module, eta: float, samples: int = 64, pack: int = 1,
                  generator: torch.Generator | None = None) -> Tensor:
    """One update of the code prior of G's categorical latent code (``model.g.categories``).

    For the optimal D of the BCE objective, ``logit D(x) = log p_d(x) / p_g(x)``, so for code c

        r_c = E_{z ~ N(0, I)} [ exp(logit D(G(c, z))) ]  ~  (data mass) / (generated mass) where c's samples land,

    estimated on ``samples`` latents per code (log-mean-exp of the logits). The prior moves by a
    damped multiplicative-weights step,

        log pi_c <- log_softmax(log pi_c + eta * log r_c),

    whose fixed point is ``r_c = 1`` for every code with mass: codes on over-covered modes
    lose weight, codes on under-covered modes gain it, and codes that D rejects outright (off
    every mode) fade out. It is the prior learning of Khayatkhoei et al. (2018, learned
    generator priors from D's response) applied to the codes of one generator, and the
    expectation of discriminator rejection sampling (Azadi et al. 2019) per code. G and D
    are evaluated in eval mode (BatchNorm statistics untouched). With PacGAN packing, each
    sample's logit is read with 4 fixed sets of generated companions
    (:func:`ganforge.sampling.log_density_ratio`); the constant they add cancels in the softmax.

    Returns the new prior ``pi`` [K].
    """
    from .sampling import log_density_ratio

    code = G.code
    k, dev = code.k, code.log_weights.device
    modes = {m: m.training for m in (G, D)}
    G.eval()
    D.eval()
    try:
        c = torch.arange(k, device=dev).repeat_interleave(samples)  # [K * m]
        rest = torch.randn(k * samples, G.z_dim - 1, generator=generator).to(dev)
        x = G.decode(code.embed(c, rest))  # [K * m, ...]
        comp = None
        if pack > 1:
            cz = torch.randn(4 * (pack - 1), G.z_dim, generator=generator).to(dev)
            comp = G(cz).reshape(4, pack - 1, *x.shape[1:])
        d = log_density_ratio(D, x, pack, comp).reshape(k, samples)  # [K, m]
        code.log_weights.copy_(code_prior_step(code.log_weights, d, eta))
    finally:
        for m, training in modes.items():
            m.train(training)
    return code.log_weights.exp()


def _key(name: str) -> str:
    return name.replace(".", "__")


class HistoricalAverage(nn.Module):
    """Historical averaging (Salimans et al. 2016): ||theta - (1/t) sum_{i=1}^t theta[i]||^2.

    Holds, as buffers (so checkpoints keep it), the running mean of a network's parameters
    over the values passed to :meth:`update_` and the count t. The network itself is not a
    submodule: pass it to each call.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        for name, p in net.named_parameters():
            self.register_buffer(_key(name), p.detach().clone())

    @torch.no_grad()
    def update_(self, net: nn.Module) -> None:
        """avg <- avg + (theta - avg) / (t + 1); t <- t + 1 (the incremental mean)."""
        self.count += 1
        for name, p in net.named_parameters():
            avg = getattr(self, _key(name))
            avg.add_((p.detach() - avg) / self.count)

    def penalty(self, net: nn.Module) -> Tensor:
        """sum over parameters of ||theta - avg||_2^2 (differentiable in theta)."""
        terms = [(p - getattr(self, _key(name))).pow(2).sum() for name, p in net.named_parameters()]
        return torch.stack(terms).sum()


# --------------------------------------------------------------------------- the bundle


class Remedies:
    """The remedies of ``cfg.remedies`` for one method's phases.

    ``check_remedies`` runs at construction. Typical use in a method builder::

        R = Remedies(cfg, "standard")
        D = R.discriminator(cfg.model.d, shape).to(device)
        modules = {"g": G, "d": D, **R.averages(g=G, d=D)}   # historical-average buffers
        ... D(R.d_input(x, ctx)) ...; loss + R.average_term(ctx, "d"); loss + R.g_terms(ctx, D, fake_in)
    """

    def __init__(self, cfg: Experiment, method: str):
        check_remedies(cfg, method)
        self.cfg = cfg
        self.r = cfg.remedies
        self.noise_steps = self.r.instance_noise_steps or cfg.train.steps
        self._nets: dict[str, nn.Module] = {}
        self._avgs: dict[str, HistoricalAverage] = {}

    def discriminator(self, net: NetConfig, shape: tuple[int, ...], outputs: int = 1, where: str = "model.d") -> nn.Module:
        """D for (packed) inputs of ``shape``, with the minibatch layers when on; a new
        ``outputs``-way head whenever those are on or ``outputs != 1``."""
        from .nets import build_discriminator
        from .nets.minibatch import MinibatchDiscriminator

        r = self.r
        D = build_discriminator(net, packed_shape(tuple(shape), r.pack), where=where)
        if r.minibatch_discrimination or r.minibatch_std or outputs != 1:
            D = MinibatchDiscriminator(D, kernels=r.minibatch_discrimination, kernel_dim=r.mbd_dim,
                                       std=r.minibatch_std, outputs=outputs, spectral_norm=net.spectral_norm)
        return D

    def averages(self, **nets: nn.Module) -> dict[str, nn.Module]:
        """Historical-average buffers for each named net (e.g. g=G, d=D), to add to the
        method's modules under ``avg_<name>``; {} when historical averaging is off."""
        if not self.r.historical_averaging:
            return {}
        self._nets.update(nets)
        self._avgs.update({k: HistoricalAverage(n) for k, n in nets.items()})
        return {f"avg_{k}": a for k, a in self._avgs.items()}

    def noise_std(self, step: int) -> float:
        return instance_noise_std(self.r.instance_noise, step, self.noise_steps)

    def d_input(self, x: Tensor, ctx: Context) -> Tensor:
        """What D sees of a batch x: instance noise (when on), then PacGAN packing."""
        if self.r.instance_noise:
            x = add_instance_noise(x, self.noise_std(ctx.step))
        return pack(x, self.r.pack)

    def average_term(self, ctx: Context, name: str) -> Tensor | float:
        """Weighted historical-averaging penalty of net ``name`` after recording its current
        parameters in the running mean (so the mean includes theta_t); 0 when off."""
        if name not in self._avgs:
            return 0.0
        net, avg = self._nets[name], self._avgs[name]
        avg.update_(net)
        pen = avg.penalty(net)
        ctx.stats.report(f"remedy/hist_avg_{name}", pen)
        return self.r.historical_averaging * pen

    def g_logits(self, logits: Tensor, ctx: Context) -> Tensor:
        """D's logits on a fake batch ``[N]`` that G's adversarial loss uses: all of them, or the
        top k with top-k training (k from :func:`top_k_count`; ``N`` counts packs when packing)."""
        if not self.r.top_k:
            return logits
        k = top_k_count(logits.shape[0], self.r.top_k, self.r.top_k_decay, ctx.step)
        if ctx.log_step:
            ctx.stats.report("remedy/top_k", k)
        return top_k_logits(logits, k)

    def after_g_step(self, G: nn.Module, D: nn.Module):
        """The G phase's ``after_step`` hook: code balancing every ``code_balance_every`` steps from
        ``code_balance_start * train.steps`` on (None when off); the first updates would follow a D
        that is still far from optimal (a step of 0.5 from step 0 collapsed the prior to ~12 of
        100 codes on grid25). Logs the prior's perplexity ``exp(H(pi))`` (the effective number of codes)."""
        r = self.r
        if not r.code_balance:
            return None
        def step(ctx: Context) -> None:
            if code_balance_due(r, ctx.step, self.cfg.train.steps):
                code_balance_(G, D, r.code_balance, r.code_balance_samples, r.pack)
                ctx.stats.report("remedy/code_perplexity", perplexity(G.code.log_weights))

        return step

    def g_terms(self, ctx: Context, D: nn.Module, fake_in: Tensor) -> Tensor | float:
        """G's extra terms on D's features of ``fake_in`` (D's input of a fake batch):
        feature matching (against a fresh real batch), pull-away, historical averaging of G."""
        r, out = self.r, self.average_term(ctx, "g")
        if r.feature_matching or r.pull_away:
            f_fake = D.features(fake_in)  # [N, F]
            if r.feature_matching:
                with torch.no_grad():
                    f_real = D.features(self.d_input(ctx.real(), ctx))
                fm = feature_matching(f_real, f_fake)
                ctx.stats.report("remedy/feature_matching", fm)
                out = out + r.feature_matching * fm
            if r.pull_away:
                pt = pull_away(f_fake)
                ctx.stats.report("remedy/pull_away", pt)
                out = out + r.pull_away * pt
        if r.instance_noise and ctx.log_step:
            ctx.stats.report("remedy/instance_noise", self.noise_std(ctx.step))
        return out
