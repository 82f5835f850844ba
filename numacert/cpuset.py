"""CPU sets in Linux list syntax ("0-3,8-11"), the one cpuset type of the project.

The kubelet's state files, cgroup files and /proc/<pid>/status all use this syntax; parsing it
once here keeps every other module working on plain sets of integers.
"""

from __future__ import annotations

from collections.abc import Iterable


class CPUSetError(ValueError):
    """A string that is not a valid Linux CPU list."""


class CPUSet(frozenset):
    """An immutable set of CPU (or NUMA node) ids with Linux list syntax in and out.

    Set operators return CPUSet, so `a - b` stays a CPUSet and prints as a list.
    """

    __slots__ = ()

    def __new__(cls, ids: Iterable[int] = ()) -> CPUSet:
        return super().__new__(cls, ids)

    @classmethod
    def parse(cls, text: str) -> CPUSet:
        """Parse "0-3,8,10-11" (whitespace and a trailing newline tolerated; "" is empty)."""
        text = text.strip()
        if not text:
            return cls()
        ids: list[int] = []
        for part in text.split(","):
            part = part.strip()
            lo, sep, hi = part.partition("-")
            try:
                if sep:
                    start, end = int(lo), int(hi)
                    if start > end or start < 0:
                        raise CPUSetError(f"bad range {part!r} in cpu list {text!r}")
                    ids.extend(range(start, end + 1))
                else:
                    value = int(lo)
                    if value < 0:
                        raise CPUSetError(f"negative id {part!r} in cpu list {text!r}")
                    ids.append(value)
            except ValueError as exc:
                if isinstance(exc, CPUSetError):
                    raise
                raise CPUSetError(f"bad element {part!r} in cpu list {text!r}") from None
        return cls(ids)

    def __str__(self) -> str:
        return format_cpulist(self)

    def __repr__(self) -> str:
        return f"CPUSet({format_cpulist(self)!r})"

    # Set algebra keeps the type.
    def __or__(self, other: Iterable[int]) -> CPUSet:  # type: ignore[override]
        return CPUSet(frozenset.__or__(self, frozenset(other)))

    def __and__(self, other: Iterable[int]) -> CPUSet:  # type: ignore[override]
        return CPUSet(frozenset.__and__(self, frozenset(other)))

    def __sub__(self, other: Iterable[int]) -> CPUSet:  # type: ignore[override]
        return CPUSet(frozenset.__sub__(self, frozenset(other)))

    def __xor__(self, other: Iterable[int]) -> CPUSet:  # type: ignore[override]
        return CPUSet(frozenset.__xor__(self, frozenset(other)))

    __ror__ = __or__
    __rand__ = __and__

    def union(self, *others: Iterable[int]) -> CPUSet:  # type: ignore[override]
        return CPUSet(frozenset.union(self, *others))

    def intersection(self, *others: Iterable[int]) -> CPUSet:  # type: ignore[override]
        return CPUSet(frozenset.intersection(self, *others))

    def difference(self, *others: Iterable[int]) -> CPUSet:  # type: ignore[override]
        return CPUSet(frozenset.difference(self, *others))


def format_cpulist(ids: Iterable[int]) -> str:
    """Format ids the way the kernel and the kubelet's cpuset.String() do: "0-2,5,7-8"."""
    ordered = sorted(set(ids))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)
