"""User-facing errors: one exception type the CLI turns into a clear message and a non-zero exit."""
from __future__ import annotations


class TSBError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class ConfigError(TSBError, ValueError):
    """A preset or config value is unknown, of the wrong type or out of range."""


class DataError(TSBError):
    """A dataset is unknown, missing, corrupt or cannot be downloaded."""


class StackError(TSBError):
    """The installed torch/torchvision/aihwkit stack cannot run the simulator."""
