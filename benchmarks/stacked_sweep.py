"""Recipe search for the stacked 1,000-mode benchmarks.

    python benchmarks/stacked_sweep.py --device cpu --variants d-sngan,d-sngan-16k --parallel 2 --screen-s 3000 --out OUT
    python benchmarks/stacked_sweep.py --device cuda --parallel 3 --set train.cuda_graph=true --out OUT

Two phases, each a pool of ``mode_collapse.py`` processes (one run each, ``--configs
recommended`` plus the variant's ``--set`` overrides) sharing the device:

1. **screen**: every variant in :data:`VARIANTS` on seed 0;
2. **confirm**: per dataset, the variant with the lowest KL among those at >= 99% of the real
   data's modes runs seeds 1 .. N-1 (``--confirm-seeds N``).

A phase stops at its time budget (unfinished runs are killed and reported as missing, with
the step they reached). Writes ``OUT/sweep.json`` (every run's record, the ceilings, the
winners) and ``OUT/sweep.md``.

Sizing: on one CPU thread a 16x16 stacked-digits step costs ~70 ms (SN-GAN D) to ~85 ms (the
NS recipe), so a 4,000-step run takes 5-6 minutes. On a GPU machine, many processes sharing
one GPU time-slice it: 16 eager runs of 4,000 steps on an H200 did not finish in 320 s
(docs/benchmarks.md), so give the GPU few processes (``--parallel``) and CUDA graphs
(``--set train.cuda_graph=true``) where the variant allows them.
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

# stacked-digits.yaml before this round: NS loss, BatchNorm D, instance noise 0.1 annealed over
# 8,000 steps, TTUR (D lr 1e-4, G 2e-4), Adam (0.5, 0.999), 4,000 steps
PREVIOUS = ["loss.name=ns", "model.d.norm=batch", "model.d.spectral_norm=false", "remedies.instance_noise=0.1",
            "remedies.instance_noise_steps=8000", "optim.d.lr=1e-4", "optim.g.beta1=0.5", "optim.d.beta1=0.5",
            "optim.g.beta2=0.999", "optim.d.beta2=0.999", "train.steps=4000"]
COSINE = ["optim.g.schedule=cosine", "optim.d.schedule=cosine", "optim.g.min_lr=1e-6", "optim.d.min_lr=1e-6"]

# name -> (dataset, overrides on top of the dataset's shipped recipe). The stacked-digits recipe
# is the SN-GAN-style one (hinge, spectral-norm D without BN, Adam (0, 0.9), lr 2e-4, 24,000 steps).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "d-recipe": ("stacked-digits", []),
    "d-previous": ("stacked-digits", PREVIOUS),
    "d-r1-4k": ("stacked-digits", [*PREVIOUS, "remedies.instance_noise=0", "loss.penalty=r1", "loss.penalty_weight=1",
                                   "optim.d.lr=2e-4"]),
    "d-sngan-4k": ("stacked-digits", ["train.steps=4000"]),
    "d-sngan-d128-4k": ("stacked-digits", ["train.steps=4000", "model.d.width=128"]),
    "d-sngan": ("stacked-digits", ["train.steps=8000"]),
    "d-sngan-cos": ("stacked-digits", ["train.steps=8000", *COSINE]),
    "d-sngan-pack2": ("stacked-digits", ["train.steps=8000", "remedies.pack=2"]),
    "d-sngan-16k": ("stacked-digits", ["train.steps=16000"]),
    "f-recipe": ("stacked-fashion", []),
    "f-8k": ("stacked-fashion", ["train.steps=8000"]),
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
