"""Builders shared by the certify tests (no tests here).

* `node_case(...)`: a topology, a validated lab kubelet configuration, the allocatable a node
  with that topology reports (computed by hand from the kubelet's formula), the plan and its
  prediction.
* `faithful_run(case)`: the NodeRun a correct kubelet produces for that plan, built from the
  prediction alone: every container's probe log, the re-read after the reconcile period, the
  kubelet restart, the state files, the admission metrics, the rejection events.

Tests corrupt copies of that run to prove each check can fail.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass

from numacert.certify.compare import REJECTED_PREFIX, Prediction, expected_mems, predict_plan
from numacert.certify.execute import NodeRun, PodObservation
from numacert.certify.plan import Plan, build_plan
from numacert.cpuset import CPUSet
from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.render import to_dict
from numacert.lab.kubelet_config import lab_kubelet_config
from numacert.lab.profile import list_lab_profiles, load_lab_profile
from numacert.probes.metrics import TM_ERRORS, TM_REQUESTS
from numacert.probes.report import TOUCH_BYTES, ProbeLog, View
from numacert.quantity import to_bytes, to_millis
from numacert.topology.model import Topology
from numacert.topology.profiles import load_profile

MiB = 1 << 20
PAGE_2M = 2 * MiB
LAB_PROFILES = ("default", "single-numa", "four-numa", "nine-numa")
TOPOLOGY_PROFILES = ("two-socket-smt", "xeon-gold-6230", "four-numa-unequal")
RESOURCE_MANAGER_REASONS = (
    "TopologyAffinityError",
    "SMTAlignmentError",
    "UnexpectedAdmissionError",
)

# Policy variants, as --kubelet overrides on top of the profile's kubelet section.
VARIANTS: dict[str, dict] = {
    "snn-container": {
        "topologyManagerPolicy": "single-numa-node",
        "topologyManagerScope": "container",
        "memoryManagerPolicy": "Static",
    },
    "snn-pod": {
        "topologyManagerPolicy": "single-numa-node",
        "topologyManagerScope": "pod",
        "memoryManagerPolicy": "Static",
    },
    "restricted": {"topologyManagerPolicy": "restricted", "memoryManagerPolicy": "Static"},
    "restricted-mm-none": {"topologyManagerPolicy": "restricted", "memoryManagerPolicy": "None"},
    "best-effort": {"topologyManagerPolicy": "best-effort", "memoryManagerPolicy": "Static"},
    "tm-none": {"topologyManagerPolicy": "none", "memoryManagerPolicy": "Static"},
    "mm-none": {"topologyManagerPolicy": "single-numa-node", "memoryManagerPolicy": "None"},
    "full-pcpus": {
        "topologyManagerPolicy": "single-numa-node",
        "memoryManagerPolicy": "Static",
        "cpuManagerPolicyOptions": {"full-pcpus-only": "true"},
    },
    "full-pcpus-off": {
        "topologyManagerPolicy": "single-numa-node",
        "memoryManagerPolicy": "Static",
        "cpuManagerPolicyOptions": {"full-pcpus-only": "false"},
    },
    "strict-reserved": {
        "topologyManagerPolicy": "single-numa-node",
        "memoryManagerPolicy": "Static",
        "cpuManagerPolicyOptions": {"strict-cpu-reservation": "true"},
    },
    "cpu-none": {
        "cpuManagerPolicy": "none",
        "topologyManagerPolicy": "single-numa-node",
        "memoryManagerPolicy": "Static",
    },
}


@dataclass
class Case:
    name: str
    topology: Topology
    config: KubeletConfig
    allocatable: dict[str, int]
    plan: Plan
    prediction: Prediction

    @property
    def configz(self) -> dict:
        return configz_of(self.config)


def profile_topology(name: str) -> tuple[Topology, dict]:
    """A lab profile's topology and kubelet section, or a topology profile's with the default
    lab profile's kubelet section."""
    if name in list_lab_profiles():
        profile = load_lab_profile(name)
        return profile.topology, copy.deepcopy(profile.kubelet)
    return load_profile(name), copy.deepcopy(load_lab_profile("default").kubelet)


def make_config(topology: Topology, kubelet: dict, override: dict | None) -> KubeletConfig:
    return lab_kubelet_config(topology, kubelet, copy.deepcopy(override or {}), "test")


def realistic_allocatable(topology: Topology, config: KubeletConfig) -> dict[str, int]:
    """What the Node object reports, by the kubelet's formula (nodestatus setters):
    cpu = CPUs minus reservedSystemCPUs (minus kube + system reserved cpu when it is unset);
    memory = the NUMA nodes' memory minus kube/system reserved, the hard-eviction threshold
    and every hugepage; hugepages-<size> = pages x size; floored at 0 as the kubelet does."""
    if config.reserved_system_cpus:
        reserved_millis = len(CPUSet.parse(config.reserved_system_cpus)) * 1000
    else:  # kubeReserved + systemReserved cpu, as quantities
        reserved_millis = sum(
            to_millis(m["cpu"])
            for m in (config.system_reserved, config.kube_reserved)
            if "cpu" in m
        )
    out = {"cpu": max(0, topology.num_cpus * 1000 - reserved_millis), "pods": 110}
    withheld = sum(
        to_bytes(m["memory"])
        for m in (config.system_reserved, config.kube_reserved)
        if "memory" in m
    )
    eviction = (config.eviction_hard or {"memory.available": "100Mi"}).get("memory.available")
    withheld += to_bytes(eviction) if eviction else 0
    hugepages = 0
    for size in topology.hugepage_sizes:
        total = sum(n.hugepages.get(size, 0) for n in topology.numa_nodes) * size
        hugepages += total
        name = f"hugepages-{size // MiB}Mi" if size < (1 << 30) else f"hugepages-{size >> 30}Gi"
        out[name] = total
    out["memory"] = max(0, sum(n.memory for n in topology.numa_nodes) - withheld - hugepages)
    return out


def node_case(
    topology: Topology,
    kubelet: dict,
    override: dict | None = None,
    *,
    name: str = "case",
    k8s_minor: int = 37,
    allocatable: dict[str, int] | None = None,
) -> Case:
    config = make_config(topology, kubelet, override)
    alloc = allocatable if allocatable is not None else realistic_allocatable(topology, config)
    plan = build_plan(topology, config, alloc, k8s_minor)
    return Case(name, topology, config, alloc, plan, predict_plan(topology, config, plan))


def profile_case(profile: str, variant: str | None = None, extra: dict | None = None) -> Case:
    topology, kubelet = profile_topology(profile)
    override = copy.deepcopy(VARIANTS[variant]) if variant else {}
    override.update(copy.deepcopy(extra or {}))
    return node_case(topology, kubelet, override, name=f"{profile}/{variant}")


def configz_of(config: KubeletConfig) -> dict:
    """The kubeletconfig object of /configz: every policy field present, defaults included."""
    out = to_dict(config)
    out.pop("apiVersion", None)
    out.pop("kind", None)
    out.setdefault("cpuManagerPolicy", config.cpu_manager_policy)
    out.setdefault("topologyManagerPolicy", config.topology_manager_policy)
    out.setdefault("topologyManagerScope", config.topology_manager_scope)
    out.setdefault("memoryManagerPolicy", config.memory_manager_policy)
    return out


def capacity_and_allocatable(case: Case) -> tuple[dict[str, str], dict[str, str]]:
    """The Node object's status.capacity and status.allocatable, as the API prints them."""
    topology = case.topology
    capacity = {
        "cpu": str(topology.num_cpus),
        "memory": f"{sum(n.memory for n in topology.numa_nodes) // 1024}Ki",
        "pods": "110",
    }
    allocatable = {
        "cpu": f"{case.allocatable['cpu']}m",
        "memory": f"{case.allocatable['memory'] // 1024}Ki",
        "pods": "110",
    }
    for key, value in case.allocatable.items():
        if key.startswith("hugepages-"):
            capacity[key] = str(value)
            allocatable[key] = str(value)
    return capacity, allocatable


# ---- the faithful run ------------------------------------------------------------------------


def uid_of(name: str) -> str:
    """A pod uid unlike its name, so a check that confuses the two fails."""
    return f"{zlib.crc32(name.encode()):08x}-0000-4000-8000-{name}"


def pinned_node(topology: Topology, placement) -> int:
    """The NUMA node a container's memory (and hugepages) come from."""
    if placement.mems:
        return min(CPUSet.parse(placement.mems))
    if placement.numa_affinity:
        return min(placement.numa_affinity)
    return min(topology.numa_ids)


def _view(cpus: CPUSet, mems: CPUSet) -> View:
    return View(cpus=cpus, mems=mems, cgroup_cpus=cpus, cgroup_mems=mems)


def _running(oracle_pod) -> list[str]:
    """Containers still running once the pod runs: sidecars and app containers."""
    return [c.name for c in oracle_pod.all_containers() if not (c.init and not c.sidecar)]


def faithful_run(case: Case, *, restart: bool = True, node: str = "node-a") -> NodeRun:
    """The NodeRun a correct kubelet gives for case.plan, built from case.prediction."""
    topology, prediction, plan = case.topology, case.prediction, case.plan
    run = NodeRun(node, plan)
    checkpoint = next(ph for ph in plan.phases if ph.checkpoint)
    checkpoint_names = [p.name for p in checkpoint.adds]
    rejected_before_restart = 0
    rejected_after_restart = 0
    for phase in plan.phases:
        for pod_plan in phase.adds:
            name = pod_plan.name
            step = prediction.pods[name]
            oracle_pod = prediction.oracle_pods[name]
            if not step.admitted:
                if step.reason in RESOURCE_MANAGER_REASONS:
                    if phase is checkpoint or not restart:
                        rejected_before_restart += 1
                    else:
                        rejected_after_restart += 1
                run.pods[name] = PodObservation(
                    name,
                    "Failed",
                    step.reason,
                    REJECTED_PREFIX + step.message,
                    [("Warning", step.reason, step.message)],
                    {},
                    uid=uid_of(name),
                )
                continue
            logs: dict[str, ProbeLog] = {}
            for container, placement in step.containers.items():
                cpus = CPUSet.parse(placement.cpus)
                mems = expected_mems(placement.mems, topology)
                log = ProbeLog(reports=[_view(cpus, mems)], ready=True)
                if name == "excl":
                    _one_shot_probes(log, case, oracle_pod, placement)
                logs[container] = log
            obs = PodObservation(name, "Running", None, None, [], logs, uid=uid_of(name))
            if name in checkpoint_names:
                for container in _running(oracle_pod):
                    placement = step.containers[container]
                    cpus = (
                        CPUSet.parse(placement.cpus)
                        if placement.exclusive
                        else prediction.pool_at_checkpoint
                    )
                    obs.later[container] = _view(cpus, logs[container].first.mems)
                if restart:
                    obs.after_restart = dict(obs.later)
                    obs.phase_after_restart = "Running"
            run.pods[name] = obs
    run.state_files = checkpoint_state(case, run)
    run.state_files_end = {
        "cpu": {"policyName": case.config.cpu_manager_policy, "entries": {}},
        "memory": {"policyName": case.config.memory_manager_policy},
    }
    run.metrics_before = {TM_REQUESTS: 40.0, TM_ERRORS: 3.0}
    if restart:
        run.restarted = True
        stopped = {TM_REQUESTS: 46.0, TM_ERRORS: 3.0 + rejected_before_restart}
        started = {TM_REQUESTS: 0.0, TM_ERRORS: 0.0}
        run.metrics_at_restart = (stopped, started)
        run.metrics_after = {TM_REQUESTS: 9.0, TM_ERRORS: float(rejected_after_restart)}
    else:
        total = rejected_before_restart + rejected_after_restart
        run.metrics_after = {TM_REQUESTS: 55.0, TM_ERRORS: 3.0 + total}
    return run


def _one_shot_probes(log: ProbeLog, case: Case, oracle_pod, placement) -> None:
    """excl's hugepage and touch probes: pages and touched memory on its pinned node."""
    node = pinned_node(case.topology, placement)
    limits = oracle_pod.containers[0].limits
    pages = limits.get("hugepages-2Mi", 0) // PAGE_2M
    if pages:
        before = {n.id: n.hugepages.get(PAGE_2M, 0) for n in case.topology.numa_nodes}
        log.hugepages_before = before
        log.hugepages_after = {n: free - (pages if n == node else 0) for n, free in before.items()}
    log.numa_stat = {
        "anon": {n: (1 * MiB if n == node else 0) for n in case.topology.numa_ids},
        "shmem": {n: (TOUCH_BYTES if n == node else 0) for n in case.topology.numa_ids},
    }


def checkpoint_state(case: Case, run: NodeRun) -> dict:
    """cpu_manager_state and memory_manager_state at the checkpoint, in the kubelet's shape,
    from the prediction of the checkpoint phase's pods."""
    checkpoint = next(ph for ph in case.plan.phases if ph.checkpoint)
    cpu_entries: dict[str, dict[str, str]] = {}
    mem_entries: dict[str, dict[str, list]] = {}
    for pod_plan in checkpoint.adds:
        step = case.prediction.pods[pod_plan.name]
        if not step.admitted:
            continue
        uid = run.pods[pod_plan.name].uid
        oracle_pod = case.prediction.oracle_pods[pod_plan.name]
        for container, placement in step.containers.items():
            if placement.exclusive:
                cpu_entries.setdefault(uid, {})[container] = placement.cpus
            if placement.mems:
                spec = next(c for c in oracle_pod.all_containers() if c.name == container)
                blocks = [
                    {
                        "numaAffinity": sorted(CPUSet.parse(placement.mems)),
                        "type": resource,
                        "size": size,
                    }
                    for resource, size in sorted(spec.memory_requests().items())
                ]
                mem_entries.setdefault(uid, {})[container] = blocks
    cpu = {
        "policyName": case.config.cpu_manager_policy,
        "defaultCpuSet": str(case.prediction.pool_at_checkpoint),
        "entries": cpu_entries,
    }
    memory: dict = {"policyName": case.config.memory_manager_policy}
    if mem_entries:
        memory["entries"] = mem_entries
    return {"cpu": cpu, "memory": memory}
