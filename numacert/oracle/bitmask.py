"""NUMA bitmasks as plain ints (bit i set = NUMA node i), as the kubelet's `bitmask` package
treats them (kubelet-algorithms.md §1.2) plus the average NUMA distance of §2.6."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence


def iterate_masks(node_ids: Iterable[int]) -> Iterator[int]:
    """Every non-empty subset of `node_ids`, by size 1, 2, ..., n and, within a size, in
    itertools.combinations order of the ascending ids (IterateBitMasks order)."""
    nodes = sorted(node_ids)
    for size in range(1, len(nodes) + 1):
        for combo in itertools.combinations(nodes, size):
            mask = 0
            for node in combo:
                mask |= 1 << node
            yield mask


def count(mask: int) -> int:
    """Number of NUMA nodes in the mask."""
    return mask.bit_count()


def is_less_than(a: int, b: int) -> bool:
    """The kubelet's IsLessThan: unsigned value comparison (more lower-numbered bits wins)."""
    return a < b


def is_narrower_than(a: int, b: int) -> bool:
    """Fewer nodes; equal counts fall back to is_less_than."""
    count_a, count_b = a.bit_count(), b.bit_count()
    if count_a == count_b:
        return a < b
    return count_a < count_b


def avg_distance(mask: int, distances: Mapping[int, Sequence[int]]) -> float:
    """Mean of D[i][j] over all ordered pairs (i, j) of the mask's nodes, self pairs included;
    0.0 for an empty mask. The row is indexed by node id, as the kubelet does.

    Summed as an exact int and divided once: the same float64 the kubelet's float sum gives
    (its partial sums are integers far below 2**53, so they are exact too)."""
    nodes = [i for i in range(mask.bit_length()) if mask >> i & 1]
    if not nodes:
        return 0.0
    total = 0
    for i in nodes:
        row = distances[i]
        for j in nodes:
            total += row[j]
    return float(total) / float(len(nodes) * len(nodes))


def mask_of(nodes) -> int:
    m = 0
    for n in nodes:
        m |= 1 << n
    return m


def bits_of(mask: int) -> list[int]:
    out = []
    i = 0
    while mask:
        if mask & 1:
            out.append(i)
        mask >>= 1
        i += 1
    return out
