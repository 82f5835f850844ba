"""The pod plan that certifies one node: which probe pods, in what order, and why.

One plan serves every check: its pods are shared between the checks that can read them, so a
node is certified with about a dozen pod starts. Sizes come from the discovered topology and
the policy in effect, never from fixed CPU ids; the planner replays its own pods on the
oracle's NodeModel as it goes, so each size fits what a correct kubelet has left at that step
(free CPUs, per-NUMA free memory, node allocatable).

Phases (a later phase starts after the earlier one's pods that are no longer needed are gone):
  A  shared-0 (BestEffort, baseline pool), excl (integer Guaranteed, hugepages, touched memory),
     pair (two integer containers), init (a regular init container, a sidecar and an app
     container) when the node has room for it here, frac (fractional Guaranteed), burst
     (Burstable), shared-1 (BestEffort); the shared pods come after every exclusive one, so
     none of them starts while the pool is still shrinking; then the checkpoint: reconcile
     re-read, state files, kubelet restart; then every pod of the phase goes.
  B  init, on its own, when it had no room in phase A.
  C  toobig (more CPUs than the largest NUMA node has), smt-odd (an odd request under
     full-pcpus-only), and, when both are rejected, the memory pods too; else these have D:
  D  big-<n> (fills each NUMA node's memory but 256Mi), nomem (384Mi: fits no NUMA set).
  E  shared-final (BestEffort after everything is gone: release to baseline).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from numacert.kubelet.config import KubeletConfig
from numacert.oracle.node import NodeModel
from numacert.oracle.pod import pod_from_manifest
from numacert.probes.report import HUGEPAGES_MOUNT, probe_command
from numacert.scenario import AddStep, DeleteStep
from numacert.topology.model import Topology

MiB = 1 << 20
# Placeholder: the runner sets the run's probe image (--image) at creation, with nodeName.
TEST_IMAGE = "numacert.local/busybox:1"
MANAGED_BY = "numacert"
SMALL_MEMORY = "64Mi"
HUGEPAGES_PROBE = 4 * MiB  # two 2Mi pages
SHARED_REQUESTS_MILLIS = 600  # frac (500m) + burst (100m)
# The upstream memory manager e2e: each node filled but 256Mi, then 384Mi fits no set.
MEMORY_LEFT = 256 * MiB
MEMORY_NOFIT = 384 * MiB


@dataclass(frozen=True)
class PodPlan:
    name: str
    manifest: dict
    purpose: str


@dataclass(frozen=True)
class Phase:
    name: str
    adds: tuple[PodPlan, ...]
    # Pods of this and earlier phases deleted once this phase has been observed.
    deletes: tuple[str, ...]
    checkpoint: bool = False


@dataclass
class Plan:
    phases: list[Phase]
    # pod name -> why it is not in the plan (machine-readable: needs-free-cpus:4, ...)
    left_out: dict[str, str] = field(default_factory=dict)
    # pods the planning model rejected (their API objects are still deleted)
    rejected: set[str] = field(default_factory=set)
    # what the plan was sized for: the node's allocatable and kubelet minor
    allocatable: dict[str, int] = field(default_factory=dict)
    k8s_minor: int | None = None

    def only(self, wanted) -> Plan:
        """The plan with only the phases holding a pod `wanted(name)` is true for. Every
        phase ends with its pods deleted, so a later phase's outcome does not depend on an
        earlier one having run."""
        phases = [ph for ph in self.phases if any(wanted(p.name) for p in ph.adds)]
        return Plan(phases, self.left_out, self.rejected, self.allocatable, self.k8s_minor)

    def pods(self) -> dict[str, PodPlan]:
        return {p.name: p for phase in self.phases for p in phase.adds}

    def steps(self) -> list[AddStep | DeleteStep]:
        """The plan as scenario steps (`numacert predict`); a delete of a pod that a correct
        kubelet rejects is left out, as the oracle knows no such pod."""
        steps: list[AddStep | DeleteStep] = []
        for phase in self.phases:
            steps += [AddStep(pod_from_manifest(p.manifest)) for p in phase.adds]
            steps += [DeleteStep(n) for n in phase.deletes if n not in self.rejected]
        return steps


# ---- manifests -------------------------------------------------------------------------------


def container(
    name: str,
    limits: dict | None = None,
    requests: dict | None = None,
    *,
    keep_running: bool = True,
    hugepages_bytes: int = 0,
    touch: bool = False,
    sidecar: bool = False,
) -> dict:
    c: dict = {
        "name": name,
        "image": TEST_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": probe_command(
            keep_running=keep_running, hugepages_bytes=hugepages_bytes, touch=touch
        ),
        # What Pod Security "restricted" asks: probes read and write nothing that needs more.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    resources = {}
    if limits:
        resources["limits"] = dict(limits)
    if requests:
        resources["requests"] = dict(requests)
    if resources:
        c["resources"] = resources
    if hugepages_bytes:
        c["volumeMounts"] = [{"name": "hugepages-2mi", "mountPath": HUGEPAGES_MOUNT}]
    if sidecar:
        c["restartPolicy"] = "Always"
    return c


def pod(name: str, containers: list[dict], init_containers: list[dict] | None = None) -> dict:
    spec: dict = {
        "containers": containers,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        # Probes go to the node under test whatever its taints; nodeName is set at creation.
        "tolerations": [{"operator": "Exists"}],
        # Unprivileged, as Pod Security "restricted" asks; fsGroup makes the hugetlbfs
        # emptyDir writable for the probe's fallocate.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "fsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if init_containers:
        spec["initContainers"] = init_containers
    if any("volumeMounts" in c for c in containers + (init_containers or [])):
        spec["volumes"] = [{"name": "hugepages-2mi", "emptyDir": {"medium": "HugePages-2Mi"}}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
        "spec": spec,
    }


def guaranteed(cpu_millis: int, memory: str = SMALL_MEMORY, hugepages: int = 0) -> dict:
    limits = {"cpu": _cpu(cpu_millis), "memory": memory}
    if hugepages:
        limits["hugepages-2Mi"] = f"{hugepages // MiB}Mi"
    return limits


def _cpu(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


# ---- the planner -----------------------------------------------------------------------------


class _Planner:
    """Adds pods to a NodeModel as the plan grows, to size each pod from what is left."""

    def __init__(
        self,
        topology: Topology,
        config: KubeletConfig,
        allocatable: dict[str, int],
        k8s_minor: int | None,
    ) -> None:
        self.topology = topology
        self.config = config
        self.model = NodeModel(topology, config, allocatable=allocatable, k8s_minor=k8s_minor)
        self.cpu_budget = allocatable.get("cpu", topology.num_cpus * 1000)
        self.memory_budget = allocatable.get("memory", 0)
        self.hugepages_2m = allocatable.get("hugepages-2Mi", 0)
        self.requests: dict[str, tuple[int, int]] = {}  # pod -> (cpu millis, memory bytes)
        self.left_out: dict[str, str] = {}
        self.rejected: set[str] = set()

    @property
    def static(self) -> bool:
        return self.config.cpu_manager_policy == "static"

    @property
    def threads_per_core(self) -> int:
        return max(len(core) for core in self.topology.cores.values())

    @property
    def unit(self) -> int:
        """The smallest exclusive request that is valid here (a whole core under
        full-pcpus-only)."""
        return self.threads_per_core if self.config.cpu_option("full-pcpus-only") else 1

    def free_cpus(self, keep_millis: int = 0) -> int:
        """Whole CPUs a new exclusive request can get: the static pool and the node budget,
        less `keep_millis` the pods still to come in the phase need."""
        used = sum(c for c, _ in self.requests.values())
        budget = (self.cpu_budget - used - keep_millis) // 1000
        if self.static:
            return min(len(self.model.cpu.available_cpus()), budget)
        return budget

    def budget_millis(self) -> int:
        """What is left of the node's allocatable CPU, in milli-CPU."""
        return self.cpu_budget - sum(c for c, _ in self.requests.values())

    def free_memory(self) -> int:
        return self.memory_budget - sum(m for _, m in self.requests.values())

    def add(self, plan: PodPlan) -> bool:
        """Replay the pod on the model; True when a correct kubelet admits it."""
        oracle_pod = pod_from_manifest(plan.manifest)
        result = self.model.add(oracle_pod)
        if result.admitted:
            cpu = max(
                sum(c.cpu_request or 0 for c in oracle_pod.containers),
                max((c.cpu_request or 0 for c in oracle_pod.init_containers), default=0),
            )
            memory = sum(c.requests.get("memory", 0) for c in oracle_pod.all_containers())
            self.requests[plan.name] = (cpu, memory)
        else:
            self.rejected.add(plan.name)
        return bool(result.admitted)

    def delete(self, name: str) -> None:
        if name in self.model.pods:
            self.model.delete(name)
        self.requests.pop(name, None)

    def close(self, name: str, adds: list[PodPlan], checkpoint: bool = False) -> Phase:
        """A phase of `adds`, whose pods all go at its end (from the model too)."""
        deletes = tuple(a.name for a in adds)
        for pod_name in deletes:
            self.delete(pod_name)
        return Phase(name, tuple(adds), deletes, checkpoint)


def build_plan(
    topology: Topology,
    config: KubeletConfig,
    allocatable: dict[str, int],
    k8s_minor: int | None = None,
) -> Plan:
    """The plan for a node with `topology` whose kubelet runs `config`.

    `allocatable` is the node's allocatable as integers ("cpu" in milli-CPU, "memory" and
    "hugepages-2Mi" in bytes), as the node reports it.
    """
    p = _Planner(topology, config, allocatable, k8s_minor)
    phases = []
    adds = _phase_a_pods(p)
    phases.append(p.close("A", adds, checkpoint=True))
    if not any(a.name == "init" for a in adds):
        init = _init_pod(p)
        if init is None:
            p.left_out["init"] = f"needs-free-cpus:{2 * p.unit}"
        else:
            phases.append(p.close("B", [init]))
    # The memory pods share phase C with the rejection probes when those hold nothing; an
    # admitted toobig (best-effort) spreads memory over NUMA nodes, which changes what fits.
    rejection = _rejection_pods(p)
    if any(r.name not in p.rejected for r in rejection):
        phases.append(p.close("C", rejection))
        rejection = []
    phases.append(p.close("C" if rejection else "D", rejection + _memory_pods(p)))
    final = PodPlan("shared-final", pod("shared-final", [container("c")]), "release to baseline")
    p.add(final)
    phases.append(p.close("E", [final]))
    phases = [ph for ph in phases if ph.adds]
    return Plan(phases, p.left_out, p.rejected, dict(allocatable), k8s_minor)


def _phase_a_pods(p: _Planner) -> list[PodPlan]:
    adds: list[PodPlan] = []

    def add(plan: PodPlan) -> None:
        adds.append(plan)
        p.add(plan)

    add(PodPlan("shared-0", pod("shared-0", [container("c")]), "shared pool baseline"))
    # Two pages on every NUMA node: under single-numa-node they must fit on one.
    pages_per_node = min(
        (
            n.hugepages.get(2 * MiB, 0)
            for n in p.topology.numa_nodes
            if n.id in p.topology.cpu_numa_ids
        ),
        default=0,
    )
    enough = p.hugepages_2m >= HUGEPAGES_PROBE and pages_per_node * 2 * MiB >= HUGEPAGES_PROBE
    hugepages = HUGEPAGES_PROBE if enough else 0
    if not hugepages:
        p.left_out["excl/hugepages"] = "needs-hugepages:2Mi"
    unit_m = p.unit * 1000
    excl = container(
        "c", guaranteed(unit_m, hugepages=hugepages), hugepages_bytes=hugepages, touch=True
    )
    add(PodPlan("excl", pod("excl", [excl]), "exclusive CPUs, alignment, memory pinning"))
    per_numa = min(len(p.topology.cpus_by_numa[n]) for n in p.topology.cpu_numa_ids)
    k = max(p.unit, (per_numa // 2) // p.unit * p.unit)
    # frac and burst come after pair and need their 600m of the node's CPU budget.
    keep = SHARED_REQUESTS_MILLIS
    while k > p.unit and 2 * k > p.free_cpus(keep):
        k -= p.unit
    if 2 * k <= p.free_cpus(keep):
        two = [container(n, guaranteed(k * 1000)) for n in ("a", "b")]
        add(PodPlan("pair", pod("pair", two), "two exclusive containers, pod vs container scope"))
    else:
        p.left_out["pair"] = f"needs-free-cpus:{2 * p.unit}"
    # The init pod joins the exclusive pods here when there is room for it next to them and
    # frac and burst (one deletion round less); otherwise it gets a phase of its own.
    init = _init_pod(p, keep_millis=SHARED_REQUESTS_MILLIS)
    if init is not None:
        adds.append(init)
    if p.budget_millis() >= 500:
        frac = container("c", guaranteed(500))
        add(PodPlan("frac", pod("frac", [frac]), "fractional Guaranteed"))
    else:
        p.left_out["frac"] = "needs-free-cpus:1"
    if p.budget_millis() >= 100:
        burst = container("c", requests={"cpu": "100m", "memory": "32Mi"})
        add(PodPlan("burst", pod("burst", [burst]), "Burstable"))
    else:
        p.left_out["burst"] = "needs-free-cpus:1"
    add(PodPlan("shared-1", pod("shared-1", [container("c")]), "shared pool after exclusives"))
    return adds


def _init_pod(p: _Planner, keep_millis: int = 0) -> PodPlan | None:
    """The init pod, added to the model, when its sidecar and app fit now (leaving
    `keep_millis` of the CPU budget); else None."""
    unit_m = p.unit * 1000
    if p.free_cpus(keep_millis) < 2 * p.unit:
        return None
    init = PodPlan(
        "init",
        pod(
            "init",
            [container("app", guaranteed(unit_m))],
            init_containers=[
                container("init", guaranteed(unit_m), keep_running=False),
                container("side", guaranteed(unit_m), sidecar=True),
            ],
        ),
        "init container CPUs reused, sidecar CPUs not",
    )
    p.add(init)
    return init


def _rejection_pods(p: _Planner) -> list[PodPlan]:
    """toobig and smt-odd, added to the model."""
    adds: list[PodPlan] = []
    largest = max(len(cpus) for cpus in p.topology.cpus_by_numa.values())
    want = -(-(largest + 1) // p.unit) * p.unit  # more than any NUMA node, whole cores
    if len(p.topology.numa_ids) < 2:
        p.left_out["toobig"] = "needs-numa-nodes:2"
    elif want > p.free_cpus():
        p.left_out["toobig"] = f"needs-free-cpus:{want}"
    else:
        toobig = PodPlan(
            "toobig",
            pod("toobig", [container("c", guaranteed(want * 1000))]),
            "more CPUs than one NUMA node has",
        )
        adds.append(toobig)
        p.add(toobig)
    full_cores = p.config.cpu_option("full-pcpus-only") and p.threads_per_core > 1
    if full_cores and p.free_cpus() < p.unit:
        p.left_out["smt-odd"] = f"needs-free-cpus:{p.unit}"
    elif full_cores:
        odd = PodPlan(
            "smt-odd",
            pod("smt-odd", [container("c", guaranteed(1000))]),
            "a request that is not whole cores under full-pcpus-only",
        )
        adds.append(odd)
        p.add(odd)
    return adds


def _memory_pods(p: _Planner) -> list[PodPlan]:
    """big-<n> and nomem, added to the model (Memory Manager Static on 2+ NUMA nodes)."""
    if p.config.memory_manager_policy != "Static" or len(p.topology.numa_ids) < 2:
        p.left_out["nomem"] = (
            "needs-numa-nodes:2"
            if len(p.topology.numa_ids) < 2
            else f"not-applicable:memory_manager={p.config.memory_manager_policy}"
        )
        return []
    if p.budget_millis() < 100 * (len(p.topology.numa_ids) + 1):
        p.left_out["nomem"] = "needs-free-cpus:1"
        return []
    adds: list[PodPlan] = []
    for numa in p.topology.numa_ids:
        size = (p.model.memory.free(numa) - MEMORY_LEFT) // MiB * MiB
        if size < 128 * MiB or size > p.free_memory():
            p.left_out["nomem"] = f"needs-memory:{numa}"
            for plan in adds:
                p.delete(plan.name)
            return []
        big = PodPlan(
            f"big-{numa}",
            pod(f"big-{numa}", [container("c", guaranteed(100, f"{size // MiB}Mi"))]),
            f"fills NUMA node {numa}'s memory but 256Mi",
        )
        adds.append(big)
        p.add(big)
    nomem = PodPlan(
        "nomem",
        pod("nomem", [container("c", guaranteed(100, f"{MEMORY_NOFIT // MiB}Mi"))]),
        "memory that fits no NUMA node set any more",
    )
    adds.append(nomem)
    p.add(nomem)
    return adds
