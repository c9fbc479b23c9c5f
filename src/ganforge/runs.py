"""``ganforge runs [DIR]``: list run directories with their progress, best metric and health.

A run directory is any directory holding ``config.yaml`` (searched up to ``depth`` levels
below ``DIR``, so sweeps' ``trial-NNN/seed-i`` runs are listed too). Per run:

* steps done / total: the step of ``checkpoints/last.pt`` (else the last log row) and ``train.steps``;
* status: ``done`` (``generator.safetensors`` written and the checkpoint at ``train.steps``),
  ``running`` (not done and ``metrics.jsonl`` or the checkpoint changed in the last
  ``running_window`` seconds), else ``interrupted``;
* best metric: from ``eval.json`` (the first of fid, kid, modes, coverage, ... it holds),
  else the best evaluation (``eval/*``) or monitor coverage (``monitor/modes``) in the log;
* diagnosis: ``healthy`` or the names of the conditions the monitor found.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from .errors import GanforgeError

RUNNING_WINDOW = 120.0  # seconds: a run whose files changed this recently counts as running
# metrics shown as "best", in order of preference, with their direction (True: lower is better)
BEST_KEYS = (("fid", True), ("kid_mean", True), ("modes", False), ("classes", False), ("coverage", False),
             ("hq", False), ("is_mean", False), ("precision", False))


def find_runs(root: str | Path, depth: int = 3) -> list[Path]:
    """Directories under ``root`` (itself included) that hold a ``config.yaml``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise GanforgeError(f"{root} is not a directory; pass the directory that holds your runs (default runs/)")
    found, level = [], [root]
    for _ in range(depth + 1):
        nxt = []
        for d in level:
            if (d / "config.yaml").is_file():
                found.append(d)
            else:
                nxt.extend(sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")))
        level = nxt
    return sorted(found)


def checkpoint_step(run_dir: Path) -> int | None:
    """The step stored in ``checkpoints/last.pt`` (memory-mapped: only the header is read)."""
    p = Path(run_dir) / "checkpoints" / "last.pt"
    if not p.is_file():
        return None
    import torch

    try:
        return int(torch.load(p, map_location="cpu", weights_only=True, mmap=True)["step"])
    except Exception:  # noqa: BLE001 -- a torn or foreign file: fall back to the log
        return None


def _last_row(path: Path) -> dict:
    from .report import read_metrics

    rows = read_metrics(path)
    return rows[-1] if rows else {}


def best_metric(run_dir: Path) -> tuple[str, float, str] | None:
    """``(key, value, source)`` of the run's headline metric, or None."""
    from .report import read_metrics

    p = Path(run_dir) / "eval.json"
    if p.is_file():
        try:
            m = json.loads(p.read_text(encoding="utf-8")).get("metrics", {})
        except json.JSONDecodeError:
            m = {}
        for k, _ in BEST_KEYS:
            if isinstance(m.get(k), (int, float)):
                return k, float(m[k]), "eval.json"
    rows = read_metrics(Path(run_dir) / "metrics.jsonl")
    lower = dict(BEST_KEYS)
    for k, low in [*((f"eval/{k}", lo) for k, lo in BEST_KEYS), ("monitor/modes", False), ("monitor/diversity_ratio", False)]:
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
        if vals:
            return k, float(min(vals) if lower.get(k.split("/", 1)[1], low) else max(vals)), "log"
    return None


def run_info(run_dir: str | Path, now: float | None = None) -> dict:
    """One run's row: run, name, step, steps, status, best, diagnosis."""
    from .diagnostics import summarize
    from .training.rundir import read_config

    d = Path(run_dir)
    cfg = read_config(d)
    log = d / "metrics.jsonl"
    step = checkpoint_step(d)
    if step is None:
        step = int(_last_row(log).get("step", 0))
    total = cfg.train.steps
    done = (d / "generator.safetensors").is_file() and step >= total
    now = time.time() if now is None else now
    recent = max((p.stat().st_mtime for p in (log, d / "checkpoints" / "last.pt") if p.is_file()), default=0.0)
    status = "done" if done else ("running" if now - recent < RUNNING_WINDOW else "interrupted")
    diag = summarize(d)
    conds = [c["name"] for c in diag.get("conditions", [])]
    health = "healthy" if diag.get("healthy", not conds) else ", ".join(conds)
    if diag.get("source") == "none":
        health = "–"
    return {"run": str(d), "name": cfg.name, "step": step, "steps": total, "status": status,
            "best": best_metric(d), "diagnosis": health, "conditions": conds}


def format_runs(rows: list[dict]) -> str:
    """An aligned text table of :func:`run_info` rows."""
    def best(b):
        if b is None:
            return "–"
        k, v, src = b
        return f"{k}={v:.4g}" + (" (log)" if src == "log" else "")

    table = [("run", "name", "steps", "status", "best", "diagnosis")]
    table += [(r["run"], r["name"], f"{r['step']}/{r['steps']}", r["status"], best(r["best"]), r["diagnosis"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def list_runs(root: str | Path = "runs", depth: int = 3) -> list[dict]:
    return [run_info(d) for d in find_runs(root, depth)]
