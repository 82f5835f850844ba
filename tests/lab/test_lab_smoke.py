"""Smoke tests of the whole lab: a real kubelet on the emulated 2-NUMA guest, joined to the
local control plane, against the oracle's predictions and the invariants they must meet.

The module brings the lab up with the default profile (static CPUs, single-numa-node, Memory
Manager Static) unless it is already up with it, and puts it back as it found it afterwards:
down if it started it, the original kubelet configuration otherwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import yaml
from numacert.fixtures.kube import (
    besteffort_pod,
    container_view,
    delete_pod,
    guaranteed_pod,
    temporary_namespace,
    wait_event,
    wait_pod,
)

from numacert.cpuset import CPUSet
from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.parse import from_dict
from numacert.lab.lab import NODE_NAME, Lab
from numacert.lab.profile import load_lab_profile
from numacert.oracle.pod import pod_from_manifest
from numacert.oracle.predict import predict
from numacert.scenario import AddStep
from numacert.topology.model import Topology
from numacert.topology.sysfs import collector_script, parse_snapshot
from tests.lab.conftest import require_lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PROFILE = "default"


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    require_lab(request)
    lab = Lab(progress=False)
    status = lab.status()
    original = lab.record if status["up"] else None
    if original is not None and original.profile != PROFILE:
        pytest.skip(
            f"a lab with profile {original.profile!r} is up; these tests need "
            f"{PROFILE!r} (numacert lab down first)"
        )
    if original is None:
        lab.footprint_before = _host_footprint()
        lab.started_by_tests = True
        lab.up(PROFILE)
    try:
        yield lab
    finally:
        if original is None:
            lab.down()  # harmless when test_lab_down_leaves_nothing already did it
        elif lab.record is not None and lab.record.kubelet_config != original.kubelet_config:
            lab.reconfigure(yaml.safe_load(original.kubelet_config), original.kubelet_source)


@pytest.fixture(scope="module")
def api(lab: Lab):
    return lab.core_api()


@pytest.fixture
def namespace(api) -> Iterator[str]:
    with temporary_namespace(api) as ns:
        yield ns


@pytest.fixture(scope="module")
def guest_topology(lab: Lab) -> Topology:
    """The topology the guest's kernel reports, read by numacert's own collector."""
    rc, out, err = lab.vm().ssh("sh -s", input=collector_script(), timeout=300)
    assert rc == 0, err
    return parse_snapshot(out, "lab guest sysfs")


def running_config(lab: Lab) -> KubeletConfig:
    return from_dict(yaml.safe_load(lab.record.kubelet_config), "lab kubelet configuration")


def run_pod(api, namespace: str, manifest: dict, timeout: float = 600.0):
    manifest = dict(manifest, spec=dict(manifest["spec"], nodeName=NODE_NAME))
    api.create_namespaced_pod(namespace, manifest)
    return wait_pod(api, namespace, manifest["metadata"]["name"], timeout)


def oracle(topology: Topology, config: KubeletConfig, manifests: list[dict]) -> list[dict]:
    steps = [AddStep(pod_from_manifest(m)) for m in manifests]
    return predict(topology, config, steps)["steps"]


def numa_nodes_of(topology: Topology, cpus) -> set[int]:
    return {topology.cpu_by_id[c].numa for c in cpus}


def test_guest_topology_is_the_profile(guest_topology: Topology):
    profile = load_lab_profile(PROFILE).topology
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
    profile = load_lab_profile(PROFILE)
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
    lab.reconfigure({"topologyManagerPolicy": "best-effort"}, "smoke test override")
    assert lab.kubelet_configz()["topologyManagerPolicy"] == "best-effort"
    per_node = max(len(c) for c in guest_topology.cpus_by_numa.values())
    manifest = guaranteed_pod("toobig", str(per_node + 1), "128Mi")
    with temporary_namespace(api) as namespace:
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


def _host_footprint() -> dict[str, set[str]]:
    """Processes, mounts and network devices a lab could leave behind on the host."""
    procs = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                comm = open(f"/proc/{pid}/comm").read().strip()
            except OSError:
                continue
            if comm.startswith(("qemu-system", "etcd", "kube-")):
                procs.add(f"{pid} {comm}")
    mounts = {line.split()[1] for line in open("/proc/self/mounts")}
    links = set(os.listdir("/sys/class/net"))
    return {"processes": procs, "mounts": mounts, "links": links}


def test_lab_down_leaves_nothing(lab: Lab, request: pytest.FixtureRequest):
    """Last in the module: `lab down` leaves no process, mount or network device behind."""
    if not getattr(lab, "started_by_tests", False):
        pytest.skip("the lab was up before these tests; it is not ours to take down")
    before = lab.footprint_before
    lab.down()
    after = _host_footprint()
    assert after["processes"] == set(), after["processes"]
    assert after["mounts"] <= before["mounts"], after["mounts"] - before["mounts"]
    assert after["links"] <= before["links"], after["links"] - before["links"]
    assert lab.status()["up"] is False
