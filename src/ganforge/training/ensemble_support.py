"""What a seed ensemble (training/ensemble.py) can train: :func:`ensemble_unsupported` names the
first setting it cannot batch, :func:`check_ensemble` turns that into a one-line ConfigError."""

from __future__ import annotations

import os

from ..config import Experiment
from ..errors import ConfigError
from ..losses import penalty_name
from .ensemble_nets import SUPPORTED

PENALTIES = ("gp", "r1", "r2", "dragan")  # loss.penalty values with a batched form here (:meth:`_Ensemble.penalty`)


# --------------------------------------------------------------------------- support


def ensemble_unsupported(cfg: Experiment) -> str | None:
    """Why ``cfg`` cannot be trained as a seed ensemble (one setting), or None when it can."""
    m, L, r, t = cfg.model, cfg.loss, cfg.remedies, cfg.train
    if cfg.method != "standard":
        return f"method={cfg.method!r}"
    for k, net in (("g", m.g), ("d", m.d)):
        if net.name != "mlp":
            return f"model.{k}.name={net.name!r}"
        if net.spectral_norm:
            return f"model.{k}.spectral_norm=true"
    if m.d.dropout > 0:
        return f"model.d.dropout={m.d.dropout}"
    if r.code_balance and m.d.norm == "batch":
        return "remedies.code_balance with model.d.norm=batch (D's eval mode is not batched)"
    pen = penalty_name(L)
    if pen is not None and pen not in PENALTIES:
        return f"loss.penalty={pen!r}"
    defaults = type(r)()
    for key in ("minibatch_discrimination", "minibatch_std", "unrolled_steps"):
        if getattr(r, key) != getattr(defaults, key):
            return f"remedies.{key}={getattr(r, key)!r}"
    if t.amp != "none" or t.compile:
        return "train.amp/train.compile"
    if cfg.eval.every:
        return "eval.every"
    if t.tensorboard:
        return "train.tensorboard"
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        return "torchrun (WORLD_SIZE > 1)"
    return None


def check_ensemble(cfg: Experiment) -> None:
    """One-line ConfigError when ``cfg`` is not supported by :func:`train_ensemble`."""
    why = ensemble_unsupported(cfg)
    if why is not None:
        raise ConfigError(f"seed ensembles do not support {why}; supported: {SUPPORTED}")
