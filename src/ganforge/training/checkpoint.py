"""Checkpoints: everything needed to continue a run bit-for-bit.

A checkpoint holds only tensors, numbers, strings and containers, so it is read back with
``torch.load(..., weights_only=True)`` (no unpickling of code). It is written atomically.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import load_torch, save_torch


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.array(np.random.get_state()[1], dtype=np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": repr(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    import ast

    s = ast.literal_eval(state["python"])
    random.setstate((s[0], tuple(s[1]), s[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    save_torch(state, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return load_torch(path)
