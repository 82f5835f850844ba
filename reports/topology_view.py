"""A node's topology (Topology.to_dict() in results.json) summarised for the reports.

Works on the plain dict rather than rebuilding a Topology: a report must still render when a
topology is partial, so a malformed one becomes "unreadable" instead of an exception.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from numacert.cpuset import CPUSet
from numacert.quantity import format_bytes

_BAD_SHAPE = (KeyError, TypeError, ValueError, AttributeError)


@dataclass(frozen=True)
class NumaRow:
    id: int
    cpus: str  # Linux list syntax, e.g. 0-3,8-11
    cpu_count: int
    memory: str
    hugepages: str
    distances: str


def topology_line(topology: dict[str, Any] | None) -> str:
    """`2 sockets · 2 NUMA nodes · 4 CPUs per NUMA node · 2 threads per core · hugepages 2Mi×128
    per node`."""
    if not topology:
        return "topology not discovered"
    try:
        cpus, nodes = topology["cpus"], topology["numa"]
        return " · ".join(
            [
                _plural(len({c["socket"] for c in cpus}), "socket"),
                _plural(len(nodes), "NUMA node"),
                _cpus_per_node(cpus, nodes),
                _threads_per_core(cpus),
                _hugepages_per_node(nodes),
            ]
        )
    except _BAD_SHAPE:
        return "unreadable topology"


def numa_rows(topology: dict[str, Any] | None) -> list[NumaRow]:
    """One row per NUMA node; empty when the topology is missing or unreadable."""
    if not topology:
        return []
    try:
        return [_row(n, topology["cpus"]) for n in sorted(topology["numa"], key=lambda n: n["id"])]
    except _BAD_SHAPE:
        return []


def _row(node: dict[str, Any], cpus: list[dict[str, Any]]) -> NumaRow:
    ids = CPUSet(c["id"] for c in cpus if c["numa"] == node["id"])
    distances = node.get("distances")
    return NumaRow(
        id=node["id"],
        cpus=str(ids) or "none",
        cpu_count=len(ids),
        memory=human_bytes(int(node.get("memory") or 0)),
        hugepages=_hugepages(node.get("hugepages") or {}),
        distances=" ".join(str(d) for d in distances) if distances else "",
    )


def human_bytes(value: int) -> str:
    """1073741824 -> 1.0 GiB; readable rather than exact (memory per node moves between boots)."""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def _cpus_per_node(cpus: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> str:
    per_node = Counter(c["numa"] for c in cpus)
    counts = [per_node.get(n["id"], 0) for n in sorted(nodes, key=lambda n: n["id"])]
    if len(set(counts)) == 1:
        return f"{counts[0]} CPUs per NUMA node"
    return "CPUs per NUMA node " + "/".join(str(n) for n in counts)


def _threads_per_core(cpus: list[dict[str, Any]]) -> str:
    # Core ids are platform-unique (the kubelet's fix-up), so they alone identify a core.
    sizes = sorted(set(Counter(c["core"] for c in cpus).values()))
    text = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    return f"{text} thread{'s' if text != '1' else ''} per core"


def _hugepages_per_node(nodes: list[dict[str, Any]]) -> str:
    ordered = sorted(nodes, key=lambda n: n["id"])
    texts = [_hugepages(n.get("hugepages") or {}) for n in ordered]
    if len(set(texts)) == 1:
        return "no hugepages" if texts[0] == "none" else f"hugepages {texts[0]} per node"
    return "hugepages " + ", ".join(
        f"node {n['id']}: {t}" for n, t in zip(ordered, texts, strict=True)
    )


def _hugepages(pages: dict[str, Any]) -> str:
    """{"2097152": 128} -> 2Mi×128; page sizes in bytes as to_dict writes them."""
    parts = [f"{format_bytes(int(size))}×{n}" for size, n in sorted(pages.items(), key=_size)]
    return ", ".join(parts) if parts else "none"


def _size(item: tuple[str, Any]) -> int:
    return int(item[0])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
