"""CLI subcommands of the metrics layer: ``ganforge eval`` and ``ganforge classifier train``.

``cli.py`` calls :func:`add_parsers` and dispatches with ``args.func(args)``; handlers
return an exit status and raise :class:`~ganforge.errors.GanforgeError` for bad input.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import GanforgeError

EVAL_EPILOG = """examples:
  ganforge eval runs/ring8 --metrics modes,fid --n 2500
  ganforge eval runs/digits-dcgan --metrics fid,kid,is,pr,dc,modes
  ganforge eval runs/cifar --metrics fid,kid --features inception --inception-weights pt_inception-2015-12-05-6726825d.pth

Numbers from different extractors (inception, classifier, raw) are not comparable; the
table and eval.json always name the extractor, the reference set and the sample count."""


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4e}"
    return str(v)


def format_table(result: dict) -> str:
    """A two-column text table of ``result["metrics"]`` plus its context lines."""
    rows = list(result.get("metrics", {}).items())
    width = max([len(k) for k, _ in rows] + [6])
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    lines += [f"{k:<{width}}  {_fmt(v)}" for k, v in rows]
    lines.append("")
    for key in ("extractor", "reference", "samples", "classifier_test_accuracy", "classifier_source", "classifier_sha256"):
        if result.get(key) is not None:
            lines.append(f"{key}: {_fmt(result[key])}")
    return "\n".join(lines)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_run, parse_metrics

    metrics = parse_metrics(args.metrics)
    for flag in ("n", "batch"):
        if getattr(args, flag) < 1:
            raise GanforgeError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if not Path(args.run).is_dir():
        raise GanforgeError(f"run directory {args.run} does not exist; pass a directory written by `ganforge train`")
    opts = {}
    if args.inception_weights is not None:
        opts["inception_weights"] = str(args.inception_weights)
    if args.data_dir is not None:
        opts["data_dir"] = str(args.data_dir)
    result = evaluate_run(args.run, metrics, n=args.n, features=args.features, device=args.device, batch=args.batch,
                          reference_split=args.split, seed=args.seed, progress=not args.quiet, **opts)
    print(format_table(result))
    print(f"wrote {Path(args.run) / 'eval.json'}")
    return 0


def _cmd_classifier(args: argparse.Namespace) -> int:
    from .features_classifier import bundled_classifier_dir, train_and_cache, classifier_dir, classifier_key

    if args.epochs is not None and args.epochs < 1:
        raise GanforgeError(f"--epochs must be at least 1, got {args.epochs}")
    model, info = train_and_cache(args.dataset, args.image_size, str(args.data_dir) if args.data_dir else None,
                                  args.epochs, args.seed, progress=not args.quiet)
    path = classifier_dir() / f"{classifier_key(info['dataset'], info['image_size'])}.safetensors"
    print(f"classifier {info['dataset']} {info['image_size']}px: test accuracy {info['test_accuracy']:.4f} "
          f"on {info['test_samples']} test images ({info['epochs']} epochs, {info['seconds']} s)")
    print(f"saved {path}")
    if (bundled_classifier_dir() / path.name).is_file():
        print(f"note: it now takes precedence over the classifier packaged with ganforge (pinned, so that numbers "
              f"agree across machines); delete {path} and its .json to go back to that one")
    return 0


def add_parsers(subparsers) -> None:
    """Add ``eval`` and ``classifier`` to the CLI's subparsers."""
    from . import FEATURES, METRICS

    e = subparsers.add_parser(
        "eval", help="evaluate a run: FID, KID, IS, PR, DC, mode counting, ...",
        description="Sample from a run, compute metrics against its dataset, print a table and write eval.json.",
        epilog=EVAL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("run", type=Path, help="run directory written by `ganforge train`")
    e.add_argument("--metrics", default="fid", help=f"comma-separated: {', '.join(METRICS.names())} (default fid)")
    e.add_argument("--n", type=int, default=10000, help="generated samples (default 10000)")
    e.add_argument("--features", default="auto", choices=["auto", *FEATURES.names()],
                   help="feature extractor; auto: raw for points, classifier for images")
    e.add_argument("--inception-weights", type=Path, default=None, metavar="PATH",
                   help="FID InceptionV3 weights (safetensors or state dict); default: cache or one download")
    e.add_argument("--batch", type=int, default=500, help="feature-extraction batch size (default 500)")
    e.add_argument("--split", default="train", choices=["train", "test"], help="reference split (default train)")
    e.add_argument("--data-dir", type=Path, default=None, help="local dataset copy (for classifier training)")
    e.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    e.add_argument("--seed", type=int, default=0, help="latent seed of the samples (default 0)")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=_cmd_eval)

    c = subparsers.add_parser(
        "classifier", help="train the evaluation classifier of a dataset",
        description="Train and cache the small CNN whose features/logits serve FID/KID/PR/IS/mode counting offline "
                    "(cache: $GANFORGE_CACHE/classifiers or ~/.cache/ganforge/classifiers; a cached classifier takes "
                    "precedence over the one packaged for fashion-mnist).")
    csub = c.add_subparsers(dest="action", metavar="ACTION")
    t = csub.add_parser("train", help="train on DATASET's training split; report test accuracy")
    t.add_argument("dataset", help="labelled image dataset, e.g. digits, mnist, fashion-mnist")
    t.add_argument("--data-dir", type=Path, default=None, help="local copy of the dataset")
    t.add_argument("--epochs", type=int, default=None, help="training epochs (default: 20 for small sets, ~5 for 60k)")
    t.add_argument("--image-size", type=int, default=None, help="resolution to train at (default: native)")
    t.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_classifier)

    def _need_action(args: argparse.Namespace) -> int:
        raise GanforgeError("missing action; usage: ganforge classifier train DATASET [--epochs N]")

    c.set_defaults(func=_need_action)
