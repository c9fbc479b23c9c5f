"""Seed ensemble vs sequential seeds: wall time and mode-collapse quality (PacGAN protocol).

    /work/venv/bin/python benchmarks/ensemble.py                          # grid25, 1000 steps, 10 seeds
    /work/venv/bin/python benchmarks/ensemble.py --steps 500 --sequential run --threads 1

Times, on the same machine and thread count, with the recipe's settings otherwise unchanged
(monitor, sample grids, checkpoints, exported generator included in every time):

- ``single``: one seed through the normal Trainer (``ganforge.train``);
- ``sequential``: ``--seeds`` seeds one after another -- run (``--sequential run``) or
  estimated as seeds x single (``--sequential estimate``, the default);
- ``ensemble``: the same seeds at once (``ganforge.training.ensemble.train_ensemble``).

Prints a markdown table with ensemble / single (the issue's target: <= 2x for 10 seeds) and,
per run, modes / hq (%) / rkl over 2,500 samples (``ganforge.metrics.count_modes_2d``, as
benchmarks/mode_collapse.py: latents of seed 10,000 + seed).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def quality(run) -> dict:
    from ganforge.data import load_dataset
    from ganforge.metrics import count_modes_2d

    c = run.config
    data = load_dataset(c.data, "train", seed=c.train.seed)
    m = count_modes_2d(run.sample(2500, seed=10_000 + c.train.seed), data.modes, data.mode_std)
    return {"modes": int(m["modes"]), "hq": 100.0 * m["hq"], "rkl": float(m["rkl"])}


def summary(rows: list[dict]) -> str:
    def ms(k):
        v = [r[k] for r in rows]
        return f"{statistics.mean(v):.2f} ± {statistics.stdev(v) / len(v) ** 0.5:.2f}" if len(v) > 1 else f"{v[0]:.2f}"

    return f"{ms('modes')} | {ms('hq')} | {ms('rkl')}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="grid25")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for every run (default 1)")
    ap.add_argument("--sequential", choices=("estimate", "run"), default="estimate",
                    help="time the sequential seeds as seeds x single (estimate) or run them all (run)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config override")
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary directory)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    import ganforge
    from ganforge.config import resolve
    from ganforge.training.ensemble import train_ensemble

    over = [f"train.steps={args.steps}", "train.progress=false", f"train.threads={args.threads}", *args.set]
    seeds = list(range(args.seeds))
    tmp = tempfile.TemporaryDirectory() if args.out is None else None
    root = Path(tmp.name) if tmp else args.out

    # warm-up (imports, plotting caches) outside every timing
    ganforge.train(resolve(args.recipe, over + ["train.steps=2", "data.samples=1000"]), out=root / "warmup")
    seq_times, seq_q = [], []
    for s in seeds if args.sequential == "run" else seeds[:1]:
        t0 = time.perf_counter()
        run = ganforge.train(resolve(args.recipe, over + [f"train.seed={s}"]), out=root / "sequential" / f"seed-{s}")
        seq_times.append(time.perf_counter() - t0)
        seq_q.append(quality(run))
        print(f"sequential seed {s}: {seq_times[-1]:.1f} s {seq_q[-1]}", file=sys.stderr, flush=True)
    single = seq_times[0]
    sequential = sum(seq_times) if args.sequential == "run" else single * len(seeds)

    t0 = time.perf_counter()
    runs = train_ensemble(resolve(args.recipe, over), seeds, root / "ensemble")
    ens = time.perf_counter() - t0
    ens_q = [quality(r) for r in runs]
    print(f"ensemble of {len(seeds)}: {ens:.1f} s", file=sys.stderr, flush=True)

    n = len(seeds)
    est = "" if args.sequential == "run" else " (estimate: seeds x single)"
    print(f"\n{args.recipe}, {args.steps} steps, {n} seeds, {args.threads} thread(s), torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}\n")
    print("| training | wall time (s) | per seed (s) | / single seed |")
    print("|---|---:|---:|---:|")
    print(f"| 1 seed, Trainer | {single:.1f} | {single:.1f} | 1.00x |")
    print(f"| {n} seeds, sequential Trainer{est} | {sequential:.1f} | {sequential / n:.1f} | {sequential / single:.2f}x |")
    print(f"| {n} seeds, ensemble | {ens:.1f} | {ens / n:.1f} | **{ens / single:.2f}x** |")
    print(f"\nensemble speed-up over sequential: {sequential / ens:.2f}x; target ensemble({n}) / single(1) <= 2x: "
          f"{'met' if ens / single <= 2 else 'not met'}\n")
    print("| seeds | n | modes (of 25) | hq (%) | rkl |")
    print("|---|---:|---:|---:|---:|")
    print(f"| sequential Trainer | {len(seq_q)} | {summary(seq_q)} |")
    print(f"| ensemble | {len(ens_q)} | {summary(ens_q)} |")
    print("\nper seed, modes/hq/rkl (sequential | ensemble): " + "; ".join(
        f"{s}: " + (f"{seq_q[s]['modes']}/{seq_q[s]['hq']:.0f}/{seq_q[s]['rkl']:.2f} | " if s < len(seq_q) else "")
        + f"{q['modes']}/{q['hq']:.0f}/{q['rkl']:.2f}" for s, q in zip(seeds, ens_q)))
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
