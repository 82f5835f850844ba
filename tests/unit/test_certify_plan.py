"""The pod plan: built for every shipped topology and policy, sized within the node's
allocatable, each pod doing what its purpose says on the oracle, no CPU id hard-coded."""

from __future__ import annotations

import os
import re
from functools import cache

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from numacert.certify.compare import numa_nodes_of, predict_plan
from numacert.certify.plan import HUGEPAGES_PROBE, MEMORY_NOFIT, Plan
from numacert.cpuset import CPUSet
from numacert.errors import InputError
from numacert.lab.profile import list_lab_profiles, load_lab_profile
from numacert.oracle.admission import derive_allocatable
from numacert.oracle.pod import pod_from_manifest
from numacert.scenario import AddStep, DeleteStep
from numacert.topology.generate import generate
from numacert.topology.model import CPU, NUMANode, Topology
from tests.unit.test_certify_support import (
    LAB_PROFILES,
    TOPOLOGY_PROFILES,
    VARIANTS,
    Case,
    make_config,
    node_case,
    profile_case,
    realistic_allocatable,
)

GiB = 1 << 30
MiB = 1 << 20
PROFILES = LAB_PROFILES + TOPOLOGY_PROFILES
MATRIX = [(p, v) for p in PROFILES for v in VARIANTS]
REASON = re.compile(
    r"^(needs-numa-nodes:\d+|needs-smt|needs-hugepages:\d+[MG]i|needs-free-cpus:\d+"
    r"|needs-memory:\d+|needs-node-access|not-applicable:[a-z_-]+=[A-Za-z-]+)$"
)
PURPOSE_PODS = ("shared-0", "excl", "frac", "burst", "pair", "shared-1", "init", "toobig")


@cache
def case(profile: str, variant: str) -> Case:
    return profile_case(profile, variant)


def ids(matrix):
    return [f"{p}-{v}" for p, v in matrix]


def steps_of(c: Case, name: str):
    return c.prediction.pods[name]


def static(c: Case) -> bool:
    return c.config.cpu_manager_policy == "static"


def unit(c: Case) -> int:
    threads = max(len(core) for core in c.topology.cores.values())
    return threads if c.config.cpu_option("full-pcpus-only") else 1


def phase_names(c: Case, phase: str) -> list[str]:
    """The pods phase `phase` adds, in order ([] when the plan has no such phase)."""
    return next(([p.name for p in ph.adds] for ph in c.plan.phases if ph.name == phase), [])


def holds_exclusive(c: Case, name: str) -> bool:
    return any(p.exclusive for p in steps_of(c, name).containers.values())


def init_fits_in_phase_a(c: Case) -> bool:
    """Whether init's sidecar and app (one unit each) fit next to excl and pair (those a
    correct kubelet admits), with the 600m that frac and burst need kept: whole CPUs of the
    node's budget and, under the static policy, of the CPUs neither reserved nor held by excl
    and pair."""
    used = 0
    held = CPUSet()
    for name in ("excl", "pair"):
        if name in phase_names(c, "A") and steps_of(c, name).admitted:
            pod = pod_from_manifest(c.plan.pods()[name].manifest)
            used += sum(x.cpu_request or 0 for x in pod.containers)
            for placement in steps_of(c, name).containers.values():
                if placement.exclusive:
                    held |= CPUSet.parse(placement.cpus)
    free = (c.allocatable["cpu"] - used - 600) // 1000
    if static(c):
        free = min(free, len(c.topology.all_cpus - c.prediction.reserved - held))
    return free >= 2 * unit(c)


def test_every_lab_profile_is_covered():
    assert set(LAB_PROFILES) == set(list_lab_profiles())


@pytest.mark.parametrize(("profile", "variant"), MATRIX, ids=ids(MATRIX))
def test_realistic_allocatable_is_the_kubelets(profile, variant):
    """The hand-written allocatable these tests size plans for is what the kubelet reports."""
    c = case(profile, variant)
    assert c.allocatable == derive_allocatable(c.topology, c.config)


# ---- the plan fits the node --------------------------------------------------------------


@pytest.mark.parametrize(("profile", "variant"), MATRIX, ids=ids(MATRIX))
def test_plan_is_built_and_sized_within_allocatable(profile, variant):
    c = case(profile, variant)
    out_of = {
        n: s.message
        for n, s in c.prediction.pods.items()
        if not s.admitted and s.reason.startswith("OutOf")
    }
    assert out_of == {}
    # The planner's own replay and the oracle's agree on which pods a correct kubelet rejects.
    assert c.plan.rejected == {n for n, s in c.prediction.pods.items() if not s.admitted}
    assert c.plan.allocatable == c.allocatable and c.plan.k8s_minor == 37
    # Every phase is non-empty and deletes what it (or an earlier phase) added; nothing stays.
    added: list[str] = []
    for phase in c.plan.phases:
        assert phase.adds or phase.deletes
        added += [p.name for p in phase.adds]
        assert set(phase.deletes) <= set(added)
    assert len(added) == len(set(added))
    assert sorted(added) == sorted(n for ph in c.plan.phases for n in ph.deletes)
    assert [ph.name for ph in c.plan.phases if ph.checkpoint] == ["A"]


@pytest.mark.parametrize(("profile", "variant"), MATRIX, ids=ids(MATRIX))
def test_left_out_reasons_are_machine_readable(profile, variant):
    c = case(profile, variant)
    for pod, reason in c.plan.left_out.items():
        assert REASON.match(reason), (pod, reason)
        assert pod not in c.plan.pods()
    if len(c.topology.numa_ids) < 2:
        assert c.plan.left_out["toobig"] == "needs-numa-nodes:2"
        assert c.plan.left_out["nomem"] == "needs-numa-nodes:2"
    elif c.config.memory_manager_policy == "None":
        assert c.plan.left_out["nomem"] == "not-applicable:memory_manager=None"


def test_steps_leave_out_deletes_of_rejected_pods():
    c = case("default", "full-pcpus")
    steps = c.plan.steps()
    adds = [s.pod.name for s in steps if isinstance(s, AddStep)]
    deletes = [s.name for s in steps if isinstance(s, DeleteStep)]
    assert adds == list(c.plan.pods())
    assert {"toobig", "smt-odd", "nomem"} <= c.plan.rejected
    assert set(deletes) == set(adds) - c.plan.rejected


# ---- the phases ----------------------------------------------------------------------------

PHASE_A = ("shared-0", "excl", "pair", "init", "frac", "burst", "shared-1")


def _assert_phases(c: Case) -> None:
    phases = [ph.name for ph in c.plan.phases]
    assert phases == sorted(set(phases)) and phases[0] == "A" and phases[-1] == "E"
    # A: shared-0, the exclusive pods, frac, burst, shared-1: every pod that takes exclusive
    # CPUs comes before the shared ones, so none of them starts while the pool still shrinks.
    a = phase_names(c, "A")
    assert a == [n for n in PHASE_A if n in a] and a[0] == "shared-0" and a[-1] == "shared-1"
    exclusive = [i for i, n in enumerate(a) if holds_exclusive(c, n)]
    shared = [i for i, n in enumerate(a) if n in ("frac", "burst", "shared-1")]
    assert max(exclusive, default=0) < min(shared), a
    # init: in phase A when it fits there, keeping 600m for frac and burst; else alone in B.
    if "init" in c.plan.pods():
        assert ("init" in a) == init_fits_in_phase_a(c), a
        assert phase_names(c, "B") == ([] if "init" in a else ["init"])
        assert {"frac", "burst"} <= set(a) or "init" not in a
    else:
        assert "B" not in phases and c.plan.left_out["init"].startswith("needs-free-cpus:")
    # C: the rejection probes; the memory pods join them when each of those is rejected (an
    # admitted toobig spreads memory), else they have phase D (also when C has no pod at all).
    rejection = [n for n in ("toobig", "smt-odd") if n in c.plan.pods()]
    memory = [n for n in c.plan.pods() if n.startswith("big-") or n == "nomem"]
    together = bool(rejection) and all(not steps_of(c, n).admitted for n in rejection)
    assert phase_names(c, "C") == rejection + (memory if together else [])
    assert phase_names(c, "D") == ([] if together else memory)
    assert phase_names(c, "E") == ["shared-final"]
    # Every phase ends with its own pods deleted.
    for phase in c.plan.phases:
        assert list(phase.deletes) == [p.name for p in phase.adds]
        assert phase.checkpoint == (phase.name == "A")


@pytest.mark.parametrize(("profile", "variant"), MATRIX, ids=ids(MATRIX))
def test_phases_in_order(profile, variant):
    _assert_phases(case(profile, variant))


def test_phase_order_covers_every_placement():
    """The matrix above sees init in phase A and in phase B, and memory pods in C and in D."""
    seen = set()
    for profile, variant in MATRIX:
        c = case(profile, variant)
        seen |= {("init", ph) for ph in ("A", "B") if "init" in phase_names(c, ph)}
        seen |= {("nomem", ph) for ph in ("C", "D") if "nomem" in phase_names(c, ph)}
    assert seen == {("init", "A"), ("init", "B"), ("nomem", "C"), ("nomem", "D")}


@pytest.mark.parametrize(
    ("profile", "variant"),
    [("default", "full-pcpus"), ("xeon-gold-6230", "best-effort"), ("four-numa", "snn-pod")],
)
def test_plan_only_keeps_the_phases_of_the_pods_wanted(profile, variant):
    c = case(profile, variant)
    plan = c.plan
    for name in plan.pods():
        only = plan.only(lambda n, name=name: n == name)
        assert [ph.name for ph in only.phases] == [
            ph.name for ph in plan.phases if name in [p.name for p in ph.adds]
        ]
        assert (only.left_out, only.rejected) == (plan.left_out, plan.rejected)
        assert (only.allocatable, only.k8s_minor) == (plan.allocatable, plan.k8s_minor)
        # Each phase deletes its own pods: run alone, a phase has the outcome it has in the
        # whole plan.
        alone = predict_plan(c.topology, c.config, only)
        for pod in only.pods():
            assert alone.pods[pod] == c.prediction.pods[pod], (name, pod)
    assert plan.only(lambda n: False).phases == []
    assert plan.only(lambda n: True).phases == plan.phases
    memory = plan.only(lambda n: n.startswith("big-"))
    assert [ph.name for ph in memory.phases] == [
        ph.name for ph in plan.phases if any(p.name == "nomem" for p in ph.adds)
    ]


# ---- each pod does what its purpose says -------------------------------------------------


@pytest.mark.parametrize(("profile", "variant"), MATRIX, ids=ids(MATRIX))
def test_purpose_pods_are_planned(profile, variant):
    c = case(profile, variant)
    pods = c.plan.pods()
    for name in PURPOSE_PODS:
        assert name in pods or name in c.plan.left_out, name
    assert pods["shared-final"].purpose == "release to baseline"
    for plan in pods.values():
        assert plan.purpose
        pod_from_manifest(plan.manifest)  # every manifest is a pod the oracle reads


@pytest.mark.parametrize(("profile", "variant"), MATRIX, ids=ids(MATRIX))
def test_shared_pods_run_on_the_shared_pool(profile, variant):
    c = case(profile, variant)
    everything = c.topology.all_cpus
    strict = c.config.cpu_option("strict-cpu-reservation")
    baseline = everything - c.prediction.reserved if strict else everything
    first = steps_of(c, "shared-0").containers["c"]
    assert not first.exclusive and CPUSet.parse(first.cpus) == baseline
    final = steps_of(c, "shared-final").containers["c"]
    assert final.cpus == first.cpus  # released to baseline
    # shared-1 starts after every exclusive pod of phase A: excl, pair and, when it runs in
    # phase A, init's sidecar and app (its init container's CPUs went on to the sidecar).
    taken = CPUSet()
    for name in ("excl", "pair", "init"):
        if name in phase_names(c, "A"):
            for container, placement in steps_of(c, name).containers.items():
                if placement.exclusive and container != "init":
                    taken |= CPUSet.parse(placement.cpus)
    later = CPUSet.parse(steps_of(c, "shared-1").containers["c"].cpus)
    assert later == baseline - taken == c.prediction.pool_at_checkpoint
    for name in ("frac", "burst"):
        placement = steps_of(c, name).containers["c"]
        assert steps_of(c, name).admitted and not placement.exclusive
    burst = pod_from_manifest(c.plan.pods()["burst"].manifest)
    frac = pod_from_manifest(c.plan.pods()["frac"].manifest)
    assert burst.qos_class == "Burstable" and frac.qos_class == "Guaranteed"
    assert frac.containers[0].cpu_request % 1000 != 0


@pytest.mark.parametrize(("profile", "variant"), MATRIX, ids=ids(MATRIX))
def test_excl_gets_exclusive_pinned_cpus_and_hugepages(profile, variant):
    c = case(profile, variant)
    step = steps_of(c, "excl")
    assert step.admitted
    placement = step.containers["c"]
    limits = pod_from_manifest(c.plan.pods()["excl"].manifest).containers[0].limits
    if c.allocatable.get("hugepages-2Mi", 0) >= HUGEPAGES_PROBE:
        assert limits["hugepages-2Mi"] == HUGEPAGES_PROBE
        assert "excl/hugepages" not in c.plan.left_out
    else:
        assert "hugepages-2Mi" not in limits
        assert c.plan.left_out["excl/hugepages"] == "needs-hugepages:2Mi"
    if static(c):
        cpus = CPUSet.parse(placement.cpus)
        assert placement.exclusive and len(cpus) == unit(c)
        assert not cpus & c.prediction.reserved
    if c.config.memory_manager_policy == "Static":
        assert placement.mems is not None
        if c.config.topology_manager_policy != "none" and static(c):
            assert CPUSet.parse(placement.mems) == numa_nodes_of(
                c.topology, CPUSet.parse(placement.cpus)
            )
    else:
        assert placement.mems is None


@pytest.mark.parametrize(("profile", "variant"), MATRIX, ids=ids(MATRIX))
def test_init_cpus_reused_by_the_sidecar_not_by_the_app(profile, variant):
    c = case(profile, variant)
    if not static(c):
        return
    step = steps_of(c, "init")
    assert step.admitted
    init, side, app = (CPUSet.parse(step.containers[n].cpus) for n in ("init", "side", "app"))
    assert len(init) == len(side) == len(app) == unit(c)
    assert side == init and not app & side


TOOBIG_REJECTED = ("snn-container", "snn-pod", "restricted", "mm-none", "full-pcpus")
TOOBIG_ADMITTED = ("best-effort", "tm-none", "cpu-none", "restricted-mm-none")


@pytest.mark.parametrize(("profile", "variant"), MATRIX, ids=ids(MATRIX))
def test_toobig(profile, variant):
    c = case(profile, variant)
    if len(c.topology.numa_ids) < 2:
        assert "toobig" not in c.plan.pods()
        return
    step = steps_of(c, "toobig")
    requested = pod_from_manifest(c.plan.pods()["toobig"].manifest).containers[0].cpu_request
    largest = max(len(cpus) for cpus in c.topology.cpus_by_numa.values())
    assert requested // 1000 > largest and (requested // 1000) % unit(c) == 0
    if variant in TOOBIG_REJECTED:
        assert not step.admitted
        assert (step.reason, step.message) == (
            "TopologyAffinityError",
            "Resources cannot be allocated with Topology locality",
        )
    elif variant in TOOBIG_ADMITTED:
        assert step.admitted
        if static(c):
            cpus = CPUSet.parse(step.containers["c"].cpus)
            assert len(cpus) == requested // 1000
            assert len(numa_nodes_of(c.topology, cpus)) >= 2


@pytest.mark.parametrize(("profile", "variant"), MATRIX, ids=ids(MATRIX))
def test_smt_odd(profile, variant):
    c = case(profile, variant)
    threads = max(len(core) for core in c.topology.cores.values())
    if c.config.cpu_option("full-pcpus-only") and threads > 1:
        assert "smt-odd" in phase_names(c, "C")
        step = steps_of(c, "smt-odd")
        assert not step.admitted and step.reason == "SMTAlignmentError"
        assert step.message == (
            f"SMT Alignment Error: requested 1 cpus not multiple cpus per core = {threads}"
        )
    else:
        assert "smt-odd" not in c.plan.pods()


@pytest.mark.parametrize(("profile", "variant"), MATRIX, ids=ids(MATRIX))
def test_nomem(profile, variant):
    c = case(profile, variant)
    pods = c.plan.pods()
    if c.config.memory_manager_policy != "Static" or len(c.topology.numa_ids) < 2:
        assert "nomem" not in pods and not any(n.startswith("big-") for n in pods)
        return
    if "nomem" not in pods:
        # The NUMA nodes are too small to fill but 256Mi (nine-numa: 512Mi per node).
        assert c.plan.left_out["nomem"].startswith("needs-memory:")
        assert not any(n.startswith("big-") for n in pods)
        return
    for numa in c.topology.numa_ids:
        big = steps_of(c, f"big-{numa}")
        assert big.admitted and big.containers["c"].mems == str(numa)
    nomem = steps_of(c, "nomem")
    assert not nomem.admitted
    assert nomem.reason in ("UnexpectedAdmissionError", "TopologyAffinityError")
    request = pod_from_manifest(pods["nomem"].manifest).containers[0].requests["memory"]
    assert request == MEMORY_NOFIT


@pytest.mark.parametrize(
    "profile", ["default", "two-socket-smt", "xeon-gold-6230", "four-numa", "four-numa-unequal"]
)
def test_pair_spans_two_nodes_under_container_scope_one_under_pod_scope(profile):
    """excl and the reserved CPU take part of the first NUMA node: under container scope pair's
    second container no longer fits there and goes to another node; under pod scope the pod is
    aligned as a whole, to one node that has room for both."""
    container = case(profile, "snn-container")
    excl_node = numa_nodes_of(
        container.topology, CPUSet.parse(steps_of(container, "excl").containers["c"].cpus)
    )
    nodes = {
        name: numa_nodes_of(container.topology, CPUSet.parse(p.cpus))
        for name, p in steps_of(container, "pair").containers.items()
    }
    assert nodes["a"] == excl_node
    assert len(nodes["a"]) == len(nodes["b"]) == 1 and nodes["a"] != nodes["b"]

    pod = case(profile, "snn-pod")
    placements = steps_of(pod, "pair").containers
    used = CPUSet().union(
        *(numa_nodes_of(pod.topology, CPUSet.parse(p.cpus)) for p in placements.values())
    )
    assert len(used) == 1 and used != excl_node
    assert all(p.numa_affinity == sorted(used) for p in placements.values())


# ---- no CPU id is hard-coded -------------------------------------------------------------


def explicit_topology(cpus: list[tuple[int, int, int, int]], nodes: list[tuple[int, int, int]]):
    """cpus: (id, socket, numa, core); nodes: (id, memory, 2Mi pages)."""
    return Topology(
        [CPU(i, s, n, core, s) for i, s, n, core in cpus],
        [NUMANode(n, memory, {2 * MiB: pages}) for n, memory, pages in nodes],
    )


def holes_topology() -> Topology:
    """Two NUMA nodes with offline CPUs in between: node 0 = 4-7,12-15 (siblings i, i+8),
    node 1 = 20-23,28-31; CPU 0 does not exist."""
    cpus = []
    for node, base in ((0, 4), (1, 20)):
        for k in range(4):
            cpus += [(base + k, node, node, base + k), (base + k + 8, node, node, base + k)]
    return explicit_topology(cpus, [(0, 4 * GiB, 64), (1, 4 * GiB, 64)])


def sparse_numa_topology() -> Topology:
    """NUMA nodes 0 and 2 (node 1 offline or absent)."""
    cpus = [(i, i // 4, (i // 4) * 2, i - i % 2) for i in range(8)]
    return explicit_topology(cpus, [(0, 4 * GiB, 64), (2, 4 * GiB, 64)])


def memory_only_node_topology() -> Topology:
    """Two CPU nodes (4 CPUs each, siblings adjacent) and a CPU-less memory node 2 (CXL)."""
    cpus = [(i, i // 4, i // 4, i - i % 2) for i in range(8)]
    return explicit_topology(cpus, [(0, 4 * GiB, 64), (1, 4 * GiB, 64), (2, 8 * GiB, 0)])


def exotic_case(topology: Topology, variant: str) -> Case:
    override = dict(VARIANTS[variant])
    override["reservedSystemCPUs"] = str(min(c.id for c in topology.cpus))
    return node_case(topology, load_lab_profile("default").kubelet, override)


EXOTIC = {
    "holes": holes_topology,
    "sparse-numa": sparse_numa_topology,
    "linux-numbering": lambda: generate(2, 1, 4, 2, "4Gi", cpu_numbering="linux"),
    "qemu-numbering": lambda: generate(2, 1, 4, 2, "4Gi", cpu_numbering="qemu"),
    "smt4": lambda: generate(2, 1, 2, 4, "4Gi", cpu_numbering="linux"),
    "no-smt-4-numa": lambda: generate(2, 2, 3, 1, "2Gi", cpu_numbering="linux"),
}
EXOTIC_MATRIX = [
    (t, v) for t in EXOTIC for v in ("snn-container", "snn-pod", "full-pcpus", "best-effort")
]


@pytest.mark.parametrize(("topology", "variant"), EXOTIC_MATRIX, ids=ids(EXOTIC_MATRIX))
def test_plan_works_on_any_cpu_numbering(topology, variant):
    c = exotic_case(EXOTIC[topology](), variant)
    assert not any((s.reason or "").startswith("OutOf") for s in c.prediction.pods.values())
    _assert_phases(c)
    online = c.topology.all_cpus
    for name, step in c.prediction.pods.items():
        for placement in step.containers.values():
            assert CPUSet.parse(placement.cpus) <= online, name
    excl = CPUSet.parse(steps_of(c, "excl").containers["c"].cpus)
    assert len(excl) == unit(c) and not excl & c.prediction.reserved
    assert not steps_of(c, "toobig").admitted or variant == "best-effort"
    pair = steps_of(c, "pair").containers
    sizes = {len(CPUSet.parse(p.cpus)) for p in pair.values()}
    smallest = min(len(c.topology.cpus_by_numa[n]) for n in c.topology.cpu_numa_ids)
    assert sizes == {max(unit(c), smallest // 2 // unit(c) * unit(c))}


def test_memory_only_numa_node_does_not_shrink_the_pair():
    """A CPU-less NUMA node (CXL memory) must not count as the smallest node when pair is
    sized: its containers are half the smallest CPU node, so that under container scope the
    second one cannot follow the first onto a partly used node."""
    c = exotic_case(memory_only_node_topology(), "snn-container")
    pair = steps_of(c, "pair").containers
    assert {len(CPUSet.parse(p.cpus)) for p in pair.values()} == {2}
    nodes = [numa_nodes_of(c.topology, CPUSet.parse(p.cpus)) for p in pair.values()]
    assert nodes[0] != nodes[1]
    # The memory pods fill the memory-only node too.
    assert steps_of(c, "big-2").admitted and steps_of(c, "big-2").containers["c"].mems == "2"


def test_plan_depends_on_the_topology_shape_not_its_cpu_ids():
    """The same machine numbered the linux way and the qemu way gets the very same manifests
    and the same outcomes; only the CPU ids in the prediction differ."""
    linux = exotic_case(EXOTIC["linux-numbering"](), "snn-container")
    qemu = exotic_case(EXOTIC["qemu-numbering"](), "snn-container")
    assert {n: p.manifest for n, p in linux.plan.pods().items()} == {
        n: p.manifest for n, p in qemu.plan.pods().items()
    }
    assert linux.plan.left_out == qemu.plan.left_out
    for name, step in linux.prediction.pods.items():
        other = qemu.prediction.pods[name]
        assert (step.admitted, step.reason) == (other.admitted, other.reason), name
        for container, placement in step.containers.items():
            theirs = other.containers[container]
            assert len(CPUSet.parse(placement.cpus)) == len(CPUSet.parse(theirs.cpus))
            assert placement.numa_affinity == theirs.numa_affinity
            assert placement.mems == theirs.mems
    assert linux.prediction.pods["pair"].containers["a"].cpus != (
        qemu.prediction.pods["pair"].containers["a"].cpus
    )


def test_manifests_ask_for_amounts_only():
    """No manifest names a CPU or a node: only amounts of cpu, memory and hugepages."""
    c = exotic_case(holes_topology(), "snn-container")
    for plan in c.plan.pods().values():
        manifest = plan.manifest
        assert set(manifest["metadata"]) == {"name", "labels"}
        assert "nodeSelector" not in manifest["spec"] and "affinity" not in manifest["spec"]
        spec = manifest["spec"]
        for container in spec["containers"] + spec.get("initContainers", []):
            for kind in container.get("resources", {}).values():
                assert set(kind) <= {"cpu", "memory", "hugepages-2Mi"}, plan.name


# ---- property: generated topologies ------------------------------------------------------


@st.composite
def nodes(draw):
    topology = generate(
        sockets=draw(st.integers(1, 2)),
        numa_per_socket=draw(st.integers(1, 2)),
        cores_per_numa=draw(st.integers(1, 6)),
        threads_per_core=draw(st.integers(1, 2)),
        memory_per_numa=draw(st.sampled_from(["1Gi", "2Gi", "8Gi"])),
        hugepages_per_numa={"2Mi": draw(st.sampled_from([0, 1, 2, 64]))},
        cpu_numbering=draw(st.sampled_from(["linux", "qemu"])),
    )
    variant = draw(st.sampled_from(sorted(VARIANTS)))
    override = dict(VARIANTS[variant])
    reserved = draw(st.sampled_from(["0", "0-1", "500m", "1500m"]))
    if reserved.endswith("m"):  # kube-reserved cpu: the static policy reserves whole CPUs
        override["kubeReserved"] = {"cpu": reserved}
        override["reservedSystemCPUs"] = None  # drop the lab profile's "0"
    else:
        override["reservedSystemCPUs"] = reserved
    return topology, variant, override


def _plan_or_none(topology, override):
    try:
        config = make_config(topology, load_lab_profile("default").kubelet, override)
    except InputError:
        return None  # a configuration the kubelet refuses to start with
    allocatable = realistic_allocatable(topology, config)
    return config, allocatable


@settings(
    max_examples=int(os.environ.get("NUMACERT_HYPOTHESIS_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(nodes())
def test_generated_nodes_plan_within_allocatable(node):
    topology, variant, override = node
    built = _plan_or_none(topology, override)
    assume(built is not None)
    config, allocatable = built
    assume(allocatable["cpu"] >= 1000)  # every CPU reserved: no probe can start at all
    c = node_case(topology, load_lab_profile("default").kubelet, override)
    assert not any((s.reason or "").startswith("OutOf") for s in c.prediction.pods.values())
    assert c.plan.rejected == {n for n, s in c.prediction.pods.items() if not s.admitted}
    for reason in c.plan.left_out.values():
        assert REASON.match(reason), reason
    assert_plan_concurrency_within(c.plan, allocatable)
    _assert_phases(c)


def assert_plan_concurrency_within(plan: Plan, allocatable: dict[str, int]) -> None:
    """At no point do the admitted pods of the plan request more than the node allocates."""
    running: dict[str, tuple[int, int]] = {}
    for phase in plan.phases:
        for p in phase.adds:
            if p.name in plan.rejected:
                continue
            pod = pod_from_manifest(p.manifest)
            cpu = max(
                sum(c.cpu_request or 0 for c in pod.containers),
                max((c.cpu_request or 0 for c in pod.init_containers), default=0),
            )
            memory = sum(c.requests.get("memory", 0) for c in pod.containers)
            running[p.name] = (cpu, memory)
            assert sum(c for c, _ in running.values()) <= allocatable["cpu"], p.name
            assert sum(m for _, m in running.values()) <= allocatable["memory"], p.name
        for name in phase.deletes:
            running.pop(name, None)


def test_small_node_frac_and_burst_fit():
    """A 2-CPU node with reservedSystemCPUs 0 allocates 1000m: excl must not take it all from
    frac (500m) and burst (100m) (was OutOfcpu before d2f6cb1 kept the budget for them)."""
    topology = generate(1, 1, 1, 2, "4Gi", cpu_numbering="qemu")
    c = node_case(topology, load_lab_profile("default").kubelet, VARIANTS["snn-container"])
    assert c.allocatable["cpu"] == 1000
    out_of = {
        n: s.reason for n, s in c.prediction.pods.items() if (s.reason or "").startswith("OutOf")
    }
    assert out_of == {}


def test_smt_odd_planned_only_when_a_whole_core_could_be_free():
    """Two sockets of two 2-thread cores, reservedSystemCPUs 0, full-pcpus-only, best-effort:
    toobig (6 CPUs) is admitted in phase C and leaves a single CPU, no whole core, so smt-odd
    is not planned; the memory pods then get phase D."""
    topology = generate(2, 1, 2, 2, "4Gi", {"2Mi": 64}, cpu_numbering="qemu")
    override = dict(VARIANTS["full-pcpus"], topologyManagerPolicy="best-effort")
    c = node_case(topology, load_lab_profile("default").kubelet, override)
    assert steps_of(c, "toobig").admitted
    assert phase_names(c, "C") == ["toobig"] and "smt-odd" not in c.plan.pods()
    assert phase_names(c, "D") == ["big-0", "big-1", "nomem"]
    assert not any((s.reason or "").startswith("OutOf") for s in c.prediction.pods.values())
    _assert_phases(c)
    # The same node under single-numa-node rejects toobig: a whole core is free for smt-odd.
    override["topologyManagerPolicy"] = "single-numa-node"
    c = node_case(topology, load_lab_profile("default").kubelet, override)
    assert phase_names(c, "C") == ["toobig", "smt-odd", "big-0", "big-1", "nomem"]
    assert steps_of(c, "smt-odd").reason == "SMTAlignmentError"
    _assert_phases(c)


def test_nomem_left_out_reason_is_a_hardware_skip():
    """nine-numa's 512Mi nodes cannot be filled but 256Mi: nomem is left out for a hardware
    reason, not one that blocks the verdict (needs-memory was unknown to reports/skips.py
    before d2f6cb1, so the node could only be INCOMPLETE)."""
    from numacert.reports.skips import SkipClass, skip_class

    c = case("nine-numa", "snn-container")
    reason = c.plan.left_out["nomem"]
    assert skip_class(reason) == SkipClass.HARDWARE
