"""The oracle's view of a pod: containers with their requests and limits as integers.

Built from a Kubernetes Pod manifest (dict, as in YAML/JSON). Only what the resource managers
and the kubelet's resource-fit admission read is kept: QoS inputs, CPU and memory/hugepages
amounts, init containers and sidecars, pod-level resources, overhead and priority.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from numacert.errors import InputError
from numacert.quantity import QuantityError, to_bytes, to_millis


@dataclass(frozen=True)
class Container:
    name: str
    # milli-CPU; None when not given
    cpu_request: int | None
    cpu_limit: int | None
    # bytes per resource name ("memory", "hugepages-2Mi", ...) for requests and limits
    requests: dict[str, int] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    init: bool = False
    # restartPolicy: Always on an init container makes it a sidecar (restartable init).
    sidecar: bool = False

    def memory_requests(self) -> dict[str, int]:
        """memory and hugepages-* requests (the Memory Manager's view), bytes."""
        return {
            k: v for k, v in self.requests.items() if k == "memory" or k.startswith("hugepages-")
        }


# kubelet types.SystemCriticalPriority (2 * 1e9): a pod at or above it is critical, and so are
# static and mirror pods; the API's Priority admission gives these classes such priorities.
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
CRITICAL_PRIORITY_CLASSES = {
    "system-node-critical": 2_000_001_000,
    "system-cluster-critical": 2_000_000_000,
}


@dataclass(frozen=True)
class Pod:
    name: str
    uid: str
    init_containers: tuple[Container, ...]
    containers: tuple[Container, ...]
    namespace: str = "default"
    has_pod_level_resources: bool = False
    # spec.resources (pod-level resources) and spec.overhead, resource -> amount: "cpu" in
    # milli-CPU, everything else in bytes (or units for counted resources).
    pod_requests: Mapping[str, int] = field(default_factory=dict)
    pod_limits: Mapping[str, int] = field(default_factory=dict)
    overhead: Mapping[str, int] = field(default_factory=dict)
    # spec.priority as the API sets it (from priorityClassName); None when unknown.
    priority: int | None = None
    # static or mirror pod (kubernetes.io/config.source other than "api", or config.mirror)
    static: bool = False

    @property
    def critical(self) -> bool:
        """kubelet types.IsCriticalPod: static or mirror, or priority >= system critical."""
        return self.static or (
            self.priority is not None and self.priority >= SYSTEM_CRITICAL_PRIORITY
        )

    def all_containers(self) -> tuple[Container, ...]:
        """initContainers then containers, spec order: the order the kubelet admits them."""
        return self.init_containers + self.containers

    @cached_property
    def qos_class(self) -> str:
        # Asked several times per admission by every manager: computed once per pod.
        return qos_class(self)


def qos_class(pod: Pod) -> str:
    """Guaranteed, Burstable or BestEffort, from cpu and memory only (as the kubelet does)."""
    any_set = False
    guaranteed = True
    for c in pod.all_containers():
        cpu_req = c.cpu_request if c.cpu_request is not None else c.cpu_limit
        mem_lim = c.limits.get("memory")
        mem_req = c.requests.get("memory", mem_lim)
        if any(v is not None for v in (c.cpu_request, c.cpu_limit)) or (
            "memory" in c.requests or "memory" in c.limits
        ):
            any_set = True
        if c.cpu_limit is None or mem_lim is None:
            guaranteed = False
            continue
        if cpu_req != c.cpu_limit or mem_req != mem_lim:
            guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _container_from_manifest(raw: dict, where: str, init: bool) -> Container:
    if not isinstance(raw, dict) or not raw.get("name"):
        raise InputError("container needs a name", where)
    res = raw.get("resources") or {}
    if not isinstance(res, dict):
        raise InputError("resources must be a mapping", f"{where}.resources")
    limits_raw = res.get("limits") or {}
    requests_raw = dict(res.get("requests") or {})
    # The API server defaults requests to limits when only limits are given.
    for k, v in limits_raw.items():
        requests_raw.setdefault(k, v)
    try:
        cpu_req = to_millis(requests_raw["cpu"]) if "cpu" in requests_raw else None
        cpu_lim = to_millis(limits_raw["cpu"]) if "cpu" in limits_raw else None
        reqs = {k: to_bytes(v) for k, v in requests_raw.items() if k != "cpu"}
        lims = {k: to_bytes(v) for k, v in limits_raw.items() if k != "cpu"}
    except QuantityError as exc:
        raise InputError(str(exc), f"{where}.resources") from None
    return Container(
        name=str(raw["name"]),
        cpu_request=cpu_req,
        cpu_limit=cpu_lim,
        requests=reqs,
        limits=lims,
        init=init,
        sidecar=init and raw.get("restartPolicy") == "Always",
    )


def _resource_list(raw: object, where: str) -> dict[str, int]:
    """A ResourceList as integers: "cpu" in milli-CPU, the rest in bytes / units."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError("must be a mapping of resource name to quantity", where)
    try:
        return {str(k): to_millis(v) if k == "cpu" else to_bytes(v) for k, v in raw.items()}
    except QuantityError as exc:
        raise InputError(str(exc), where) from None


def _priority(spec: dict, where: str) -> int | None:
    raw = spec.get("priority")
    if raw is None:
        return CRITICAL_PRIORITY_CLASSES.get(str(spec.get("priorityClassName") or ""))
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InputError(f"must be an integer, not {raw!r}", f"{where}.spec.priority")
    return raw


def pod_from_manifest(manifest: dict, where: str = "pod") -> Pod:
    """A Pod from a manifest dict. uid defaults to the name (the scenario contract)."""
    if not isinstance(manifest, dict):
        raise InputError("a pod must be a mapping", where)
    if manifest.get("kind", "Pod") != "Pod":
        raise InputError(f"kind must be Pod, not {manifest.get('kind')!r}", f"{where}.kind")
    meta = manifest.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise InputError("metadata.name is required", f"{where}.metadata.name")
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        raise InputError("spec is required", f"{where}.spec")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise InputError("spec.containers must be a non-empty list", f"{where}.spec.containers")
    inits = spec.get("initContainers") or []
    if not isinstance(inits, list):
        raise InputError("spec.initContainers must be a list", f"{where}.spec.initContainers")
    init_cs = tuple(
        _container_from_manifest(c, f"{where}.spec.initContainers[{i}]", True)
        for i, c in enumerate(inits)
    )
    app_cs = tuple(
        _container_from_manifest(c, f"{where}.spec.containers[{i}]", False)
        for i, c in enumerate(containers)
    )
    names = [c.name for c in init_cs + app_cs]
    if len(set(names)) != len(names):
        raise InputError("container names must be unique", f"{where}.spec")
    pod_res = spec.get("resources") or {}
    if not isinstance(pod_res, dict):
        raise InputError("resources must be a mapping", f"{where}.spec.resources")
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise InputError("must be a mapping", f"{where}.metadata.annotations")
    source = annotations.get("kubernetes.io/config.source", "api")
    return Pod(
        name=str(name),
        uid=str(meta.get("uid") or name),
        namespace=str(meta.get("namespace") or "default"),
        init_containers=init_cs,
        containers=app_cs,
        has_pod_level_resources=bool(spec.get("resources")),
        pod_requests=_resource_list(pod_res.get("requests"), f"{where}.spec.resources.requests"),
        pod_limits=_resource_list(pod_res.get("limits"), f"{where}.spec.resources.limits"),
        overhead=_resource_list(spec.get("overhead"), f"{where}.spec.overhead"),
        priority=_priority(spec, where),
        static=source != "api" or "kubernetes.io/config.mirror" in annotations,
    )
