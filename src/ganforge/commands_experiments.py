"""CLI subcommands over many runs: ``sweep``, ``seeds``, ``report`` and ``runs``.

``cli.py`` calls :func:`add_parsers`; handlers take the parsed arguments, return an exit
status and raise :class:`~ganforge.errors.GanforgeError` for bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import GanforgeError

SWEEP_EPILOG = """examples:
  ganforge sweep grid25 --param optim.g.lr=1e-4,2e-4,4e-4 --param train.batch=32,64 --seeds 3 --jobs 2
  ganforge sweep ring8 --param loss.name=ns,hinge --objective hq --set train.steps=3000
  ganforge sweep grid25 --seeds 10 --jobs 2        # no --param: one configuration, 10 seeds
  ganforge sweep grid25 --sampler tpe --param optim.d.lr=1e-5:1e-3:log --trials 20
  # several machines, one study (each runs the same command):
  ganforge sweep grid25 --param ... --storage postgresql://user@host/db --study grid25-lr

Outputs in the sweep directory (default runs/<name>-sweep): summary.md, summary.csv,
best.yaml (run it: ganforge train runs/<name>-sweep/best.yaml), report.html, study.db."""

SEEDS_EPILOG = """examples:
  ganforge seeds grid25 --n 5                  # runs/grid25-seeds/seed-0..4 + seeds.json
  ganforge seeds ring8 --n 3 --set train.steps=2000 --objective hq

seeds.json: per-run values and, per metric, mean, standard deviation (ddof=1) and the 95%
percentile-bootstrap interval of the mean (10,000 resamples, fixed seed)."""


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .experiments.sweep import Sweep

    sw = Sweep(args.recipe, args.param or [], objective=args.objective, seeds=args.seeds, trials=args.trials,
               sampler=args.sampler, storage=args.storage, out=args.out, overrides=args.set or [],
               prune=not args.no_prune, study_name=args.study, eval_n=args.eval_n, jobs=args.jobs)
    print(f"sweep {sw.dir}: {sw.obj.direction} {sw.obj.name}, {sw.sampler} sampler"
          + (f", {sw.grid_size} configurations" if sw.sampler == "grid" else "") + f" x {sw.seeds} seed(s); storage {sw.storage_url}")
    study = sw.run()
    out = sw.finish(study, report=not args.no_report)
    print()
    print(out["markdown"])
    print()
    print(f"summary: {sw.dir / 'summary.md'}, {sw.dir / 'summary.csv'}")
    if out.get("best_yaml"):
        print(f"best:    {out['best_yaml']}  (ganforge train {out['best_yaml']})")
    if out.get("report"):
        print(f"report:  {out['report']}")
    return 0


def _cmd_seeds(args: argparse.Namespace) -> int:
    from .experiments.seeds import format_aggregate, run_seeds

    res = run_seeds(args.recipe, args.n, out=args.out, overrides=args.set or [], objective=args.objective)
    width = max(len(k) for k in res["summary"])
    print(f"{'metric':<{width}}  mean ± std [95% bootstrap interval]  (n={args.n})")
    for k, a in res["summary"].items():
        print(f"{k:<{width}}  {format_aggregate(a)}")
    print(f"wrote {Path(res['runs'][0]['run']).parent / 'seeds.json'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report.html import write_report

    out = args.out
    if out is None:
        out = Path(args.runs[0]) / "report.html" if len(args.runs) == 1 else Path("report.html")
    path = write_report(args.runs, out, title=args.title)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained)")
    return 0


def _cmd_runs(args: argparse.Namespace) -> int:
    import json

    from .runs import format_runs, list_runs

    root = Path(args.dir)
    if not root.exists():
        raise GanforgeError(f"{root} does not exist; pass the directory that holds your runs (default runs/)")
    rows = list_runs(root, depth=args.depth)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no runs under {root}")
    else:
        print(format_runs(rows))
    return 0


def add_parsers(subparsers) -> None:
    """Add ``sweep``, ``seeds``, ``report`` and ``runs`` to the CLI's subparsers."""
    from .experiments.objectives import OBJECTIVES

    s = subparsers.add_parser(
        "sweep", help="search settings with Optuna (grid/TPE, N seeds each, median pruning)",
        description="Train one run per configuration and seed, measure an objective, and write a summary table, "
                    "the best configuration as a recipe (best.yaml) and an HTML report.",
        epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("recipe", help="recipe name or YAML path")
    s.add_argument("--param", action="append", metavar="KEY=V1,V2,...",
                   help="a searched key with its values (or low:high[:log] for --sampler tpe); repeatable; none: seeds only")
    s.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="fixed override for every run (repeatable)")
    s.add_argument("--objective", choices=list(OBJECTIVES), default=None,
                   help="what to optimise (default: modes for 2D data, fid for images)")
    s.add_argument("--seeds", type=int, default=1, help="runs per configuration (default 1)")
    s.add_argument("--trials", type=int, default=None, help="trials for this process (default: the whole grid; tpe: 20)")
    s.add_argument("--sampler", choices=["grid", "tpe"], default="grid", help="grid (default) or tpe")
    s.add_argument("--storage", default=None, metavar="URL", help="Optuna storage URL (default: sqlite file study.db in the sweep dir)")
    s.add_argument("--study", default=None, help="study name (default: the sweep directory's name)")
    s.add_argument("--out", type=Path, default=None, help="sweep directory (default runs/<name>-sweep)")
    s.add_argument("--jobs", type=int, default=1,
                   help="worker processes on this machine, one torch thread each (default 1; 2 on a 2-core CPU)")
    s.add_argument("--eval-n", type=int, default=2500, help="samples per final evaluation (default 2500)")
    s.add_argument("--no-prune", action="store_true", help="turn median pruning off")
    s.add_argument("--no-report", action="store_true", help="skip report.html")
    s.set_defaults(func=_cmd_sweep)

    d = subparsers.add_parser(
        "seeds", help="train N seeds of a recipe: mean, std, 95%% bootstrap interval",
        description="Train OUT/seed-0..N-1 (train.seed + i) and summarise the objective and eval metrics in OUT/seeds.json.",
        epilog=SEEDS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("recipe", help="recipe name or YAML path")
    d.add_argument("--n", type=int, default=3, help="number of seeds (default 3)")
    d.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override (repeatable)")
    d.add_argument("--objective", choices=list(OBJECTIVES), default=None, help="default: modes for 2D data, fid for images")
    d.add_argument("--out", type=Path, default=None, help="parent directory (default runs/<name>-seeds)")
    d.set_defaults(func=_cmd_seeds)

    r = subparsers.add_parser(
        "report", help="one self-contained HTML page comparing runs or a sweep",
        description="Config differences, sample grids over training, curves, metrics and the monitor's diagnosis "
                    "of runs (or a sweep directory's runs), in one offline HTML file.")
    r.add_argument("runs", nargs="+", type=Path, help="run or sweep directories")
    r.add_argument("--out", type=Path, default=None, help="HTML file (default: RUN/report.html for one directory, else report.html)")
    r.add_argument("--title", default=None, help="page title")
    r.set_defaults(func=_cmd_report)

    ls = subparsers.add_parser(
        "runs", help="list run directories: steps, status, best metric, diagnosis",
        description="List the runs under DIR (default runs/) with steps done/total, status (done / interrupted / "
                    "running), best metric and diagnosis.")
    ls.add_argument("dir", nargs="?", default="runs", help="directory to search (default runs/)")
    ls.add_argument("--depth", type=int, default=3, help="levels below DIR to search (default 3)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_cmd_runs)
