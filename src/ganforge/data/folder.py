"""``image-folder``: every image file under ``data.data_dir``, read into memory.

Files: ``*.png, *.jpg, *.jpeg, *.bmp, *.webp`` (any case), searched recursively, in sorted
path order. Each image is centre-cropped to a square of side ``min(w, h)`` and resized to
``data.image_size`` (default :data:`DEFAULT_SIZE`) with PIL's antialiased bilinear filter.
Channels: 1 (mode L) if every image is greyscale, else 3 (RGB; alpha is dropped).
Labels: if every image lies in a first-level subfolder (``root/<class>/.../img.png``) and
there are at least two such subfolders, the index of that subfolder among the sorted class
names; otherwise ``None`` (a single wrapper folder is not a class).
There is no held-out part: the ``train`` and ``test`` splits are the same images.
Unreadable files are skipped with one warning giving their count and the first few names.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from .base import DATASETS, Dataset, to_unit_range

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DEFAULT_SIZE = 64
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive, sorted)."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def read_square(path: Path, size: int) -> tuple[np.ndarray, bool]:
    """One image → (uint8 ``[size, size, 3]`` RGB centre crop, whether it was greyscale)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        grey = im.mode in _GREY_MODES
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit/float grey: scale to 8-bit
            a = np.asarray(im, dtype=np.float64)
            top = 65535.0 if a.max() > 255 else 255.0
            im = Image.fromarray(np.clip(a * (255.0 / top), 0, 255).astype(np.uint8), mode="L")
        rgb = im.convert("RGB")
    w, h = rgb.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    rgb = rgb.crop((left, top, left + s, top + s)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8), grey


@DATASETS.register("image-folder")
def image_folder(cfg: DataConfig, split: str, seed: int) -> Dataset:
    """Every png/jpg/bmp/webp under data.data_dir, centre-cropped to image_size (default 64)."""
    if not cfg.data_dir:
        raise DataError("image-folder needs a folder: pass --set data.data_dir=DIR with the images")
    root = Path(cfg.data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"image-folder: {root} is not a directory; pass --set data.data_dir=DIR with the images")
    size = cfg.image_size or DEFAULT_SIZE
    paths = list_images(root)
    if not paths:
        raise DataError(f"image-folder: no {'/'.join(e[1:] for e in EXTENSIONS)} files under {root}; check data.data_dir")
    arrays, greys, kept, bad = [], [], [], []
    for p in paths:
        try:
            a, g = read_square(p, size)
        except Exception:  # PIL raises many types for truncated/corrupt files
            bad.append(p)
            continue
        arrays.append(a)
        greys.append(g)
        kept.append(p)
    if bad:
        names = ", ".join(str(p.relative_to(root)) for p in bad[:5]) + (", ..." if len(bad) > 5 else "")
        warnings.warn(f"image-folder: skipped {len(bad)} unreadable file(s) under {root}: {names}", stacklevel=2)
    if not arrays:
        raise DataError(f"image-folder: none of the {len(paths)} image files under {root} could be read")
    u = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # [N, 3, s, s] uint8
    if all(greys):
        u = u[:, :1]  # [N, 1, s, s]: R = G = B for converted greyscale
    x = to_unit_range(u).contiguous()
    rel = [p.relative_to(root).parts for p in kept]
    labels, num_classes = None, None
    classes = sorted({parts[0] for parts in rel if len(parts) > 1})
    if len(classes) > 1 and all(len(parts) > 1 for parts in rel):
        index = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([index[parts[0]] for parts in rel], dtype=torch.int64)
        num_classes = len(classes)
    return Dataset("image-folder", x, labels, num_classes)
