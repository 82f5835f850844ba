"""Smoke tests of the whole lab: the emulated 2-NUMA guest and its real kubelet report what the
lab profile says. (What the kubelet does with pods is certified by the suites themselves:
tests/lab/test_run_certify.py runs them against this lab.)

The session's `lab` fixture (numacert.fixtures.lab) brings the lab up with the default profile
(static CPUs, single-numa-node, Memory Manager Static) unless it is already up with it, and puts
it back as it found it afterwards.
"""

from __future__ import annotations

import pytest

from numacert.fixtures.lab import LAB_PROFILE
from numacert.lab.lab import Lab
from numacert.lab.profile import load_lab_profile
from numacert.topology.model import Topology

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
