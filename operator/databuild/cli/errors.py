"""Exit codes of ``databuild`` and the error that carries one."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CliError", "ExitCode"]


class ExitCode(IntEnum):
    """What a ``databuild`` exit status means (documented in docs/cli.md)."""

    OK = 0
    """Success; with ``want --wait``: the Want is Successful."""
    FAILED = 1
    """The Want (or what was asked) Failed."""
    USAGE = 2
    """Bad command line (argparse's convention)."""
    EXPIRED = 3
    """The Want Expired, or ``--wait``/``--timeout`` ran out first."""
    NOT_FOUND = 4
    """The Want, Partition or JobRun does not exist."""
    UNAVAILABLE = 5
    """The cluster or the BEL store could not be reached, or refused the request."""


class CliError(Exception):
    """An error to print (without a traceback) and exit with ``code``."""

    def __init__(self, message: str, code: ExitCode = ExitCode.UNAVAILABLE) -> None:
        super().__init__(message)
        self.code = code
