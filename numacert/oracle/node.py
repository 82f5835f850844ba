"""A model node: the kubelet's admission path replayed over a sequence of pods (design.md §oracle).

NodeModel wires the Topology Manager to its hint providers in the kubelet's order (devices,
CPU, memory; numacert models no device plugins) and keeps the set of active pods. `add` admits
or rejects a pod exactly as §6 of kubelet-algorithms.md describes, then checks it against what
is left of the node's allocatable (the kubelet's predicate admit handler, which runs after the
resource managers' handler: see admission.py); `delete` releases it.
Pure: no I/O, deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.validate import reserved_memory_bytes
from numacert.oracle.admission import (
    NotModelledError,
    check_fit,
    derive_allocatable,
    pod_requests,
    sum_requests,
)
from numacert.oracle.bitmask import bits_of
from numacert.oracle.cpu_manager import CPUManager
from numacert.oracle.hints import AdmissionError, Hint, KubeletStartError
from numacert.oracle.memory_manager import MemoryManager
from numacert.oracle.pod import Pod
from numacert.oracle.topology_manager import TopologyManager
from numacert.topology.model import Topology


@dataclass
class ContainerPlacement:
    cpus: str
    exclusive: bool
    numa_affinity: list[int] | None
    mems: str | None

    def to_dict(self) -> dict:
        return {
            "cpus": self.cpus,
            "exclusive": self.exclusive,
            "numa_affinity": self.numa_affinity,
            "mems": self.mems,
        }


@dataclass
class StepResult:
    action: str
    pod: str
    admitted: bool | None = None
    reason: str | None = None
    message: str | None = None
    containers: dict[str, ContainerPlacement] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "action": self.action,
            "pod": self.pod,
            "admitted": self.admitted,
            "reason": self.reason,
            "message": self.message,
            "containers": {name: c.to_dict() for name, c in self.containers.items()},
        }


class UnknownPodError(KeyError):
    """delete names a pod that is not on the node."""


class DuplicatePodError(ValueError):
    """add names a pod (by name or uid) that is already on the node. args: (message,)"""


class NodeModel:
    """The resource managers of one kubelet, fed pods one at a time.

    `allocatable` (resource name -> integer: "cpu" in milli-CPU, "memory", "hugepages-<size>"
    and "ephemeral-storage" in bytes, "pods" a count, extended resources in units) replaces,
    resource by resource, the allocatable the kubelet derives from the topology and the
    configuration (derive_allocatable); None keeps the derived one. `k8s_minor` picks the
    kubelet release where behaviour differs (None: the newest numacert models).
    """

    def __init__(
        self,
        topology: Topology,
        config: KubeletConfig,
        cpu_state: dict | None = None,
        memory_state: dict | None = None,
        *,
        allocatable: Mapping[str, int] | None = None,
        k8s_minor: int | None = None,
    ) -> None:
        self.topology = topology
        self.config = config
        self.k8s_minor = k8s_minor
        # A start error is tagged with the part of the input that caused it, so the CLI can
        # name it: the state file when one was given, else the kubelet configuration.
        try:
            self.cpu = CPUManager(topology, config, state=cpu_state, k8s_minor=k8s_minor)
        except KubeletStartError as exc:
            exc.field = "state.cpu" if cpu_state is not None else "kubelet"
            raise
        try:
            self.memory = MemoryManager(
                topology,
                config.memory_manager_policy,
                reserved_memory_bytes(config),
                state=memory_state,
            )
        except KubeletStartError as exc:
            exc.field = "state.memory" if memory_state is not None else "kubelet"
            raise
        distances = {
            n.id: n.distances for n in topology.numa_nodes if n.distances is not None
        } or None
        self.tm = TopologyManager(
            config.topology_manager_policy,
            config.topology_manager_scope,
            topology.numa_ids,
            distances,
            config.tm_option("prefer-closest-numa-nodes"),
        )
        # Provider order is the kubelet's: device manager (none modelled), CPU, memory.
        self.providers = [self.cpu, self.memory]
        # name -> uid of pods added by steps; pods from a starting state are known by uid.
        self.pods: dict[str, Pod] = {}
        self._state_uids: set[str] = set(self.cpu.pod_uids()) | set(self.memory.pod_uids())
        self.allocatable: dict[str, int] = derive_allocatable(topology, config)
        self.allocatable.update(_checked_allocatable(allocatable))
        # What each active pod requests, for the fit check. Pods from a starting state are
        # known only by what their state entries hold: exclusive CPUs (1000m each) and memory
        # blocks; their shared-pool requests are unknown, so this is a lower bound for them.
        self._requests: dict[str, dict[str, int]] = {
            uid: self._state_requests(uid) for uid in self._state_uids
        }

    def add(self, pod: Pod) -> StepResult:
        # The managers key everything by uid: a second pod with a uid already on the node
        # would silently share the first one's CPUs and memory.
        if pod.name in self.pods:
            raise DuplicatePodError(f"pod {pod.name!r} is already on the node")
        if pod.uid in self._state_uids or any(p.uid == pod.uid for p in self.pods.values()):
            raise DuplicatePodError(f"uid {pod.uid!r} of pod {pod.name!r} is already on the node")
        result = StepResult("add", pod.name)
        try:
            hints = self.tm.admit(pod, self.providers)
        except AdmissionError as exc:
            # A rejected pod is inactive: the kubelet garbage-collects its partial
            # allocations before the next admission.
            self._release(pod.uid)
            result.admitted, result.reason, result.message = False, exc.reason, exc.message
            return result
        # The predicate admit handler comes after the resource managers' handler, so it sees
        # only pods they admitted; a pod it rejects is inactive too.
        request = pod_requests(pod, k8s_minor=self.k8s_minor)
        misfit = check_fit(request, self.used(), len(self._requests), self.allocatable)
        if misfit is not None:
            self._release(pod.uid)
            if pod.critical:
                raise NotModelledError(
                    f"pod {pod.name!r} is critical and does not fit ({misfit.message}): the "
                    "kubelet would evict other pods to admit it, which numacert does not model"
                )
            result.admitted, result.reason, result.message = False, misfit.reason, misfit.message
            return result
        self.pods[pod.name] = pod
        self._requests[pod.uid] = request
        result.admitted = True
        for container in pod.all_containers():
            result.containers[container.name] = self._placement(pod, container.name, hints)
        # Containers start in order; the Memory Manager frees earlier regular init
        # containers' blocks when a later container starts.
        for container in pod.all_containers():
            self.memory.container_started(pod, container)
        return result

    def _placement(self, pod: Pod, name: str, hints: dict[str, Hint]) -> ContainerPlacement:
        exclusive = self.cpu.exclusive_cpus(pod.uid, name)
        cpus = self.cpu.container_cpuset(pod.uid, name)
        hint = hints.get(name)
        affinity = bits_of(hint.mask) if hint is not None and hint.mask is not None else None
        return ContainerPlacement(
            cpus=str(cpus),
            exclusive=exclusive is not None,
            numa_affinity=affinity,
            mems=self.memory.container_mems(pod.uid, name),
        )

    def delete(self, name: str) -> StepResult:
        pod = self.pods.pop(name, None)
        if pod is not None:
            uid = pod.uid
        elif name in self._state_uids:
            uid = name
            self._state_uids.discard(name)
        else:
            raise UnknownPodError(name)
        self._release(uid)
        self._requests.pop(uid, None)
        return StepResult("delete", name)

    def _release(self, uid: str) -> None:
        for provider in self.providers:
            provider.remove_pod(uid)

    def _state_requests(self, uid: str) -> dict[str, int]:
        out = self.memory.pod_memory(uid)
        cpus = len(self.cpu.pod_cpus(uid))
        if cpus:
            out["cpu"] = cpus * 1000
        return out

    def used(self) -> dict[str, int]:
        """The summed requests of the active pods (the fit check's "used")."""
        return sum_requests(self._requests.values())

    def state(self) -> dict:
        return {"cpu": self.cpu.to_state(), "memory": self.memory.to_state()}


def _checked_allocatable(allocatable: Mapping[str, int] | None) -> dict[str, int]:
    if allocatable is None:
        return {}
    if not isinstance(allocatable, Mapping):
        raise TypeError("allocatable must map resource names to integers")
    out: dict[str, int] = {}
    for name, value in allocatable.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"allocatable {name!r} must be a non-negative integer, not {value!r}")
        out[str(name)] = value
    return out
