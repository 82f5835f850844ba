"""Generate regular topologies: sockets x NUMA nodes per socket x cores x threads.

Two CPU numberings, because the kernel numbers CPUs in the order firmware lists them:
- "linux": the usual enumeration of multi-socket x86 servers. The first thread of every core
  (socket by socket, NUMA node by NUMA node) comes first, then every second thread, and so on:
  2 sockets x 1 NUMA x 4 cores x 2 threads gives NUMA 0 = 0-3,8-11 with siblings (0,8).
- "sequential" (alias "qemu"): siblings are adjacent, as qemu guests enumerate
  (`-smp N,sockets=S,cores=C,threads=T` with `-numa cpu,node-id=..,socket-id=..`): NUMA 0 =
  0-3 with siblings (0,1), (2,3). Use it for anything that must match a lab guest.

NUMA node ids are socket-major (socket s owns nodes s*numa_per_socket ...). Default distances
follow the ACPI SLIT/qemu convention: 10 local, 21 remote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from numacert.errors import InputError
from numacert.quantity import QuantityError, to_bytes
from numacert.topology.model import NUMANode, Topology, make_cpus

NUMBERINGS = ("linux", "sequential", "qemu")
DEFAULT_HUGEPAGES: Mapping[str, int] = MappingProxyType({"2Mi": 64})
LOCAL_DISTANCE = 10
REMOTE_DISTANCE = 21


def default_distances(count: int) -> list[list[int]]:
    """The SLIT a firmware (and qemu without -numa dist) reports: 10 local, 21 remote."""
    return [
        [LOCAL_DISTANCE if i == j else REMOTE_DISTANCE for j in range(count)] for i in range(count)
    ]


def _positive(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"must be a positive integer, not {value!r}", where)
    return value


def _bytes(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"must be a quantity such as 8Gi, not {value!r}", where)
    try:
        amount = to_bytes(value)
    except QuantityError as exc:
        raise InputError(str(exc), where) from None
    if amount < 0:
        raise InputError(f"must not be negative: {value!r}", where)
    return amount


def parse_hugepages(value: object, where: str) -> dict[int, int]:
    """{"2Mi": 64, "1Gi": 2} -> {page size in bytes: pages}; errors name the page size."""
    if not isinstance(value, Mapping):
        raise InputError(f"must be a mapping of page size to count, not {value!r}", where)
    out: dict[int, int] = {}
    for size, count in value.items():
        field = f"{where}.{size}"
        page = _bytes(size, field)
        if page <= 0:
            raise InputError("page size must be positive", field)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InputError(f"page count must be a non-negative integer, not {count!r}", field)
        if page in out:
            raise InputError(f"page size {size} is listed twice", field)
        out[page] = count
    return out


def parse_distances(value: object, count: int, where: str) -> list[list[int]]:
    """A square matrix of positive integers with one row per NUMA node."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InputError(f"must be a list of {count} rows, not {value!r}", where)
    if len(value) != count:
        raise InputError(f"has {len(value)} rows for {count} NUMA nodes", where)
    rows: list[list[int]] = []
    for i, row in enumerate(value):
        field = f"{where}[{i}]"
        if not isinstance(row, Sequence) or isinstance(row, str):
            raise InputError(f"must be a list of {count} integers, not {row!r}", field)
        if len(row) != count:
            raise InputError(f"has {len(row)} entries for {count} NUMA nodes", field)
        for j, d in enumerate(row):
            if isinstance(d, bool) or not isinstance(d, int) or d < 1:
                raise InputError(f"must be a positive integer, not {d!r}", f"{field}[{j}]")
        rows.append(list(row))
    return rows


def generate(
    sockets: int,
    numa_per_socket: int,
    cores_per_numa: int,
    threads_per_core: int,
    memory_per_numa: str | int,
    hugepages_per_numa: Mapping[str, int] = DEFAULT_HUGEPAGES,
    distances: Sequence[Sequence[int]] | None = None,
    cpu_numbering: str = "linux",
    *,
    where: str = "generate",
) -> Topology:
    """A regular topology. `memory_per_numa` is a quantity ("8Gi") or bytes; hugepage sizes
    are quantities; `distances` is a full matrix (default 10 local, 21 remote). `where` prefixes
    every error (e.g. "scenario.yaml: topology.generate")."""
    sockets = _positive(sockets, f"{where}.sockets")
    numa_per_socket = _positive(numa_per_socket, f"{where}.numa_per_socket")
    cores_per_numa = _positive(cores_per_numa, f"{where}.cores_per_numa")
    threads_per_core = _positive(threads_per_core, f"{where}.threads_per_core")
    memory = _bytes(memory_per_numa, f"{where}.memory_per_numa")
    hugepages = parse_hugepages(hugepages_per_numa, f"{where}.hugepages_per_numa")
    if cpu_numbering not in NUMBERINGS:
        raise InputError(
            f"unknown numbering {cpu_numbering!r}; use one of {', '.join(NUMBERINGS)}",
            f"{where}.cpu_numbering",
        )
    node_count = sockets * numa_per_socket
    if node_count > 64:
        raise InputError(f"{node_count} NUMA nodes; the kubelet handles ids 0-63", where)
    if sum(size * n for size, n in hugepages.items()) > memory:
        raise InputError(
            "hugepages take more than the node's memory", f"{where}.hugepages_per_numa"
        )
    matrix = (
        default_distances(node_count)
        if distances is None
        else parse_distances(distances, node_count, f"{where}.distances")
    )

    total_cores = node_count * cores_per_numa
    rows: list[dict] = []
    for socket in range(sockets):
        for local_numa in range(numa_per_socket):
            numa = socket * numa_per_socket + local_numa
            for local_core in range(cores_per_numa):
                core = numa * cores_per_numa + local_core  # platform-wide core index
                for thread in range(threads_per_core):
                    if cpu_numbering == "linux":
                        cpu = thread * total_cores + core
                    else:
                        cpu = core * threads_per_core + thread
                    rows.append({"id": cpu, "socket": socket, "numa": numa, "core": core})
    nodes = [
        NUMANode(id=n, memory=memory, hugepages=dict(hugepages), distances=tuple(matrix[n]))
        for n in range(node_count)
    ]
    return Topology(make_cpus(rows), nodes)
