"""Discriminator-guided sampling: correct a trained generator with its trained discriminator.

For the optimal D of the BCE objective, ``D*(x) = p_d(x) / (p_d(x) + p_g(x))``, so its logit is
the log density ratio

    d(x) = logit D(x) = log p_d(x) - log p_g(x),        p_g(x) exp(d(x)) = p_d(x).

Reweighting G's samples by ``exp(d)`` therefore targets the data distribution, to the extent
that D is near-optimal for the final G. Three published ways of doing it:

- ``drs``: Discriminator Rejection Sampling (Azadi et al., ICLR 2019). Draw x ~ p_g and accept
  it with probability ``exp(d(x) - d*)``, ``d* = max d`` (estimated on ``burn_in`` samples and
  raised whenever a larger logit is seen). Azadi et al. accept with ``sigmoid(F(x))``,

      F(x) = d(x) - d* - log(1 - exp(d(x) - d* - eps)) - gamma,

  which is exactly ``exp(d - d*)`` for ``gamma = 0``, ``eps -> 0`` (``sigmoid(logit a) = a``);
  ``gamma < 0`` accepts more (a softer correction), ``gamma > 0`` fewer.
- ``langevin``: discriminator-driven latent sampling (DDLS, Che et al., NeurIPS 2020).
  Unadjusted Langevin dynamics in z on the energy ``E(z) = ||z||^2 / 2 - d(G(z))``,

      z <- z - (step / 2) grad E(z) + sqrt(step) xi,     xi ~ N(0, I),

  whose stationary density ``p_0(z) exp(d(G(z)))`` pushes forward to ``p_g(x) exp(d(x))``.
  The unadjusted chain is biased by O(step) (no Metropolis correction).
- ``mh``: MH-GAN (Turner et al., ICML 2019). An independence Metropolis-Hastings chain whose
  proposals are G's samples and whose target is ``p_g exp(d)``: from state x, a proposal x'
  ~ p_g is accepted with probability

      alpha(x', x) = min(1, (1/D(x) - 1) / (1/D(x') - 1)) = min(1, exp(d(x') - d(x))),

  and a chain's sample is its state after ``chain_length`` proposals. Each chain starts at a
  *real* sample (so it needs no burn-in), and a chain that never accepts a proposal is run
  again from a generator sample, so that no real sample is ever returned. Unlike rejection
  sampling it needs no estimate of ``max d``, and its cost is fixed (``chain_length`` draws per
  sample) whatever the acceptance rate.

All three assume D is near-optimal *for the final G*. A D taken from the last training step is not:
it was trained against a moving G, and under a hinge or Wasserstein loss its logit is not a
log density ratio at all. ``calibrate`` (Azadi et al. section 3.2: keep training D on the
final G) fine-tunes a copy of D with the BCE objective on real data against the frozen G's
samples,

    max_D  E_{x~p_d} log sigmoid(D(x)) + E_{z} log(1 - sigmoid(D(G(z)))),

whose maximiser is the log density ratio above, before refining (:func:`calibrate_discriminator`).

PacGAN packing: a D trained on packs of ``m`` samples estimates
``log prod_i p_d(x_i) / p_g(x_i) = sum_i d(x_i)``. One sample's ``d(x)`` is read off a pack of
``x`` with ``m - 1`` *fixed* companion samples ``c``: ``D(x, c) = d(x) + sum_j d(c_j)``, which is
``d(x)`` up to a constant -- all that rejection sampling (which divides by the maximum) and
Langevin dynamics (which takes a gradient) need. The companions are generator samples drawn once
per call (packs of fakes are what D saw in training), and the logit is averaged over
``companions`` such sets (:func:`log_density_ratio`).

MAD-GAN: its D has k + 1 outputs ("made by G_i", i < k, and "real"), trained on equal numbers
of samples per class, so at the optimum ``D_real / D_i = p_d / p_{g_i}`` and, for the mixture
``p_g = (1/k) sum_i p_{g_i}`` that the run samples from,
``log p_d / p_g = log D_real / (1 - D_real) + log k`` (:func:`scalar_logit`).

Samples refined this way are *not* the generator's own: report them beside, never instead
of, the plain samples.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from .errors import CheckpointError, ConfigError
from .methods.madgan import real_log_odds
from .remedies import pack as pack_samples

REFINERS = ("drs", "langevin", "mh")


def scalar_logit(out: Tensor) -> Tensor:
    """D's output as one log density ratio per sample: ``[N]`` or ``[N, 1]`` as is; a MAD-GAN
    D's ``[N, k + 1]`` logits as ``log D_real / (1 - D_real) + log k`` (module doc)."""
    if out.dim() == 2 and out.shape[1] > 1:
        return real_log_odds(out) + math.log(out.shape[1] - 1)
    return out.reshape(-1)


def log_density_ratio(D: nn.Module, x: Tensor, pack: int = 1, companions: Tensor | None = None) -> Tensor:
    """``d(x) = logit D(x) ~ log p_d(x) / p_g(x)`` per sample, ``x [N, ...] -> [N]``.

    Packing ``m > 1``: ``companions [K, m - 1, ...]`` are K fixed sets of m - 1 samples; the
    result is ``mean_k D(x, companions[k])`` = ``d(x) + const`` (module doc). Without
    companions, ``x`` is packed with itself and the logit divided by m (``D(x, ..., x) / m``,
    exact for the optimal D but outside the packs D was trained on).
    """
    if pack == 1:
        return scalar_logit(D(x))
    if companions is None:
        return scalar_logit(D(torch.cat([x] * pack, dim=1))) / pack  # [N, m*C, ...]: x packed with itself
    if companions.shape[1] != pack - 1:
        raise ConfigError(f"packing {pack} needs companion sets of {pack - 1} samples, got {companions.shape[1]}")
    n = x.shape[0]
    total = 0.0
    for c in companions:  # c [m-1, ...]
        rest = c.reshape(1, -1, *c.shape[2:]).expand(n, -1, *c.shape[2:])  # [N, (m-1)*C, ...]
        total = total + scalar_logit(D(torch.cat([x, rest], dim=1)))
    return total / companions.shape[0]


def _companions(G: nn.Module, z_dim: int, pack: int, k: int, gen, device) -> Tensor | None:
    """``[k, pack - 1, ...]`` fixed generator samples to pack with (None when not packing)."""
    if pack == 1:
        return None
    with torch.no_grad():
        c = G(_latents(k * (pack - 1), z_dim, gen, device))
    return c.reshape(k, pack - 1, *c.shape[1:])


def _latents(n: int, z_dim: int, gen: torch.Generator | None, device) -> Tensor:
    return torch.randn(n, z_dim, generator=gen).to(device)


def calibrate_discriminator(G: nn.Module, D: nn.Module, real: Tensor, z_dim: int, *, steps: int = 1000,
                            batch: int = 256, lr: float = 1e-4, pack: int = 1, seed: int | None = 0) -> tuple[nn.Module, dict]:
    """Fine-tune a *copy* of D on the frozen G (Azadi et al. 2019, section 3.2): ``steps`` Adam
    steps (lr ``lr``, betas (0.5, 0.999)) on the BCE objective (module doc) of its
    :func:`scalar_logit` (for a MAD-GAN D: real against the mixture), each on ``batch``
    real samples drawn from ``real [N, ...]`` and ``batch`` fresh samples of G, packed by
    ``pack`` like D's training inputs. Returns ``(calibrated D in eval mode, {"calibrate_steps",
    "calibrate_loss": mean BCE over the last 10% of steps})``; ``D`` itself is not changed.
    """
    if steps < 1:
        raise ConfigError(f"calibrating D needs steps >= 1, got {steps}")
    if batch < pack or batch % pack:
        raise ConfigError(f"calibration batch {batch} must be a positive multiple of the packing {pack}")
    if real.shape[0] < 1:
        raise ConfigError("calibrating D needs real samples; the dataset is empty")
    device = next(D.parameters()).device
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    Dc = copy.deepcopy(D).train()
    for p in Dc.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(Dc.parameters(), lr=lr, betas=(0.5, 0.999))
    labels = torch.cat([torch.ones(batch // pack), torch.zeros(batch // pack)]).to(device)
    tail: list[float] = []
    for step in range(steps):
        idx = torch.randint(real.shape[0], (batch,), generator=gen)
        with torch.no_grad():
            fake = G(_latents(batch, z_dim, gen, device))
        x = torch.cat([pack_samples(real[idx].to(device, fake.dtype), pack), pack_samples(fake, pack)])
        loss = nn.functional.binary_cross_entropy_with_logits(scalar_logit(Dc(x)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= steps - max(1, steps // 10):
            tail.append(float(loss.detach()))
    return Dc.eval(), {"calibrate_steps": steps, "calibrate_loss": sum(tail) / len(tail)}


@torch.no_grad()
def drs(G: nn.Module, D: nn.Module, n: int, z_dim: int, *, pack: int = 1, gamma: float = 0.0,
        burn_in: int = 10_000, batch: int = 1000, max_draws: int | None = None, eps: float = 1e-6,
        companions: int = 16, seed: int | None = 0) -> tuple[Tensor, dict]:
    """Discriminator Rejection Sampling (Azadi et al. 2019): ``n`` accepted samples and
    ``{"accept": acceptance rate, "draws": samples drawn, "d_max": d*}``.

    Accept x ~ G with probability ``sigmoid(F(x))`` (module doc). ``max_draws`` (default
    ``2000 n``) bounds the work; running out raises a ConfigError. ``companions``: sets of
    fixed partners when D is packed (:func:`log_density_ratio`).
    """
    if n < 1:
        raise ConfigError(f"refinement needs n >= 1 samples, got {n}")
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    max_draws = max_draws or 2000 * n
    comp = _companions(G, z_dim, pack, companions, gen, device)
    d_max = -math.inf
    for _ in range(max(1, math.ceil(burn_in / batch)) if burn_in > 0 else 0):
        d_max = max(d_max, float(log_density_ratio(D, G(_latents(batch, z_dim, gen, device)), pack, comp).max()))
    out: list[Tensor] = []
    kept = drawn = 0
    while kept < n:
        if drawn >= max_draws:
            raise ConfigError(f"rejection sampling accepted {kept} of {drawn} draws (needed {n}); "
                              f"lower the refinement's gamma or use the langevin refiner")
        x = G(_latents(batch, z_dim, gen, device))  # [B, ...]
        d = log_density_ratio(D, x, pack, comp).double()  # [B]
        d_max = max(d_max, float(d.max()))
        a = d - d_max  # <= 0
        f = a - torch.log(-torch.expm1(a - eps)) - gamma  # F(x); log(1 - exp(a - eps))
        u = torch.rand(d.shape, generator=gen, dtype=torch.float64).to(d.device)
        keep = u < torch.sigmoid(f)
        out.append(x[keep])
        kept += int(keep.sum())
        drawn += x.shape[0]
    return torch.cat(out)[:n], {"accept": kept / drawn, "draws": drawn, "d_max": d_max}


def langevin(G: nn.Module, D: nn.Module, n: int, z_dim: int, *, pack: int = 1, steps: int = 200,
             step_size: float = 0.01, batch: int = 1000, companions: int = 16, seed: int | None = 0) -> tuple[Tensor, dict]:
    """Discriminator-driven latent sampling (Che et al. 2020): ``steps`` unadjusted Langevin
    steps in z on ``E(z) = ||z||^2 / 2 - d(G(z))`` from z ~ N(0, I); returns ``G(z_T)`` and
    ``{"steps", "step_size", "mean_dz": mean ||z_T - z_0||}``."""
    if n < 1:
        raise ConfigError(f"refinement needs n >= 1 samples, got {n}")
    if steps < 0 or not step_size > 0:
        raise ConfigError(f"langevin refinement needs steps >= 0 and step_size > 0, got {steps}, {step_size}")
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    comp = _companions(G, z_dim, pack, companions, gen, device)
    out, moved = [], []
    for start in range(0, n, batch):
        z0 = _latents(min(batch, n - start), z_dim, gen, device)
        z = z0.clone()
        for _ in range(steps):
            z.requires_grad_(True)
            with torch.enable_grad():
                energy = 0.5 * z.pow(2).sum() - log_density_ratio(D, G(z), pack, comp).sum()  # sum_i E(z_i)
                (grad,) = torch.autograd.grad(energy, z)
            noise = torch.randn(z.shape, generator=gen).to(device)
            z = (z.detach() - 0.5 * step_size * grad + math.sqrt(step_size) * noise).detach()
        with torch.no_grad():
            out.append(G(z))
        moved.append((z - z0).norm(dim=1))
    return torch.cat(out), {"steps": steps, "step_size": step_size, "mean_dz": float(torch.cat(moved).mean())}


@torch.no_grad()
def mh(G: nn.Module, D: nn.Module, n: int, z_dim: int, *, real: Tensor, pack: int = 1, chain_length: int = 640,
       batch: int = 1000, companions: int = 16, seed: int | None = 0) -> tuple[Tensor, dict]:
    """MH-GAN (Turner et al. 2019): ``n`` independence Metropolis-Hastings chains of
    ``chain_length`` generator proposals each (module doc), started at samples drawn from
    ``real [N, ...]``; returns their final states and ``{"accept": proposals accepted /
    proposals, "restarted": fraction of chains that accepted none and were rerun from a
    generator sample, "chain_length"}``. ``batch`` chains run at once."""
    if n < 1:
        raise ConfigError(f"refinement needs n >= 1 samples, got {n}")
    if chain_length < 1:
        raise ConfigError(f"MH-GAN needs chain_length >= 1 proposals per sample, got {chain_length}")
    if real is None or real.shape[0] < 1:
        raise ConfigError("MH-GAN starts its chains at real samples: pass real= (refine_run loads the run's training data)")
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    comp = _companions(G, z_dim, pack, companions, gen, device)

    def chains(x: Tensor) -> tuple[Tensor, Tensor, int]:  # run chains from states x -> (final x, accepted any [B], accepts)
        d = log_density_ratio(D, x, pack, comp)
        moved = torch.zeros(x.shape[0], dtype=torch.bool, device=d.device)
        accepts = torch.zeros((), dtype=torch.long, device=d.device)
        for _ in range(chain_length):
            xp = G(_latents(x.shape[0], z_dim, gen, device))
            dp = log_density_ratio(D, xp, pack, comp)
            u = torch.rand(d.shape, generator=gen, dtype=torch.float64).to(d.device)
            take = torch.log(u) < (dp - d).double()  # u < min(1, exp(d' - d))
            x = torch.where(take.view(-1, *[1] * (x.dim() - 1)), xp, x)
            d = torch.where(take, dp, d)
            moved |= take
            accepts += take.sum()
        return x, moved, int(accepts)

    out: list[Tensor] = []
    accepted = restarted = 0
    for start in range(0, n, batch):
        b = min(batch, n - start)
        idx = torch.randint(real.shape[0], (b,), generator=gen)
        x, moved, acc = chains(real[idx].to(device, dtype=next(G.parameters()).dtype))
        accepted += acc
        stuck = ~moved
        if stuck.any():  # never left its real start: rerun from a generator sample (Turner et al.)
            k = int(stuck.sum())
            x2, _, acc2 = chains(G(_latents(k, z_dim, gen, device)))
            x[stuck] = x2
            accepted += acc2
            restarted += k
        out.append(x)
    proposals = (n + restarted) * chain_length
    return torch.cat(out), {"accept": accepted / proposals, "restarted": restarted / n, "chain_length": chain_length}


def refine(G: nn.Module, D: nn.Module, n: int, method: str = "drs", *, z_dim: int, pack: int = 1,
           seed: int | None = 0, calibrate: int = 0, real: Tensor | None = None, **options) -> tuple[Tensor, dict]:
    """``n`` D-guided samples of ``G`` with ``method`` (``drs`` | ``langevin`` | ``mh``; options
    go to :func:`drs` / :func:`langevin` / :func:`mh`) → ``(samples on the CPU, info)``. G and D
    are put in eval mode for the call and restored after. ``calibrate > 0`` first fine-tunes a
    copy of D on the frozen G for that many steps against ``real`` samples
    (:func:`calibrate_discriminator`); ``mh`` starts its chains at ``real`` samples."""
    fns: dict[str, Callable[..., tuple[Tensor, dict]]] = {"drs": drs, "langevin": langevin, "mh": mh}
    if method not in fns:
        raise ConfigError(f"unknown refinement {method!r}; valid: {', '.join(REFINERS)}")
    if calibrate < 0:
        raise ConfigError(f"calibration steps must be >= 0 (0: use D as trained), got {calibrate}")
    if (calibrate or method == "mh") and real is None:
        raise ConfigError(("calibrating D" if calibrate else "MH-GAN") + " needs the real data: pass real=")
    if method == "mh":
        options["real"] = real
    g_training, d_training = G.training, D.training
    G.eval()  # BatchNorm generators sample with their running statistics, as Run.sample does
    D.eval()
    try:
        critic, cal = (calibrate_discriminator(G, D, real, z_dim, steps=calibrate, pack=pack, seed=seed)
                       if calibrate else (D, {}))
        x, info = fns[method](G, critic, n, z_dim, pack=pack, seed=seed, **options)
    finally:
        G.train(g_training)
        D.train(d_training)
    return x.float().cpu(), {"method": method, **cal, **info}


def load_discriminator(run_dir: str | Path, device: str | torch.device = "cpu",
                       shape: tuple[int, ...] | None = None) -> tuple[nn.Module, int]:
    """The trained D of a run (from ``checkpoints/last.pt``) and its packing ``m``. ``shape``: one
    sample's shape when the caller knows it (otherwise the dataset is loaded to read it)."""
    from .api import _data_shape
    from .io import load_torch
    from .methods import METHODS
    from .training.rundir import read_config

    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"{path} not found: D-guided sampling needs the run's checkpoint (its discriminator)")
    cfg = read_config(run_dir)
    ckpt = load_torch(path)
    if "d" not in ckpt.get("modules", {}):
        raise CheckpointError(f"the checkpoint of {run_dir} holds no discriminator 'd' (method {cfg.method})")
    method = METHODS.get(cfg.method)(cfg, tuple(shape) if shape else _data_shape(cfg, {}), torch.device("cpu"))
    D = method.modules["d"]
    try:
        D.load_state_dict(ckpt["modules"]["d"])
    except RuntimeError as e:
        raise CheckpointError(f"discriminator weights in {run_dir} do not match its config.yaml ({str(e).splitlines()[0][:120]})") from None
    return D.eval().to(device), cfg.remedies.pack


def refine_run(run, n: int, method: str = "drs", seed: int | None = 0, calibrate: int = 0, **options) -> tuple[Tensor, dict]:
    """:func:`refine` for a trained :class:`ganforge.api.Run` (its G, and D from its checkpoint;
    with ``calibrate > 0`` or ``method="mh"`` the run's training data is loaded from its config
    to calibrate D / start the chains)."""
    D, pack = load_discriminator(run.run_dir, run.device, getattr(run.generator, "out_shape", None))  # no data load for the shape
    real = None
    if calibrate or method == "mh":
        from .data import load_dataset

        real = load_dataset(run.config.data, "train", seed=run.config.train.seed).x
    return refine(run.generator, D, n, method, z_dim=run.config.model.z_dim, pack=pack, seed=seed,
                  calibrate=calibrate, real=real, **options)
