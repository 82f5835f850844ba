"""Waiting with a deadline: one loop for every "until X, at most T seconds" in numacert.

`wait_until` is the wait that must succeed: a timeout raises an error that names what it waited
for, so it reads as a sentence ("timed out after 300s waiting for pod ns/p to go"), optionally
followed by details gathered at that moment (a log tail, a console). `poll_until` is the same
loop for a caller that has its own next step when time runs out (signal harder, try another
way): it returns None instead of raising.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from numacert.errors import InfrastructureError

T = TypeVar("T")


def poll_until(check: Callable[[], T], timeout: float, poll: float = 1.0) -> T | None:
    """Call `check` every `poll` seconds until it returns something truthy, and return that;
    return None once `timeout` seconds have passed without. `check` runs at least once, and
    once more at the deadline. `check` may raise to stop waiting early (a process died)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(poll, left))


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
    result = poll_until(check, timeout, poll)
    if result:
        return result
    message = f"timed out after {timeout:.0f}s waiting for {what}"
    if details is not None:
        message += f"; {details()}"
    raise InfrastructureError(message)
