"""The kubelet's node-level resource admission in the oracle (numacert.oracle.admission and its
use by NodeModel): worked examples of reasons and messages, the order against the resource
managers' handler, what "used" counts, the scenario's node section, and the property that the
oracle never admits pods whose summed requests exceed the allocatable.

Facts from k8s.io/kubernetes v1.37.2: pkg/kubelet/lifecycle/predicate.go:81-88, 212-231,
396-399 (reasons and message), pkg/scheduler/framework/plugins/noderesources/fit.go:300-319
(the PodRequests example), 710-799 (order), pkg/kubelet/kubelet.go:1097-1185 (handler order).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numacert.errors import InputError
from numacert.kubelet.parse import from_dict
from numacert.oracle.admission import (
    INSUFFICIENT_RESOURCE,
    NotModelledError,
    check_fit,
    derive_allocatable,
    pod_requests,
    reason_for,
)
from numacert.oracle.node import NodeModel
from numacert.oracle.pod import pod_from_manifest
from numacert.oracle.predict import StepError, predict
from numacert.scenario import AddStep, DeleteStep, load_scenario, scenario_from_dict
from numacert.topology.generate import generate

GI, MI = 1 << 30, 1 << 20

# 1 socket, 1 NUMA node, 4 cores x 2 threads, 8Gi, 64 x 2Mi hugepages.
TOPO = generate(1, 1, 4, 2, "8Gi", {"2Mi": 64})
# cpu 8000m - 1000m; memory 8Gi - (1Gi + 100Mi eviction) - 128Mi hugepages; 128Mi of 2Mi pages
NONE_CFG = {"systemReserved": {"cpu": "1", "memory": "1Gi"}}
ALLOC = {"cpu": 7000, "memory": 8 * GI - GI - 100 * MI - 128 * MI, "hugepages-2Mi": 128 * MI}


def cfg(**kw):
    return from_dict({**NONE_CFG, **kw})


def manifest(name, *containers, init=(), **spec):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": list(containers), "initContainers": list(init), **spec},
    }


def ctr(name="c", requests=None, limits=None, sidecar=False):
    c = {"name": name, "resources": {}}
    if requests:
        c["resources"]["requests"] = requests
    if limits:
        c["resources"]["limits"] = limits
    if sidecar:
        c["restartPolicy"] = "Always"
    return c


def pod(name, *containers, init=(), **spec):
    return pod_from_manifest(manifest(name, *containers, init=init, **spec))


def burstable(name, cpu="0", memory="0", **more):
    return pod(name, ctr(requests={"cpu": cpu, "memory": memory, **more}))


# ---- allocatable ------------------------------------------------------------------------------
def test_derived_allocatable():
    assert derive_allocatable(TOPO, cfg()) == {**ALLOC, "pods": 110}


def test_derived_allocatable_reserved_cpus_and_pods():
    c = from_dict(
        {
            "reservedSystemCPUs": "0,4",
            "kubeReserved": {"cpu": "3", "hugepages-2Mi": "32Mi"},
            "evictionHard": {"memory.available": "200Mi"},
            "maxPods": 250,
            "podsPerCore": 10,
        }
    )
    a = derive_allocatable(TOPO, c)
    # reservedSystemCPUs replaces kubeReserved.cpu + systemReserved.cpu
    assert a["cpu"] == 6000
    assert a["memory"] == 8 * GI - 200 * MI - 128 * MI
    assert a["hugepages-2Mi"] == 96 * MI
    assert a["pods"] == 80  # min(8 CPUs x 10, 250)


def test_node_model_allocatable_overrides_resource_by_resource():
    node = NodeModel(TOPO, cfg(), allocatable={"cpu": 2500, "pods": 3})
    assert node.allocatable == {**ALLOC, "cpu": 2500, "pods": 3}
    with pytest.raises(ValueError, match="non-negative integer"):
        NodeModel(TOPO, cfg(), allocatable={"cpu": -1})


# ---- reasons and messages ---------------------------------------------------------------------
def test_out_of_cpu_message():
    node = NodeModel(TOPO, cfg())
    assert node.add(burstable("a", cpu="4")).admitted
    assert node.add(burstable("b", cpu="3")).admitted
    r = node.add(burstable("c", cpu="500m"))
    assert (r.admitted, r.reason) == (False, "OutOfcpu")
    assert r.message == (
        "Node didn't have enough resource: cpu, requested: 500, used: 7000, capacity: 7000"
    )
    assert r.containers == {}
    # a pod that requests no cpu still fits
    assert node.add(burstable("d", memory="1Gi")).admitted
    # deleting frees the request
    node.delete("b")
    assert node.add(burstable("c", cpu="3")).admitted


def test_out_of_memory_and_hugepages_messages_are_in_bytes():
    node = NodeModel(TOPO, cfg())
    r = node.add(burstable("m", memory="7Gi"))
    assert (r.reason, r.message) == (
        "OutOfmemory",
        f"Node didn't have enough resource: memory, requested: {7 * GI}, used: 0, "
        f"capacity: {ALLOC['memory']}",
    )
    hp = {"cpu": "1", "memory": "64Mi", "hugepages-2Mi": "256Mi"}
    r = node.add(pod("h", ctr(limits=hp)))
    assert (r.reason, r.message) == (
        "OutOfhugepages-2Mi",
        f"Node didn't have enough resource: hugepages-2Mi, requested: {256 * MI}, used: 0, "
        f"capacity: {128 * MI}",
    )
    # a page size the node does not have: capacity 0
    r = node.add(pod("g", ctr(limits={"cpu": "1", "memory": "64Mi", "hugepages-1Gi": "1Gi"})))
    assert r.reason == "OutOfhugepages-1Gi"
    assert r.message.endswith(f"requested: {GI}, used: 0, capacity: 0")


def test_out_of_pods():
    node = NodeModel(TOPO, cfg(), allocatable={"pods": 2})
    assert node.add(pod("a", ctr())).admitted
    assert node.add(pod("b", ctr())).admitted
    r = node.add(pod("c", ctr()))
    assert (r.reason, r.message) == (
        "OutOfpods",
        "Node didn't have enough resource: pods, requested: 1, used: 2, capacity: 2",
    )


def test_first_failure_in_the_kubelets_order_is_reported():
    # pods, then cpu, then memory, then hugepages
    alloc = {"cpu": 1000, "memory": GI, "hugepages-2Mi": 0, "pods": 10}
    big = {"cpu": 2000, "memory": 2 * GI, "hugepages-2Mi": 2 * MI}
    assert check_fit(big, {}, 0, alloc).reason == "OutOfcpu"
    assert check_fit({**big, "cpu": 1000}, {}, 0, alloc).reason == "OutOfmemory"
    assert check_fit({**big, "cpu": 1, "memory": 1}, {}, 0, alloc).reason == "OutOfhugepages-2Mi"
    assert check_fit(big, {}, 10, alloc).reason == "OutOfpods"
    assert check_fit({"cpu": 1000}, {"cpu": 0}, 0, alloc) is None  # request == free fits
    # ephemeral storage and extended resources only when the allocatable names them
    assert check_fit({"ephemeral-storage": GI, "example.com/gpu": 1}, {}, 0, alloc) is None
    assert (
        check_fit({"ephemeral-storage": GI}, {}, 0, {"ephemeral-storage": 0}).reason
        == "OutOfephemeral-storage"
    )
    assert check_fit({"example.com/gpu": 2}, {}, 0, {"example.com/gpu": 1}).reason == (
        "OutOfexample.com/gpu"
    )


def test_reason_names():
    assert [reason_for(r) for r in ("cpu", "memory", "pods", "hugepages-1Gi")] == [
        "OutOfcpu",
        "OutOfmemory",
        "OutOfpods",
        "OutOfhugepages-1Gi",
    ]
    assert INSUFFICIENT_RESOURCE.format("cpu", 1, 2, 3) == (
        "Node didn't have enough resource: cpu, requested: 1, used: 2, capacity: 3"
    )


# ---- what a pod requests ----------------------------------------------------------------------
def test_pod_requests_fit_go_example():
    # fit.go:300-319: IC1 2 cpu/1G, IC2 2 cpu/3G; C1 2 cpu/1G, C2 1 cpu/1G -> cpu 3, memory 3G
    p = pod(
        "p",
        ctr("c1", {"cpu": "2", "memory": "1G"}),
        ctr("c2", {"cpu": "1", "memory": "1G"}),
        init=[ctr("i1", {"cpu": "2", "memory": "1G"}), ctr("i2", {"cpu": "2", "memory": "3G"})],
    )
    assert pod_requests(p) == {"cpu": 3000, "memory": 3 * 10**9}


def test_pod_requests_sidecars_and_overhead():
    # sidecar s (1 cpu) runs next to app (2) -> 3; regular init after it: 1 + 5 -> 6 wins
    p = pod(
        "p",
        ctr("app", {"cpu": "2"}),
        init=[ctr("s", {"cpu": "1"}, sidecar=True), ctr("i", {"cpu": "5"})],
        overhead={"cpu": "250m", "memory": "64Mi"},
    )
    assert pod_requests(p) == {"cpu": 6250, "memory": 64 * MI}
    # init before the sidecar: only 5
    p = pod(
        "p",
        ctr("app", {"cpu": "2"}),
        init=[ctr("i", {"cpu": "5"}), ctr("s", {"cpu": "1"}, sidecar=True)],
    )
    assert pod_requests(p) == {"cpu": 5000}
    # limits only: the API defaults requests to limits
    assert pod_requests(pod("q", ctr(limits={"cpu": "2", "memory": "1Gi"}))) == {
        "cpu": 2000,
        "memory": GI,
    }


def test_pod_level_resources_replace_container_requests_from_134():
    p = pod(
        "p",
        ctr("a", {"cpu": "1", "memory": "1Gi"}),
        resources={"requests": {"cpu": "4"}, "limits": {"cpu": "4", "memory": "2Gi"}},
    )
    # cpu from spec.resources.requests; memory: the containers request it, so the API defaults
    # the pod-level request to their sum
    assert pod_requests(p) == {"cpu": 4000, "memory": GI}
    assert pod_requests(p, k8s_minor=34) == {"cpu": 4000, "memory": GI}
    # PodLevelResources is off before 1.34: container requests only
    assert pod_requests(p, k8s_minor=33) == {"cpu": 1000, "memory": GI}
    only_limits = pod("q", ctr("a"), resources={"limits": {"cpu": "2", "memory": "1Gi"}})
    assert pod_requests(only_limits) == {"cpu": 2000, "memory": GI}


# ---- order against the resource managers ------------------------------------------------------
STATIC = {
    "cpuManagerPolicy": "static",
    "reservedSystemCPUs": "0,4",
    "systemReserved": {"memory": "1Gi"},
}


def guaranteed(name, cpu, memory="256Mi"):
    return pod(name, ctr(limits={"cpu": cpu, "memory": memory}))


def test_resource_managers_reason_wins_when_both_reject():
    node = NodeModel(TOPO, from_dict(STATIC))
    assert node.allocatable["cpu"] == 6000
    # 8 exclusive CPUs on 6 free: the CPU Manager rejects first; the fit would too
    r = node.add(guaranteed("big", "8"))
    assert r.reason == "UnexpectedAdmissionError"
    assert "not enough cpus available to satisfy request" in r.message


def test_fit_rejects_after_the_cpu_manager_allocated_and_releases_the_cpus():
    node = NodeModel(TOPO, from_dict(STATIC))
    # Burstable pods take allocatable cpu but no exclusive CPUs
    assert node.add(burstable("b", cpu="5")).admitted
    before = node.state()
    r = node.add(guaranteed("g", "2"))
    assert (r.admitted, r.reason) == (False, "OutOfcpu")
    assert r.message == (
        "Node didn't have enough resource: cpu, requested: 2000, used: 5000, capacity: 6000"
    )
    # the CPUs the CPU Manager handed out are garbage-collected: the rejected pod is inactive
    assert node.state() == before
    assert node.add(guaranteed("g1", "1")).containers["c"].exclusive


def test_topology_manager_reason_wins():
    c = from_dict({**STATIC, "topologyManagerPolicy": "single-numa-node"})
    two = generate(2, 1, 2, 2, "4Gi", {"2Mi": 0})  # 2 NUMA nodes x 4 CPUs
    node = NodeModel(two, c, allocatable={"cpu": 1000})
    r = node.add(guaranteed("g", "5"))
    assert r.reason == "TopologyAffinityError"


# ---- used: starting state, critical pods ------------------------------------------------------
def test_pods_of_the_starting_state_count_with_what_their_entries_hold():
    state = {
        "policyName": "static",
        "defaultCpuSet": "0,3-7",
        "entries": {"running": {"app": "1-2"}},
    }
    node = NodeModel(TOPO, from_dict(STATIC), state, allocatable={"pods": 2})
    assert node.used() == {"cpu": 2000}
    r = node.add(burstable("b", cpu="4500m"))
    assert r.message == (
        "Node didn't have enough resource: cpu, requested: 4500, used: 2000, capacity: 6000"
    )
    assert node.add(burstable("b", cpu="4")).admitted
    assert node.add(pod("c", ctr())).reason == "OutOfpods"
    node.delete("running")
    assert node.used() == {"cpu": 4000, "memory": 0}


@pytest.mark.parametrize(
    "spec",
    [
        {"priorityClassName": "system-node-critical"},
        {"priorityClassName": "system-cluster-critical"},
        {"priority": 2_000_000_000},
    ],
)
def test_critical_pod_that_does_not_fit_is_not_modelled(spec):
    node = NodeModel(TOPO, cfg())
    assert node.add(burstable("a", cpu="7")).admitted
    crit = pod("crit", ctr(requests={"cpu": "1"}), **spec)
    assert crit.critical
    with pytest.raises(NotModelledError, match="evict other pods"):
        node.add(crit)
    # critical pods that fit are admitted as any other
    node.delete("a")
    assert node.add(crit).admitted
    assert not pod("x", ctr(), priority=1000).critical


def test_predict_turns_not_modelled_into_a_step_error():
    steps = [
        AddStep(burstable("a", cpu="7")),
        AddStep(pod("crit", ctr(requests={"cpu": "1"}), priorityClassName="system-node-critical")),
    ]
    with pytest.raises(StepError) as exc:
        predict(TOPO, cfg(), steps)
    assert exc.value.index == 1


def test_predict_and_node_model_keep_their_positional_api():
    steps = [AddStep(burstable("a", cpu="7")), AddStep(burstable("b", cpu="1")), DeleteStep("a")]
    out = predict(TOPO, cfg(), steps, None, None)
    assert [s["admitted"] for s in out["steps"]] == [True, False, None]
    out = predict(TOPO, cfg(), steps, allocatable={"cpu": 9000})
    assert [s["admitted"] for s in out["steps"]] == [True, True, None]
    assert NodeModel(TOPO, cfg(), None, None).allocatable["cpu"] == 7000


# ---- scenario file ----------------------------------------------------------------------------
SCENARIO = {
    "topology": {
        "generate": {
            "sockets": 1,
            "numa_per_socket": 1,
            "cores_per_numa": 4,
            "threads_per_core": 2,
            "memory_per_numa": "8Gi",
            "hugepages_per_numa": {"2Mi": 64},
        }
    },  # fmt: skip
    "kubelet": NONE_CFG,
    "steps": [],
}


def test_scenario_node_allocatable():
    sc = scenario_from_dict(
        {
            **SCENARIO,
            "node": {
                "allocatable": {
                    "cpu": "7",
                    "memory": "7Gi",
                    "hugepages-2048Ki": "128Mi",
                    "pods": 20,
                    "example.com/gpu": 2,
                }
            },
        },
        "s.yaml",
    )
    assert sc.allocatable == {
        "cpu": 7000,
        "memory": 7 * GI,
        "hugepages-2Mi": 128 * MI,
        "pods": 20,
        "example.com/gpu": 2,
    }
    assert scenario_from_dict(SCENARIO, "s.yaml").allocatable is None
    assert scenario_from_dict({**SCENARIO, "node": {}}, "s.yaml").allocatable is None


@pytest.mark.parametrize(
    "node,where,what",
    [
        ("x", "s.yaml: node", "node must be a mapping"),
        ({"capacity": {}}, "s.yaml: node.capacity", "unknown key"),
        ({"allocatable": [1]}, "s.yaml: node", "allocatable must be a mapping"),
        ({"allocatable": {"cpu": "lots"}}, "s.yaml: node.allocatable.cpu", "not a quantity"),
        ({"allocatable": {"memory": "-1Gi"}}, "s.yaml: node.allocatable.memory", "negative"),
        ({"allocatable": {"gpu": 1}}, "s.yaml: node.allocatable.gpu", "unknown resource"),
        (
            {"allocatable": {"hugepages-big": "1Gi"}},
            "s.yaml: node.allocatable.hugepages-big",
            "not a hugepage size",
        ),
        ({"allocatable": {"pods": True}}, "s.yaml: node.allocatable.pods", "not a quantity"),
    ],
)
def test_scenario_node_errors_name_the_field(node, where, what):
    with pytest.raises(InputError) as exc:
        scenario_from_dict({**SCENARIO, "node": node}, "s.yaml")
    assert exc.value.where == where
    assert what in exc.value.what


# ---- property: never more than the allocatable ------------------------------------------------
SETTINGS = settings(
    max_examples=int(os.environ.get("NUMACERT_HYPOTHESIS_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CPUS = ["0", "100m", "500m", "1", "2", "3"]
MEMS = ["0", "64Mi", "256Mi", "1Gi"]
HPS = ["0", "2Mi", "8Mi"]


@st.composite
def containers(draw, name):
    guaranteed = draw(st.booleans())
    res = {"cpu": draw(st.sampled_from(CPUS)), "memory": draw(st.sampled_from(MEMS))}
    if draw(st.booleans()):
        res["hugepages-2Mi"] = draw(st.sampled_from(HPS))
    return ctr(name, limits=res) if guaranteed else ctr(name, requests=res)


@st.composite
def any_pod(draw, index):
    apps = [draw(containers(f"c{i}")) for i in range(draw(st.integers(1, 2)))]
    inits = []
    for i in range(draw(st.integers(0, 2))):
        c = draw(containers(f"i{i}"))
        if draw(st.booleans()):
            c["restartPolicy"] = "Always"
        inits.append(c)
    spec = {}
    if draw(st.booleans()):
        spec["overhead"] = {"cpu": "100m", "memory": "16Mi"}
    return pod(f"p{index}", *apps, init=inits, **spec)


def by_hand(p) -> dict[str, int]:
    """PodRequests written out independently: max(apps + sidecars, each init step)."""
    out: dict[str, int] = {}

    def reqs(c):
        r = dict(c.requests)
        if c.cpu_request is not None:
            r["cpu"] = c.cpu_request
        return r

    names = {k for c in p.all_containers() for k in reqs(c)} | set(p.overhead)
    for k in names:
        steady = sum(reqs(c).get(k, 0) for c in p.containers)
        steady += sum(reqs(c).get(k, 0) for c in p.init_containers if c.sidecar)
        peak, sidecars = 0, 0
        for c in p.init_containers:
            if c.sidecar:
                sidecars += reqs(c).get(k, 0)
                peak = max(peak, sidecars)
            else:
                peak = max(peak, sidecars + reqs(c).get(k, 0))
        out[k] = max(steady, peak) + p.overhead.get(k, 0)
    return out


@SETTINGS
@given(st.data())
def test_never_admits_more_than_allocatable(data):
    topo = generate(
        data.draw(st.integers(1, 2)), 1, data.draw(st.integers(1, 3)), 2, "2Gi", {"2Mi": 8}
    )
    static = data.draw(st.booleans())
    config = from_dict(
        {
            "cpuManagerPolicy": "static" if static else "none",
            "reservedSystemCPUs": "0",
            "systemReserved": {"memory": "256Mi"},
        }
    )
    override = data.draw(
        st.fixed_dictionaries(
            {},
            optional={
                "cpu": st.integers(0, 6000),
                "memory": st.integers(0, 3 * GI),
                "hugepages-2Mi": st.integers(0, 32 * MI),
                "pods": st.integers(0, 6),
            },
        )
    )
    node = NodeModel(topo, config, allocatable=override)
    alloc = node.allocatable
    active: dict[str, dict[str, int]] = {}
    for i in range(data.draw(st.integers(1, 10))):
        if active and data.draw(st.integers(0, 3)) == 0:
            name = data.draw(st.sampled_from(sorted(active)))
            node.delete(name)
            del active[name]
            continue
        p = data.draw(any_pod(i))
        assert pod_requests(p) == by_hand(p)
        result = node.add(p)
        if result.admitted:
            active[p.name] = by_hand(p)
        elif result.reason.startswith("OutOf"):
            resource = result.reason[len("OutOf") :]
            assert resource in alloc or resource.startswith("hugepages-")
        total: dict[str, int] = {}
        for r in active.values():
            for k, v in r.items():
                total[k] = total.get(k, 0) + v
        for k, v in total.items():
            if k in alloc:
                assert v <= alloc[k], (k, v, alloc[k])
        assert len(active) <= alloc["pods"]


# ---- a worked scenario ------------------------------------------------------------------------
DATA = Path(__file__).parent / "data" / "oracle"


def test_worked_scenario():
    """tests/unit/data/oracle/allocatable.yaml: each rejection's reason and message, checked
    by hand in the file's comments; the expected output is stored next to it."""
    sc = load_scenario(DATA / "allocatable.yaml")
    out = predict(
        sc.topology,
        sc.kubelet,
        sc.steps,
        sc.cpu_state,
        sc.memory_state,
        allocatable=sc.allocatable,
        k8s_minor=sc.k8s_minor,
    )
    assert out == json.loads((DATA / "allocatable.expected.json").read_text())
    decided = [(s["pod"], s["reason"]) for s in out["steps"] if not s["admitted"]]
    assert decided == [
        ("db", "OutOfcpu"),
        ("batch", "OutOfmemory"),
        ("hp", "OutOfhugepages-2Mi"),
        ("idle3", "OutOfpods"),
    ]
    db = out["steps"][1]
    assert db["message"] == (
        "Node didn't have enough resource: cpu, requested: 4000, used: 3000, capacity: 5500"
    )
    # db's CPUs went back before cache was admitted
    assert out["steps"][2]["containers"]["c"]["cpus"] == "1,5"


def test_pod_manifest_errors():
    with pytest.raises(InputError) as exc:
        pod("p", ctr(), priority="high")
    assert exc.value.where == "pod.spec.priority"
    with pytest.raises(InputError) as exc:
        pod("p", ctr(), overhead={"cpu": "lots"})
    assert exc.value.where == "pod.spec.overhead"
    with pytest.raises(InputError) as exc:
        pod("p", ctr(), resources=["cpu"])
    assert exc.value.where == "pod.spec.resources"
