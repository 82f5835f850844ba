"""The scenario file's `topology:` section (design.md, "Scenario file") -> Topology.

Exactly one of three forms:
    cpus: [{id, socket, numa, core[, uncore]}, ...] + numa: [{id, memory[, hugepages][, distances]}]
    generate: {sockets, numa_per_socket, cores_per_numa, threads_per_core, memory_per_numa
               [, hugepages_per_numa][, distances][, cpu_numbering]}
    profile: NAME

In the explicit form `core` is a label shared by the SMT siblings of one physical core and by
no other CPU (so it must be unique across sockets); the Topology renumbers it the kubelet's
way. `uncore` (L3 id) is optional and falls back to the socket, as in the kubelet.

Every error names the field: `where` is the section's own location ("scenario.yaml: topology")
and fields are appended to it ("scenario.yaml: topology.cpus[3].numa").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from numacert.errors import InputError
from numacert.quantity import QuantityError, to_bytes
from numacert.topology.generate import generate, parse_hugepages
from numacert.topology.model import NUMANode, Topology, make_cpus

_CPU_REQUIRED = ("id", "socket", "numa", "core")
_CPU_OPTIONAL = ("uncore",)
_NUMA_REQUIRED = ("id", "memory")
_NUMA_OPTIONAL = ("hugepages", "distances")
_GENERATE_REQUIRED = (
    "sockets",
    "numa_per_socket",
    "cores_per_numa",
    "threads_per_core",
    "memory_per_numa",
)
_GENERATE_OPTIONAL = ("hugepages_per_numa", "distances", "cpu_numbering")
_FORMS = "cpus+numa (explicit), generate, or profile"


def topology_from_spec(section: object, where: str) -> Topology:
    """Build the Topology a scenario's `topology:` section describes."""
    data = _mapping(section, where)
    for key in data:
        if key not in ("cpus", "numa", "generate", "profile"):
            raise InputError(f"unknown key; use one of {_FORMS}", f"{where}.{key}")
    explicit = "cpus" in data or "numa" in data
    present = {"cpus+numa": explicit, "generate": "generate" in data, "profile": "profile" in data}
    forms = [name for name, here in present.items() if here]
    if len(forms) != 1:
        what = "has none of" if not forms else f"has {' and '.join(forms)}; use exactly one of"
        raise InputError(f"{what} {_FORMS}", where)
    if "profile" in data:
        return _from_profile(data["profile"], f"{where}.profile")
    if "generate" in data:
        return _from_generate(data["generate"], f"{where}.generate")
    for key in ("cpus", "numa"):
        if key not in data:
            raise InputError("the explicit form needs both cpus and numa", f"{where}.{key}")
    return _from_explicit(data["cpus"], data["numa"], where)


# ---- small typed getters whose errors name the field ------------------------------------
def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"must be a mapping, not {type(value).__name__}", where)
    for key in value:
        if not isinstance(key, str):
            raise InputError(f"key {key!r} is not a string", where)
    return value


def _keys(row: Mapping[str, Any], required: tuple, optional: tuple, where: str) -> None:
    for key in required:
        if key not in row:
            raise InputError("missing", f"{where}.{key}")
    for key in row:
        if key not in required and key not in optional:
            allowed = ", ".join(required + optional)
            raise InputError(f"unknown key; allowed: {allowed}", f"{where}.{key}")


def _nonneg(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"must be a non-negative integer, not {value!r}", where)
    return value


def _list(value: object, where: str) -> list:
    if not isinstance(value, list):
        raise InputError(f"must be a list, not {type(value).__name__}", where)
    if not value:
        raise InputError("must not be empty", where)
    return value


# ---- the three forms ----------------------------------------------------------------------
def _from_profile(name: object, where: str) -> Topology:
    if not isinstance(name, str) or not name:
        raise InputError(f"must be a profile name, not {name!r}", where)
    from numacert.topology.profiles import load_profile  # profiles use this module too

    return load_profile(name, where=where)


def _from_generate(section: object, where: str) -> Topology:
    data = _mapping(section, where)
    _keys(data, _GENERATE_REQUIRED, _GENERATE_OPTIONAL, where)
    kwargs = dict(data)
    numbering = kwargs.pop("cpu_numbering", "linux")
    if not isinstance(numbering, str):
        raise InputError(f"must be a string, not {numbering!r}", f"{where}.cpu_numbering")
    return generate(**kwargs, cpu_numbering=numbering, where=where)


def _from_explicit(cpus_value: object, numa_value: object, where: str) -> Topology:
    numa_rows = _list(numa_value, f"{where}.numa")
    nodes: list[NUMANode] = []
    node_index: dict[int, int] = {}  # node id -> its row index, for error locations
    for i, raw in enumerate(numa_rows):
        field = f"{where}.numa[{i}]"
        row = _mapping(raw, field)
        _keys(row, _NUMA_REQUIRED, _NUMA_OPTIONAL, field)
        node_id = _nonneg(row["id"], f"{field}.id")
        if node_id > 63:
            raise InputError(f"NUMA node id {node_id} is outside 0-63", f"{field}.id")
        if node_id in node_index:
            raise InputError(
                f"duplicate NUMA node id {node_id} (also numa[{node_index[node_id]}])",
                f"{field}.id",
            )
        node_index[node_id] = i
        memory = row["memory"]
        if isinstance(memory, bool) or not isinstance(memory, str | int):
            raise InputError(f"must be a quantity such as 64Gi, not {memory!r}", f"{field}.memory")
        try:
            memory_bytes = to_bytes(memory)
        except QuantityError as exc:
            raise InputError(str(exc), f"{field}.memory") from None
        if memory_bytes < 0:
            raise InputError("must not be negative", f"{field}.memory")
        hugepages = row.get("hugepages")
        pages = {} if hugepages is None else parse_hugepages(hugepages, f"{field}.hugepages")
        if sum(size * n for size, n in pages.items()) > memory_bytes:
            raise InputError("hugepages take more than the node's memory", f"{field}.hugepages")
        distances = row.get("distances")
        row_d: tuple[int, ...] | None = None
        if distances is not None:
            if not isinstance(distances, list):
                raise InputError(f"must be a list, not {distances!r}", f"{field}.distances")
            for j, d in enumerate(distances):
                if isinstance(d, bool) or not isinstance(d, int) or d < 1:
                    raise InputError(
                        f"must be a positive integer, not {d!r}", f"{field}.distances[{j}]"
                    )
            row_d = tuple(distances)
        nodes.append(NUMANode(id=node_id, memory=memory_bytes, hugepages=pages, distances=row_d))
    _check_distances(nodes, node_index, where)

    cpu_rows = _list(cpus_value, f"{where}.cpus")
    rows: list[dict] = []
    cpu_index: dict[int, int] = {}
    for i, raw in enumerate(cpu_rows):
        field = f"{where}.cpus[{i}]"
        row = _mapping(raw, field)
        _keys(row, _CPU_REQUIRED, _CPU_OPTIONAL, field)
        values = {key: _nonneg(row[key], f"{field}.{key}") for key in _CPU_REQUIRED}
        uncore = row.get("uncore")
        values["uncore"] = None if uncore is None else _nonneg(uncore, f"{field}.uncore")
        if values["id"] in cpu_index:
            raise InputError(
                f"duplicate CPU id {values['id']} (also cpus[{cpu_index[values['id']]}])",
                f"{field}.id",
            )
        cpu_index[values["id"]] = i
        if values["numa"] not in node_index:
            known = ", ".join(str(n) for n in sorted(node_index))
            raise InputError(
                f"NUMA node {values['numa']} is not in numa (known: {known})", f"{field}.numa"
            )
        rows.append(values)
    _check_cores(rows, where)
    try:
        return Topology(make_cpus(rows), nodes)
    except InputError as exc:  # the checks above should leave nothing for the model to find
        raise InputError(exc.what, where) from None


def _check_distances(nodes: list[NUMANode], node_index: dict[int, int], where: str) -> None:
    with_rows = [n for n in nodes if n.distances is not None]
    if not with_rows:
        return
    count = len(nodes)
    for n in nodes:
        field = f"{where}.numa[{node_index[n.id]}].distances"
        if n.distances is None:
            raise InputError("missing while other NUMA nodes have distances", field)
        if len(n.distances) != count:
            raise InputError(f"has {len(n.distances)} entries for {count} NUMA nodes", field)
    if sorted(node_index) != list(range(count)):
        # The kubelet indexes a distance row by node id (kubelet-algorithms.md §2.6).
        raise InputError(
            "distances need NUMA ids 0..n-1: the kubelet indexes each row by node id",
            f"{where}.numa",
        )
    for n in nodes:
        assert n.distances is not None
        field = f"{where}.numa[{node_index[n.id]}].distances"
        local = n.distances[n.id]
        if any(d < local for d in n.distances):
            raise InputError(
                f"the distance to itself ({local}, entry {n.id}) must be the smallest", field
            )


def _check_cores(rows: list[dict], where: str) -> None:
    """SMT siblings (rows sharing `core`) must share socket, NUMA node and uncore."""
    first: dict[int, int] = {}  # core label -> index of its first row
    for i, row in enumerate(rows):
        j = first.setdefault(row["core"], i)
        if j == i:
            continue
        other = rows[j]
        for key in ("socket", "numa", "uncore"):
            if row[key] != other[key]:
                raise InputError(
                    f"CPU {row['id']} shares core {row['core']} with CPU {other['id']} "
                    f"(cpus[{j}]) but has {key} {row[key]} instead of {other[key]}; "
                    "SMT siblings share `core`, and core labels are unique across sockets",
                    f"{where}.cpus[{i}].{key}",
                )
