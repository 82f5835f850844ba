"""Progress of long steps: one reporter for the lab and everything it builds.

A step prints one line when it starts and one when it ends, with its duration:

    … node image (kernel, rootfs, offline images)
    ✓ node image (kernel, rootfs, offline images) (312.4s)

or `✗ <step> (failed after 3.1s)` when it raises. Durations are recorded in `timings` whether
or not anything is shown (the node image's manifest keeps them). A part that runs inside
another's step (the image build inside `lab up`) reports through the same reporter, usually
via `sub("lab image: ")`, so all lines go to the same place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _print(line: str) -> None:
    print(line, flush=True)


class Progress:
    """One line per step with its duration; quiet when `show` is False."""

    def __init__(
        self,
        show: bool = True,
        echo: Callable[[str], None] | None = None,
        *,
        prefix: str = "",
    ) -> None:
        self.show = show
        self.echo = echo or _print
        self.prefix = prefix
        self.timings: dict[str, float] = {}  # step -> seconds (0.1 s), completed steps only

    def note(self, text: str) -> None:
        """One line outside any step (when shown)."""
        if self.show:
            self.echo(f"{self.prefix}{text}")

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        start = time.monotonic()
        label = f"{self.prefix}{what}"
        if self.show:
            self.echo(f"… {label}")
        try:
            yield
        except BaseException:
            if self.show:
                self.echo(f"✗ {label} (failed after {time.monotonic() - start:.1f}s)")
            raise
        took = time.monotonic() - start
        self.timings[what] = round(took, 1)
        if self.show:
            self.echo(f"✓ {label} ({took:.1f}s)")

    def sub(self, prefix: str) -> Progress:
        """A reporter for a part of this one's work: same `show` and `echo`, its step names
        prefixed with `prefix`, its own `timings`."""
        return Progress(self.show, self.echo, prefix=self.prefix + prefix)


def as_progress(progress: bool | Progress) -> Progress:
    """`progress` itself, or a new reporter printing to stdout when it is True (quiet when
    False): what functions taking `progress: bool | Progress` use."""
    return progress if isinstance(progress, Progress) else Progress(bool(progress))
