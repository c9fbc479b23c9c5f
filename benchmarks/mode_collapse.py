"""Mode-collapse benchmark: ring8 / grid25 (PacGAN protocol) and the stacked 1,000-mode datasets.

    /work/venv/bin/python benchmarks/mode_collapse.py --quick                  # CI-sized, < 1 minute
    /work/venv/bin/python benchmarks/mode_collapse.py --datasets ring8,grid25 --seeds 10 --jobs 2
    /work/venv/bin/python benchmarks/mode_collapse.py --datasets grid25 --configs recommended --seeds 10
    /work/venv/bin/python benchmarks/mode_collapse.py --datasets stacked-digits --configs baseline,pack4 --seeds 3
    /work/venv/bin/python benchmarks/mode_collapse.py --datasets stacked-fashion --configs recommended --seeds 10 --device cuda --jobs 3 --set train.cuda_graph=true
    /work/venv/bin/python benchmarks/mode_collapse.py --list                   # the named configurations

Protocol (PacGAN, Lin et al. 2018, section 5.1; VEEGAN, Srivastava et al. 2017): after
training, 2,500 samples are drawn; each is assigned to its nearest mode centre and is *high
quality* when within 3 std of it. Reported: modes covered (a mode counts when it has at least
one high-quality sample), the high-quality fraction (%), and the reverse KL between the
histogram of high-quality samples over the modes and the uniform data distribution
(``ganforge.metrics.count_modes_2d``). stacked-digits: 26,000 samples, each channel classified
by the base dataset's classifier (``ganforge.metrics`` ``classifier`` extractor), label
``100a + 10b + c``; reported: modes (classes) covered of 1,000 and KL to uniform, next to the
real data's own count and KL (the ceiling). stacked-digits stacks scikit-learn digits (offline,
16x16); stacked-fashion three Fashion-MNIST items (Debian's ``dataset-fashion-mnist`` or
``--set data.data_dir=DIR``); stacked-mnist three MNIST digits where the IDX files are present.

Each configuration is a list of ``section.key=value`` overrides. For the 2D data every
configuration except ``recommended`` starts from the *plain* PacGAN setup (the dataset's
recipe with the recommended-only settings -- packing, EMA, the cosine schedule, its learning
rate and step count -- reset to the plain GAN's, see :data:`PLAIN`), so remedies are compared
against the same baseline; ``recommended`` is the shipped recipe (``ring8.yaml`` /
``grid25.yaml``) unchanged. Results: ``OUT/results.json`` (every run: config, overrides, seed,
numbers, seconds) and ``OUT/results.md`` (mean ± standard error per configuration). Runs are
appended to the JSON as they finish; ``--resume`` skips the runs already in it and continues an
interrupted run or seed ensemble from its last checkpoint (Ctrl-C and SIGTERM write one; stacked
runs also checkpoint every 2,000 steps, toy runs and seed ensembles every 1,000). ``--merge A/results.json B/results.json --out C`` combines finished sets (one per
core or per session) into one table; ``--only DATASET/CONFIG`` takes from B (and later files)
just those configurations, e.g. one that has finished in a file still being written.

``--refine drs|langevin|mh`` also scores, for every 2D run, 2,500 *D-guided* samples
(``ganforge.sampling``: discriminator rejection sampling, Langevin dynamics in z on
``||z||^2/2 - logit D(G(z))``, or MH-GAN's Metropolis-Hastings chains), stored under ``refined`` in the JSON and tabulated separately:
they are the generator corrected by its discriminator, not the generator's own samples, and the
main numbers (and ``target_met``) are always the generator's own. ``--calibrate STEPS`` first
fine-tunes a copy of each D on its final G (``ganforge.sampling.calibrate_discriminator``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

# --------------------------------------------------------------------------- configurations

# The plain GAN of the PacGAN 2D experiments (the ring8/grid25 recipes as first shipped):
# MLP G 4x400 BN ReLU, MLP D 3x200 maxout-5, NS loss, Adam 1e-4 (0.5, 0.999), batch 100.
_PLAIN_2D = [
    "remedies.pack=1", "train.ema=0", "train.batch=100",
    "optim.g.lr=1e-4", "optim.d.lr=1e-4", "optim.g.schedule=constant", "optim.d.schedule=constant",
    "optim.g.beta1=0.5", "optim.d.beta1=0.5", "optim.g.beta2=0.999", "optim.d.beta2=0.999",
    "model.g.width=400", "model.g.depth=4", "model.d.width=200", "model.d.depth=3", "model.d.maxout=5",
    "model.g.norm=batch", "model.z_dim=2", "loss.name=ns", "remedies.top_k=0", "optim.n_critic=1",
    "model.g.categories=0", "model.g.code_scale=1", "remedies.code_balance=0",
]
PLAIN: dict[str, list[str]] = {
    "ring8": _PLAIN_2D,
    "grid25": _PLAIN_2D,
    # the DCGAN recipes on the stacked data (native size), without their EMA
    "stacked-digits": ["data.name=stacked-digits", "train.ema=0"],
    "stacked-fashion": ["data.name=stacked-fashion", "data.image_size=28", "train.ema=0"],
    "stacked-mnist": ["data.name=stacked-mnist", "data.image_size=28", "train.ema=0"],
}
PLAIN_STEPS = {"ring8": 4000, "grid25": 6000, "stacked-digits": 3000, "stacked-fashion": 3000, "stacked-mnist": 3000}
RECIPE = {"ring8": "ring8", "grid25": "grid25", "stacked-digits": "digits-dcgan",  # base of the plain configs
          "stacked-fashion": "fashion-dcgan", "stacked-mnist": "fashion-dcgan"}
# the shipped recipes (stacked-mnist: the stacked-fashion recipe on MNIST)
RECOMMENDED = {"ring8": "ring8", "grid25": "grid25", "stacked-digits": "stacked-digits",
               "stacked-fashion": "stacked-fashion", "stacked-mnist": "stacked-fashion"}
RECOMMENDED_SET = {"stacked-mnist": ["data.name=stacked-mnist"]}
STACKED = ("stacked-digits", "stacked-fashion", "stacked-mnist")

# name -> (what it is, overrides on top of PLAIN). Weights are this benchmark's choices for
# 2D data; the papers' image-scale values are noted where they differ.
CONFIGS: dict[str, tuple[str, list[str]]] = {
    "baseline": ("plain GAN (NS loss, PacGAN architecture)", []),
    "pack2": ("PacGAN, pack 2 (Lin et al. 2018)", ["remedies.pack=2"]),
    "pack4": ("PacGAN, pack 4", ["remedies.pack=4"]),
    "mbd": ("minibatch discrimination, B=16 kernels of dim 5 (Salimans et al. 2016)", ["remedies.minibatch_discrimination=16", "remedies.mbd_dim=5"]),
    "mbstd": ("minibatch std channel (Karras et al. 2018)", ["remedies.minibatch_std=true"]),
    "fm": ("feature matching, weight 1 added to G's NS loss (Salimans et al. 2016)", ["remedies.feature_matching=1.0"]),
    "histavg": ("historical averaging, weight 1e-3 on G and D (Salimans et al. 2016)", ["remedies.historical_averaging=1e-3"]),
    "noise": ("instance noise, std 0.1 annealed to 0 (Sonderby et al. 2016)", ["remedies.instance_noise=0.1"]),
    "smooth": ("one-sided label smoothing, real target 0.9 (Salimans et al. 2016)", ["loss.real_label=0.9"]),
    "flip": ("label flipping, 5% of D's labels swapped", ["loss.flip=0.05"]),
    "sn": ("spectral norm in D (Miyato et al. 2018)", ["model.d.spectral_norm=true"]),
    # WGAN-GP: lambda 0.1 is the authors' value for their 2D toy data (gan_toy.py in their code, noting a
    # larger lambda needs more critic steps); 10 is the paper's image value, kept as wgangp-l10 (an
    # ablation: on ring8 it scored 3.0 modes, 0.4% HQ in 4,000 steps; 0.1 kept all 8 on 10 of 10 seeds).
    "wgangp": ("WGAN-GP, lambda 0.1 (the authors' 2D value), n_critic 5, Adam (0.5, 0.9) (Gulrajani et al. 2017)",
               ["loss.name=wgan-gp", "loss.penalty_weight=0.1", "optim.n_critic=5", "optim.g.beta2=0.9", "optim.d.beta2=0.9"]),
    "wgangp-l10": ("WGAN-GP with the paper's image-scale lambda 10",
                   ["loss.name=wgan-gp", "loss.penalty_weight=10", "optim.n_critic=5", "optim.g.beta2=0.9", "optim.d.beta2=0.9"]),
    # DRAGAN likewise: lambda 10 is the paper's image value; on ring8 it scored 1.5 modes, 3.1% HQ on 10 seeds,
    # lambda 1 8.0 modes on 10 of 10 (round 30), so the matrix uses 1 and keeps 10 as the ablation dragan-l10.
    "dragan": ("DRAGAN penalty, lambda 1 (a 2D-scale weight) (Kodali et al. 2017)", ["loss.penalty=dragan", "loss.penalty_weight=1"]),
    "dragan-l10": ("DRAGAN with the paper's image-scale lambda 10", ["loss.penalty=dragan", "loss.penalty_weight=10"]),
    "r1": ("R1 penalty, gamma 1 (weight gamma/2 = 0.5) (Mescheder et al. 2018)", ["loss.penalty=r1", "loss.penalty_weight=0.5"]),
    "r2": ("R2 penalty at generated points, gamma 1 (weight gamma/2 = 0.5) (Mescheder et al. 2018)",
           ["loss.penalty=r2", "loss.penalty_weight=0.5"]),
    "gdrop": ("dropout 0.1 after every hidden layer of G during training (Isola et al. 2017 use it as G's noise)",
              ["model.g.dropout=0.1"]),
    "ttur": ("TTUR: lr D 4e-4, G 1e-4 (Heusel et al. 2017)", ["optim.d.lr=4e-4", "optim.g.lr=1e-4"]),
    "unrolled": ("unrolled GAN, 5 unrolling steps of D's own Adam (Metz et al. 2016)",
                 ["method=unrolled", "remedies.unrolled_steps=5", "remedies.unrolled_optimizer=adam"]),
    # before round 27 the unroll was SGD at lr 1e-4 (the plain setup's D lr), which barely moves D: kept as an ablation
    "unrolled-sgd": ("unrolled GAN with 5 SGD steps at lr 1e-4 instead of Adam (ganforge before round 27)",
                     ["method=unrolled", "remedies.unrolled_steps=5", "remedies.unrolled_optimizer=sgd", "remedies.unrolled_lr=1e-4"]),
    "madgan": ("MAD-GAN, 3 generators (Ghosh et al. 2018)", ["method=madgan", "remedies.generators=3"]),
    "madgan-sim": ("MAD-GAN, 3 generators, with the similarity penalty on D's features (weight 1; unmeasured)",
                   ["method=madgan", "remedies.generators=3", "remedies.madgan_sim=1"]),
    "mrgan": ("MRGAN, lambda1 0.2, lambda2 0.4 (Che et al. 2017)", ["method=mrgan"]),
    "mdgan": ("MDGAN: MRGAN's manifold and diffusion steps, lambda 0.2 (Che et al. 2017, sec. 3.3)", ["method=mdgan"]),
    "pullaway": ("EBGAN pull-away term, weight 0.1 (Zhao et al. 2017)", ["remedies.pull_away=0.1"]),
    "topk": ("top-k training: G's loss on the k fakes D scores highest, k from the batch down to half (Sinha et al. 2020)",
             ["remedies.top_k=0.5"]),
    "code": ("categorical latent code: z_0 -> one of 100 equiprobable one-hot codes, 2 continuous coordinates x 0.1 "
             "(DeLiGAN-style mixture prior; model.g.categories)",
             ["model.g.categories=100", "model.g.code_scale=0.1", "model.z_dim=3"]),
    "codebal": ("the categorical code with its prior learned from D (code balancing, step 0.2)",
                ["model.g.categories=100", "model.g.code_scale=0.1", "model.z_dim=3", "remedies.code_balance=0.2"]),
    "cosine": ("lr 2e-4 with cosine decay to 1e-6 for G and D (the recommended recipes' schedule, no packing)",
               ["optim.g.lr=2e-4", "optim.d.lr=2e-4", "optim.g.schedule=cosine", "optim.d.schedule=cosine",
                "optim.g.min_lr=1e-6", "optim.d.min_lr=1e-6"]),
    "recommended": ("ganforge's shipped recipe (ring8.yaml / grid25.yaml / stacked-digits.yaml / stacked-fashion.yaml)", []),
}
ABLATIONS = ("wgangp-l10", "dragan-l10", "unrolled-sgd", "madgan-sim")  # run on request only: --configs all is the remedy matrix without them
ALL_2D_CONFIGS = [c for c in CONFIGS if c not in ABLATIONS]

# PacGAN Table 1 (best reported), for the table's comparison line.
PUBLISHED = {
    "ring8": ("PacGAN2 (Lin et al. 2018, Table 1)", 7.9, 95.6, 0.07),
    "grid25": ("PacGAN4 (Lin et al. 2018, Table 1)", 24.8, 93.6, 0.04),
}
# ganforge's targets for the recommended recipes, on every seed: (modes, hq %, rkl)
TARGETS = {"ring8": (8, 98.0, 0.02), "grid25": (25, 97.0, 0.02)}
NUM_MODES = {"ring8": 8, "grid25": 25, **{d: 1000 for d in STACKED}}
# Benchmark runs write no intermediate samples/checkpoints and skip the monitor (train.device: --device).
RUN_DEFAULTS = ["train.progress=false", "train.monitor=false", "train.sample_every=0",
                "train.checkpoint_every=0", "train.log_every=100"]
STACKED_CHECKPOINT_EVERY = 2_000  # stacked runs take an hour or more: an interrupted one continues (--resume)
TOY_CHECKPOINT_EVERY = 1_000  # so do toy runs: a seed ensemble takes 15-30 min on one core, one unrolled run ~17
STACKED_SAMPLES = 26_000  # Stacked MNIST protocol (VEEGAN / PacGAN)
TWO_D_SAMPLES = 2_500


def overrides_for(dataset: str, config: str, steps: int | None, threads: int, seed: int, extra=(),
                  device: str = "cpu") -> tuple[str, list[str]]:
    """(recipe, overrides) of one run (alone or as a seed of a seed ensemble: the same)."""
    if config not in CONFIGS:
        raise SystemExit(f"unknown config {config!r}; valid: {', '.join(CONFIGS)}")
    if config == "recommended":
        ov = list(RECOMMENDED_SET.get(dataset, []))
    else:
        ov = [*PLAIN[dataset], f"train.steps={PLAIN_STEPS[dataset]}", *CONFIGS[config][1]]
    if steps is not None:
        ov.append(f"train.steps={steps}")
    # --set comes after the run defaults (so it can turn the monitor or checkpoints back on) and
    # before device/threads/seed, which the benchmark's own options set
    every = STACKED_CHECKPOINT_EVERY if dataset in STACKED else TOY_CHECKPOINT_EVERY
    ov += [*RUN_DEFAULTS, f"train.checkpoint_every={every}", *extra, f"train.device={device}", f"train.threads={threads}", f"train.seed={seed}"]
    return (RECOMMENDED if config == "recommended" else RECIPE)[dataset], ov


# --------------------------------------------------------------------------- one run


def run_one(job: dict) -> dict:
    """Train one configuration on one seed and evaluate it; returns the JSON record."""
    import torch

    torch.set_num_threads(job["threads"])
    import ganforge
    from ganforge.config import resolve

    dataset, config, seed = job["dataset"], job["config"], job["seed"]
    recipe, ov = overrides_for(dataset, config, job["steps"], job["threads"], seed, job.get("set", ()), job.get("device", "cpu"))
    rec = {"dataset": dataset, "config": config, "seed": seed, "recipe": recipe, "overrides": ov}
    run_dir = Path(job["runs"]) / dataset / config / f"seed{seed}"
    last = run_dir / "checkpoints" / "last.pt"
    resume = bool(job.get("resume")) and last.is_file() and (run_dir / "config.yaml").is_file()
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)
    keep = job["keep_runs"]
    try:
        cfg = resolve(recipe, ov)
        rec["steps"], rec["method"] = cfg.train.steps, cfg.method
        before = 0.0
        if resume:  # an interrupted run of this job: continue it from its last checkpoint
            from ganforge.training.checkpoint import load_checkpoint

            ckpt = load_checkpoint(last)
            rec["resumed_from"], before = int(ckpt["step"]), float(ckpt.get("elapsed", 0.0))
        t0, c0 = time.perf_counter(), time.process_time()
        run = ganforge.train(cfg, out=run_dir, resume=resume)
        # wall clock (contention shows here) and CPU seconds of this process; a resumed run adds
        # the training seconds its checkpoint recorded (wall clock of the earlier part, in both)
        rec["train_s"] = round(time.perf_counter() - t0 + before, 2)
        rec["train_cpu_s"] = round(time.process_time() - c0 + before, 2)
        evaluate_run(job, run, cfg, rec)
    except Exception as e:  # a failed run is a result too (e.g. a remedy that diverges)
        from ganforge.training.loop import Interrupted

        if isinstance(e, Interrupted):  # Ctrl-C: a checkpoint was written; keep it for --resume
            keep = True
            raise KeyboardInterrupt(f"{dataset}/{config}/seed {seed} stopped at step {e.step}, "
                                    f"checkpoint in {e.run_dir}") from None
        rec["error"] = f"{type(e).__name__}: {str(e)[:300]}"
    except KeyboardInterrupt:
        keep = True
        raise
    finally:
        if not keep and run_dir.exists():
            shutil.rmtree(run_dir, ignore_errors=True)
    return rec


def ensemble_ok(job: dict) -> bool:
    """Whether ``job``'s configuration trains as a seed ensemble (ganforge.training.ensemble)."""
    from ganforge.config import resolve
    from ganforge.training.ensemble import ensemble_unsupported

    recipe, ov = overrides_for(job["dataset"], job["config"], job["steps"], job["threads"], job["seed"], job.get("set", ()),
                               job.get("device", "cpu"))
    return ensemble_unsupported(resolve(recipe, ov)) is None


def run_group(jobs: list[dict]) -> list[dict]:
    """Train the seeds of one (dataset, config) at once as a seed ensemble, then evaluate each
    seed as :func:`run_one` does. The ensemble's seed s equals the sequential run of seed s up
    to float rounding (tests/test_ensemble.py); ``train_s`` / ``train_cpu_s`` are the
    ensemble's seconds divided by the number of seeds (``ensemble_train_s``: the whole). Every
    seed is checkpointed each ``TOY_CHECKPOINT_EVERY`` steps and on Ctrl-C; with
    ``--resume`` an interrupted ensemble continues from its checkpoints."""
    if len(jobs) == 1:
        return [run_one(jobs[0])]
    import torch

    torch.set_num_threads(jobs[0]["threads"])
    from ganforge.config import resolve
    from ganforge.training.ensemble import resume_point, train_ensemble
    from ganforge.training.loop import Interrupted

    j0 = jobs[0]
    dataset, config, seeds = j0["dataset"], j0["config"], [j["seed"] for j in jobs]
    recipe, ov = overrides_for(dataset, config, j0["steps"], j0["threads"], seeds[0], j0.get("set", ()), j0.get("device", "cpu"))
    parent = Path(j0["runs"]) / dataset / config
    names = [f"seed{s}" for s in seeds]
    point = resume_point([parent / n for n in names]) if j0.get("resume") else None
    if point is None:
        for n in names:
            if (parent / n).exists():
                shutil.rmtree(parent / n)
    recs = [{"dataset": dataset, "config": config, "seed": s, "recipe": recipe,
             "overrides": ov[:-1] + [f"train.seed={s}"], "ensemble": len(seeds)} for s in seeds]
    before = 0.0 if point is None else float(point.get("elapsed", 0.0))
    keep = j0["keep_runs"]
    try:
        cfg = resolve(recipe, ov)
        t0, c0 = time.perf_counter(), time.process_time()
        runs = train_ensemble(cfg, seeds, parent, names=names, resume=point is not None)
        # as run_one: a resumed ensemble adds the seconds its checkpoint recorded
        wall, cpu = time.perf_counter() - t0 + before, time.process_time() - c0 + before
        for rec, run in zip(recs, runs):
            rec.update(steps=cfg.train.steps, method=cfg.method, train_s=round(wall / len(seeds), 2),
                       train_cpu_s=round(cpu / len(seeds), 2), ensemble_train_s=round(wall, 2))
            if point is not None:
                rec["resumed_from"] = int(point["step"])
            try:
                evaluate_run(j0 | {"seed": rec["seed"]}, run, run.config, rec)
            except Exception as e:
                rec["error"] = f"{type(e).__name__}: {str(e)[:300]}"
    except Interrupted as e:  # Ctrl-C / SIGTERM: every seed was checkpointed; keep them for --resume
        keep = True
        raise KeyboardInterrupt(f"{dataset}/{config}/seeds {seeds[0]}-{seeds[-1]} stopped at step {e.step}, "
                                f"checkpoints in {parent}") from None
    except KeyboardInterrupt:
        keep = True
        raise
    except Exception as e:
        for rec in recs:
            rec["error"] = f"{type(e).__name__}: {str(e)[:300]}"
    finally:
        if not keep:
            for n in names:
                shutil.rmtree(parent / n, ignore_errors=True)
    return recs


def evaluate_run(job: dict, run, cfg, rec: dict) -> None:
    """The benchmark's numbers of one trained run, added to ``rec``."""
    from ganforge.data import load_dataset

    seed, dataset = job["seed"], job["dataset"]
    t1 = time.perf_counter()
    data = load_dataset(cfg.data, "train", seed=seed)
    if data.kind == "points":
        from ganforge.metrics import count_modes_2d
        from ganforge.metrics.modes import mode_spread

        x = run.sample(TWO_D_SAMPLES, seed=10_000 + seed)
        m = count_modes_2d(x, data.modes, data.mode_std)
        rec.update(modes=int(m["modes"]), hq=100.0 * m["hq"], rkl=float(m["rkl"]), samples=TWO_D_SAMPLES,
                   spread=mode_spread(x, data.modes, data.mode_std))
        if job.get("refine"):  # D-guided samples, reported apart from the generator's own
            from ganforge.errors import GanforgeError
            from ganforge.sampling import refine_run

            t2 = time.perf_counter()
            try:
                x, info = refine_run(run, TWO_D_SAMPLES, job["refine"], seed=10_000 + seed, calibrate=job.get("calibrate", 0))
            except GanforgeError as e:  # e.g. rejection sampling that accepts too little
                rec["refined"] = {"method": job["refine"], "error": str(e)[:300]}
            else:
                mr = count_modes_2d(x, data.modes, data.mode_std)
                rec["refined"] = {"method": job["refine"], "modes": int(mr["modes"]), "hq": 100.0 * mr["hq"], "rkl": float(mr["rkl"]),
                                  **{k: v for k, v in info.items() if k != "method"}, "seconds": round(time.perf_counter() - t2, 2)}
    else:
        from ganforge.metrics import evaluate_samples

        n = job.get("stacked_samples", STACKED_SAMPLES)
        m = evaluate_samples(run.sample(n, seed=10_000 + seed), data, ["modes"], features="classifier", progress=False,
                             device=job.get("device", "cpu"))
        rec.update(modes=int(m["classes"]), kl=float(m["kl"]), samples=n,
                   kl_channels=[round(float(m[f"kl_channel{i}"]), 5) for i in range(3)])
    rec["eval_s"] = round(time.perf_counter() - t1, 2)
    if dataset in TARGETS and "hq" in rec:
        tm, thq, trkl = TARGETS[dataset]
        rec["target_met"] = bool(rec["modes"] >= tm and rec["hq"] >= thq and rec["rkl"] <= trkl)


def plan(jobs: list[dict], ensemble: str = "auto", parallel: int = 1) -> list[list[dict]]:
    """Tasks: the seeds of each (dataset, config) as one group when they train as a seed
    ensemble (``ensemble="auto"``), else one task per run; in the jobs' order. With
    ``parallel`` worker processes, each group is split into that many ensembles (of near-equal
    size), so that one configuration's seeds use every worker."""
    groups: dict[tuple[str, str], list[dict]] = {}
    out: list[list[dict]] = []
    for j in jobs:
        key = (j["dataset"], j["config"])
        if ensemble == "auto" and (key in groups or ensemble_ok(j)):
            if key not in groups:
                groups[key] = []
                out.append(groups[key])
            groups[key].append(j)
        else:
            out.append([j])
    k = max(1, parallel)
    return [part for task in out for part in (task[i::k] for i in range(min(k, len(task))))]


# --------------------------------------------------------------------------- summary


def real_hq(d: int, threshold: float = 3.0) -> float:
    """High-quality fraction of the data itself: ``P(chi2_d < threshold^2)`` (0.989 in 2D)."""
    from scipy.stats import chi2

    return float(chi2.cdf(threshold**2, d))


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n); 0 for n = 1)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(values) / n
    if n == 1:
        return m, 0.0
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var / n)


def fmt(values: list[float], digits: int) -> str:
    if not values:
        return "–"
    m, se = mean_se(values)
    return f"{m:.{digits}f} ± {se:.{digits}f}"


STACKED_TARGET = (0.99, 1.5)  # issue 4: >= 99% of the real data's mode count, KL <= 1.5x the real data's


def real_ceiling(cfg, n: int, seed: int = 10_000) -> dict:
    """Modes and KL of ``n`` real samples (drawn with replacement), counted like generated
    ones: the best a generator can score under this protocol."""
    import torch

    from ganforge.data import load_dataset
    from ganforge.metrics import evaluate_samples

    data = load_dataset(cfg.data, "train", seed=0)
    idx = torch.randint(len(data.x), (n,), generator=torch.Generator().manual_seed(seed))
    m = evaluate_samples(data.x[idx], data, ["modes"], features="classifier", progress=False)
    from ganforge.metrics.features_classifier import STACKED_BASE, get_classifier

    _, info = get_classifier(STACKED_BASE.get(data.name, data.name), int(data.shape[-1]), cfg.data.data_dir, progress=False)
    return {"modes": int(m["classes"]), "kl": float(m["kl"]), "samples": n,
            "classifier": {k: info.get(k) for k in ("source", "sha256", "test_accuracy")}}


def stacked_target_met(rec: dict, ceiling: dict) -> bool:
    frac, kl_factor = STACKED_TARGET
    return rec["modes"] >= frac * ceiling["modes"] and rec["kl"] <= kl_factor * ceiling["kl"]


def summarize(records: list[dict], datasets: list[str], configs: list[str]) -> list[dict]:
    rows = []
    for ds in datasets:
        for c in configs:
            rs = [r for r in records if r["dataset"] == ds and r["config"] == c]
            if not rs:
                continue
            ok = [r for r in rs if "error" not in r]
            row = {"dataset": ds, "config": c, "runs": len(rs), "failed": len(rs) - len(ok),
                   "steps": ok[0]["steps"] if ok else None}
            for k in ("modes", "hq", "rkl", "spread", "kl", "kl_channels", "train_s", "train_cpu_s"):
                # kl_channels: the sum of the three channels' own KLs (the rest of KL is their dependence)
                vals = [float(sum(r[k]) if k == "kl_channels" else r[k]) for r in ok if k in r]
                vals = [v for v in vals if not math.isnan(v)]  # spread: nan for a seed with no high-quality sample
                if vals:
                    row[k] = dict(zip(("mean", "se"), mean_se(vals)))
                    row[k].update(values=vals, min=min(vals), max=max(vals))
            ref = [r["refined"] for r in ok if "refined" in r and "error" not in r["refined"]]
            if ref:
                row["refined"] = {"method": ref[0]["method"], "failed": sum("error" in r.get("refined", {}) for r in ok),
                                  "calibrate": int(ref[0].get("calibrate_steps", 0))}
                for k in ("modes", "hq", "rkl", "accept"):
                    vals = [float(r[k]) for r in ref if k in r]
                    if vals:
                        row["refined"][k] = {**dict(zip(("mean", "se"), mean_se(vals))), "values": vals, "min": min(vals), "max": max(vals)}
                if ds in TARGETS:
                    tm, thq, trkl = TARGETS[ds]
                    row["refined"]["target_met"] = sum(r["modes"] >= tm and r["hq"] >= thq and r["rkl"] <= trkl for r in ref)
            if ds in TARGETS and ok:
                row["target_met"] = sum(bool(r.get("target_met")) for r in ok)
            row["ensemble"] = sum(1 for r in ok if r.get("ensemble"))  # seeds trained in a seed ensemble
            rows.append(row)
    return rows


def side_by_side(summary: list[dict], configs: list[str]) -> list[str]:
    """Markdown lines of one table with every configuration's mean modes / HQ / reverse KL on
    each 2D dataset in ``summary``, so that a remedy reads across datasets at a glance; no
    lines unless two 2D datasets have results."""
    ds2d = [d for d in TARGETS if any(r["dataset"] == d for r in summary)]
    if len(ds2d) < 2:
        return []
    cell = {(r["dataset"], r["config"]): r for r in summary}
    head = "| config |" + "".join(f" {d} modes (of {NUM_MODES[d]}) | HQ % | reverse KL | seeds |" for d in ds2d)
    out = ["## Side by side", "", head, "|---|" + "---|---|---|---|" * len(ds2d)]
    for c in configs:
        if not any((d, c) in cell for d in ds2d):
            continue
        line = f"| {c} |"
        for d in ds2d:
            r = cell.get((d, c))
            if r is None or "modes" not in r:
                line += " – | – | – | – |"
            else:
                line += f" {r['modes']['mean']:.2f} | {r['hq']['mean']:.1f} | {r['rkl']['mean']:.3f} | {r['runs']} |"
        out.append(line)
    out += ["", "Means over each configuration's seeds; the tables below give standard errors, worst seeds and times. "
            "Targets: " + "; ".join(f"{d} {TARGETS[d][0]}/{NUM_MODES[d]}, ≥ {TARGETS[d][1]}%, ≤ {TARGETS[d][2]}" for d in ds2d)
            + " (modes, HQ, reverse KL, on every seed).", ""]
    return out


def markdown(records: list[dict], datasets: list[str], configs: list[str], meta: dict) -> str:
    from ganforge.metrics.modes import data_spread

    out = ["# Mode-collapse benchmark", "",
           f"Command: `{meta['command']}`  ",
           f"Machine: {meta['machine']}; device {meta.get('device', 'cpu')}; torch threads per run: {meta['threads']}, jobs: {meta['jobs']}; "
           f"load average at start {meta['load_start']}, at end {meta['load_end']}.  ",
           "Mean ± standard error over seeds. Time: training seconds per run, wall clock and CPU (the CPU seconds of "
           "a one-thread run approximate its wall time on an idle machine).", ""]
    for src in meta.get("merged_from", []):
        out.insert(-1, f"Merged from `{src['file']}` (started {src['started']}): `{src['command']}`  ")
    summary = summarize(records, datasets, configs)
    out += side_by_side(summary, configs)
    for ds in datasets:
        rows = [r for r in summary if r["dataset"] == ds]
        if not rows:
            continue
        out.append(f"## {ds}")
        out.append("")
        if ds in STACKED:
            ceil = meta.get("ceiling", {}).get(ds)
            out += ["| config | steps | seeds | modes (of 1000) | KL | channel KLs (sum) | seeds meeting target | train s/run (wall) | (CPU) |",
                    "|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                g = lambda k, d: fmt(r[k]["values"], d) if k in r else "–"  # noqa: E731
                fail = f" ({r['failed']} failed)" if r["failed"] else ""
                ok = [x for x in records if x["dataset"] == ds and x["config"] == r["config"] and "error" not in x]
                met = f"{sum(stacked_target_met(x, ceil) for x in ok)}/{r['runs']}" if ceil else "–"
                out.append(f"| {r['config']} | {r['steps']} | {r['runs']}{fail} | {g('modes', 1)} | {g('kl', 3)} | {g('kl_channels', 3)} | {met} | "
                           f"{g('train_s', 0)} | {g('train_cpu_s', 0)} |")
            if ceil:
                frac, kf = STACKED_TARGET
                out += [f"| *real data ({ceil['samples']:,} samples)* | | | {ceil['modes']} | {ceil['kl']:.3f} | | | | |", "",
                        f"Target (every seed): >= {frac:.0%} of the real data's modes (>= {frac * ceil['modes']:.0f}) and KL "
                        f"<= {kf}x the real data's (<= {kf * ceil['kl']:.3f}). Published best for Stacked MNIST: 1000 modes, "
                        "KL 0.029 (R3GAN). Channel KLs: each channel's digit histogram against uniform, summed "
                        "(`ganforge.metrics.modes.channel_kl`); the rest of the KL is the channels' dependence.", ""]
            else:
                out.append("")
        else:
            tm, thq, trkl = TARGETS[ds]
            out += [f"| config | steps | seeds | modes (of {NUM_MODES[ds]}) | high quality % | reverse KL | "
                    f"spread | seeds meeting target | train s/run (wall) | (CPU) |", "|---|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                g = lambda k, d, w=None: fmt(r[k]["values"], d) + (f" (worst {r[k][w]:.{d}f})" if w and r['runs'] > 1 else "") if k in r else "–"  # noqa: E731
                fail = f" ({r['failed']} failed)" if r["failed"] else ""
                tgt = f"{r.get('target_met', 0)}/{r['runs']}"
                out.append(f"| {r['config']}{' †' if r.get('ensemble') else ''} | {r['steps']} | {r['runs']}{fail} | {g('modes', 2, 'min')} | {g('hq', 1, 'min')} | "
                           f"{g('rkl', 3, 'max')} | {g('spread', 2)} | {tgt} | {g('train_s', 0)} | {g('train_cpu_s', 0)} |")
            name, pm, phq, prkl = PUBLISHED[ds]
            out += [f"| *published: {name}* | | | {pm} | {phq} | {prkl} | | | | |",
                    f"| *real data* | | | {NUM_MODES[ds]} | {100 * real_hq(2):.1f} | | {data_spread(2):.2f} | | | |", "",
                    f"Target (every seed): {tm}/{NUM_MODES[ds]} modes, ≥ {thq}% high quality, reverse KL ≤ {trkl}. "
                    "Worst: the lowest modes / HQ and the highest reverse KL over seeds. Spread: RMS distance of the "
                    "high-quality samples to their mode per coordinate, in units of the data's std "
                    "(`ganforge.metrics.modes.mode_spread`); the data itself scores "
                    f"{data_spread(2):.2f} (and {100 * real_hq(2):.1f}% high quality), so a generator far below it "
                    "puts each mode's mass on a few tight points." + (
                        " †: seeds trained at once as a seed ensemble (`ganforge.training.ensemble`, equal to the sequential "
                        "runs up to float rounding); its train seconds are the ensemble's divided by its seeds."
                        if any(r.get("ensemble") for r in rows) else ""), ""]
            refined = [r for r in rows if "refined" in r]
            if refined:
                cal = refined[0]["refined"].get("calibrate", 0)
                out += [f"D-guided samples ({refined[0]['refined']['method']}, `ganforge.sampling`): the same generators corrected by "
                        "their discriminators" + (f" (each D first calibrated on its final G for {cal} BCE steps)" if cal else "")
                        + " -- **not the generators' own samples**.", "",
                        "| config | seeds | modes | high quality % | reverse KL | seeds meeting target | acceptance |",
                        "|---|---|---|---|---|---|---|"]
                for r in refined:
                    f = r["refined"]
                    g = lambda k, d, w=None: fmt(f[k]["values"], d) + (f" (worst {f[k][w]:.{d}f})" if w and r['runs'] > 1 else "") if k in f else "–"  # noqa: E731
                    out.append(f"| {r['config']} | {r['runs']} | {g('modes', 2, 'min')} | {g('hq', 1, 'min')} | {g('rkl', 3, 'max')} | "
                               f"{f.get('target_met', 0)}/{len(f['hq']['values'])} | {g('accept', 3)} |")
                out.append("")
        out.append("")
    errors = [r for r in records if "error" in r]
    if errors:
        out += ["## Failed runs", ""] + [f"- {r['dataset']} {r['config']} seed {r['seed']}: {r['error']}" for r in errors] + [""]
    out += ["## Configurations", ""]
    for c in configs:
        out.append(f"- `{c}`: {CONFIGS[c][0]}" + (f" — `{' '.join(CONFIGS[c][1])}`" if CONFIGS[c][1] else ""))
    out.append("")
    return "\n".join(out)


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


# --------------------------------------------------------------------------- main


def write_results(json_path: Path, md_path: Path, records: list[dict], datasets: list[str], configs: list[str], meta: dict) -> None:
    """results.json (atomically) and results.md for ``records``."""
    payload = {"meta": meta, "summary": summarize(records, datasets, configs), "runs": records}
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, json_path)
    md_path.write_text(markdown(records, datasets, configs, meta))


def _settings(overrides: list[str]) -> dict[str, str]:
    """KEY -> VALUE of an override list (the last one wins, as in ganforge.config)."""
    return dict(o.split("=", 1) for o in overrides if "=" in o)


RENAMED = {"dragan-l1": "dragan"}  # configurations renamed since runs were recorded under the old name (round 30)


def reconcile(runs: list[dict], source: str) -> list[dict]:
    """``runs`` with each run filed under the named configuration its overrides match now.

    A configuration's definition can change after runs were recorded under its name (round 22:
    ``wgangp`` went from lambda 10 to 0.1 and the old runs became ``wgangp-l10``). A run whose
    recorded overrides disagree with its configuration is relabelled to the one configuration
    with the same keys that it does match; if there is none, this stops with a one-line error
    instead of mixing two settings in one row. A run under a name in ``RENAMED`` (round 30:
    ``dragan-l1`` became ``dragan``) is first filed under the new name, then checked the same way."""
    out = []
    for r in runs:
        if r.get("config") in RENAMED:
            r = {**r, "config": RENAMED[r["config"]]}
        c = r.get("config")
        if c not in CONFIGS or c == "recommended" or "overrides" not in r:
            out.append(r)
            continue
        have = _settings(r["overrides"])

        def fits(name: str) -> bool:
            return all(have.get(k) == v for k, v in _settings(CONFIGS[name][1]).items())

        if not fits(c):
            keys = set(_settings(CONFIGS[c][1]))
            match = [n for n in CONFIGS if n != "recommended" and set(_settings(CONFIGS[n][1])) == keys and fits(n)]
            if len(match) != 1:
                wrong = ", ".join(f"{k}={have.get(k)} (now {v})" for k, v in _settings(CONFIGS[c][1]).items() if have.get(k) != v)
                raise SystemExit(f"{source}: {r['dataset']}/{c}/seed {r['seed']} was trained with {wrong}; "
                                 f"{c} is defined differently now: rerun it, or rename its config in that file")
            r = {**r, "config": match[0]}
        out.append(r)
    return out


def parse_only(pairs: list[str]) -> set[tuple[str, str]]:
    """``--only DATASET/CONFIG`` values (each may be a comma list) as (dataset, config) pairs."""
    out = set()
    for item in (x.strip() for p in pairs for x in p.split(",")):
        d, _, c = item.partition("/")
        if not item or d not in RECIPE or c not in CONFIGS:
            raise SystemExit(f"--only {item!r}: expected DATASET/CONFIG with a dataset of {', '.join(RECIPE)} "
                             f"and a named config (--list), e.g. --only ring8/dragan")
        out.add((d, c))
    return out


def merge(files: list[str], command: str, only: set[tuple[str, str]] | None = None,
          ) -> tuple[list[dict], list[str], list[str], dict]:
    """The runs of several results.json files as one record set, plus the datasets and configs
    they cover (in the benchmark's order) and a meta block naming every source's command.

    ``only``: from every file after the first, keep just the runs of these (dataset, config)
    pairs, e.g. a configuration that has finished in a results.json still being appended."""
    keyed: dict[tuple, dict] = {}
    metas = []
    for i, f in enumerate(files):
        path = Path(f)
        if not path.is_file():
            raise SystemExit(f"--merge: {f} is not a file; pass the results.json of earlier benchmark runs")
        try:
            payload = json.loads(path.read_text())
            runs, meta = payload["runs"], payload.get("meta", {})
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"--merge: {f} is not a mode_collapse results.json ({e}); pass OUT/results.json of a benchmark run")
        metas.append(meta)
        for r in reconcile(runs, f):
            if i == 0 or not only or (r["dataset"], r["config"]) in only:
                keyed[(r["dataset"], r["config"], r["seed"])] = r
    records = list(keyed.values())
    datasets = [d for d in RECIPE if any(r["dataset"] == d for r in records)]
    configs = [c for c in CONFIGS if any(r["config"] == c for r in records)]
    first = metas[0] if metas else {}
    meta = {"command": command, "machine": first.get("machine", machine()), "device": first.get("device", "cpu"),
            "threads": first.get("threads", 1), "jobs": first.get("jobs", 1), "load_start": first.get("load_start", "?"),
            "load_end": first.get("load_end", "?"),
            "merged_from": [{"file": f, "command": m.get("command", "?"), "started": m.get("started", "?")} for f, m in zip(files, metas)],
            "ceiling": {k: v for m in metas for k, v in m.get("ceiling", {}).items()}}
    return records, datasets, configs, meta


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="ring8,grid25", help=f"comma list of {', '.join(RECIPE)}")
    ap.add_argument("--configs", default="all", help=f"comma list of named configurations or 'all' ({', '.join(CONFIGS)})")
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per configuration")
    ap.add_argument("--seed-offset", type=int, default=0, help="first seed")
    ap.add_argument("--steps", type=int, default=None, help="generator steps for every run (default: each config's own)")
    ap.add_argument("--quick", action="store_true", help="CI-sized: ring8, baseline + pack2, 2 seeds, 200 steps (< 1 min)")
    ap.add_argument("--out", default="benchmarks/results/mode_collapse", help="output folder (results.json, results.md)")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes); 1: in this process")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--device", default="cpu", help="train.device of every run (cpu, cuda, cuda:N); evaluation runs on the CPU")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra override for every run, e.g. --set train.batch=200 (repeatable); overrides the "
                         "benchmark's run defaults (no monitor, no checkpoints), not --device/--threads/seeds")
    ap.add_argument("--refine", choices=("drs", "langevin", "mh"), default=None,
                    help="also score D-guided samples of each 2D run (ganforge.sampling), reported apart from G's own")
    ap.add_argument("--calibrate", type=int, default=0, metavar="STEPS",
                    help="with --refine: fine-tune a copy of D on the final G for STEPS BCE steps first (Azadi et al.)")
    ap.add_argument("--ensemble", choices=("auto", "off"), default="auto",
                    help="auto: train the seeds of each configuration that ganforge.training.ensemble supports at once "
                         "(one process, batched over seeds; equal to the sequential runs up to float rounding); off: one run at a time")
    ap.add_argument("--keep-runs", action="store_true", help="keep each run's directory under OUT/runs")
    ap.add_argument("--resume", action="store_true",
                    help="skip runs already in OUT/results.json, and continue an interrupted run from its last checkpoint "
                         f"(Ctrl-C writes one; stacked runs also every {STACKED_CHECKPOINT_EVERY:,} steps)")
    ap.add_argument("--stacked-samples", type=int, default=STACKED_SAMPLES, help="samples counted on stacked data")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--list", action="store_true", help="print the named configurations and exit")
    ap.add_argument("--merge", nargs="+", default=None, metavar="RESULTS_JSON",
                    help="train nothing: combine the runs of these results.json files (e.g. one per core, or per session) "
                         "into OUT/results.json and OUT/results.md; a (dataset, config, seed) in several files keeps the last")
    ap.add_argument("--only", action="append", default=[], metavar="DATASET/CONFIG",
                    help="with --merge: take from the files after the first only these dataset/config pairs (repeatable or "
                         "a comma list), e.g. --only ring8/dragan to add a configuration that has finished in a "
                         "results.json still being written")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for c, (desc, ov) in CONFIGS.items():
            note = " (ablation: not in 'all')" if c in ABLATIONS else ""
            print(f"{c:12s} {desc}{note}\n{'':12s} {' '.join(ov) or '(no overrides)'}")
        return 0
    if args.quick:
        args.datasets = args.datasets if args.datasets != "ring8,grid25" else "ring8"
        args.configs = args.configs if args.configs != "all" else "baseline,pack2"
        args.seeds = min(args.seeds, 2)
        args.steps = args.steps or 200
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for d in datasets:
        if d not in RECIPE:
            raise SystemExit(f"unknown dataset {d!r}; valid: {', '.join(RECIPE)}")
    configs = ALL_2D_CONFIGS if args.configs == "all" else [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        if c not in CONFIGS:
            raise SystemExit(f"unknown config {c!r}; valid: {', '.join(CONFIGS)} (or all)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    command = " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else "mode_collapse.py " + " ".join(argv)
    if args.only and not args.merge:
        raise SystemExit("--only selects runs to merge: use it with --merge MAIN/results.json OTHER/results.json")
    if args.merge:
        records, datasets, configs, meta = merge(args.merge, command, parse_only(args.only))
        write_results(json_path, md_path, records, datasets, configs, meta)
        print(md_path.read_text())
        print(f"wrote {json_path} and {md_path} ({len(records)} runs from {len(args.merge)} files)")
        return 0
    records: list[dict] = []
    earlier_ceiling: dict = {}
    if args.resume and json_path.is_file():
        earlier = json.loads(json_path.read_text())
        records = reconcile([r for r in earlier["runs"] if "error" not in r], str(json_path))
        earlier_ceiling = earlier.get("meta", {}).get("ceiling", {})
    done = {(r["dataset"], r["config"], r["seed"]) for r in records}
    seeds = range(args.seed_offset, args.seed_offset + args.seeds)
    jobs = [{"dataset": d, "config": c, "seed": s, "steps": args.steps, "threads": args.threads, "device": args.device,
             "runs": str(out / "runs"), "keep_runs": args.keep_runs, "set": list(args.set), "stacked_samples": args.stacked_samples,
             "refine": args.refine, "calibrate": args.calibrate, "resume": args.resume}
            for d in datasets for c in configs for s in seeds if (d, c, s) not in done]
    meta = {"command": command, "machine": machine(), "device": args.device, "threads": args.threads, "jobs": args.jobs, "load_start": load_avg(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    def write() -> None:
        meta["load_end"] = load_avg()
        write_results(json_path, md_path, records, datasets, configs, meta)

    import torch

    # the classifier and ceiling below run before any run starts: on every core (~2 min on one)
    torch.set_num_threads(max(args.threads, os.cpu_count() or 1))
    for d in datasets:
        kept = earlier_ceiling.get(d)
        if kept and kept.get("samples") == args.stacked_samples:  # --resume: counted already
            meta.setdefault("ceiling", {})[d] = kept
        elif d in STACKED and any(j["dataset"] == d for j in jobs):
            # train/cache the base classifier once, before the runs (quietly; parallel jobs would race)
            from ganforge.config import resolve
            from ganforge.data import load_dataset
            from ganforge.metrics.features_classifier import STACKED_BASE, get_classifier

            cfg = resolve(*overrides_for(d, configs[0], 1, args.threads, 0, args.set))
            get_classifier(STACKED_BASE[d], int(load_dataset(cfg.data, "train", seed=0).shape[-1]), cfg.data.data_dir, progress=False)
            meta.setdefault("ceiling", {})[d] = real_ceiling(cfg, args.stacked_samples)

    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="mode-collapse runs", unit="run", disable=args.no_progress, file=sys.stderr)
    t0 = time.perf_counter()

    def record(rec: dict) -> None:
        records.append(rec)
        write()
        bar.update(1)
        msg = (f"{rec['dataset']}/{rec['config']}/s{rec['seed']}: " +
               (rec["error"][:60] if "error" in rec else f"modes {rec['modes']} " +
                (f"hq {rec['hq']:.1f}% rkl {rec['rkl']:.3f}" if "hq" in rec else f"kl {rec['kl']:.3f}") + f" {rec['train_s']:.0f}s" +
                (f" | {rec['refined']['method']}: hq {rec['refined']['hq']:.1f}%" if "refined" in rec else "")))
        bar.set_postfix_str(msg, refresh=True)

    groups = plan(jobs, args.ensemble, args.jobs)
    if args.jobs <= 1:
        for group in groups:
            for rec in run_group(group):
                record(rec)
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            for recs in pool.imap_unordered(run_group, groups):
                for rec in recs:
                    record(rec)
    bar.close()
    write()
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path} ({len(jobs)} runs, {time.perf_counter() - t0:.0f} s)")
    return 0


def cli() -> int:
    """``main`` with Ctrl-C answered in one line (what was kept, how to go on), not a traceback."""
    try:
        return main()
    except KeyboardInterrupt as e:
        why = f": {e}" if str(e) else ""
        raise SystemExit(f"interrupted{why}; finished runs are in the --out folder's results.json; "
                         "the same command with --resume continues") from None


if __name__ == "__main__":
    sys.exit(cli())
