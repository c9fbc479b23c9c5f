"""Image grids and 2D scatter plots, written atomically."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..io import atomic_path


def image_grid(x: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] → uint8 (H', W', C) grid with ``nrow`` images per row."""
    x = x.detach().float().cpu().clamp(-1, 1)
    n, c, h, w = x.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    grid = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad)  # white padding
    for i in range(n):
        r, k = divmod(i, nrow)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = x[i]
    img = ((grid + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return img


def _upscale(img: np.ndarray, min_side: int = 512) -> Image.Image:
    pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
    scale = max(1, -(-min_side // max(1, min(pil.size))))  # ceil: at least min_side pixels
    if scale > 1:
        pil = pil.resize((pil.size[0] * scale, pil.size[1] * scale), Image.NEAREST)
    return pil


def save_image_grid(x: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, min_side: int = 512) -> Path:
    """Save images as one PNG grid, nearest-upscaled so that small images stay visible."""
    path = Path(path)
    with atomic_path(path) as tmp:
        _upscale(image_grid(x, nrow), min_side).save(tmp, format="PNG")
    return path


def save_scatter(
    points: torch.Tensor,
    path: str | os.PathLike,
    real: torch.Tensor | None = None,
    modes: torch.Tensor | None = None,
    title: str = "",
) -> Path:
    """Scatter generated 2D points (blue) over real points (grey) and mode centres (red crosses)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    p = points.detach().float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if real is not None:
        r = real.detach().float().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="0.75", label="real", alpha=0.5)
    ax.scatter(p[:, 0], p[:, 1], s=3, c="tab:blue", label="generated", alpha=0.6)
    if modes is not None:
        m = modes.cpu().numpy()
        ax.scatter(m[:, 0], m[:, 1], marker="x", s=40, c="tab:red", label="modes")
        span = np.abs(m).max() * 1.5 + 0.5
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def save_samples(samples: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write samples as a .png grid, a .npy array, or (no suffix) a directory of PNGs."""
    path = Path(path)
    if path.suffix == ".png":
        if samples.ndim != 4:
            return save_scatter(samples, path)
        return save_image_grid(samples, path)
    if path.suffix == ".npy":
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, samples.detach().cpu().numpy())
        return path
    if path.suffix:
        from ..errors import ConfigError

        raise ConfigError(f"cannot write samples to {path.name}: use a .png grid, a .npy array, or a directory name")
    if samples.ndim != 4:
        from ..errors import ConfigError

        raise ConfigError("a directory of PNGs needs image samples; write 2D points to a .npy or .png file")
    path.mkdir(parents=True, exist_ok=True)
    imgs = ((samples.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    width = max(5, len(str(len(imgs))))
    for i, im in enumerate(imgs):
        with atomic_path(path / f"{i:0{width}d}.png") as tmp:
            Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).save(tmp, format="PNG")
    return path
