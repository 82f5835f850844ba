"""The kubelet's node-level resource admission: does the pod fit what is left of the node's
allocatable? (OutOfcpu, OutOfmemory, OutOfhugepages-2Mi, OutOfpods, ...)

Read from k8s.io/kubernetes v1.37.2 (facts only, no code copied):

* pkg/kubelet/kubelet.go:1097-1185: the admit handlers run in the order eviction, sysctl,
  resource allocation (the Topology Manager with the CPU/Memory/Device Managers), predicate
  (this module), AppArmor, pod features, ..., node shutdown; pkg/kubelet/allocation/
  allocation_manager.go:651-666: the first handler that rejects decides the reason, and
  OtherPods are the admitted active pods but the pod itself. So a pod both would reject gets the
  resource managers' reason (the same order in v1.34.4, v1.35.4, v1.36.3).
* pkg/kubelet/lifecycle/predicate.go:119-247 (Admit): only the first failure is reported;
  reason "OutOfcpu", "OutOfmemory", "OutOfephemeral-storage", "OutOfpods", else "OutOf" +
  resource name (:81-88, :218-231); message InsufficientResourceError.Error() (:396-399):
  "Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d".
* pkg/scheduler/eventhandlers.go:857 (AdmissionCheck) -> pkg/scheduler/framework/plugins/
  noderesources/fit.go:706-799 (fitsRequest): pods first ("requested: 1", used = other pods,
  capacity = allocatable pods); a pod requesting no cpu, memory, ephemeral storage or scalar
  resource stops there; then cpu, memory, ephemeral-storage, then scalar resources (hugepages,
  extended) in Go map order, each only when the pod requests it (> 0) and request > allocatable
  - used. cpu in milli-CPU, the rest in Value() units (bytes).
* k8s.io/component-helpers v0.37.2 resource/helpers.go:152-289 (PodRequests): per resource,
  max(sum of app containers + sidecars, max over init containers of (sidecars before it + it));
  pod-level requests (spec.resources, PodLevelResources gate, on from 1.34) replace cpu, memory
  and hugepages-*; spec.overhead is added. "used" is the same sum over OtherPods
  (framework/types.go:463 NodeInfo.update, CalculateResource :1376: requests, not the
  scheduler's non-zero defaults).
* pkg/kubelet/lifecycle/predicate.go:346-385: extended resources the node does not advertise are
  dropped from the pod's requests before the fit.
* pkg/kubelet/nodestatus/setters.go:298-341: allocatable = capacity - (kubeReserved +
  systemReserved + hard eviction), floored at 0; memory also loses every hugepage size's
  capacity. Capacity (pkg/kubelet/cadvisor): cpu = logical CPUs x 1000m, memory = MemTotal,
  hugepages-<size> = pages x size, pods = maxPods (min(cores x podsPerCore, maxPods) when
  podsPerCore > 0).
* pkg/kubelet/preemption/preemption.go:65-99: a critical pod that fails only on resources is
  admitted after the kubelet evicts other pods; numacert does not model that preemption
  (NotModelledError).

Not modelled: the checks of the predicate handler that are not about resources (OS label,
node affinity, node name, host ports, taints) and ephemeral storage unless its allocatable is
given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.validate import node_allocatable_reservation, reserved_cpu_millis
from numacert.oracle.hints import AdmissionError
from numacert.oracle.pod import Container, Pod
from numacert.quantity import QuantityError, hugepage_resource_name, hugepage_size_from_resource
from numacert.topology.model import Topology

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
EPHEMERAL_STORAGE = "ephemeral-storage"
HUGEPAGES_PREFIX = "hugepages-"

# predicate.go:396-399, InsufficientResourceError.Error()
INSUFFICIENT_RESOURCE = (
    "Node didn't have enough resource: {}, requested: {}, used: {}, capacity: {}"
)
# predicate.go:85-88; any other resource: "OutOf" + its name
_REASONS = {
    CPU: "OutOfcpu",
    MEMORY: "OutOfmemory",
    EPHEMERAL_STORAGE: "OutOfephemeral-storage",
    PODS: "OutOfpods",
}
DEFAULT_MAX_PODS = 110  # KubeletConfiguration maxPods default
# The first minor whose PodRequests reads pod-level resources (PodLevelResources beta, on by
# default: v1.34.4 pkg/features/kube_features.go).
POD_LEVEL_RESOURCES_FROM = 34


class NotModelledError(ValueError):
    """The kubelet would do something numacert does not model (critical-pod preemption)."""


def reason_for(resource: str) -> str:
    return _REASONS.get(resource, "OutOf" + resource)


def _add(into: dict[str, int], amounts: Mapping[str, int]) -> None:
    for k, v in amounts.items():
        into[k] = into.get(k, 0) + v


def _container_requests(c: Container) -> dict[str, int]:
    out = dict(c.requests)
    if c.cpu_request is not None:
        out[CPU] = c.cpu_request
    return out


def _is_pod_level_resource(resource: str) -> bool:
    return resource in (CPU, MEMORY) or resource.startswith(HUGEPAGES_PREFIX)


def pod_requests(pod: Pod, *, k8s_minor: int | None = None) -> dict[str, int]:
    """resource.PodRequests as the kubelet's fit check computes it ("cpu" in milli-CPU, the
    rest in bytes or units), for the kubelet 1.<k8s_minor> (None: the newest modelled)."""
    result: dict[str, int] = {}
    for c in pod.containers:
        _add(result, _container_requests(c))
    restartable: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for c in pod.init_containers:
        res = _container_requests(c)
        if c.sidecar:
            _add(result, res)
            _add(restartable, res)
            use = dict(restartable)
        else:
            use = dict(res)
            _add(use, restartable)
        for k, v in use.items():
            init_max[k] = max(init_max.get(k, 0), v)
    for k, v in init_max.items():
        result[k] = max(result.get(k, 0), v)
    if k8s_minor is None or k8s_minor >= POD_LEVEL_RESOURCES_FROM:
        for k, v in _pod_level_requests(pod, result).items():
            result[k] = v
    _add(result, pod.overhead)
    return result


def _pod_level_requests(pod: Pod, containers: Mapping[str, int]) -> dict[str, int]:
    """spec.resources.requests after the API's defaulting (pkg/apis/core/v1/defaults.go
    defaultPodRequests): a missing cpu/memory request takes the containers' aggregate when
    they request it, else any missing supported request takes the pod-level limit."""
    reqs = dict(pod.pod_requests)
    if pod.pod_limits:
        for k in (CPU, MEMORY):
            if k not in reqs and k in containers:
                reqs[k] = containers[k]
        for k, v in pod.pod_limits.items():
            if k not in reqs and _is_pod_level_resource(k):
                reqs[k] = v
    if not any(_is_pod_level_resource(k) for k in reqs):
        return {}
    return {k: v for k, v in reqs.items() if _is_pod_level_resource(k)}


def derive_allocatable(topology: Topology, config: KubeletConfig) -> dict[str, int]:
    """The node's allocatable as the kubelet reports it, from the topology and the config:
    cpu = logical CPUs x 1000m - (kubeReserved + systemReserved cpu, or |reservedSystemCPUs|);
    memory = sum of NUMA memory - (kubeReserved + systemReserved + hard eviction) - hugepages;
    hugepages-<size> = pages x size - (kubeReserved + systemReserved); pods = maxPods."""
    reservation = node_allocatable_reservation(config, topology)
    out: dict[str, int] = {CPU: max(0, topology.num_cpus * 1000 - reserved_cpu_millis(config))}
    hugepages_total = 0
    for size in topology.hugepage_sizes:
        name = hugepage_resource_name(size)
        capacity = sum(n.hugepages.get(size, 0) for n in topology.numa_nodes) * size
        hugepages_total += capacity
        out[name] = max(0, capacity - reservation.get(name, 0))
    memory = sum(n.memory for n in topology.numa_nodes)
    out[MEMORY] = max(0, max(0, memory - reservation.get(MEMORY, 0)) - hugepages_total)
    out[PODS] = _max_pods(config, topology)
    return out


def _max_pods(config: KubeletConfig, topology: Topology) -> int:
    max_pods = config.extra.get("maxPods", DEFAULT_MAX_PODS)
    per_core = config.extra.get("podsPerCore", 0)
    try:
        max_pods, per_core = int(max_pods), int(per_core)
    except (TypeError, ValueError):
        return DEFAULT_MAX_PODS
    if per_core > 0:
        return min(topology.num_cpus * per_core, max_pods)
    return max_pods


def _fit_order(resource: str) -> tuple[int, int, str]:
    # fitsRequest: cpu, memory, ephemeral-storage, then scalar resources. Go ranges over the
    # scalar map in random order; numacert reports hugepages by page size, then the rest by name.
    fixed = {CPU: 0, MEMORY: 1, EPHEMERAL_STORAGE: 2}
    if resource in fixed:
        return (fixed[resource], 0, resource)
    if resource.startswith(HUGEPAGES_PREFIX):
        try:
            return (3, hugepage_size_from_resource(resource), resource)
        except QuantityError:
            pass
    return (4, 0, resource)


def check_fit(
    request: Mapping[str, int],
    used: Mapping[str, int],
    other_pods: int,
    allocatable: Mapping[str, int],
) -> AdmissionError | None:
    """The first resource the pod does not fit, as the kubelet reports it; None when it fits.

    `request` is the pod's (pod_requests), `used` the sum over the other admitted pods,
    `other_pods` their number. Resources are checked as fitsRequest does: pods (when
    allocatable names a pod count), then each requested resource; ephemeral storage and extended
    resources only when allocatable names them (the kubelet drops extended resources the node
    does not advertise), hugepages of a size the node lacks against 0.
    """
    if PODS in allocatable and other_pods + 1 > allocatable[PODS]:
        return _insufficient(PODS, 1, other_pods, allocatable[PODS])
    for resource in sorted(request, key=_fit_order):
        amount = request[resource]
        if amount <= 0 or resource == PODS:
            continue
        if resource not in allocatable and not resource.startswith(HUGEPAGES_PREFIX):
            continue
        capacity = allocatable.get(resource, 0)
        in_use = used.get(resource, 0)
        if amount > capacity - in_use:
            return _insufficient(resource, amount, in_use, capacity)
    return None


def _insufficient(resource: str, requested: int, used: int, capacity: int) -> AdmissionError:
    return AdmissionError(
        reason_for(resource), INSUFFICIENT_RESOURCE.format(resource, requested, used, capacity)
    )


def sum_requests(requests: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for r in requests:
        _add(total, r)
    return total
