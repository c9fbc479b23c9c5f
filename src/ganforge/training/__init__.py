"""The training loop and what it needs: optimisers, schedules, EMA, checkpoints, run dirs."""

from .loop import Interrupted, Trainer

__all__ = ["Trainer", "Interrupted"]
