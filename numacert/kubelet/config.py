"""Typed view of the KubeletConfiguration (kubelet.config.k8s.io/v1beta1) fields numacert uses.

Field names mirror the YAML keys in snake_case. Values keep the kubelet's own spelling
("static", "single-numa-node", "Static"), and option maps keep their string values, because
the kubelet parses them itself (strconv.ParseBool / Atoi) and reports errors on them.
Everything else in the user's file is kept verbatim in `extra`, so rendering a parsed file
loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReservedMemory:
    """One reservedMemory entry: a NUMA node and its limits ({"memory": "1100Mi", ...})."""

    numa_node: int
    limits: dict[str, str]


# The policy fields (camelCase, as in a config file and in /configz) and the kubelet's default
# for each: /configz leaves a field out when it holds its default.
POLICY_DEFAULTS: dict[str, object] = {
    "cpuManagerPolicy": "none",
    "cpuManagerPolicyOptions": {},
    "topologyManagerPolicy": "none",
    "topologyManagerScope": "container",
    "topologyManagerPolicyOptions": {},
    "memoryManagerPolicy": "None",
}


@dataclass
class KubeletConfig:
    cpu_manager_policy: str = "none"
    cpu_manager_policy_options: dict[str, str] = field(default_factory=dict)
    reserved_system_cpus: str | None = None
    kube_reserved: dict[str, str] = field(default_factory=dict)
    system_reserved: dict[str, str] = field(default_factory=dict)
    # None means "not set in the file": the kubelet default (memory.available 100Mi, ...) applies.
    eviction_hard: dict[str, str] | None = None
    topology_manager_policy: str = "none"
    topology_manager_scope: str = "container"
    topology_manager_policy_options: dict[str, str] = field(default_factory=dict)
    memory_manager_policy: str = "None"
    reserved_memory: list[ReservedMemory] = field(default_factory=list)
    feature_gates: dict[str, bool] = field(default_factory=dict)
    fail_cgroup_v1: bool | None = None
    extra: dict = field(default_factory=dict)
    # camelCase keys the source set explicitly (even to the default value), so rendering writes
    # them back; fields not listed are written only when they differ from the default.
    explicit: set[str] = field(default_factory=set, compare=False, repr=False)

    # Convenience predicates used by the oracle -------------------------------------------
    def cpu_option(self, name: str) -> bool:
        """A CPU Manager policy option's boolean value (unset = false)."""
        return _truthy(self.cpu_manager_policy_options.get(name))

    def tm_option(self, name: str) -> bool:
        return _truthy(self.topology_manager_policy_options.get(name))

    def policy_tuple(self) -> dict[str, str]:
        """The four names reports carry for this configuration."""
        return {
            "cpu_manager": self.cpu_manager_policy,
            "topology_manager": self.topology_manager_policy,
            "topology_scope": self.topology_manager_scope,
            "memory_manager": self.memory_manager_policy,
        }


def _truthy(value: object) -> bool:
    # strconv.ParseBool accepts 1,t,T,TRUE,true,True (validation rejects anything else earlier).
    return str(value) in {"1", "t", "T", "TRUE", "true", "True"} if value is not None else False
