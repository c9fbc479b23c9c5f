"""Recipe search for the stacked 1,000-mode benchmarks, sized for one GPU lease.

    python benchmarks/stacked_sweep.py --device cuda --out OUT --screen-s 300 --confirm-s 180

Two phases, each a pool of ``mode_collapse.py`` processes (one run each, ``--configs
recommended`` plus the variant's ``--set`` overrides) sharing the device:

1. **screen**: every variant in :data:`VARIANTS` on seed 0;
2. **confirm**: per dataset, the variant with the lowest KL among those at >= 99% of the real
   data's modes runs seeds 1 .. N-1 (``--confirm-seeds N``).

A phase stops at its time budget (unfinished runs are killed and reported as missing).
Writes ``OUT/sweep.json`` (every run's record, the ceilings, the winners) and ``OUT/sweep.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE / "mode_collapse.py"

# hinge loss + spectral norm in D, no D BatchNorm, Adam (0, 0.9), equal lrs (Miyato et al. 2018)
SNGAN = ["loss.name=hinge", "model.d.spectral_norm=true", "model.d.norm=none", "remedies.instance_noise=0",
         "optim.g.lr=2e-4", "optim.d.lr=2e-4", "optim.g.beta1=0", "optim.d.beta1=0", "optim.g.beta2=0.9", "optim.d.beta2=0.9"]

# name -> (dataset, overrides on top of the dataset's shipped recipe)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "d-recipe": ("stacked-digits", []),
    "d-12k": ("stacked-digits", ["train.steps=12000", "remedies.instance_noise_steps=24000"]),
    "d-sngan": ("stacked-digits", [*SNGAN, "train.steps=8000"]),
    "d-sngan-d128": ("stacked-digits", [*SNGAN, "model.d.width=128", "train.steps=8000"]),
    "d-sngan-big": ("stacked-digits", [*SNGAN, "model.d.width=128", "train.batch=128", "train.steps=12000"]),
    "d-sngan-nc2": ("stacked-digits", [*SNGAN, "optim.n_critic=2", "train.steps=6000"]),
    "d-r1": ("stacked-digits", ["remedies.instance_noise=0", "loss.penalty=r1", "loss.penalty_weight=1", "optim.d.lr=2e-4",
                                "train.steps=8000"]),
    "d-b256": ("stacked-digits", ["train.batch=256"]),
    "d-topk": ("stacked-digits", ["remedies.top_k=0.5"]),
    "d-pack2": ("stacked-digits", ["remedies.pack=2"]),
    "d-d128": ("stacked-digits", ["model.d.width=128"]),
    "d-ema4-12k": ("stacked-digits", ["train.ema=0.9999", "train.steps=12000", "remedies.instance_noise_steps=24000"]),
    # the same at the recipe's 4,000 steps (screening on CPU cores)
    "d-sngan-4k": ("stacked-digits", SNGAN),
    "d-sngan-d128-4k": ("stacked-digits", [*SNGAN, "model.d.width=128"]),
    "d-r1-4k": ("stacked-digits", ["remedies.instance_noise=0", "loss.penalty=r1", "loss.penalty_weight=1", "optim.d.lr=2e-4"]),
    "d-lsgan": ("stacked-digits", ["loss.name=lsgan"]),
    "d-hinge": ("stacked-digits", ["loss.name=hinge"]),
    "d-sn": ("stacked-digits", ["model.d.spectral_norm=true"]),
    "d-const-noise": ("stacked-digits", ["remedies.instance_noise_steps=100000000"]),
    "d-no-ema": ("stacked-digits", ["train.ema=0"]),
    "d-lr-equal": ("stacked-digits", ["optim.d.lr=2e-4"]),
    "f-recipe": ("stacked-fashion", []),
    "f-sngan": ("stacked-fashion", [*SNGAN, "train.steps=8000"]),
    "f-sngan-d128": ("stacked-fashion", [*SNGAN, "model.d.width=128", "train.steps=8000"]),
    "f-12k": ("stacked-fashion", ["train.steps=12000", "remedies.instance_noise_steps=24000"]),
}


def launch(name: str, dataset: str, sets: list[str], seed: int, args, work: Path) -> subprocess.Popen:
    out = work / f"{name}-s{seed}"
    cmd = [sys.executable, str(BENCH), "--datasets", dataset, "--configs", "recommended", "--seeds", "1",
           "--seed-offset", str(seed), "--device", args.device, "--threads", "1", "--no-progress", "--out", str(out),
           "--stacked-samples", str(args.samples)]
    for s in [*sets, *args.set]:
        cmd += ["--set", s]
    if args.keep_runs:
        cmd.append("--keep-runs")
    log = open(out.with_suffix(".log"), "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def run_pool(tasks: list[tuple[str, str, list[str], int]], args, work: Path, budget: float) -> None:
    """Run ``tasks`` with at most ``args.parallel`` at once; kill what is left at ``budget`` seconds."""
    t0, queue, running = time.monotonic(), list(tasks), []
    while queue or running:
        while queue and len(running) < args.parallel:
            name, ds, sets, seed = queue.pop(0)
            running.append(launch(name, ds, sets, seed, args, work))
        time.sleep(1.0)
        running = [p for p in running if p.poll() is None]
        if time.monotonic() - t0 > budget:
            for p in running:
                p.kill()
            print(f"budget of {budget:.0f} s reached: {len(running)} runs killed, {len(queue)} not started", flush=True)
            return


def collect(work: Path) -> tuple[list[dict], dict, dict]:
    """(run records, real-data ceilings, {run: log tail} of runs that wrote no record)."""
    records, ceilings, missing = [], {}, {}
    for log in sorted(work.glob("*.log")):
        f = log.with_suffix("") / "results.json"
        name = log.stem.rpartition("-s")[0]
        runs = json.loads(f.read_text()) if f.is_file() else {"meta": {}, "runs": []}
        ceilings.update(runs["meta"].get("ceiling", {}))
        records += [{"variant": name, **r} for r in runs["runs"]]
        if not runs["runs"]:  # killed or crashed: its log, and how far training got
            rows = [m.read_text().splitlines() for m in log.with_suffix("").glob("runs/*/*/*/metrics.jsonl")]
            last = json.loads(rows[0][-1]) if rows and rows[0] else {}
            missing[log.stem] = {"log": log.read_text(errors="replace")[-400:], "step": last.get("step"),
                                 "elapsed_s": last.get("time")}
    return records, ceilings, missing


def save(out: Path, names: list[str], winners: dict, t0: float, work: Path) -> str:
    records, ceilings, missing = collect(work)
    md = table(records, ceilings, names)
    payload = {"command": " ".join(sys.argv), "seconds": round(time.monotonic() - t0, 1), "winners": winners,
               "ceilings": ceilings, "variants": {n: VARIANTS[n] for n in names}, "runs": records, "missing": missing}
    tmp = out / "sweep.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, out / "sweep.json")
    (out / "sweep.md").write_text(md + "\n")
    return md


def best(records: list[dict], ceilings: dict, dataset: str) -> str | None:
    ok = [r for r in records if r["dataset"] == dataset and "error" not in r]
    if not ok:
        return None
    need = 0.99 * ceilings.get(dataset, {}).get("modes", 1000)
    good = [r for r in ok if r["modes"] >= need] or ok
    return min(good, key=lambda r: r["kl"])["variant"]


def table(records: list[dict], ceilings: dict, names: list[str]) -> str:
    lines = ["| variant | dataset | seeds | modes | KL | KL max | train s | overrides |", "|---|---|---|---|---|---|---|---|"]
    for v in names:
        ds, sets = VARIANTS[v]
        rs = [r for r in records if r["variant"] == v and "error" not in r]
        err = [r for r in records if r["variant"] == v and "error" in r]
        if not rs:
            lines.append(f"| {v} | {ds} | 0{' (' + err[0]['error'][:60] + ')' if err else ''} | | | | | `{' '.join(sets)}` |")
            continue
        m = sum(r["modes"] for r in rs) / len(rs)
        kl = sum(r["kl"] for r in rs) / len(rs)
        t = sum(r["train_s"] for r in rs) / len(rs)
        lines.append(f"| {v} | {ds} | {len(rs)} | {m:.1f} (min {min(r['modes'] for r in rs)}) | {kl:.3f} | "
                     f"{max(r['kl'] for r in rs):.3f} | {t:.0f} | `{' '.join(sets)}` |")
    for ds, c in ceilings.items():
        lines.append(f"| real data | {ds} | | {c['modes']} | {c['kl']:.3f} | | | target: modes >= {0.99 * c['modes']:.0f}, "
                     f"KL <= {1.5 * c['kl']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default="benchmarks/results/stacked_sweep")
    ap.add_argument("--work", default=None, help="folder of the per-run outputs (default OUT/work)")
    ap.add_argument("--variants", default="all", help="comma list of VARIANTS names or 'all'")
    ap.add_argument("--parallel", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--screen-s", type=float, default=300.0, help="time budget of the screening phase")
    ap.add_argument("--confirm-s", type=float, default=180.0, help="time budget of the confirmation phase")
    ap.add_argument("--confirm-seeds", type=int, default=10, help="seeds of each dataset's winner (0 .. N-1)")
    ap.add_argument("--samples", type=int, default=26_000)
    ap.add_argument("--set", action="append", default=[], help="extra override for every run")
    ap.add_argument("--keep-runs", action="store_true", help="keep each run's directory (WORK/NAME-sSEED/runs)")
    args = ap.parse_args(argv)
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "work"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    run_pool([(n, *VARIANTS[n], 0) for n in names], args, work, args.screen_s)
    records, ceilings, _ = collect(work)
    winners = {ds: best(records, ceilings, ds) for ds in sorted({VARIANTS[n][0] for n in names})}
    print(save(out, names, winners, t0, work), "\nwinners:", winners, flush=True)
    tasks = [(w, *VARIANTS[w], s) for s in range(1, args.confirm_seeds) for ds, w in winners.items() if w]
    if tasks and args.confirm_s > 0:
        run_pool(tasks, args, work, args.confirm_s)
    print(save(out, names, winners, t0, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
