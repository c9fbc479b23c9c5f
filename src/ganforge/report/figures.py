"""Figures for the HTML report, as ``data:image/...;base64,...`` URIs (no files, no network).

Size: a report embeds every figure, so each one is encoded compactly. Plots and 2D
scatters (flat colours) become palette PNGs of at most ``PLOT_COLORS`` colours, about a
quarter of the size of the full-colour PNG and visually the same; photo-like sample grids
become JPEG (quality ``JPEG_QUALITY``) when that is smaller than the lossless PNG.
"""

from __future__ import annotations

import base64
import io
import math
import tempfile
from pathlib import Path

import numpy as np

from .plots import _series, moving_average, plot_curves

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


PLOT_COLORS = 128  # palette size of plot / scatter figures
JPEG_QUALITY = 85  # sample grids (photo-like images)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def encode(im, photo: bool = False) -> str:
    """A PIL image → the smaller of its compact encodings, as a data URI: a palette PNG
    (plots: flat colours, no dithering), or for ``photo`` images the lossless PNG or JPEG."""
    from PIL import Image

    def png(x) -> bytes:
        buf = io.BytesIO()
        x.save(buf, format="PNG", optimize=True)
        return buf.getvalue()

    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")  # (matplotlib writes opaque RGBA)
    if not photo:
        colors = im.getcolors(PLOT_COLORS)
        q = im if colors is not None else im.quantize(PLOT_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        return data_uri(png(q))
    lossless = png(im)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return data_uri(buf.getvalue(), "image/jpeg") if len(buf.getvalue()) < len(lossless) else data_uri(lossless)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_uri(fig, dpi: int = 80) -> str:
    """A matplotlib figure → palette-PNG data URI (the figure is closed)."""
    from PIL import Image

    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    buf.seek(0)
    with Image.open(buf) as im:
        im.load()
        return encode(im)


def image_uri(path: str | Path, width: int | None = None, photo: bool = False) -> str:
    """A PNG file → data URI, downscaled to ``width`` pixels when wider (a thumbnail);
    ``photo``: a sample grid of images rather than a plot (see :func:`encode`)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if width and im.width > width:
            im = im.resize((width, max(1, round(im.height * width / im.width))), Image.LANCZOS)
        return encode(im, photo)


def curves_uri(rows: list[dict], title: str = "", span: int = 10, width: int = 900) -> str | None:
    """Losses and D outputs with moving averages (the run's curves.png figure, redrawn)."""
    if not rows:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        p = plot_curves(rows, Path(tmp) / "curves.png", title=title, span=span)
        return image_uri(p, width=width)


CONSTANT_SERIES = ("monitor/hq_chance",)  # logged with every check but fixed by the data: not plotted


def metric_keys(rows: list[dict]) -> list[str]:
    """Evaluation and monitor series in the log (``eval/*``, ``monitor/*``, bare metric names)."""
    keys: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if (k.startswith(("eval/", "monitor/")) or k in ("fid", "kid_mean", "modes", "hq", "coverage")) \
                    and k not in CONSTANT_SERIES and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys[k] = None
    return list(keys)


def metrics_uri(rows: list[dict], span: int = 5, dpi: int = 80) -> str | None:
    """One small panel per evaluation/monitor series: raw points and moving average."""
    keys = metric_keys(rows)
    if not keys:
        return None
    plt = _plt()
    cols = min(3, len(keys))
    nr = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nr, cols, figsize=(3.6 * cols, 2.6 * nr), squeeze=False)
    for ax, k in zip(axes.flat, keys):
        x, y = _series(rows, k)
        if len(x):
            ax.plot(x, y, "o-", ms=3, lw=1, color="#1f77b4", alpha=0.5)
            if len(x) > 2:
                ax.plot(x, moving_average(y, span), lw=2, color="#1f77b4")
        ax.set_title(k, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    return figure_uri(fig, dpi)


def compare_uri(series: list[tuple[str, list[dict]]], key: str, span: int = 5) -> str | None:
    """``key`` over training for several runs on one axis (moving averages)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 3.0))
    drawn = 0
    for i, (label, rows) in enumerate(series):
        x, y = _series(rows, key)
        if len(x):
            ax.plot(x, moving_average(y, span) if len(x) > 2 else y, lw=1.6, color=PALETTE[i % len(PALETTE)], label=label)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_title(key, fontsize=10)
    ax.grid(alpha=0.3)
    if drawn <= 12:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return figure_uri(fig)


def points_uri(run_dir: str | Path, n: int = 2500, dpi: int = 80) -> tuple[str, dict] | None:
    """For a 2D-mixture run: generated points over real points and mode centres, beside the
    histogram of high-quality samples per mode (PacGAN counting). Returns (uri, counts)."""
    import ganforge
    from ..data import load_dataset
    from ..metrics.modes import assign_modes, count_modes_2d

    run = ganforge.load(run_dir)
    data = load_dataset(run.config.data, "train", seed=0)
    if data.kind != "points" or data.modes is None:
        return None
    fake = run.sample(n, seed=0)
    if not bool(np.isfinite(fake.numpy()).all()):
        return None
    real = data.x[:n].numpy()
    idx, hq = assign_modes(fake, data.modes, data.mode_std)
    hist = np.bincount(idx[hq].numpy(), minlength=len(data.modes))
    counts = count_modes_2d(fake, data.modes, data.mode_std)
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8), gridspec_kw={"width_ratios": [1, 1.3]})
    f, m = fake.numpy(), data.modes.numpy()
    a1.scatter(real[:, 0], real[:, 1], s=2, c="0.78", label="real")
    a1.scatter(f[:, 0], f[:, 1], s=2, c="#1f77b4", alpha=0.5, label="generated")
    a1.scatter(m[:, 0], m[:, 1], marker="x", s=30, c="#d62728", label="modes")
    span = np.abs(m).max() * 1.5 + 0.5
    a1.set_xlim(-span, span)
    a1.set_ylim(-span, span)
    a1.set_aspect("equal")
    a1.legend(fontsize=7, loc="upper right")
    a1.set_title("generated over real", fontsize=10)
    colors = ["#2ca02c" if h > 0 else "#d62728" for h in hist]
    a2.bar(np.arange(len(hist)), hist, color=colors)
    a2.axhline(hq.sum().item() / len(hist), color="0.3", ls=":", lw=1, label="uniform")
    a2.set_xlabel("mode")
    a2.set_ylabel("high-quality samples")
    a2.set_title(f"modes {int(counts['modes'])}/{len(hist)}, hq {counts['hq']:.2f}, rkl {counts['rkl']:.2f}", fontsize=10)
    a2.legend(fontsize=7)
    fig.tight_layout()
    return figure_uri(fig, dpi), counts
