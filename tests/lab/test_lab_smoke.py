"""Smoke tests of the whole lab: a real kubelet on the emulated 2-NUMA guest, joined to the
local control plane, against the oracle's predictions and the invariants they must meet.

The session's `lab` fixture (tests/lab/conftest.py) brings the lab up with the default profile
(static CPUs, single-numa-node, Memory Manager Static) unless it is already up with it, and puts
it back as it found it afterwards.
"""

from __future__ import annotations

import time

import pytest

from numacert.cpuset import CPUSet
from numacert.lab.lab import Lab
from numacert.lab.profile import load_lab_profile
from numacert.probes.kube import (
    besteffort_pod,
    container_view,
    delete_pod,
    guaranteed_pod,
    temporary_namespace,
    wait_event,
)
from numacert.topology.model import Topology
from tests.lab.conftest import (
    LAB_PROFILE,
    kubelet_policy,
    numa_nodes_of,
    oracle,
    run_pod,
    running_config,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_guest_topology_is_the_profile(guest_topology: Topology):
    profile = load_lab_profile(LAB_PROFILE).topology
    assert guest_topology.fingerprint() == profile.fingerprint(), (
        guest_topology.to_dict(),
        profile.to_dict(),
    )
    for seen, want in zip(guest_topology.numa_nodes, profile.numa_nodes, strict=True):
        assert seen.hugepages == want.hugepages
        # The kernel keeps a little of each node for itself.
        assert 0.85 * want.memory <= seen.memory <= want.memory


def test_node_reports_profile_capacity(lab: Lab, guest_topology: Topology):
    node = lab.node()
    capacity = node.status.capacity
    profile = load_lab_profile(LAB_PROFILE)
    assert int(capacity["cpu"]) == profile.topology.num_cpus
    pages = sum(n.hugepages.get(2 << 20, 0) for n in profile.topology.numa_nodes)
    assert capacity["hugepages-2Mi"] == f"{pages * 2}Mi"
    assert capacity["hugepages-1Gi"] == "0"
    memory_kib = int(capacity["memory"].removesuffix("Ki"))
    assert 0.85 * sum(profile.memory_per_numa.values()) <= memory_kib * 1024


def test_guaranteed_pod_gets_cpus_and_memory_of_one_numa_node(
    lab: Lab, api, namespace: str, guest_topology: Topology
):
    manifest = guaranteed_pod("g2", "2", "128Mi")
    pod = run_pod(api, namespace, manifest)
    assert pod.status.phase == "Running", pod.status
    view = container_view(api, namespace, "g2")
    assert len(view.cpus) == 2
    nodes = numa_nodes_of(guest_topology, view.cpus)
    assert len(nodes) == 1, f"CPUs {view.cpus} span NUMA nodes {nodes}"
    assert view.mems == nodes
    predicted = oracle(guest_topology, running_config(lab), [manifest])[0]
    assert predicted["containers"]["c"]["cpus"] == str(view.cpus)
    assert CPUSet.parse(predicted["containers"]["c"]["mems"]) == view.mems


def test_besteffort_pod_sees_shared_pool_and_all_nodes(
    lab: Lab, api, namespace: str, guest_topology: Topology
):
    pinned = guaranteed_pod("g2", "2", "128Mi")
    run_pod(api, namespace, pinned)
    exclusive = container_view(api, namespace, "g2").cpus
    # The shared pool shrinks on the next reconcile (cpuManagerReconcilePeriod 2s); a
    # container started now gets the pool as it is at its creation.
    time.sleep(3)
    manifest = besteffort_pod("be")
    pod = run_pod(api, namespace, manifest)
    assert pod.status.phase == "Running"
    view = container_view(api, namespace, "be")
    assert view.cpus == guest_topology.all_cpus - exclusive
    assert view.mems == set(guest_topology.numa_ids)
    predicted = oracle(guest_topology, running_config(lab), [pinned, manifest])[1]
    assert predicted["containers"]["c"]["cpus"] == str(view.cpus)
    assert predicted["containers"]["c"]["exclusive"] is False


def test_pod_larger_than_a_numa_node_is_rejected(
    lab: Lab, api, namespace: str, guest_topology: Topology
):
    per_node = max(len(c) for c in guest_topology.cpus_by_numa.values())
    allocatable = int(lab.node().status.allocatable["cpu"])
    request = per_node + 1
    assert request <= allocatable, "the profile leaves no room for this test"
    manifest = guaranteed_pod("toobig", str(request), "128Mi")
    pod = run_pod(api, namespace, manifest)
    assert pod.status.phase == "Failed"
    assert pod.status.reason == "TopologyAffinityError"
    assert pod.status.message == (
        "Pod was rejected: Resources cannot be allocated with Topology locality"
    )
    event = wait_event(api, namespace, "toobig", "TopologyAffinityError")
    assert event == (
        "Warning",
        "TopologyAffinityError",
        "Resources cannot be allocated with Topology locality",
    )
    predicted = oracle(guest_topology, running_config(lab), [manifest])[0]
    assert predicted["admitted"] is False and predicted["reason"] == pod.status.reason


def test_best_effort_policy_spreads_the_same_pod_over_two_nodes(
    lab: Lab, api, guest_topology: Topology
):
    per_node = max(len(c) for c in guest_topology.cpus_by_numa.values())
    manifest = guaranteed_pod("toobig", str(per_node + 1), "128Mi")
    with (
        kubelet_policy(lab, {"topologyManagerPolicy": "best-effort"}),
        temporary_namespace(api) as namespace,
    ):
        assert lab.kubelet_configz()["topologyManagerPolicy"] == "best-effort"
        pod = run_pod(api, namespace, manifest)
        assert pod.status.phase == "Running", pod.status
        view = container_view(api, namespace, "toobig")
        assert len(view.cpus) == per_node + 1
        assert numa_nodes_of(guest_topology, view.cpus) == set(guest_topology.numa_ids)
        predicted = oracle(guest_topology, running_config(lab), [manifest])[0]
        assert predicted["containers"]["c"]["cpus"] == str(view.cpus)
        # The oracle prints cpuset.mems as the kubelet writes it ("0,1"), the kernel prints
        # Mems_allowed_list as a range ("0-1"): compare the sets.
        assert CPUSet.parse(predicted["containers"]["c"]["mems"]) == view.mems
        delete_pod(api, namespace, "toobig")
