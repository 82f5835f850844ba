"""The node topology as the kubelet sees it (cadvisor's machine info, after the kubelet's fix-ups).

Plain data, no I/O. Built by the sysfs parser, the generator, a profile or a scenario file.
Every derived view the oracle needs (CPUs per NUMA node, siblings, counts) is computed once here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

from numacert.cpuset import CPUSet
from numacert.errors import InputError


@dataclass(frozen=True, order=True)
class CPU:
    """One logical CPU (hardware thread).

    `core` is platform-unique, as the kubelet makes it: the lowest logical CPU id among the
    core's threads. `uncore` is the L3 cache id, or the socket id where no L3 is reported.
    """

    id: int
    socket: int
    numa: int
    core: int
    uncore: int


@dataclass(frozen=True)
class NUMANode:
    """One NUMA node: memory in bytes, hugepages as {page size in bytes: pages}, SLIT row.

    `distances[j]` is the distance to node j (the kubelet indexes the row by node id).
    """

    id: int
    memory: int
    hugepages: dict[int, int] = field(default_factory=dict)
    distances: tuple[int, ...] | None = None

    def __hash__(self) -> int:
        return hash((self.id, self.memory, tuple(sorted(self.hugepages.items())), self.distances))


class Topology:
    """Logical CPUs and NUMA nodes of one machine, with the derived counts the kubelet uses."""

    def __init__(self, cpus: list[CPU], numa_nodes: list[NUMANode]) -> None:
        self.cpus: tuple[CPU, ...] = tuple(sorted(cpus))
        self.numa_nodes: tuple[NUMANode, ...] = tuple(sorted(numa_nodes, key=lambda n: n.id))
        self.cpu_by_id: dict[int, CPU] = {c.id: c for c in self.cpus}
        self._check()

    def _check(self) -> None:
        ids = [c.id for c in self.cpus]
        if len(set(ids)) != len(ids):
            raise InputError("duplicate CPU id", "topology.cpus")
        node_ids = [n.id for n in self.numa_nodes]
        if len(set(node_ids)) != len(node_ids):
            raise InputError("duplicate NUMA node id", "topology.numa")
        for n in node_ids:
            if not 0 <= n <= 63:
                raise InputError(f"NUMA node id {n} is outside 0-63", "topology.numa")
        known = set(node_ids)
        for c in self.cpus:
            if c.numa not in known:
                raise InputError(
                    f"CPU {c.id} is on NUMA node {c.numa}, which is not listed", "topology.cpus"
                )
        for n in self.numa_nodes:
            if n.distances is not None:
                if len(n.distances) != len(self.numa_nodes):
                    raise InputError(
                        f"NUMA node {n.id} has {len(n.distances)} distances for "
                        f"{len(self.numa_nodes)} nodes",
                        f"topology.numa[{n.id}].distances",
                    )
        if not self.cpus:
            raise InputError("no CPUs", "topology.cpus")
        # Threads of one core must share socket and NUMA node.
        for core, members in self.cores.items():
            sockets = {self.cpu_by_id[m].socket for m in members}
            if len(sockets) != 1:
                raise InputError(f"core {core} spans sockets {sorted(sockets)}", "topology.cpus")
            nodes = {self.cpu_by_id[m].numa for m in members}
            if len(nodes) != 1:
                raise InputError(f"core {core} spans NUMA nodes {sorted(nodes)}", "topology.cpus")

    # ---- derived sets -------------------------------------------------------------------
    @cached_property
    def all_cpus(self) -> CPUSet:
        return CPUSet(c.id for c in self.cpus)

    @cached_property
    def numa_ids(self) -> tuple[int, ...]:
        """Every NUMA node (memory-only ones included): the Topology Manager's node list."""
        return tuple(n.id for n in self.numa_nodes)

    @cached_property
    def numa_by_id(self) -> dict[int, NUMANode]:
        return {n.id: n for n in self.numa_nodes}

    @cached_property
    def cpu_numa_ids(self) -> tuple[int, ...]:
        """NUMA nodes that own CPUs, ascending: the CPU Manager's node list."""
        return tuple(sorted({c.numa for c in self.cpus}))

    @cached_property
    def socket_ids(self) -> tuple[int, ...]:
        return tuple(sorted({c.socket for c in self.cpus}))

    @cached_property
    def cpus_by_numa(self) -> dict[int, CPUSet]:
        out: dict[int, set[int]] = {n: set() for n in self.numa_ids}
        for c in self.cpus:
            out[c.numa].add(c.id)
        return {n: CPUSet(s) for n, s in out.items()}

    @cached_property
    def cpus_by_socket(self) -> dict[int, CPUSet]:
        out: dict[int, set[int]] = {}
        for c in self.cpus:
            out.setdefault(c.socket, set()).add(c.id)
        return {s: CPUSet(v) for s, v in sorted(out.items())}

    @cached_property
    def cores(self) -> dict[int, CPUSet]:
        """Platform-unique core id -> its threads."""
        out: dict[int, set[int]] = {}
        for c in self.cpus:
            out.setdefault(c.core, set()).add(c.id)
        return {k: CPUSet(v) for k, v in sorted(out.items())}

    @cached_property
    def cpus_by_uncore(self) -> dict[int, CPUSet]:
        out: dict[int, set[int]] = {}
        for c in self.cpus:
            out.setdefault(c.uncore, set()).add(c.id)
        return {k: CPUSet(v) for k, v in sorted(out.items())}

    def siblings(self, cpu_id: int) -> CPUSet:
        return self.cores[self.cpu_by_id[cpu_id].core]

    # ---- counts (the kubelet's CPUTopology) ---------------------------------------------
    @property
    def num_cpus(self) -> int:
        return len(self.cpus)

    @property
    def num_cores(self) -> int:
        return len(self.cores)

    @property
    def num_sockets(self) -> int:
        return len(self.socket_ids)

    @property
    def num_numa_nodes(self) -> int:
        """Distinct NUMA nodes among CPUs (the CPU Manager's NumNUMANodes)."""
        return len(self.cpu_numa_ids)

    @property
    def num_uncore_caches(self) -> int:
        return len(self.cpus_by_uncore)

    @property
    def cpus_per_core(self) -> int:
        return self.num_cpus // self.num_cores if self.num_cores else 0

    @property
    def cpus_per_socket(self) -> int:
        return self.num_cpus // self.num_sockets if self.num_sockets else 0

    @property
    def cpus_per_uncore(self) -> int:
        return self.num_cpus // self.num_uncore_caches if self.num_uncore_caches else 0

    @cached_property
    def hugepage_sizes(self) -> tuple[int, ...]:
        return tuple(sorted({s for n in self.numa_nodes for s in n.hugepages}))

    def distance(self, a: int, b: int) -> int | None:
        row = self.numa_by_id[a].distances
        return None if row is None else row[b]

    # ---- identity -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Canonical plain-data form (the scenario file's explicit `cpus` + `numa` shape)."""
        return {
            "cpus": [
                {"id": c.id, "socket": c.socket, "numa": c.numa, "core": c.core, "uncore": c.uncore}
                for c in self.cpus
            ],
            "numa": [
                {
                    "id": n.id,
                    "memory": n.memory,
                    "hugepages": {str(size): count for size, count in sorted(n.hugepages.items())},
                    "distances": list(n.distances) if n.distances is not None else None,
                }
                for n in self.numa_nodes
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Topology:
        """The inverse of to_dict (for topologies numacert itself wrote, e.g. a lab's vm.json;
        user input goes through numacert.topology.spec, which checks every field)."""
        cpus = [CPU(**c) for c in data["cpus"]]
        nodes = [
            NUMANode(
                id=n["id"],
                memory=n["memory"],
                hugepages={int(k): v for k, v in n["hugepages"].items()},
                distances=tuple(n["distances"]) if n["distances"] is not None else None,
            )
            for n in data["numa"]
        ]
        return cls(cpus, nodes)

    def fingerprint(self, include_memory: bool = False) -> str:
        """A short stable hash of the CPU layout, NUMA nodes, distances and hugepage sizes.

        Memory amounts are left out by default: the kernel's per-node MemTotal moves by a few
        MiB between boots and kernels, while what certification depends on does not.
        """
        data = self.to_dict()
        for n in data["numa"]:
            if not include_memory:
                n.pop("memory")
                n["hugepages"] = sorted(n["hugepages"])
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Topology) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint(include_memory=True))

    def __repr__(self) -> str:
        return (
            f"Topology({self.num_cpus} CPUs, {self.num_cores} cores, {self.num_sockets} sockets, "
            f"{len(self.numa_nodes)} NUMA nodes)"
        )


def make_cpus(rows: list[dict]) -> list[CPU]:
    """Build CPUs from rows of {id, socket, numa, core[, uncore]} where `core` is any label
    shared by SMT siblings within a socket and NUMA node (as cadvisor's socket-unique core_id).

    Applies the kubelet's fix-ups: core ids become the lowest thread id of the core, and the
    uncore id falls back to the socket id.
    """
    groups: dict[tuple[int, int, int], list[int]] = {}
    for r in rows:
        groups.setdefault((r["socket"], r["numa"], r["core"]), []).append(r["id"])
    unique = {key: min(ids) for key, ids in groups.items()}
    return [
        CPU(
            id=r["id"],
            socket=r["socket"],
            numa=r["numa"],
            core=unique[(r["socket"], r["numa"], r["core"])],
            uncore=r["uncore"] if r.get("uncore") is not None else r["socket"],
        )
        for r in rows
    ]
