"""The ``ganforge`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import GanforgeError

EPILOG = """examples:
  ganforge train                                   # the embedded default (digits-dcgan), no download
  ganforge train ring8 --set train.steps=3000
  ganforge train fashion-dcgan --set loss.name=hinge --out runs/fh
  ganforge train --resume --out runs/fh            # continue an interrupted run
  ganforge sample runs/digits-dcgan --n 64 --out grid.png
  ganforge list recipes
"""


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    from .api import train

    if args.seeds > 1:
        if args.resume:
            raise GanforgeError("--seeds and --resume cannot be combined; resume each seed-i run with --out")
        from .experiments.seeds import format_aggregate, run_seeds

        res = run_seeds(args.recipe, args.seeds, out=args.out, overrides=args.set or [])
        for k, a in res["summary"].items():
            print(f"{k}: {format_aggregate(a)}")
        return 0
    run = train(args.recipe, out=args.out, resume=args.resume, overrides=args.set or [])
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    d = run.run_dir
    print(f"run: {d}")
    print(f"  samples: {d / 'samples' / 'final.png'}")
    print(f"  curves:  {d / 'curves.png'}")
    print(f"  weights: {d / 'generator.safetensors'}")
    diag = d / "diagnosis.json"
    if diag.is_file():
        import json

        conds = json.loads(diag.read_text()).get("conditions", [])
        print(f"  diagnosis: {', '.join(c['name'] for c in conds) if conds else 'healthy'} ({diag})")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from .api import load
    from .report import save_samples

    if args.n < 1:
        raise GanforgeError(f"--n must be at least 1, got {args.n}")
    run = load(args.run, device=args.device)
    if args.refine == "none":
        x = run.sample(args.n, seed=args.seed)
        note = ""
    else:  # D-guided: not the generator's own samples (ganforge.sampling)
        from .sampling import refine_run

        opts = {"drs": {"gamma": args.drs_gamma}, "langevin": {"steps": args.langevin_steps, "step_size": args.langevin_step},
                "mh": {"chain_length": args.mh_chain}}.get(args.refine, {})
        x, info = refine_run(run, args.n, args.refine, seed=args.seed, calibrate=args.calibrate, **opts)
        note = f" (refined with {args.refine}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items() if k != "method") + ")"
    path = save_samples(x, args.out)
    print(f"wrote {args.n} samples to {path}{note}")
    return 0


LISTABLE = ("recipes", "datasets", "nets", "losses", "regularizers", "methods", "metrics")


def _registry(kind: str):
    if kind == "datasets":
        from .data import DATASETS as r
    elif kind == "nets":
        from .nets import NETS as r
    elif kind == "losses":
        from .losses import LOSSES as r
    elif kind == "regularizers":
        from .regularizers import REGULARIZERS as r
    elif kind == "methods":
        from .methods import METHODS as r
    elif kind == "metrics":
        from .metrics import METRICS as r
    return r


def _cmd_list(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(LISTABLE)
    for kind in kinds:
        print(f"{kind}:")
        if kind == "recipes":
            from .config import load_recipe, recipe_names

            rows = [(n, load_recipe(n).description) for n in recipe_names()]
        else:
            r = _registry(kind)
            rows = [(n, r.describe(n)) for n in r.names()]
        width = max((len(n) for n, _ in rows), default=0)
        for n, d in rows:
            print(f"  {n:<{width}}  {d}")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from .config import resolve

    print(resolve(args.recipe, args.set or []).to_yaml(), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ganforge",
        description="Train, evaluate and diagnose GANs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a GAN from a recipe", description=(
        "Train a GAN from a recipe (a name from `ganforge list recipes` or a YAML file). Writes a run "
        "directory: config.yaml, metrics.jsonl, checkpoints/last.pt, samples/, curves.png, "
        "generator.safetensors. Ctrl-C saves a checkpoint; --resume continues exactly where it stopped."))
    t.add_argument("recipe", nargs="?", default="digits-dcgan", help="recipe name or YAML path (default: digits-dcgan)")
    t.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set train.steps=500 (repeatable; see `ganforge config`)")
    t.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<name>, or -2, -3 ... if taken)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out (default: the latest runs/<name>) from checkpoints/last.pt")
    t.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="train N runs with seeds train.seed, +1, ... under --out and summarise them (mean, std, 95%% bootstrap interval)")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run", description=(
        "Draw samples from a run's generator (EMA weights when the run used EMA). The output "
        "suffix picks the format: .png (a grid; a scatter plot for 2D data), .npy (an array), "
        "or no suffix (a directory of PNGs). --refine draws D-guided samples instead (the run's "
        "discriminator, from checkpoints/last.pt, corrects the generator); they are not the generator's own."))
    s.add_argument("run", type=Path, help="run directory written by `ganforge train`")
    s.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--out", type=Path, required=True, help="output: FILE.png, FILE.npy or a directory")
    s.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    s.add_argument("--refine", default="none", metavar="METHOD",
                   help="correct G's samples with the run's trained D: none (default) | drs (discriminator rejection "
                        "sampling, Azadi et al. 2019) | langevin (latent Langevin on ||z||^2/2 - logit D(G(z)), Che et al. 2020) | "
                        "mh (MH-GAN: independence Metropolis-Hastings chains of G's samples, Turner et al. 2019)")
    s.add_argument("--calibrate", type=int, default=0, metavar="STEPS",
                   help="with --refine: first fine-tune a copy of D on the final G for STEPS BCE steps against the run's "
                        "training data, so that its logit estimates log p_data/p_G (Azadi et al.; default 0: D as trained)")
    s.add_argument("--drs-gamma", type=float, default=0.0, help="drs: shift gamma of F(x); < 0 accepts more (default 0: exact)")
    s.add_argument("--langevin-steps", type=int, default=100, help="langevin: steps (default 100)")
    s.add_argument("--langevin-step", type=float, default=0.01, help="langevin: step size (default 0.01)")
    s.add_argument("--mh-chain", type=int, default=640, help="mh: proposals per chain, one chain per sample (default 640)")
    s.set_defaults(func=_cmd_sample)

    ls = sub.add_parser("list", help="list recipes, datasets, nets, losses, ...", description="List what is registered.")
    ls.add_argument("kind", nargs="?", choices=LISTABLE, help="what to list (default: everything)")
    ls.set_defaults(func=_cmd_list)

    c = sub.add_parser("config", help="print a recipe's resolved config", description=(
        "Print the resolved config of a recipe with overrides: every key that --set accepts."))
    c.add_argument("recipe", nargs="?", default="digits-dcgan")
    c.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")
    c.set_defaults(func=_cmd_config)

    try:
        from .metrics.command import add_parsers
    except ImportError:
        pass
    else:
        add_parsers(sub)
    from .commands_experiments import add_parsers as add_experiment_parsers

    add_experiment_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except GanforgeError as e:
        print(f"ganforge: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # Interrupted (checkpoint saved) is reported the same way
        from .training.loop import Interrupted

        if isinstance(e, Interrupted):
            print(f"ganforge: {e}", file=sys.stderr)
            return 130
        raise


if __name__ == "__main__":
    sys.exit(main())
