"""What each named condition means and which ganforge options address it.

:func:`remedies` lists ``--set`` options for a run's config, leaving out what is already
in effect (a run with ``loss.name=ns`` is not told to switch to ``ns``). Each remedy is a
``{"option": "--set key=value", "why": "..."}`` record; options are real config keys
(tests apply every one of them to a config).
"""

from __future__ import annotations

from ..config import Experiment

CONDITIONS = ("divergence", "discriminator_overpowering", "vanishing_generator_gradient", "mode_collapse", "oscillation",
              "low_quality")

EXPLANATIONS = {
    "divergence": (
        "a statistic became NaN/inf or a loss exploded: the weights are no longer usable and "
        "training cannot recover, so the monitor stopped it (a checkpoint was written)"
    ),
    "discriminator_overpowering": (
        "D separates real from generated samples almost perfectly (D(x) -> 1, D(G(z)) -> 0) for "
        "several logs in a row: its feedback no longer tells G where the data is"
    ),
    "vanishing_generator_gradient": (
        "G's gradient fell far below its early level while D wins: with the saturating loss "
        "log(1 - D(G(z))) the gradient w.r.t. D's logit is -D(G(z)), which vanishes as D(G(z)) -> 0"
    ),
    "mode_collapse": (
        "generated samples are much less diverse than the data, or cover few of its modes, for "
        "several checks in a row: G maps many latents to the same few outputs"
    ),
    "oscillation": (
        "G hops between modes: the set of covered modes changes a lot from one check to the "
        "next while coverage stays low (G chases D's current weak spot instead of the data)"
    ),
    "low_quality": (
        "samples off the data manifold: few generated points lie within 3 std of any mode (for several checks in a "
        "row, or at the end of training), barely more than a uniform spread over the data's box would put there, so "
        "mode counts say little "
        "(the evidence gives the modes that still hold clearly more samples than chance)"
    ),
}


def _r(option: str, why: str) -> dict[str, str]:
    return {"option": f"--set {option}", "why": why}


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def remedies(name: str, cfg: Experiment | None) -> list[dict[str, str]]:
    """``--set`` options that apply to condition ``name`` for the run configured by ``cfg``."""
    if cfg is None:
        return []
    L, R, O, M = cfg.loss, cfg.remedies, cfg.optim, cfg.model
    bce = L.name in ("saturating", "ns", "bce")
    wasserstein = L.name.startswith("wgan")
    out: list[dict[str, str]] = []
    if name == "divergence":
        out.append(_r(f"optim.g.lr={_fmt(O.g.lr / 2)} --set optim.d.lr={_fmt(O.d.lr / 2)}", "halve both learning rates"))
        if L.penalty is None and L.name != "wgan-gp":
            out.append(_r("loss.penalty=r1" if not wasserstein else "loss.name=wgan-gp", "a penalty on D's gradient keeps D smooth and bounded"))
        if not M.d.spectral_norm:
            out.append(_r("model.d.spectral_norm=true", "spectral norm bounds D's Lipschitz constant"))
        if O.d.name == "adam" and O.d.beta1 > 0:
            out.append(_r("optim.d.beta1=0 --set optim.g.beta1=0", "Adam momentum can amplify oscillations into divergence"))
    elif name in ("discriminator_overpowering", "vanishing_generator_gradient"):
        if L.name == "saturating":
            out.append(_r("loss.name=ns", "the non-saturating G loss -log D(G(z)) keeps its gradient when D wins"))
        if O.d.lr > O.g.lr:
            out.append(_r(f"optim.d.lr={_fmt(O.g.lr)}", "D learns faster than G; give it G's learning rate (TTUR the other way round)"))
        else:
            out.append(_r(f"optim.d.lr={_fmt(O.d.lr / 4)}", "slow D down (TTUR: separate learning rates for D and G)"))
        if O.n_critic > 1 and not wasserstein:
            out.append(_r("optim.n_critic=1", "fewer D steps per G step"))
        if bce and L.smoothing == 0 and L.real_label == 1.0:
            out.append(_r("loss.smoothing=0.1", "label smoothing keeps D from becoming over-confident"))
        if R.instance_noise == 0:
            out.append(_r("remedies.instance_noise=0.1", "noise on D's inputs makes real and generated distributions overlap"))
        if L.penalty is None and not wasserstein:
            out.append(_r("loss.penalty=r1", "a gradient penalty on D (or loss.penalty=gp) limits how sharp D can get"))
        if not M.d.spectral_norm:
            out.append(_r("model.d.spectral_norm=true", "spectral norm limits D's capacity to saturate"))
    elif name in ("mode_collapse", "oscillation"):
        if L.name == "saturating":
            out.append(_r("loss.name=ns", "the saturating loss is the most collapse-prone objective"))
        if R.pack == 1 and cfg.train.batch % 2 == 0:
            out.append(_r("remedies.pack=2", "PacGAN: D judges samples jointly and so can see missing diversity"))
        if not R.minibatch_std:
            out.append(_r("remedies.minibatch_std=true", "D sees the batch's feature spread"))
        if R.unrolled_steps == 0 and cfg.method == "standard":
            out.append(_r("remedies.unrolled_steps=5", "unrolled GAN: G anticipates D's next updates instead of chasing them"))
        if name == "oscillation" and cfg.train.ema == 0:
            out.append(_r("train.ema=0.999", "an EMA of G's weights averages the hopping out"))
        if O.d.lr < O.g.lr:
            out.append(_r(f"optim.d.lr={_fmt(O.g.lr)}", "G learns faster than D and over-fits D's current weak spot"))
        elif O.d.lr > 4 * O.g.lr:
            out.append(_r(f"optim.d.lr={_fmt(4 * O.g.lr)}", "D learns much faster than G (TTUR uses about 4x at most)"))
        else:
            out.append(_r(f"optim.g.lr={_fmt(O.g.lr / 2)}", "a slower G follows D less greedily"))
        if L.penalty is None and not wasserstein:
            out.append(_r("loss.penalty=gp", "a gradient penalty (or loss.name=wgan-gp) smooths D's feedback"))
    elif name == "low_quality":
        if M.g.name == "mlp" and not M.g.categories:
            z = "" if M.z_dim >= 2 else " --set model.z_dim=3"
            out.append(_r(f"model.g.categories=100 --set model.g.code_scale=0.1{z}",
                          "a categorical latent code lets G put its samples on disconnected modes without the "
                          "bridges a connected latent leaves between them (the grid25 and ring8 recipes' choice)"))
        if O.g.lr >= 1e-3:
            out.append(_r(f"optim.g.lr={_fmt(O.g.lr / 4)} --set optim.d.lr={_fmt(O.d.lr / 4)}",
                          "large steps keep G jittering around the modes instead of settling on them"))
        elif O.g.lr <= 2e-5:
            out.append(_r(f"optim.g.lr={_fmt(O.g.lr * 5)} --set optim.d.lr={_fmt(O.d.lr * 5)}",
                          "G moves too slowly to reach the modes within train.steps"))
        if O.g.schedule == "constant":
            out.append(_r("optim.g.schedule=cosine --set optim.d.schedule=cosine",
                          "a decaying learning rate lets G settle onto the modes at the end (the ring8 recipe's choice)"))
        out.append(_r(f"train.steps={2 * cfg.train.steps}", "samples sharpen late: G may simply not have converged yet"))
        if L.penalty is None and not wasserstein:
            out.append(_r("loss.penalty=r1", "R1 on real data makes GAN training converge to the data locally (Mescheder et al. 2018)"))
        if cfg.train.ema == 0 and O.g.schedule == "constant":  # with a decaying lr the average adds little (measured on ring8)
            out.append(_r("train.ema=0.999", "an average of G's weights removes the jitter of a constant learning rate "
                                             "(BN statistics are recomputed for it)"))
    return out
