"""Outputs of a seed ensemble (training/ensemble.py): each seed's sample grids and its
checkpoint in the Trainer's format, so that ``ganforge train --resume`` continues one seed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..remedies import _key

if TYPE_CHECKING:
    from .ensemble import _Ensemble


def _write_samples(ens: _Ensemble, tag: str) -> None:
    from ..report import save_image_grid, save_scatter

    zd = ens.cfg.model.z_dim
    if ens.datasets[0].kind == "points":
        many = ens.sample(torch.randn(2500, zd, generator=torch.Generator().manual_seed(0)))
        for s, (c, data, d) in enumerate(zip(ens.cfgs, ens.datasets, ens.dirs)):
            real = data.x[torch.randperm(len(data.x), generator=torch.Generator().manual_seed(0))[:2500]]
            save_scatter(many[s], d / "samples" / f"{tag}.png", real=real, modes=data.modes, title=f"{c.name} {tag}")
    else:
        for s, (c, d) in enumerate(zip(ens.cfgs, ens.dirs)):
            fixed = torch.randn(c.train.grid or 64, zd, generator=torch.Generator().manual_seed(c.train.seed + 1))
            save_image_grid(ens.sample(fixed)[s], d / "samples" / f"{tag}.png")


def _checkpoint(ens: _Ensemble, s: int, callbacks: list) -> None:
    """checkpoints/last.pt of seed s in the Trainer's format (``--resume`` continues it)."""
    from .checkpoint import rng_state, save_checkpoint, set_rng_state
    from .loop import seed_everything
    from .optim import build_optimizer

    c = ens.cfgs[s]
    optims, scheds = {}, {}
    for k, net in (("d", ens.D), ("g", ens.G)):
        n_params = len(net.params)
        o = build_optimizer(getattr(c.optim, k), [torch.zeros(1, requires_grad=True) for _ in range(n_params)])
        sd = o.state_dict()
        big = ens.opt[k].state_dict()
        names = list(net.params)
        sd["state"] = {i: {n: (v if v.dim() == 0 else net.external(names[i], v)[s]).clone() for n, v in st.items()}
                       for i, st in big["state"].items()}
        sd["param_groups"][0].update(lr=big["param_groups"][0]["lr"], initial_lr=big["param_groups"][0].get("initial_lr"))
        optims[k] = sd
        scheds[k] = ens.sched[k].state_dict()
    outer = rng_state()
    seed_everything(c.train.seed)  # numpy / python RNG: untouched by training, as in a sequential run
    rng = rng_state()
    set_rng_state(outer)  # the process's own RNGs as they were (a checkpoint changes nothing)
    if ens.device.type == "cpu":
        rng["torch"] = ens.gens[s].get_state()
    else:  # the latents came from the device's generator
        rng["cuda"] = [ens.gens[s].get_state()]
    state = {
        "step": ens.step, "elapsed": ens.elapsed,
        "modules": {"g": ens.G.state_dict(s), "d": ens.D.state_dict(s), **{
            f"avg_{k}": {"count": torch.tensor(ens.hist_count[k]),
                         **{_key(n): net.external(n, v)[s].clone() for n, v in ens.hist[k].items()}}
            for k, net in (("g", ens.G), ("d", ens.D)) if k in ens.hist}},
        "optims": optims, "scheds": scheds, "stream": ens.streams[s].state_dict(),
        "fixed_z": torch.randn(c.train.grid or 64, c.model.z_dim, generator=torch.Generator().manual_seed(c.train.seed + 1)),
        "rng": rng, "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else {} for cb in callbacks],
    }
    if ens.ema is not None:
        state["ema"] = ens.generator(s).state_dict()
    save_checkpoint(ens.dirs[s] / "checkpoints" / "last.pt", state)


def _restore(ens: _Ensemble, ckpts: list[dict], callbacks: list[list]) -> None:
    """Load every seed's checkpoint (written by :func:`_checkpoint`, all at the same step) into
    the ensemble: the inverse of ``_checkpoint`` for each seed, so training continues as if it
    had not stopped."""
    from ..errors import CheckpointError

    steps = {int(c["step"]) for c in ckpts}
    if len(steps) != 1:
        raise CheckpointError(f"the seeds' checkpoints are at different steps ({sorted(steps)}); "
                              "resume them one by one with ganforge train --resume, or retrain")
    ens.step, ens.elapsed = steps.pop(), float(ckpts[0].get("elapsed", 0.0))
    for s, ck in enumerate(ckpts):
        ens.G.load_state_dict(s, ck["modules"]["g"])
        ens.D.load_state_dict(s, ck["modules"]["d"])
        for k, net in (("g", ens.G), ("d", ens.D)):
            if k in ens.hist:
                avg = ck["modules"][f"avg_{k}"]
                ens.hist_count[k] = int(avg["count"])
                with torch.no_grad():
                    for n, v in ens.hist[k].items():
                        v[s].copy_(net.internal(n, avg[_key(n)].unsqueeze(0))[0])
        if ens.ema is not None:
            ens.G.load_state_dict(s, ck["ema"], target=ens.ema)
        ens.streams[s].load_state_dict(ck["stream"])
        ens.gens[s].set_state(ck["rng"]["torch"] if ens.device.type == "cpu" else ck["rng"]["cuda"][0])
        for cb, st in zip(callbacks[s], ck.get("callbacks", [])):
            if hasattr(cb, "load_state_dict") and st:
                cb.load_state_dict(st)
    for k, net in (("d", ens.D), ("g", ens.G)):
        sd = ens.opt[k].state_dict()
        names = list(net.params)
        per_seed = [c["optims"][k] for c in ckpts]
        sd["state"] = {i: {n: (v if v.dim() == 0 else
                               net.internal(names[i], torch.stack([p["state"][i][n] for p in per_seed]))).clone()
                           for n, v in st.items()}
                       for i, st in per_seed[0]["state"].items()}
        group = per_seed[0]["param_groups"][0]
        sd["param_groups"][0].update(lr=group["lr"], initial_lr=group.get("initial_lr"))
        ens.opt[k].load_state_dict(sd)
        ens.sched[k].load_state_dict(ckpts[0]["scheds"][k])
    ens._cache = None
