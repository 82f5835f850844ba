"""The project's error types.

InputError is bad input from the user (a file, a field, a profile name, a cluster address):
the CLI prints its one line and exits 2, never a traceback, and nothing on any node changes.
"""

from __future__ import annotations


class NumacertError(Exception):
    """Base of every error numacert raises on purpose."""


class InputError(NumacertError):
    """Bad user input. `where` names the file (and field) at fault, `what` says what is wrong."""

    def __init__(self, what: str, where: str | None = None) -> None:
        self.what = what
        self.where = where
        super().__init__(f"{where}: {what}" if where else what)


class InfrastructureError(NumacertError):
    """Something numacert depends on failed (a process, a VM, an API call): not the user's input."""
