"""Build a Topology from a sysfs snapshot, read the way cadvisor reads it for the kubelet.

The snapshot is the output of `collect.sh` (package data), run locally, over SSH on a lab guest
or inside a pod with `kubectl exec -i ... sh -s`. One line per file, `key<TAB>value`:

    numacert-sysfs  1                      header (format version)
    online          0-7                    /sys/devices/system/cpu/online
    node            0                      a node directory exists
    node/0/cpulist  0-3                    nodeN/cpulist
    node/0/distance 10 21                  nodeN/distance                  (optional)
    node/0/memtotal MemTotal: 4019620 kB   the MemTotal line of nodeN/meminfo
    node/0/hugepages/2048kB 64             nodeN/hugepages/hugepages-2048kB/nr_hugepages
    cpu/3/physical_package_id 0            cpuN/topology/*
    cpu/3/core_id   1
    cpu/3/thread_siblings_list 2-3         (optional, checked for syntax only)
    cpu/3/l3/id     0                      the level-3 cache of cpuN      (optional)
    cpu/3/l3/shared_cpu_list 0-7                                          (optional)
    end             ok                     trailer: the transfer is complete

What the parser reproduces from cadvisor (utils/sysinfo GetNodesInfo) and the kubelet:
- CPUs are the online CPUs of each node's cpulist; a core is (node, package, core_id), as
  cadvisor groups threads. thread_siblings_list is not used by cadvisor, so not here either.
- An L3 cache shared by exactly the node's threads is a node cache in cadvisor, not an uncore
  cache, so the CPU's uncore id falls back to its socket (the kubelet's fallback); any other L3
  becomes the core's uncore cache and its id the uncore id. No L3 id: socket fallback.
- A node without distance file has no distances; without hugepages directory, no hugepages.
- Without any node directory cadvisor falls back to one node per physical package (node id =
  package id) with no memory, hugepages or distances. We do the same: memory 0 is what the
  kubelet's Memory Manager then sees (it cannot work on such a machine), and a snapshot that
  invented a total would certify something the node does not report.

Stricter than cadvisor (a snapshot is evidence, so gaps are errors rather than warnings): a
missing cpu/online, node cpulist or meminfo, a missing core_id or physical_package_id of an
online CPU, an online CPU in no node, and any garbled value raise InputError naming the key.
"""

from __future__ import annotations

import os
import re
import subprocess
from importlib import resources

from numacert.cpuset import CPUSet, CPUSetError
from numacert.errors import InfrastructureError, InputError
from numacert.topology.model import NUMANode, Topology, make_cpus

SNAPSHOT_HEADER = "numacert-sysfs"
SNAPSHOT_VERSION = "1"

_MEMTOTAL = re.compile(r"MemTotal:\s*([0-9]+) kB")
_HUGEPAGE_DIR = re.compile(r"([0-9]+)kB")


def collector_script() -> str:
    """The POSIX sh collector (package data), to run with `sh -s` anywhere."""
    return resources.files("numacert.topology").joinpath("collect.sh").read_text()


def run_collector(root: str | None = None, timeout: float = 60.0) -> str:
    """Run the collector locally with sh; `root` becomes SYSFS_ROOT (a fake tree in tests)."""
    env = dict(os.environ)
    if root is not None:
        env["SYSFS_ROOT"] = str(root)
    try:
        proc = subprocess.run(
            ["sh", "-s"],
            input=collector_script(),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfrastructureError(f"running the sysfs collector with sh failed: {exc}") from exc
    if proc.returncode != 0:
        raise InfrastructureError(
            f"the sysfs collector exited {proc.returncode}: {proc.stderr.strip()[:200]}"
        )
    return proc.stdout


def collect_local(root: str | None = None) -> Topology:
    """The topology of this machine (or of a fake sysfs tree under `root`)."""
    where = "local sysfs" if root is None else f"sysfs under {root}"
    return parse_snapshot(run_collector(root), where)


class _Snapshot:
    """The key/value lines of a snapshot, with typed getters whose errors name the key."""

    def __init__(self, text: str, where: str) -> None:
        self.where = where
        self.values: dict[str, str] = {}
        self.nodes: list[int] = []
        lines = text.splitlines()
        if not lines or lines[0].split("\t") != [SNAPSHOT_HEADER, SNAPSHOT_VERSION]:
            raise InputError(
                f"not a numacert sysfs snapshot (expected first line "
                f"'{SNAPSHOT_HEADER}<TAB>{SNAPSHOT_VERSION}')",
                where,
            )
        if lines[-1] != "end\tok":
            raise InputError("snapshot is truncated (no 'end<TAB>ok' last line)", where)
        for number, line in enumerate(lines[1:-1], start=2):
            key, sep, value = line.partition("\t")
            if not sep or not key:
                raise InputError(f"line {number} is not 'key<TAB>value': {line[:80]!r}", where)
            if key == "node":
                self.nodes.append(self._int(value, f"line {number} (node)"))
                continue
            if key in self.values:
                raise InputError(f"line {number}: duplicate key {key}", where)
            self.values[key] = value.strip()

    def error(self, key: str, what: str) -> InputError:
        return InputError(what, f"{self.where}: {key}")

    def has(self, key: str) -> bool:
        return key in self.values

    def require(self, key: str, why: str = "") -> str:
        if key not in self.values:
            raise self.error(key, "missing" + (f" ({why})" if why else ""))
        return self.values[key]

    def _int(self, raw: str, key: str) -> int:
        raw = raw.strip()
        if not raw.isdigit():
            raise self.error(key, f"not a non-negative integer: {raw!r}")
        return int(raw)

    def integer(self, key: str, why: str = "") -> int:
        return self._int(self.require(key, why), key)

    def cpuset(self, key: str, why: str = "") -> CPUSet:
        raw = self.require(key, why)
        try:
            return CPUSet.parse(raw)
        except CPUSetError as exc:
            raise self.error(key, f"not a CPU list: {exc}") from None


def parse_snapshot(text: str, where: str) -> Topology:
    """Parse the collector's output into the Topology the kubelet would build from it.

    `where` names the source in errors (a file, "node worker-1", "local sysfs").
    """
    snap = _Snapshot(text, where)
    online = snap.cpuset("online", "/sys/devices/system/cpu/online")
    if not online:
        raise snap.error("online", "no online CPUs")

    # CPU -> node, as cadvisor lists a node's CPUs.
    node_of: dict[int, int] = {}
    if snap.nodes:
        if len(set(snap.nodes)) != len(snap.nodes):
            raise InputError("a node is listed twice", where)
        for n in sorted(snap.nodes):
            for cpu in snap.cpuset(f"node/{n}/cpulist", "every node directory has one") & online:
                if cpu in node_of:
                    raise snap.error(
                        f"node/{n}/cpulist", f"CPU {cpu} is also on node {node_of[cpu]}"
                    )
                node_of[cpu] = n
        stray = online - CPUSet(node_of)
        if stray:
            raise snap.error("online", f"online CPUs {stray} are in no node's cpulist")

    # Per-CPU identity. cadvisor groups threads into cores by (package id, core id) per node.
    sockets: dict[int, int] = {}
    core_ids: dict[int, int] = {}
    for cpu in sorted(online):
        why = "every online CPU has one"
        sockets[cpu] = snap.integer(f"cpu/{cpu}/physical_package_id", why)
        core_ids[cpu] = snap.integer(f"cpu/{cpu}/core_id", why)
        # Optional pieces only cadvisor's first thread per core uses: still checked, since a
        # garbled value anywhere means the snapshot cannot be trusted.
        for key in (f"cpu/{cpu}/thread_siblings_list", f"cpu/{cpu}/l3/shared_cpu_list"):
            if snap.has(key):
                snap.cpuset(key)
        if snap.has(f"cpu/{cpu}/l3/id"):
            snap.integer(f"cpu/{cpu}/l3/id")
    if not snap.nodes:
        # cadvisor's getCPUTopology: one node per physical package.
        node_of = dict(sockets)

    cores: dict[tuple[int, int, int], list[int]] = {}
    for cpu in sorted(online):
        cores.setdefault((node_of[cpu], sockets[cpu], core_ids[cpu]), []).append(cpu)
    cores_per_node: dict[int, int] = {}
    for node, _, _ in cores:
        cores_per_node[node] = cores_per_node.get(node, 0) + 1

    uncore: dict[int, int | None] = {}
    for (node, _, _), threads in cores.items():
        # cadvisor reads the caches of the core's first thread in directory (string) order.
        first = min(threads, key=lambda c: f"cpu{c}")
        value = _uncore_id(snap, first, cores_per_node[node] * len(threads))
        for t in threads:
            uncore[t] = value

    rows = [
        {
            "id": cpu,
            "socket": sockets[cpu],
            "numa": node_of[cpu],
            "core": core_ids[cpu],
            "uncore": uncore[cpu],
        }
        for cpu in sorted(online)
    ]

    numa_nodes = [_node(snap, n) for n in sorted(snap.nodes)] or [
        NUMANode(id=n, memory=0) for n in sorted(set(node_of.values()))
    ]
    try:
        return Topology(make_cpus(rows), numa_nodes)
    except InputError as exc:
        raise InputError(exc.what, where) from None


def _uncore_id(snap: _Snapshot, cpu: int, threads_per_node: int) -> int | None:
    """The kubelet's UncoreCacheID source for a core, or None for the socket fallback."""
    id_key, list_key = f"cpu/{cpu}/l3/id", f"cpu/{cpu}/l3/shared_cpu_list"
    if not snap.has(id_key):
        return None
    cache_id = snap.integer(id_key)
    if not snap.has(list_key):
        return None  # cadvisor cannot count the cache's CPUs, so it drops the cache info
    if len(snap.cpuset(list_key)) == threads_per_node:
        return None  # a node-wide L3 is a node cache in cadvisor, not an uncore cache
    return cache_id


def _node(snap: _Snapshot, n: int) -> NUMANode:
    mem_key = f"node/{n}/memtotal"
    raw = snap.require(mem_key, "nodeN/meminfo with a MemTotal line")
    m = _MEMTOTAL.search(raw)
    if not m:
        raise snap.error(mem_key, f"no 'MemTotal: <n> kB' in {raw!r}")
    memory = int(m.group(1)) * 1024

    hugepages: dict[int, int] = {}
    prefix = f"node/{n}/hugepages/"
    for key in sorted(k for k in snap.values if k.startswith(prefix)):
        size = _HUGEPAGE_DIR.fullmatch(key[len(prefix) :])
        if not size:
            raise snap.error(key, "hugepages directory is not hugepages-<size>kB")
        hugepages[int(size.group(1)) * 1024] = snap.integer(key)

    distances: tuple[int, ...] | None = None
    dist_key = f"node/{n}/distance"
    if snap.has(dist_key):
        parts = snap.values[dist_key].split()
        if not parts or not all(p.isdigit() for p in parts):
            raise snap.error(dist_key, f"not a row of integers: {snap.values[dist_key]!r}")
        distances = tuple(int(p) for p in parts)
    return NUMANode(id=n, memory=memory, hugepages=hugepages, distances=distances)
