"""The oracle against the real kubelet: the same pod sequence on the lab node and in
`oracle.predict`, step by step, container by container.

Each sequence mixes what the managers treat differently (hugepages, init containers whose CPUs
are reused, sidecars whose CPUs are not, Burstable pods on the shared pool, multi-container
pods, memory that fits no NUMA node any more) so that a disagreement names the behaviour the
oracle gets wrong, or the kubelet does. It also checks on a live kubelet what
kubelet-algorithms.md §8 leaves open (§8.4: memory that no NUMA node can give any more is a
Memory Manager rejection, UnexpectedAdmissionError, not a Topology Manager one).
"""

from __future__ import annotations

import pytest

from numacert.cpuset import CPUSet
from numacert.lab.lab import NODE_NAME, Lab
from numacert.oracle.predict import predict_manifests
from numacert.probes.kube import (
    REPORT,
    REPORT_AND_EXIT,
    container,
    container_view,
    pod_manifest,
    run_pod,
    temporary_namespace,
)
from numacert.topology.model import Topology

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def guaranteed(cpu: str, memory: str = "64Mi", **extra: str) -> dict:
    return {"cpu": cpu, "memory": memory, **extra}


SEQUENCE_CONTAINER_SCOPE = [
    pod_manifest("hp", [container("c", guaranteed("1", "128Mi", **{"hugepages-2Mi": "32Mi"}))]),
    pod_manifest("big1", [container("c", guaranteed("1", "3Gi"))]),
    pod_manifest("big2", [container("c", guaranteed("1", "3Gi"))]),
    # Neither node has 1Gi free any more and both hold single-NUMA allocations, so no mask
    # qualifies for memory: the Topology Manager sees no memory preference and admits, the
    # Memory Manager's Allocate cannot extend the CPU-aligned hint and rejects.
    pod_manifest("nomemory", [container("c", guaranteed("1", "1Gi"))]),
    pod_manifest(
        "initreuse",
        [container("app", guaranteed("1"))],
        init_containers=[container("init", guaranteed("2"), command=REPORT_AND_EXIT)],
    ),
    pod_manifest(
        "sidecar",
        [container("app", guaranteed("1"))],
        init_containers=[
            dict(container("side", guaranteed("1"), command=REPORT), restartPolicy="Always")
        ],
    ),
    pod_manifest("burstable", [container("c", requests={"cpu": "100m", "memory": "32Mi"})]),
    pod_manifest("toomany", [container("c", guaranteed("4"))]),
]

SEQUENCE_POD_SCOPE = [
    pod_manifest("two", [container("a", guaranteed("1")), container("b", guaranteed("1"))]),
    pod_manifest("mixed", [container("a", guaranteed("2")), container("b", guaranteed("500m"))]),
    pod_manifest("rest", [container("c", guaranteed("2"))]),
    pod_manifest("nofit", [container("a", guaranteed("1")), container("b", guaranteed("1"))]),
]


def observe(api, namespace: str, manifest: dict) -> dict:
    """What the kubelet did with one pod, in the shape of an oracle step."""
    pod = run_pod(api, namespace, manifest, NODE_NAME)
    name = manifest["metadata"]["name"]
    if pod.status.phase == "Failed":
        return {
            "admitted": False,
            "reason": pod.status.reason,
            "message": (pod.status.message or "").removeprefix("Pod was rejected: "),
            "containers": {},
        }
    assert pod.status.phase == "Running", (name, pod.status)
    names = [c["name"] for c in manifest["spec"].get("initContainers", [])]
    names += [c["name"] for c in manifest["spec"]["containers"]]
    views = {c: container_view(api, namespace, name, c) for c in names}
    return {"admitted": True, "reason": None, "message": None, "containers": views}


def compare(topology: Topology, predicted: dict, observed: dict, pod: str) -> list[str]:
    """Differences between one predicted step and one observed step, in words."""
    problems = []
    for key in ("admitted", "reason", "message"):
        if predicted[key] != observed[key]:
            problems.append(f"{pod}: {key} predicted {predicted[key]!r}, kubelet {observed[key]!r}")
    if not observed["admitted"] or not predicted["admitted"]:
        return problems
    for name, want in predicted["containers"].items():
        seen = observed["containers"][name]
        if CPUSet.parse(want["cpus"]) != seen.cpus:
            problems.append(f"{pod}/{name}: cpus predicted {want['cpus']}, kubelet {seen.cpus}")
        mems = CPUSet.parse(want["mems"]) if want["mems"] else CPUSet(topology.numa_ids)
        if mems != seen.mems:
            problems.append(f"{pod}/{name}: mems predicted {want['mems']}, kubelet {seen.mems}")
    return problems


def replay_and_compare(lab: Lab, api, topology: Topology, manifests: list[dict]) -> list[str]:
    predicted = predict_manifests(topology, lab.running_config(), manifests)
    problems: list[str] = []
    with temporary_namespace(api) as namespace:
        for manifest, step in zip(manifests, predicted, strict=True):
            observed = observe(api, namespace, manifest)
            problems += compare(topology, step, observed, manifest["metadata"]["name"])
    return problems


def test_container_scope_sequence_matches_the_oracle(lab: Lab, lab_api, guest_topology: Topology):
    predicted = predict_manifests(guest_topology, lab.running_config(), SEQUENCE_CONTAINER_SCOPE)
    # The sequence exercises what it claims to (on the default lab profile).
    outcome = {
        m["metadata"]["name"]: s for m, s in zip(SEQUENCE_CONTAINER_SCOPE, predicted, strict=True)
    }
    assert outcome["nomemory"]["reason"] == "UnexpectedAdmissionError"
    assert outcome["toomany"]["reason"] == "TopologyAffinityError"
    assert outcome["hp"]["containers"]["c"]["mems"] is not None
    problems = replay_and_compare(lab, lab_api, guest_topology, SEQUENCE_CONTAINER_SCOPE)
    assert problems == []


def test_pod_scope_restricted_sequence_matches_the_oracle(
    lab: Lab, lab_api, guest_topology, kubelet_policy
):
    with kubelet_policy({"topologyManagerPolicy": "restricted", "topologyManagerScope": "pod"}):
        predicted = predict_manifests(guest_topology, lab.running_config(), SEQUENCE_POD_SCOPE)
        assert any(not step["admitted"] for step in predicted)
        problems = replay_and_compare(lab, lab_api, guest_topology, SEQUENCE_POD_SCOPE)
    assert problems == []
