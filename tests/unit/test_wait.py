"""numacert.wait: the one deadline loop (poll_until, wait_until)."""

from __future__ import annotations

import time

import pytest

from numacert.errors import InfrastructureError
from numacert.wait import poll_until, wait_until


def _counter(succeed_at: int, value: object = "done"):
    calls = []

    def check():
        calls.append(time.monotonic())
        return value if len(calls) >= succeed_at else None

    return check, calls


def test_poll_until_returns_the_first_truthy_result():
    check, calls = _counter(3, {"x": 1})
    assert poll_until(check, 5, poll=0.01) == {"x": 1}
    assert len(calls) == 3


def test_poll_until_returns_none_at_the_deadline_after_a_last_check():
    check, calls = _counter(10**6)
    start = time.monotonic()
    assert poll_until(check, 0.3, poll=0.1) is None
    took = time.monotonic() - start
    assert 0.3 <= took < 1.0
    assert calls[-1] - start >= 0.3  # one more check at the deadline, not one poll before it


def test_poll_until_checks_once_even_without_time():
    check, calls = _counter(1)
    assert poll_until(check, 0, poll=5) == "done"
    check, calls = _counter(2)
    assert poll_until(check, 0, poll=5) is None and len(calls) == 1


def test_a_raising_check_stops_the_wait():
    def check():
        raise InfrastructureError("the process died")

    with pytest.raises(InfrastructureError, match="the process died"):
        poll_until(check, 5, poll=0.01)
    with pytest.raises(InfrastructureError, match="the process died"):
        wait_until(check, 5, "anything", poll=0.01)


def test_wait_until_returns_the_result():
    check, _ = _counter(2, 42)
    assert wait_until(check, 5, "the answer", poll=0.01) == 42


def test_wait_until_names_what_it_waited_for_and_the_details():
    with pytest.raises(InfrastructureError) as exc:
        wait_until(lambda: False, 0.2, "pod ns/p to go", poll=0.05, details=lambda: "log: x")
    assert str(exc.value) == "timed out after 0s waiting for pod ns/p to go; log: x"
    with pytest.raises(InfrastructureError, match=r"^timed out after 0s waiting for it$"):
        wait_until(lambda: 0, 0.1, "it", poll=0.05)
