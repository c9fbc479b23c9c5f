"""Atomic writes and safe loading.

Every file ganforge writes goes to a temporary file in the same directory and is renamed
over the target, so a crash never leaves a half-written checkpoint, config or image.
Checkpoints are read with ``torch.load(..., weights_only=True)``: no unpickling of code.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import CheckpointError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and an atomic rename."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint safely (tensors, containers and plain values only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a run directory that holds checkpoints/last.pt")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupted, truncated, or not a torch file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path} ({first[:160]}); delete it to start over or pass another run"
        ) from None
