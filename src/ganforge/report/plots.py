"""Training curves from ``metrics.jsonl``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..io import atomic_path


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Rows of a metrics.jsonl file (a torn last line, from a crash, is ignored)."""
    rows = []
    p = Path(path)
    if not p.is_file():
        return rows
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def moving_average(y: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with alpha = 2 / (span + 1), bias-corrected at the start."""
    alpha = 2.0 / (span + 1.0)
    out = np.empty_like(y, dtype=float)
    m, w = 0.0, 0.0
    for i, v in enumerate(y):
        m = (1 - alpha) * m + alpha * v
        w = (1 - alpha) * w + alpha
        out[i] = m / w
    return out


def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None and np.isfinite(r[key])]
    if not pts:
        return np.zeros(0), np.zeros(0)
    a = np.asarray(pts, dtype=float)
    return a[:, 0], a[:, 1]


def plot_curves(rows: list[dict], path: str | os.PathLike, title: str = "", span: int = 10) -> Path:
    """Two panels: G and D losses (raw and moving average); D(x) and D(G(z))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for key, color, label in (("loss/d", "tab:red", "D loss"), ("loss/g", "tab:blue", "G loss")):
        x, y = _series(rows, key)
        if len(x):
            a1.plot(x, y, color=color, alpha=0.25, lw=1)
            a1.plot(x, moving_average(y, span), color=color, lw=2, label=f"{label} (moving avg)")
    a1.set_xlabel("step")
    a1.set_ylabel("loss")
    a1.set_title("losses")
    a1.legend(fontsize=8)
    for key, color, label in (("d/real", "tab:green", "D(x)"), ("d/fake", "tab:orange", "D(G(z))")):
        x, y = _series(rows, key)
        if len(x):
            a2.plot(x, y, color=color, alpha=0.25, lw=1)
            a2.plot(x, moving_average(y, span), color=color, lw=2, label=label)
    a2.axhline(0.5, color="0.5", ls=":", lw=1)
    a2.set_ylim(-0.02, 1.02)
    a2.set_xlabel("step")
    a2.set_title("discriminator outputs (sigmoid of logits)")
    a2.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
