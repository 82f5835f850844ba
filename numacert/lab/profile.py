"""Lab profiles (clusters/lab/*.yaml): which topology the guest gets and which kubelet policy
it starts with.

A lab profile names a topology in the scenario file's `topology:` form (so the oracle and the
lab share the very same Topology), the guest RAM per NUMA node where it differs from the
topology's nominal memory, and a partial KubeletConfiguration: the policy under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import yaml

from numacert.errors import InputError
from numacert.quantity import QuantityError, to_bytes
from numacert.topology.model import NUMANode, Topology
from numacert.topology.spec import topology_from_spec

KEYS = {"description", "topology", "memory_per_numa", "kubelet", "cpu_model"}
DEFAULT_PROFILE = "default"
GIGANTIC = 1 << 30


@dataclass(frozen=True)
class LabProfile:
    name: str
    description: str
    topology: Topology
    # Guest RAM per NUMA node in bytes (defaults to the topology's memory per node).
    memory_per_numa: dict[int, int]
    kubelet: dict
    cpu_model: str | None = None

    def hugepages_2m(self) -> dict[int, int]:
        return {n.id: n.hugepages.get(2 << 20, 0) for n in self.topology.numa_nodes}

    def hugepages_1g(self) -> dict[int, int]:
        return {n.id: n.hugepages.get(GIGANTIC, 0) for n in self.topology.numa_nodes}


def _lab_dir():
    return resources.files("numacert.clusters").joinpath("lab")


def list_lab_profiles() -> list[str]:
    return sorted(p.name[:-5] for p in _lab_dir().iterdir() if p.name.endswith(".yaml"))


def load_lab_profile(name: str) -> LabProfile:
    where = f"lab profile {name!r}"
    path = _lab_dir().joinpath(f"{name}.yaml")
    if not path.is_file():
        known = ", ".join(list_lab_profiles())
        raise InputError(f"unknown lab profile {name!r} (known: {known})", "--profile")
    where = f"clusters/lab/{name}.yaml"
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise InputError("a lab profile must be a mapping", where)
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise InputError(f"unknown key {unknown[0]!r}", f"{where}: {unknown[0]}")
    topology = _with_gigantic_pages(topology_from_spec(data.get("topology"), f"{where}: topology"))
    memory = {n.id: n.memory for n in topology.numa_nodes}
    if data.get("memory_per_numa") is not None:
        try:
            per_node = to_bytes(data["memory_per_numa"])
        except QuantityError as exc:
            raise InputError(str(exc), f"{where}: memory_per_numa") from None
        memory = {n: per_node for n in memory}
    kubelet = data.get("kubelet") or {}
    if not isinstance(kubelet, dict):
        raise InputError(
            "kubelet must be a mapping of KubeletConfiguration fields", f"{where}: kubelet"
        )
    return LabProfile(
        name=name,
        description=str(data.get("description", "")).strip(),
        topology=topology,
        memory_per_numa=memory,
        kubelet=kubelet,
        cpu_model=data.get("cpu_model"),
    )


def _with_gigantic_pages(topology: Topology) -> Topology:
    """The topology as the guest kernel reports it: the lab's Intel CPU model has pdpe1gb, so
    every node lists a 1Gi hugepage size (with 0 pages unless the profile asks for some), and
    the kubelet's Memory Manager keeps a hugepages-1Gi entry for it."""
    nodes = [
        NUMANode(
            n.id, n.memory, {**n.hugepages, GIGANTIC: n.hugepages.get(GIGANTIC, 0)}, n.distances
        )
        for n in topology.numa_nodes
    ]
    return Topology(list(topology.cpus), nodes)
