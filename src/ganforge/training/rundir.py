"""Run directories: where a run lives, and refusing to overwrite a different one."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..config import Experiment, from_dict
from ..errors import CheckpointError, ConfigError

# Keys that may differ when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = {"train.steps", "train.progress", "train.log_every", "train.sample_every",
                     "train.checkpoint_every", "train.device", "train.threads", "train.tensorboard", "train.monitor", "eval.every", "eval.metrics",
                     "eval.n", "eval.features", "eval.best", "name", "description"}


def read_config(run_dir: Path) -> Experiment:
    p = Path(run_dir) / "config.yaml"
    if not p.is_file():
        raise CheckpointError(f"{run_dir} is not a ganforge run (no config.yaml); pass the directory that `ganforge train` wrote")
    try:
        return from_dict(yaml.safe_load(p.read_text(encoding="utf-8")) or {})
    except (yaml.YAMLError, ConfigError) as e:
        raise CheckpointError(f"cannot read {p} ({str(e).splitlines()[0]}); restore it or start a new run") from None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def config_diff(a: Experiment, b: Experiment) -> dict[str, tuple]:
    """{dotted key: (a value, b value)} for keys that differ."""
    fa, fb = _flat(a.to_dict()), _flat(b.to_dict())
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}


def default_out(cfg: Experiment, root: Path = Path("runs")) -> Path:
    """runs/<name>, or runs/<name>-2, -3, ... when taken (a default never overwrites)."""
    p = root / cfg.name
    k = 2
    while p.exists() and any(p.iterdir()):
        p = root / f"{cfg.name}-{k}"
        k += 1
    return p


def latest_run(cfg: Experiment, root: Path = Path("runs")) -> Path | None:
    """The most recently modified runs/<name>[-k] that holds a config (for --resume without --out)."""
    cands = [p for p in root.glob(f"{cfg.name}*") if (p / "config.yaml").is_file()
             and (p.name == cfg.name or p.name[len(cfg.name):].lstrip("-").isdigit())]
    return max(cands, key=lambda p: (p / "config.yaml").stat().st_mtime) if cands else None


def check_out_dir(out: Path, cfg: Experiment, resume: bool) -> Experiment:
    """Check ``out`` before training; returns the config to use (the stored one when resuming)."""
    has_run = (out / "config.yaml").is_file()
    if resume:
        if not has_run:
            raise CheckpointError(f"nothing to resume in {out} (no config.yaml); drop --resume to start a new run there")
        stored = read_config(out)
        diff = {k: v for k, v in config_diff(stored, cfg).items() if k not in RESUMABLE_CHANGES}
        if diff:
            k, (old, new) = next(iter(diff.items()))
            raise ConfigError(f"{out} was trained with {k}={old!r}, not {new!r}; resume with the same settings or use another --out")
        return cfg
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a directory")
    if has_run:
        stored = read_config(out)
        what = "a different run" if config_diff(stored, cfg) else "a run"
        raise CheckpointError(f"{out} already holds {what}; pass --resume to continue it or --out NEWDIR for a new run")
    if out.is_dir() and any(p.name not in (".", "..") for p in out.iterdir()):
        raise CheckpointError(f"{out} is not empty and holds no ganforge run; pass --out NEWDIR")
    return cfg
