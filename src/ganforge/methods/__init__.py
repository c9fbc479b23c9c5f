"""Training methods (`ganforge list methods`)."""

from .base import METHODS, Context, Method, Phase, Stats
from . import standard  # noqa: F401  (registers "standard")

__all__ = ["METHODS", "Context", "Method", "Phase", "Stats"]
