"""Property tests of the whole oracle (Topology Manager + CPU Manager + Memory Manager through
NodeModel) over generated topologies, policies and pod sequences.

Invariants (issue 2): exclusive CPU sets are pairwise disjoint and disjoint from the reserved
CPUs; shared pool, exclusive sets (and reserved CPUs under strict-cpu-reservation) partition the
online CPUs; under single-numa-node every aligned resource of an admitted pod sits on one NUMA
node; releasing every pod returns the initial state; predictions are deterministic.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from numacert.kubelet.parse import from_dict
from numacert.kubelet.validate import derive_reserved_memory, errors, validate
from numacert.oracle.node import NodeModel
from numacert.oracle.pod import pod_from_manifest
from numacert.topology.generate import generate

SETTINGS = settings(
    # NUMACERT_HYPOTHESIS_EXAMPLES=1500 for a long run (passes: 3 x 1500 in 30 s).
    max_examples=int(os.environ.get("NUMACERT_HYPOTHESIS_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def topologies(draw):
    return generate(
        sockets=draw(st.integers(1, 2)),
        numa_per_socket=draw(st.integers(1, 2)),
        cores_per_numa=draw(st.integers(1, 4)),
        threads_per_core=draw(st.integers(1, 2)),
        memory_per_numa=draw(st.sampled_from(["1Gi", "2Gi", "4Gi"])),
        hugepages_per_numa={"2Mi": draw(st.sampled_from([0, 16, 64]))},
        cpu_numbering=draw(st.sampled_from(["linux", "qemu"])),
    )


CPU_OPTIONS = [
    "full-pcpus-only",
    "strict-cpu-reservation",
    "distribute-cpus-across-numa",
    "distribute-cpus-across-cores",
    "align-by-socket",
    "prefer-align-cpus-by-uncorecache",
]


@st.composite
def configs(draw, topology):
    data = {
        "cpuManagerPolicy": "static",
        "reservedSystemCPUs": draw(st.sampled_from(["0", "0-1"])),
        "topologyManagerPolicy": draw(
            st.sampled_from(["none", "best-effort", "restricted", "single-numa-node"])
        ),
        "topologyManagerScope": draw(st.sampled_from(["container", "pod"])),
        "memoryManagerPolicy": draw(st.sampled_from(["None", "Static"])),
        "systemReserved": {"memory": "128Mi"},
    }
    options = draw(st.sets(st.sampled_from(CPU_OPTIONS), max_size=2))
    if options:
        data["cpuManagerPolicyOptions"] = {o: "true" for o in sorted(options)}
        data["featureGates"] = {"CPUManagerPolicyAlphaOptions": True}
    if draw(st.booleans()):
        data["topologyManagerPolicyOptions"] = {"prefer-closest-numa-nodes": "true"}
    config = from_dict(data, "generated")
    if config.memory_manager_policy == "Static":
        config.reserved_memory = derive_reserved_memory(config, topology)
    # Combinations the kubelet refuses to start with are not scenarios.
    assume(not errors(validate(config, topology, 37)))
    return config


def _container(name, draw, guaranteed: bool, hugepages: bool):
    if not guaranteed:
        kind = draw(st.sampled_from(["burstable", "besteffort"]))
        if kind == "besteffort":
            return {"name": name}
        return {"name": name, "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}}}
    cpu = draw(st.sampled_from(["1", "2", "3", "4", "500m"]))
    limits = {"cpu": cpu, "memory": draw(st.sampled_from(["64Mi", "256Mi", "768Mi"]))}
    if hugepages and draw(st.booleans()):
        limits["hugepages-2Mi"] = draw(st.sampled_from(["4Mi", "32Mi"]))
    return {"name": name, "resources": {"limits": limits}}


@st.composite
def pods(draw, index: int):
    guaranteed = draw(st.booleans())
    n = draw(st.integers(1, 2))
    containers = [_container(f"c{i}", draw, guaranteed, True) for i in range(n)]
    spec = {"containers": containers}
    if guaranteed and draw(st.booleans()):
        init = _container("init", draw, True, True)
        if draw(st.booleans()):
            init["restartPolicy"] = "Always"  # a sidecar
        spec["initContainers"] = [init]
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{index}"}, "spec": spec}
    return pod_from_manifest(manifest)


@st.composite
def scenarios(draw):
    topology = draw(topologies())
    config = draw(configs(topology))
    ops = []
    for i in range(draw(st.integers(1, 12))):
        if i and draw(st.integers(0, 3)) == 0:
            ops.append(("delete", draw(st.integers(0, i - 1))))
        else:
            ops.append(("add", draw(pods(i))))
    return topology, config, ops


def replay(topology, config, ops):
    """Run ops on a fresh node; return the node, the step results and the checks' inputs."""
    node = NodeModel(topology, config)
    results = []
    for op, arg in ops:
        if op == "add":
            results.append(node.add(arg).to_dict())
        else:
            name = f"p{arg}"
            if name in node.pods:
                results.append(node.delete(name).to_dict())
        check_invariants(node)
    return node, results


def check_invariants(node: NodeModel) -> None:
    cpu, topology = node.cpu, node.topology
    shared = cpu.shared_pool()
    seen: dict[int, str] = {}
    exclusive_union: set[int] = set()
    strict = node.config.cpu_option("strict-cpu-reservation")
    for pod in node.pods.values():
        # App containers and sidecars hold CPUs at the same time; regular init containers' CPUs
        # may be reused by the same pod's app containers, so they are not compared.
        for c in pod.all_containers():
            cpus = cpu.exclusive_cpus(pod.uid, c.name)
            if cpus is None:
                continue
            assert not (cpus & cpu.reserved), (c.name, cpus, cpu.reserved)
            assert not (cpus & shared), (c.name, cpus, shared)
            exclusive_union |= cpus
            if c.init and not c.sidecar:
                continue
            for x in cpus:
                assert x not in seen, f"CPU {x} held by {seen[x]} and {pod.name}/{c.name}"
                seen[x] = f"{pod.name}/{c.name}"
    expected = set(topology.all_cpus)
    parts = set(shared) | exclusive_union | (set(cpu.reserved) if strict else set())
    assert parts == expected, (shared, exclusive_union, cpu.reserved)
    assert len(shared) + len(exclusive_union) + (len(cpu.reserved) if strict else 0) == len(
        expected
    )

    if node.config.topology_manager_policy == "single-numa-node":
        for pod in node.pods.values():
            nodes_of_pod: set[int] = set()
            for c in pod.all_containers():
                cpus = cpu.exclusive_cpus(pod.uid, c.name)
                mems = node.memory.allocated_mems(pod.uid, c.name)
                used = {topology.cpu_by_id[x].numa for x in cpus or ()}
                if mems:
                    used |= {int(m) for m in mems.split(",")}
                assert len(used) <= 1, (pod.name, c.name, used)
                nodes_of_pod |= used
            if node.config.topology_manager_scope == "pod":
                assert len(nodes_of_pod) <= 1, (pod.name, nodes_of_pod)


@SETTINGS
@given(scenarios())
def test_invariants_hold_after_every_step(scenario):
    topology, config, ops = scenario
    replay(topology, config, ops)


@SETTINGS
@given(scenarios())
def test_releasing_every_pod_returns_the_initial_state(scenario):
    topology, config, ops = scenario
    initial = NodeModel(topology, config).state()
    node, _ = replay(topology, config, ops)
    for name in list(node.pods):
        node.delete(name)
        check_invariants(node)
    assert node.state() == initial


@SETTINGS
@given(scenarios())
def test_predictions_are_deterministic(scenario):
    topology, config, ops = scenario
    first_node, first = replay(topology, config, ops)
    second_node, second = replay(topology, config, ops)
    assert first == second
    assert first_node.state() == second_node.state()
