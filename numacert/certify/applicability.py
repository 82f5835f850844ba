"""Does a catalogue check apply to a node, and can the node exercise it?

A check that does not apply to the node's policy is `not-applicable:<field>=<value>`; one the
node's hardware or the run's means cannot exercise is `needs-<what>[:<detail>]`. The reason
is machine-readable and goes into the skip (reports/skips.py reads it). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from numacert.kubelet.config import KubeletConfig
from numacert.topology.model import Topology

SEPARATOR = " | "  # between the machine-readable reason and the sentence for people


@dataclass(frozen=True)
class RunMeans:
    """What this run has besides the node: node access, a --require file, free CPUs."""

    node_access: bool
    require: bool
    allocatable_cpus: int
    hugepages_2m_bytes: int


_POLICY_FIELDS = {
    "cpu_manager": lambda c: c.cpu_manager_policy,
    "topology_manager": lambda c: c.topology_manager_policy,
    "topology_scope": lambda c: c.topology_manager_scope,
    "memory_manager": lambda c: c.memory_manager_policy,
}


def skip_reason(
    applies: dict, needs: dict, config: KubeletConfig, topology: Topology, means: RunMeans
) -> str | None:
    """`reason | sentence` when the check must skip on this node, else None."""
    for key, values in applies.items():
        if key in _POLICY_FIELDS:
            value = _POLICY_FIELDS[key](config)
            if value not in values:
                return (
                    f"not-applicable:{key}={value}{SEPARATOR}"
                    f"applies to {key} {', '.join(values)}, the node runs {value}"
                )
        elif key in ("cpu_options", "tm_options"):
            has = config.cpu_option if key == "cpu_options" else config.tm_option
            for option in values:
                if not has(option):
                    return f"not-applicable:{option}=off{SEPARATOR}needs the option {option}"
    numa = len(topology.numa_ids)
    if needs.get("numa_nodes") and numa < needs["numa_nodes"]:
        return (
            f"needs-numa-nodes:{needs['numa_nodes']}{SEPARATOR}"
            f"needs {needs['numa_nodes']} NUMA nodes, the node has {numa}"
        )
    threads = max(len(core) for core in topology.cores.values())
    if needs.get("smt") and threads < 2:
        return f"needs-smt{SEPARATOR}needs SMT (2+ threads per core), the node has 1"
    if needs.get("hugepages") == "2Mi" and means.hugepages_2m_bytes < 4 << 20:
        return f"needs-hugepages:2Mi{SEPARATOR}needs 2 allocatable 2Mi hugepages"
    if needs.get("free_cpus") and means.allocatable_cpus < needs["free_cpus"]:
        return (
            f"needs-free-cpus:{needs['free_cpus']}{SEPARATOR}"
            f"needs {needs['free_cpus']} allocatable CPUs, the node has {means.allocatable_cpus}"
        )
    if needs.get("node_access") and not means.node_access:
        return f"needs-node-access{SEPARATOR}needs node access (--node-access)"
    if needs.get("require") and not means.require:
        return f"needs-require{SEPARATOR}no --require file given"
    return None
