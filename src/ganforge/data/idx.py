"""MNIST and Fashion-MNIST from IDX files, read by a small NumPy parser.

IDX format (LeCun et al.): a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim``
uint32 dimension sizes, then ``prod(dims)`` values of ``<type>``. Images are
``0x00000803`` (uint8, [N, 28, 28]); labels ``0x00000801`` (uint8, [N]). Files may be
gzipped (detected by the gzip magic bytes, not the name).

Where the files are looked for, in order:

1. ``data.data_dir`` itself, or its torchvision layout ``<dir>/{MNIST,FashionMNIST}/raw``;
2. the download cache ``~/.cache/ganforge/data`` (same layouts);
3. fashion-mnist only: Debian's ``dataset-fashion-mnist`` package
   (:data:`DEBIAN_FASHION_DIRS`; if moved, a shallow search of ``/usr/share``);
4. torchvision's download, only with ``data.download=true``.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from .base import DATASETS, Dataset, candidate_roots, download_root, to_unit_range

DEBIAN_FASHION_DIRS = [Path("/usr/share/datasets/fashion-mnist")]
"""Install dirs of Debian's ``dataset-fashion-mnist`` (``dpkg -L dataset-fashion-mnist``)."""

SHARE_ROOT = Path("/usr/share")
"""Searched (3 levels deep, paths containing "fashion") when the Debian dir has moved."""

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_FILES = {  # split -> (images, labels) base names
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_SOURCES = {  # name -> (torchvision folder / class name, fix hint)
    "mnist": ("MNIST", ""),
    "fashion-mnist": (
        "FashionMNIST",
        "install Debian's dataset-fashion-mnist (apt-get install -y dataset-fashion-mnist), ",
    ),
}


def read_idx(path: str | Path, expect_ndim: int | None = None) -> np.ndarray:
    """Parse one IDX file (raw or gzipped) into a NumPy array of its stored shape.

    ``expect_ndim`` checks the magic number: 3 for image files (``0x00000803``), 1 for
    label files (``0x00000801``). Any malformed file is a one-line DataError naming it.
    """
    path = Path(path)

    def bad(why: str) -> DataError:
        return DataError(f"{path} is not a valid IDX file ({why}); delete it and fetch it again")

    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise bad(f"cannot read/decompress: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise bad(f"bad magic number {raw[:4].hex() or 'empty'}")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    if expect_ndim is not None and (ndim != expect_ndim or raw[2] != 0x08):
        raise bad(f"magic {raw[:4].hex()}, expected {0x800 + expect_ndim:08x}")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise bad("truncated header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    n_values = int(np.prod(dims, dtype=np.int64))
    if len(raw) - head != n_values * dtype.itemsize:
        raise bad(f"{len(raw) - head} data bytes for shape {dims}, expected {n_values * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype, offset=head).reshape(dims).astype(dtype.newbyteorder("="))


def _find_file(directory: Path, base: str) -> Path | None:
    for name in (base, base + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _find_pair(directory: Path, split: str) -> tuple[Path, Path] | None:
    imgs, labs = (_find_file(directory, b) for b in _FILES[split])
    return (imgs, labs) if imgs is not None and labs is not None else None


def _search_dirs(name: str, cfg: DataConfig) -> Iterator[Path]:
    """Candidate directories in search order (lazy: the /usr/share scan runs only if needed)."""
    folder = _SOURCES[name][0]
    for root in candidate_roots(cfg):
        yield from (root, root / folder / "raw", root / folder)
    if name == "fashion-mnist":
        yield from DEBIAN_FASHION_DIRS
        for depth in ("*", "*/*", "*/*/*"):  # fallback: a moved Debian install
            for hit in sorted(SHARE_ROOT.glob(f"{depth}/train-images-idx3-ubyte*")):
                if "fashion" in str(hit.parent).lower():
                    yield hit.parent


def locate_idx(name: str, cfg: DataConfig, split: str) -> tuple[Path, Path]:
    """The (images, labels) IDX files of ``name``'s ``split``, downloading if allowed."""
    for d in _search_dirs(name, cfg):
        pair = _find_pair(d, split)
        if pair is not None:
            return pair
    folder, hint = _SOURCES[name]
    if not cfg.download:
        raise DataError(
            f"{name} not found: {hint}pass --set data.data_dir=DIR with the IDX files "
            f"({_FILES[split][0]}[.gz], {_FILES[split][1]}[.gz]), or --set data.download=true"
        )
    root = download_root(cfg)
    try:
        import torchvision.datasets as tvd

        getattr(tvd, folder)(str(root), train=split == "train", download=True)
    except Exception as e:  # network, disk or checksum errors from torchvision
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{name}: download into {root} failed ({msg}); pass --set data.data_dir=DIR with the IDX files") from None
    pair = _find_pair(root / folder / "raw", split)
    if pair is None:
        raise DataError(f"{name}: download finished but no IDX files in {root / folder / 'raw'}; pass --set data.data_dir=DIR")
    return pair


def load_idx_dataset(name: str, cfg: DataConfig, split: str) -> Dataset:
    """Images ``[N, 1, 28, 28]`` as ``x = 2 u / 255 - 1`` and labels 0..9."""
    img_path, lab_path = locate_idx(name, cfg, split)
    images = read_idx(img_path, expect_ndim=3)  # [N, H, W] uint8
    labels = read_idx(lab_path, expect_ndim=1)  # [N] uint8
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{img_path} has {images.shape[0]} images but {lab_path} has {labels.shape[0]} labels; use matching files")
    if labels.size and labels.max() > 9:
        raise DataError(f"{lab_path} has label {int(labels.max())}, expected 0..9; use the {name} label file")
    x = to_unit_range(torch.from_numpy(images)).unsqueeze(1)  # [N, 1, H, W]
    y = torch.from_numpy(labels.astype(np.int64))  # [N]
    return Dataset(name, x, y, num_classes=10)


@DATASETS.register("mnist")
def mnist(cfg: DataConfig, split: str, seed: int) -> Dataset:
    """MNIST handwritten digits, 28x28 grey, 10 classes (IDX files: data_dir or download)."""
    return load_idx_dataset("mnist", cfg, split)


@DATASETS.register("fashion-mnist")
def fashion_mnist(cfg: DataConfig, split: str, seed: int) -> Dataset:
    """Fashion-MNIST, 28x28 grey, 10 classes (Debian dataset-fashion-mnist, data_dir or download)."""
    return load_idx_dataset("fashion-mnist", cfg, split)
