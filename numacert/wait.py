"""Waiting with a deadline: one loop for every "until X, at most T seconds" in numacert.

Every wait names what it waited for, so a timeout reads as a sentence ("timed out after 300s
waiting for pod ns/p to go"), optionally followed by details gathered at that moment (a log
tail, a console).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from numacert.errors import InfrastructureError

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    timeout: float,
    what: str,
    poll: float = 1.0,
    details: Callable[[], str] | None = None,
) -> T:
    """Call `check` every `poll` seconds until it returns something truthy, and return that.

    `check` may raise to stop waiting early (a process died). On timeout raise
    InfrastructureError "timed out after Ns waiting for <what>", plus `details()` if given.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            message = f"timed out after {timeout:.0f}s waiting for {what}"
            if details is not None:
                message += f"; {details()}"
            raise InfrastructureError(message)
        time.sleep(poll)
