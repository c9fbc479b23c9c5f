"""User-facing errors.

Every error a user can cause by bad input is a :class:`GanforgeError` whose message is one
line that names the problem and the fix. The CLI prints it as ``ganforge: error: <message>``
and exits with status 2, without a traceback.
"""

from __future__ import annotations


class GanforgeError(Exception):
    """Base class of the one-line errors that the CLI reports without a traceback."""

    exit_code = 2


class ConfigError(GanforgeError):
    """An unknown name, key or value in a recipe, override or argument."""


class DataError(GanforgeError):
    """A dataset that cannot be found or read."""


class CheckpointError(GanforgeError):
    """A checkpoint or run directory that cannot be read, or would be overwritten."""
