"""The errors a user sees, and how they are shown: the bottom layer of the run machinery.

Every layer raises these, and only the command line (`shipfastsim.cli`) prints them, so
they live below all of them.  All are a `ShipFastSimError`, so a script that drives
shipfastsim catches every error it raises on purpose with one ``except``:
`ConfigError` (a config that cannot run, naming its key) and `UsageError` (bad
command-line input) are printed as one line with exit status 2; `StepError` (a step run in
a process of its own that failed or was killed) with exit status 1.  `one_line` is how any
error becomes that line.
"""

from __future__ import annotations

__all__ = ["ShipFastSimError", "ConfigError", "UsageError", "StepError", "one_line"]


class ShipFastSimError(Exception):
    """The base of every error shipfastsim raises on purpose (not of a bug's exceptions)."""


class ConfigError(ShipFastSimError, ValueError):
    """A config that cannot run; ``key`` is the dotted path of the offending key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class UsageError(ShipFastSimError):
    """Bad input from the user: printed as one line, exit status 2."""


class StepError(ShipFastSimError, RuntimeError):
    """A step that failed in a process of its own (`shipfastsim train chain`'s sample step):
    the message names the step and how its process ended (exception, exit code or signal),
    and says that the same command resumes.  Not a `UsageError`: the input was not at fault,
    so the command line exits with status 1."""


def one_line(error: BaseException, hint: bool = True) -> str:
    """The first line of an error's message, unquoted (``str(KeyError("x"))`` is ``'x'``);
    ``hint`` says when there was more."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = text.strip().splitlines()
    if not lines:
        return type(error).__name__
    return lines[0] + (" (run with --debug for the full message)" if hint and len(lines) > 1 else "")
