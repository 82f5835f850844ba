"""Memory Manager (kubelet-algorithms.md §4): vectors of §7.6 and tests derived from the text."""

from __future__ import annotations

import json
from itertools import permutations, product

import pytest

from numacert.oracle.bitmask import mask_of
from numacert.oracle.hints import AllocationError, Hint, KubeletStartError
from numacert.oracle.memory_manager import (
    ERR_DEFAULT_AFFINITY,
    ERR_DEFAULT_PREFERRED,
    ERR_EMPTY_MACHINE_STATE,
    ERR_EXTEND,
    ERR_EXTENDED_PREFERRED,
    ERR_NO_SYSTEM_RESERVED,
    ERR_STATE_DIFFERS,
    ERR_VIOLATES,
    Block,
    MemoryManager,
    pod_requested_resources,
)
from numacert.oracle.pod import Container, Pod
from numacert.topology.model import CPU, NUMANode, Topology

Ki, Mi, Gi = 2**10, 2**20, 2**30
HP2M, HP1G = 2 * Mi, Gi


# ---- builders ---------------------------------------------------------------------------------
def topo(*nodes: tuple, ids: list[int] | None = None) -> Topology:
    """nodes: (memory, {page size: pages}) per NUMA node; one CPU per node."""
    ids = ids if ids is not None else list(range(len(nodes)))
    numa = [NUMANode(i, mem, dict(hp)) for i, (mem, hp) in zip(ids, nodes, strict=True)]
    cpus = [CPU(k, 0, i, k, 0) for k, i in enumerate(ids)]
    return Topology(cpus, numa)


def ctr(name: str, mem: int, init: bool = False, sidecar: bool = False, cpu: int = 1000, **hp):
    res = {"memory": mem}
    for k, v in hp.items():
        res["hugepages-" + k.removeprefix("hp")] = v
    return Container(name, cpu, cpu, dict(res), dict(res), init=init, sidecar=sidecar)


def gpod(uid: str, *containers: Container, inits: tuple[Container, ...] = ()) -> Pod:
    return Pod(uid, uid, tuple(inits), tuple(containers))


def burstable(uid: str, mem: int) -> Pod:
    c = Container("c", 500, 1000, {"memory": mem}, {"memory": 2 * mem})
    return Pod(uid, uid, (), (c,))


def static(t: Topology, reserved: dict | None = None, **kw) -> MemoryManager:
    reserved = reserved if reserved is not None else {0: {"memory": 512 * Mi}}
    return MemoryManager(t, "Static", reserved, **kw)


def two_nodes(mem: int = 4 * Gi) -> MemoryManager:
    # 4Gi per node, 512Mi reserved on node 0: allocatable 3.5Gi + 4Gi
    return static(topo((mem, {}), (mem, {})))


def H(nodes, pref: bool) -> Hint:
    return Hint(mask_of(nodes), pref)


def admit(mm: MemoryManager, pod: Pod, hint: Hint | None = None) -> None:
    """Container scope with memory as the only provider: take the best memory hint."""
    for c in pod.all_containers():
        if hint is not None:
            h = hint
        else:
            hints = mm.get_topology_hints(pod, c)
            h = Hint(None, False)
            if hints:
                h = min(
                    hints["memory"], key=lambda x: (not x.preferred, bin(x.mask).count("1"), x.mask)
                )
        mm.allocate(pod, c, h)
    for c in pod.all_containers():
        mm.container_started(pod, c)


def table(mm: MemoryManager, node: int, rtype: str = "memory") -> dict:
    return mm.machine_state()[str(node)]["memoryMap"][rtype]


# ---- §7.6 vectors -----------------------------------------------------------------------------
def test_mm1_default_state():
    mm = static(topo((3 * Gi, {HP1G: 1})), {0: {"memory": 512 * Mi}})
    assert mm.machine_state() == {
        "0": {
            "numberOfAssignments": 0,
            "memoryMap": {
                "hugepages-1Gi": {
                    "total": Gi,
                    "systemReserved": 0,
                    "allocatable": Gi,
                    "reserved": 0,
                    "free": Gi,
                },
                "memory": {
                    "total": 3 * Gi,
                    "systemReserved": 512 * Mi,
                    "allocatable": 1536 * Mi,
                    "reserved": 0,
                    "free": 1536 * Mi,
                },
            },
            "cells": [0],
        }
    }


def _hp_ctr(name, mem, hp, **kw):
    return ctr(name, mem, hp1Gi=hp, **kw)


@pytest.mark.parametrize(
    ("apps", "inits", "expected"),
    [
        # app [1Gi,2Gi] + init [1Gi,4Gi] -> 4Gi (both types)
        ([(1, 1), (2, 2)], [(1, 1, False), (4, 4, False)], {"memory": 4, "hugepages-1Gi": 4}),
        # app [2Gi,3Gi] + init [1Gi,3Gi] -> 5Gi
        ([(2, 2), (3, 3)], [(1, 1, False), (3, 3, False)], {"memory": 5, "hugepages-1Gi": 5}),
        # app mem [2,3] / hp [1,2] + init mem [1,3] / hp [1,4] -> mem 5Gi, hp 4Gi
        ([(2, 1), (3, 2)], [(1, 1, False), (3, 4, False)], {"memory": 5, "hugepages-1Gi": 4}),
        # app [1,2] + init [sidecar 2, regular 4] -> 6Gi
        ([(1, 1), (2, 2)], [(2, 2, True), (4, 4, False)], {"memory": 6, "hugepages-1Gi": 6}),
        # app [2,3] + init [sidecar 2, regular 4] -> 7Gi
        ([(2, 2), (3, 3)], [(2, 2, True), (4, 4, False)], {"memory": 7, "hugepages-1Gi": 7}),
    ],
)
def test_get_pod_requested_resources(apps, inits, expected):
    app_cs = [_hp_ctr(f"a{i}", m * Gi, h * Gi) for i, (m, h) in enumerate(apps)]
    init_cs = [
        _hp_ctr(f"i{i}", m * Gi, h * Gi, init=True, sidecar=s) for i, (m, h, s) in enumerate(inits)
    ]
    pod = gpod("p", *app_cs, inits=tuple(init_cs))
    assert pod_requested_resources(pod) == {k: v * Gi for k, v in expected.items()}


def test_pod_requested_resources_only_app_types():
    pod = gpod("p", ctr("a", Gi), inits=(ctr("i", Gi, init=True, hp2Mi=4 * Mi),))
    assert pod_requested_resources(pod) == {"memory": Gi}


# ---- configuration ----------------------------------------------------------------------------
def test_static_needs_system_reserved_memory():
    t = topo((4 * Gi, {}))
    for reserved in ({}, {0: {"memory": 0}}, {0: {"hugepages-2Mi": 2 * Mi}}):
        with pytest.raises(KubeletStartError, match=r"^\[memorymanager\] you should specify"):
            MemoryManager(t, "Static", reserved)
    assert str(KubeletStartError(ERR_NO_SYSTEM_RESERVED)).endswith("system reserved memory")


def test_unknown_policy():
    with pytest.raises(KubeletStartError, match='unknown policy: "static"'):
        MemoryManager(topo((4 * Gi, {})), "static", {0: {"memory": Mi}})


def test_policy_none_is_inert():
    mm = MemoryManager(topo((4 * Gi, {}), (4 * Gi, {})), "None", {})
    pod = gpod("p", ctr("c", Gi))
    assert mm.get_topology_hints(pod, pod.containers[0]) is None
    assert mm.get_pod_topology_hints(pod) is None
    mm.allocate(pod, pod.containers[0], Hint(None, False))
    mm.container_started(pod, pod.containers[0])
    assert mm.blocks("p", "c") == []
    assert mm.container_mems("p", "c") is None
    assert mm.to_state() == {"policyName": "None", "machineState": {}}
    mm.remove_pod("p")


# ---- eligibility ------------------------------------------------------------------------------
def test_only_guaranteed_pods():
    mm = two_nodes()
    pod = burstable("b", Gi)
    assert mm.get_topology_hints(pod, pod.containers[0]) is None
    assert mm.get_pod_topology_hints(pod) is None
    mm.allocate(pod, pod.containers[0], Hint(mask_of([0]), True))
    assert mm.blocks("b", "c") == [] and mm.container_mems("b", "c") is None
    # fractional CPU is fine for the Memory Manager
    frac = gpod("f", ctr("c", Gi, cpu=500))
    assert mm.get_topology_hints(frac, frac.containers[0])


def test_pod_level_resources_skipped():
    mm = two_nodes()
    pod = Pod("p", "p", (), (ctr("c", Gi),), has_pod_level_resources=True)
    assert mm.get_topology_hints(pod, pod.containers[0]) is None
    mm.allocate(pod, pod.containers[0], Hint(None, False))
    assert mm.pod_uids() == []


# ---- hints and single-NUMA pinning ------------------------------------------------------------
def test_single_numa_hints_and_pin():
    mm = two_nodes()
    pod = gpod("p", ctr("c", Gi))
    hints = mm.get_topology_hints(pod, pod.containers[0])
    assert hints == {"memory": [H([0], True), H([1], True), H([0, 1], False)]}
    mm.allocate(pod, pod.containers[0], H([1], True))
    assert mm.blocks("p", "c") == [Block((1,), "memory", Gi)]
    assert mm.container_mems("p", "c") == "1"
    n1 = mm.machine_state()["1"]
    assert n1["numberOfAssignments"] == 1 and n1["cells"] == [1]
    assert n1["memoryMap"]["memory"]["free"] == 3 * Gi
    assert n1["memoryMap"]["memory"]["reserved"] == Gi
    # node 1 now has a single-NUMA allocation: multi-NUMA masks with node 1 disappear
    pod2 = gpod("q", ctr("c", Gi))
    assert mm.get_topology_hints(pod2, pod2.containers[0]) == {
        "memory": [H([0], True), H([1], True)]
    }


def test_tm_none_picks_narrowest_preferred():
    mm = two_nodes()
    pod = gpod("p", ctr("c", Gi))
    mm.allocate(pod, pod.containers[0], Hint(None, False))
    assert mm.container_mems("p", "c") == "0"


def test_hints_preferred_by_allocatable_not_free():
    mm = two_nodes()
    admit(mm, gpod("a", ctr("c", 3 * Gi)))  # node 0: 512Mi free
    admit(mm, gpod("b", ctr("c", 3 * Gi)))  # node 1: 1Gi free
    pod = gpod("p", ctr("c", 2 * Gi))
    # single nodes could hold 2Gi by capacity, so minAffinitySize is 1; no node has it free
    # and both carry single-NUMA allocations: nothing qualifies -> empty map
    assert mm.get_topology_hints(pod, pod.containers[0]) == {}


def test_multi_numa_group_binding():
    mm = static(topo((4 * Gi, {}), (4 * Gi, {}), (4 * Gi, {})))
    pod = gpod("p", ctr("c", 5 * Gi))
    hints = mm.get_topology_hints(pod, pod.containers[0])["memory"]
    assert hints == [H([0, 1], True), H([0, 2], True), H([1, 2], True), H([0, 1, 2], False)]
    mm.allocate(pod, pod.containers[0], H([0, 1], True))
    ms = mm.machine_state()
    assert ms["0"]["cells"] == [0, 1] and ms["1"]["cells"] == [0, 1] and ms["2"]["cells"] == [2]
    assert ms["0"]["numberOfAssignments"] == 1 and ms["1"]["numberOfAssignments"] == 1
    # node 0 first: 3.5Gi, then 1.5Gi from node 1
    assert ms["0"]["memoryMap"]["memory"]["reserved"] == 3584 * Mi
    assert ms["1"]["memoryMap"]["memory"]["reserved"] == 1536 * Mi
    assert mm.container_mems("p", "c") == "0,1"
    # group-bound nodes are skipped for single hints; masks crossing the group are skipped
    small = gpod("q", ctr("c", Gi))
    assert mm.get_topology_hints(small, small.containers[0]) == {
        "memory": [H([2], True), H([0, 1], False)]
    }
    # the group can take more multi-NUMA allocations of exactly that group
    mm.allocate(small, small.containers[0], H([0, 1], False))
    assert mm.machine_state()["0"]["numberOfAssignments"] == 2
    assert mm.container_mems("q", "c") == "0,1"


def test_no_free_memory_gives_empty_map_and_allocate_error():
    mm = two_nodes()
    admit(mm, gpod("a", ctr("c", 3 * Gi)))
    admit(mm, gpod("b", ctr("c", 3 * Gi)))
    pod = gpod("p", ctr("c", 2 * Gi))
    assert mm.get_topology_hints(pod, pod.containers[0]) == {}
    # TM treats {} as "no preference": best-effort stores {all nodes, ...}; none stores nil
    with pytest.raises(AllocationError) as exc:
        mm.allocate(pod, pod.containers[0], Hint(None, False))
    assert exc.value.message == ERR_DEFAULT_AFFINITY and exc.value.reason is None
    adm = exc.value.to_admission_error()
    assert adm.reason == "UnexpectedAdmissionError"
    assert adm.message == (
        "Allocate failed due to [memorymanager] failed to get the default NUMA affinity, "
        "no NUMA nodes with enough memory is available, which is unexpected"
    )
    with pytest.raises(AllocationError, match=ERR_EXTEND.replace("[", r"\[")):
        mm.allocate(pod, pod.containers[0], H([0, 1], False))
    assert mm.blocks("p", "c") == []


def test_default_preferred_error():
    mm = two_nodes()
    admit(mm, gpod("x", ctr("c", 3 * Gi)), H([0, 1], False))  # group {0,1}, 3Gi on node 0
    pod = gpod("p", ctr("c", Gi))
    # singles are group-bound; only {0,1} (non-preferred) remains
    assert mm.get_topology_hints(pod, pod.containers[0]) == {"memory": [H([0, 1], False)]}
    with pytest.raises(AllocationError, match=r"failed to find the default preferred hint$"):
        mm.allocate(pod, pod.containers[0], Hint(None, True))
    assert ERR_DEFAULT_PREFERRED.endswith("default preferred hint")
    mm.allocate(pod, pod.containers[0], Hint(None, False))
    assert mm.container_mems("p", "c") == "0,1"


def test_hint_extension_when_tm_hint_too_narrow():
    mm = two_nodes()
    pod = gpod("p", ctr("c", 5 * Gi))
    # e.g. best-effort merged with a CPU hint on node 1: extended to the narrowest superset
    mm.allocate(pod, pod.containers[0], H([1], False))
    assert mm.container_mems("p", "c") == "0,1"
    assert mm.blocks("p", "c") == [Block((0, 1), "memory", 5 * Gi)]


def test_extension_errors():
    # 3 nodes of 4Gi (node 0: 3.5Gi allocatable); a 5Gi pod binds {1,2}: node 1 full,
    # node 2 with 3Gi free
    def setup() -> MemoryManager:
        mm = static(topo((4 * Gi, {}), (4 * Gi, {}), (4 * Gi, {})))
        admit(mm, gpod("a", ctr("c", 5 * Gi)), H([1, 2], True))
        assert mm.free(1) == 0 and mm.free(2) == 3 * Gi
        return mm

    # 3Gi fits one node by capacity (preferred = single masks); {1} is too narrow and its only
    # qualifying superset is the group {1,2}, which is not preferred
    mm = setup()
    pod = gpod("p", ctr("c", 3 * Gi))
    with pytest.raises(AllocationError) as exc:
        mm.allocate(pod, pod.containers[0], H([1], True))
    assert exc.value.message == ERR_EXTENDED_PREFERRED
    mm.allocate(pod, pod.containers[0], H([1], False))
    assert mm.container_mems("p", "c") == "1,2"
    # 3.5Gi: the group has 3Gi free, no superset of {1} qualifies
    mm = setup()
    pod = gpod("p", ctr("c", 3584 * Mi))
    with pytest.raises(AllocationError) as exc:
        mm.allocate(pod, pod.containers[0], H([1], False))
    assert exc.value.message == ERR_EXTEND
    mm.allocate(pod, pod.containers[0], H([0], True))
    assert mm.container_mems("p", "c") == "0"


def test_single_allocation_on_group_node():
    mm = static(topo((4 * Gi, {}), (4 * Gi, {})), {0: {"memory": Gi}, 1: {"memory": Gi}})
    admit(mm, gpod("a", ctr("c", 2 * Gi)), H([0, 1], True))  # node 0: 1Gi free, group {0,1}
    pod = gpod("p", ctr("c", 2 * Gi))
    # a TM hint {1} that fits is taken as is: a single mask never "violates"
    mm.allocate(pod, pod.containers[0], H([1], True))
    assert mm.container_mems("p", "c") == "1"
    ms = mm.machine_state()
    assert ms["0"]["cells"] == [0, 1] and ms["1"]["cells"] == [1]
    pod2 = gpod("q", ctr("c", 2 * Gi))
    # {0} is too narrow; node 0 is group-bound (no single hint) and {0,1} mixes groups
    with pytest.raises(AllocationError, match=r"extend the current topology hint$"):
        mm.allocate(pod2, pod2.containers[0], H([0], True))


def test_violates_error():
    mm = two_nodes()
    admit(mm, gpod("a", ctr("c", Gi)), H([0], True))
    pod = gpod("p", ctr("c", Gi))
    with pytest.raises(AllocationError) as exc:
        mm.allocate(pod, pod.containers[0], H([0, 1], False))
    assert exc.value.message == ERR_VIOLATES
    assert mm.machine_state()["1"]["numberOfAssignments"] == 0


# ---- hugepages --------------------------------------------------------------------------------
def test_hugepages_accounting():
    t = topo((8 * Gi, {HP2M: 512, HP1G: 2}), (8 * Gi, {HP2M: 512, HP1G: 2}))
    mm = static(t, {0: {"memory": Gi, "hugepages-2Mi": 64 * Mi}})
    assert table(mm, 0) == {
        "total": 8 * Gi,
        "systemReserved": Gi,
        "allocatable": 8 * Gi - Gi - 3 * Gi,
        "reserved": 0,
        "free": 4 * Gi,
    }
    assert table(mm, 0, "hugepages-2Mi")["allocatable"] == 960 * Mi
    assert table(mm, 1, "hugepages-1Gi") == {
        "total": 2 * Gi,
        "systemReserved": 0,
        "allocatable": 2 * Gi,
        "reserved": 0,
        "free": 2 * Gi,
    }
    pod = gpod("p", ctr("c", Gi, hp1Gi=Gi, hp2Mi=100 * Mi))
    hints = mm.get_topology_hints(pod, pod.containers[0])
    assert set(hints) == {"memory", "hugepages-1Gi", "hugepages-2Mi"}
    assert (
        hints["memory"] == hints["hugepages-1Gi"] == [H([0], True), H([1], True), H([0, 1], False)]
    )
    mm.allocate(pod, pod.containers[0], H([1], True))
    assert mm.machine_state()["1"]["numberOfAssignments"] == 3
    assert table(mm, 1, "hugepages-1Gi")["free"] == Gi
    assert table(mm, 1, "hugepages-2Mi")["free"] == Gi - 100 * Mi
    assert table(mm, 1)["reserved"] == Gi
    assert [b.type for b in mm.blocks("p", "c")] == ["memory", "hugepages-1Gi", "hugepages-2Mi"]
    # 3 x 1Gi pages on one node are impossible by capacity: only the pair could hold them,
    # and node 1 is single-allocated, so nothing qualifies
    big = gpod("q", ctr("c", Gi, hp1Gi=3 * Gi))
    assert mm.get_topology_hints(big, big.containers[0]) == {}
    mm.remove_pod("p")
    assert mm.get_topology_hints(big, big.containers[0]) == {
        "memory": [H([0, 1], True)],
        "hugepages-1Gi": [H([0, 1], True)],
    }
    mm.allocate(big, big.containers[0], Hint(None, False))
    assert table(mm, 0, "hugepages-1Gi")["free"] == 0
    assert table(mm, 1, "hugepages-1Gi")["free"] == Gi
    mm.remove_pod("q")
    assert mm.machine_state() == mm.initial_machine_state()


def test_hugepage_size_missing_on_machine():
    mm = two_nodes()
    pod = gpod("p", ctr("c", Gi, hp1Gi=Gi))
    assert mm.get_topology_hints(pod, pod.containers[0]) == {}
    with pytest.raises(AllocationError):
        mm.allocate(pod, pod.containers[0], Hint(None, False))


# ---- init containers --------------------------------------------------------------------------
def _sum_blocks(mm: MemoryManager, uid: str, names) -> int:
    return sum(b.size for n in names for b in mm.blocks(uid, n))


def test_init_reuse_block_sizes_sum_to_reserved():
    mm = static(topo((16 * Gi, {})), {0: {"memory": Gi}})
    inits = (ctr("i1", 2 * Gi, init=True), ctr("i2", Gi, init=True))
    apps = (ctr("a1", Gi), ctr("a2", 2 * Gi))
    pod = gpod("p", *apps, inits=inits)
    names = ["i1", "i2", "a1", "a2"]
    h = H([0], True)
    expected_reserved = {"i1": 2, "i2": 2, "a1": 2, "a2": 3}
    expected_sizes = {
        "i1": [2, None, None, None],
        "i2": [1, 1, None, None],
        "a1": [0, 1, 1, None],
        "a2": [0, 0, 1, 2],
    }
    for c in pod.all_containers():
        mm.allocate(pod, c, h)
        assert table(mm, 0)["reserved"] == expected_reserved[c.name] * Gi
        sizes = [(mm.blocks("p", n)[0].size // Gi if mm.blocks("p", n) else None) for n in names]
        assert sizes == expected_sizes[c.name]
        assert _sum_blocks(mm, "p", names) == table(mm, 0)["reserved"]
    # reusable is used up: a second allocate of an allocated container changes nothing
    mm.allocate(pod, apps[0], h)
    assert table(mm, 0)["reserved"] == 3 * Gi
    # start: regular init containers are deleted (their remaining size is 0 here)
    for c in pod.all_containers():
        mm.container_started(pod, c)
    assert mm.blocks("p", "i1") == [] and mm.blocks("p", "i2") == []
    assert mm.allocated_mems("p", "i1") == "0" and mm.container_mems("p", "i1") is None
    assert table(mm, 0)["reserved"] == 3 * Gi
    assert mm.machine_state()["0"]["numberOfAssignments"] == 2
    mm.remove_pod("p")
    assert mm.machine_state() == mm.initial_machine_state()


def test_init_larger_than_apps_is_freed_at_start():
    mm = static(topo((16 * Gi, {})), {0: {"memory": Gi}})
    pod = gpod("p", ctr("a", Gi), inits=(ctr("i", 4 * Gi, init=True),))
    admit(mm, pod)
    assert table(mm, 0)["reserved"] == Gi
    assert mm.to_state()["entries"] == {
        "p": {"a": [{"numaAffinity": [0], "type": "memory", "size": Gi}]}
    }


def test_sidecar_blocks_survive_start_and_are_not_reusable():
    mm = static(topo((16 * Gi, {})), {0: {"memory": Gi}})
    inits = (ctr("s", Gi, init=True, sidecar=True), ctr("i", 2 * Gi, init=True))
    pod = gpod("p", ctr("a", 2 * Gi), inits=inits)
    h = H([0], True)
    mm.allocate(pod, inits[0], h)
    mm.allocate(pod, inits[1], h)
    assert table(mm, 0)["reserved"] == 3 * Gi  # sidecar memory not reused by the init
    mm.allocate(pod, pod.containers[0], h)
    assert table(mm, 0)["reserved"] == 3 * Gi  # app reuses the regular init's 2Gi
    assert _sum_blocks(mm, "p", ["s", "i", "a"]) == 3 * Gi
    mm.container_started(pod, inits[0])
    mm.container_started(pod, inits[1])
    assert mm.blocks("p", "i")  # still there: started containers only drop earlier inits
    mm.container_started(pod, pod.containers[0])
    assert mm.blocks("p", "i") == [] and mm.container_mems("p", "s") == "0"
    assert table(mm, 0)["reserved"] == 3 * Gi


def test_reuse_only_for_same_mask():
    mm = static(topo((8 * Gi, {}), (8 * Gi, {})), {0: {"memory": Gi}})
    pod = gpod("p", ctr("a", 2 * Gi), inits=(ctr("i", 2 * Gi, init=True),))
    mm.allocate(pod, pod.init_containers[0], H([0], True))
    mm.allocate(pod, pod.containers[0], H([1], True))
    assert table(mm, 0)["reserved"] == 2 * Gi and table(mm, 1)["reserved"] == 2 * Gi
    assert mm.blocks("p", "i")[0].size == 2 * Gi
    mm.container_started(pod, pod.containers[0])
    assert table(mm, 0)["reserved"] == 0


def test_reusable_memory_counts_in_hints():
    mm = static(topo((4 * Gi, {}), (4 * Gi, {})))
    pod = gpod("p", ctr("a", 3 * Gi), inits=(ctr("i", 3 * Gi, init=True),))
    admit_hint = H([0], True)
    mm.allocate(pod, pod.init_containers[0], admit_hint)  # node 0: 512Mi free
    hints = mm.get_topology_hints(pod, pod.containers[0])
    # node 0 qualifies through the init container's reusable 3Gi
    assert hints == {"memory": [H([0], True), H([1], True)]}
    # {0}: 512Mi free < 3Gi -> "too narrow" without reuse -> extended: {0} itself qualifies
    mm.allocate(pod, pod.containers[0], admit_hint)
    assert mm.container_mems("p", "a") == "0"
    assert table(mm, 0)["reserved"] == 3 * Gi


# ---- release, regenerate, pod scope -----------------------------------------------------------
def test_release_returns_initial_state():
    mm = static(topo((4 * Gi, {HP2M: 100}), (4 * Gi, {HP2M: 100}), (4 * Gi, {HP2M: 100})))
    initial = mm.machine_state()
    admit(mm, gpod("a", ctr("c", Gi, hp2Mi=20 * Mi)))
    admit(mm, gpod("b", ctr("c", 6 * Gi)))
    admit(mm, gpod("c", ctr("c", 2 * Gi), ctr("d", Gi)))
    assert mm.machine_state() != initial
    for uid in ("b", "a", "c"):
        mm.remove_pod(uid)
    assert mm.machine_state() == initial == mm.initial_machine_state()
    assert mm.to_state() == {"policyName": "Static", "machineState": initial}


def test_regenerate_hints_for_allocated_container():
    mm = two_nodes()
    pod = gpod("p", ctr("c", Gi, hp2Mi=0))
    mm.allocate(pod, pod.containers[0], H([1], True))
    assert mm.get_topology_hints(pod, pod.containers[0]) == {
        "memory": [H([1], True)],
        "hugepages-2Mi": [H([1], True)],
    }
    assert mm.get_pod_topology_hints(pod) == {
        "memory": [H([1], True)],
        "hugepages-2Mi": [H([1], True)],
    }
    changed = gpod("p", ctr("c", 2 * Gi, hp2Mi=0))
    assert mm.get_topology_hints(changed, changed.containers[0]) is None
    # allocate again: already present, nothing changes
    mm.allocate(pod, pod.containers[0], H([0], True))
    assert mm.container_mems("p", "c") == "1"


def test_pod_scope_hints_use_pod_requests():
    mm = two_nodes()
    pod = gpod("p", ctr("a", 2560 * Mi), ctr("b", 2560 * Mi))
    assert mm.get_pod_topology_hints(pod) == {"memory": [H([0, 1], True)]}
    # each container then allocates its own request with the pod's hint
    for c in pod.containers:
        mm.allocate(pod, c, H([0, 1], True))
    assert mm.container_mems("p", "a") == mm.container_mems("p", "b") == "0,1"
    assert table(mm, 0)["reserved"] == 3584 * Mi and table(mm, 1)["reserved"] == 1536 * Mi


def test_non_contiguous_numa_ids():
    t = topo((4 * Gi, {}), (4 * Gi, {}), ids=[0, 2])
    mm = static(t)
    pod = gpod("p", ctr("c", 5 * Gi))
    assert mm.get_topology_hints(pod, pod.containers[0]) == {"memory": [H([0, 2], True)]}
    mm.allocate(pod, pod.containers[0], Hint(None, False))
    assert mm.container_mems("p", "c") == "0,2"
    assert mm.machine_state()["2"]["cells"] == [0, 2]
    mm.remove_pod("p")
    assert mm.machine_state() == mm.initial_machine_state()


# ---- state file -------------------------------------------------------------------------------
def _busy_manager() -> MemoryManager:
    t = topo((8 * Gi, {HP1G: 2}), (8 * Gi, {HP1G: 2}), (8 * Gi, {HP1G: 2}))
    mm = static(t)
    admit(mm, gpod("a", ctr("c", Gi, hp1Gi=Gi)))
    admit(mm, gpod("b", ctr("c", 3 * Gi)))
    admit(mm, gpod("c", ctr("c", 8 * Gi)))  # needs two nodes: {1,2}
    assert mm.container_mems("c", "c") == "1,2" and mm.container_mems("b", "c") == "0"
    return mm


def test_state_shape():
    mm = _busy_manager()
    state = mm.to_state()
    assert list(state) == ["policyName", "machineState", "entries"]
    assert list(state["machineState"]) == ["0", "1", "2"]
    node = state["machineState"]["0"]
    assert list(node) == ["numberOfAssignments", "memoryMap", "cells"]
    assert list(node["memoryMap"]) == ["hugepages-1Gi", "memory"]
    assert list(node["memoryMap"]["memory"]) == [
        "total",
        "systemReserved",
        "allocatable",
        "reserved",
        "free",
    ]
    assert state["entries"]["a"]["c"] == [
        {"numaAffinity": [0], "type": "memory", "size": Gi},
        {"numaAffinity": [0], "type": "hugepages-1Gi", "size": Gi},
    ]
    json.dumps(state)


def test_state_round_trip():
    mm = _busy_manager()
    state = json.loads(json.dumps(mm.to_state()))
    state["checksum"] = 12345
    t = mm.topology
    mm2 = MemoryManager.from_state(t, "Static", {0: {"memory": 512 * Mi}}, state)
    assert mm2.to_state() == mm.to_state()
    assert mm2.container_mems("c", "c") == mm.container_mems("c", "c")
    # behaves the same afterwards
    for m in (mm, mm2):
        admit(m, gpod("d", ctr("c", Gi)))
        m.remove_pod("c")
    assert mm2.to_state() == mm.to_state()


def test_state_without_machine_state_is_derived_from_entries():
    mm = _busy_manager()
    state = mm.to_state()
    del state["machineState"]
    mm2 = static(mm.topology, state=state)
    assert mm2.to_state() == mm.to_state()


def test_state_machine_state_mismatch():
    mm = _busy_manager()
    state = json.loads(json.dumps(mm.to_state()))
    state["machineState"]["0"]["memoryMap"]["memory"]["free"] -= Mi
    with pytest.raises(KubeletStartError, match=r"^\[memorymanager\] the expected machine state"):
        static(mm.topology, state=state)
    assert ERR_STATE_DIFFERS.endswith("different from the real one")
    state = json.loads(json.dumps(mm.to_state()))
    state["machineState"]["2"]["numberOfAssignments"] += 1
    with pytest.raises(KubeletStartError):
        static(mm.topology, state=state)
    state = json.loads(json.dumps(mm.to_state()))
    del state["entries"]["b"]
    with pytest.raises(KubeletStartError):
        static(mm.topology, state=state)


def test_state_group_split_may_differ():
    # within a NUMA group only the group's sums of free/reserved are compared
    mm = static(topo((4 * Gi, {}), (4 * Gi, {})))
    admit(mm, gpod("c", ctr("c", 5 * Gi)))
    state = json.loads(json.dumps(mm.to_state()))
    ms = state["machineState"]
    for key, delta in (("0", -Gi), ("1", Gi)):
        ms[key]["memoryMap"]["memory"]["reserved"] += delta
        ms[key]["memoryMap"]["memory"]["free"] -= delta
    mm2 = static(mm.topology, state=state)
    assert mm2.to_state() == state  # the file's split is kept


def test_state_other_errors():
    mm = _busy_manager()
    state = mm.to_state()
    with pytest.raises(KubeletStartError, match='configured policy "None" differs from state'):
        MemoryManager(mm.topology, "None", {}, state=state)
    empty = {"policyName": "Static", "machineState": {}, "entries": state["entries"]}
    with pytest.raises(KubeletStartError) as exc:
        static(mm.topology, state=empty)
    assert str(exc.value) == ERR_EMPTY_MACHINE_STATE
    bad = {
        "policyName": "Static",
        "entries": {"x": {"c": [{"numaAffinity": [7], "type": "memory", "size": 1}]}},
    }
    with pytest.raises(KubeletStartError, match="NUMA that does not exist"):
        static(mm.topology, state=bad)
    bad = {
        "policyName": "Static",
        "entries": {"x": {"c": [{"numaAffinity": [0], "type": "hugepages-2Mi", "size": 1}]}},
    }
    with pytest.raises(KubeletStartError, match="memory resource that does not exist"):
        static(mm.topology, state=bad)
    fresh = static(mm.topology, state={"policyName": "Static", "machineState": {}})
    assert fresh.to_state()["machineState"] == fresh.initial_machine_state()


# ---- restart check, judged against a direct transcription of the kubelet's ---------------------
def _kubelet_replay(initial: dict, order: list[list[dict]]) -> dict:
    """validateState's re-derivation: blocks replayed with updateMachineState's rules; what a
    block cannot find free on its nodes is dropped."""
    ms = json.loads(json.dumps(initial))
    for blocks in order:
        for b in blocks:
            size = b["size"]
            for nid in b["numaAffinity"]:
                node = ms[str(nid)]
                node["numberOfAssignments"] += 1
                node["cells"] = list(b["numaAffinity"])
                t = node["memoryMap"][b["type"]]
                if size == 0 or t["free"] <= 0:
                    continue
                take = min(t["free"], size)
                t["reserved"] += take
                t["free"] -= take
                size -= take
    return ms


def _kubelet_states_equal(ms1: dict, ms2: dict) -> bool:
    """areMachineStatesEqual(stored, expected): per node, free/reserved summed over the stored
    node's own cells."""
    if ms1.keys() != ms2.keys():
        return False
    for key, n1 in ms1.items():
        n2 = ms2[key]
        if n1["numberOfAssignments"] != n2["numberOfAssignments"]:
            return False
        if sorted(n1["cells"]) != sorted(n2["cells"]):
            return False
        if n1["memoryMap"].keys() != n2["memoryMap"].keys():
            return False
        for r, t1 in n1["memoryMap"].items():
            t2 = n2["memoryMap"][r]
            if any(t1[f] != t2[f] for f in ("total", "systemReserved", "allocatable")):
                return False
            for f in ("free", "reserved"):
                s1 = sum(ms1[str(c)]["memoryMap"][r][f] for c in n1["cells"])
                s2 = sum(ms2[str(c)]["memoryMap"][r][f] for c in n1["cells"])
                if s1 != s2:
                    return False
    return True


def kubelet_restart_outcomes(initial: dict, state: dict, limit: int = 5000) -> tuple[set, bool]:
    """Whether the kubelet starts on `state`, for every replay order Go's map iteration can give
    (pods in any order, each pod's containers in any order, blocks in list order). Returns the
    set of outcomes seen and whether every order was tried (False when `limit` cut it short)."""
    entries = state.get("entries", {})
    outcomes: set[bool] = set()
    tried = 0
    for pods in permutations(entries):
        per_pod = [list(permutations(entries[uid].values())) for uid in pods]
        for combo in product(*per_pod):
            order = [blocks for containers in combo for blocks in containers]
            outcomes.add(
                _kubelet_states_equal(state["machineState"], _kubelet_replay(initial, order))
            )
            tried += 1
            if tried >= limit:
                return outcomes, False
    return outcomes, True


def test_restart_refuses_a_state_the_manager_wrote_like_the_kubelet():
    """Regression (hypothesis example): node 0's memory went to group {0,1} blocks of pods
    deleted since, so the group's live blocks sit on node 1 and a later single-NUMA block (a
    best-effort hint [0]) got node 0. Any replay with node 0's cells ending as [0] runs that
    block last, finds node 0 full and drops its 256Mi: the kubelet refuses its own file in all
    24 replay orders, and so does the oracle."""
    t = Topology(
        [CPU(0, 0, 0, 0, 0), CPU(1, 0, 1, 1, 0)],
        [
            NUMANode(0, 896 * Mi, {HP2M: 64, HP1G: 0}),
            NUMANode(1, 640 * Mi, {HP2M: 64, HP1G: 0}),
        ],
    )
    reserved = {0: {"memory": 256 * Mi}, 1: {"memory": 0}}
    mm = MemoryManager(t, "Static", reserved)
    zero_1g = {"hp1Gi": 0}
    live: list[Pod] = []

    def add(uid: str, hint: Hint | None = None, **hp) -> None:
        pod = gpod(uid, ctr("a0", 256 * Mi, cpu=500, **hp))
        admit(mm, pod, hint)
        live.append(pod)

    def delete_first() -> None:
        mm.remove_pod(live.pop(0).uid)

    add("p0", **zero_1g)
    delete_first()
    add("p2", hp2Mi=130 * Mi, **zero_1g)
    add("p3")
    add("p4", **zero_1g)
    add("p5", **zero_1g)
    delete_first()
    delete_first()
    add("p8", **zero_1g)
    add("p9", H([0], False), **zero_1g)  # a best-effort merge: single NUMA on a group's node

    state = json.loads(json.dumps(mm.to_state()))
    ms = state["machineState"]
    assert [mm.container_mems(p.uid, "a0") for p in live] == ["0,1", "0,1", "0,1", "0"]
    assert (ms["0"]["cells"], ms["1"]["cells"]) == ([0], [0, 1])
    # the file is consistent: what is reserved is exactly what the blocks hold
    reserved_mem = sum(ms[k]["memoryMap"]["memory"]["reserved"] for k in ms)
    assert reserved_mem == 4 * 256 * Mi
    outcomes, complete = kubelet_restart_outcomes(mm.initial_machine_state(), state)
    assert complete and outcomes == {False}
    with pytest.raises(KubeletStartError) as exc:
        MemoryManager.from_state(t, "Static", reserved, state)
    assert str(exc.value) == ERR_STATE_DIFFERS
    # after it is deleted node 0 keeps cells [0] (release resets cells only at 0 assignments),
    # which no replay of the group blocks left gives: refused still, by both
    mm.remove_pod("p9")
    state = json.loads(json.dumps(mm.to_state()))
    assert state["machineState"]["0"]["cells"] == [0]
    assert kubelet_restart_outcomes(mm.initial_machine_state(), state) == ({False}, True)
    with pytest.raises(KubeletStartError):
        MemoryManager.from_state(t, "Static", reserved, state)
    # once every pod is gone the state restores
    for p in live[:3]:
        mm.remove_pod(p.uid)
    again = MemoryManager.from_state(t, "Static", reserved, mm.to_state())
    assert (
        again.to_state()
        == mm.to_state()
        == {
            "policyName": "Static",
            "machineState": mm.initial_machine_state(),
        }
    )


def test_state_tampering_is_refused():
    mm = _busy_manager()
    base = json.loads(json.dumps(mm.to_state()))
    assert kubelet_restart_outcomes(mm.initial_machine_state(), base) == ({True}, True)
    tampers = [
        lambda s: s["machineState"]["1"].update(cells=[1]),  # group {1,2} split
        lambda s: s["machineState"]["0"].update(cells=[0, 1]),  # no block binds 0 to 1
        lambda s: s["machineState"]["0"]["memoryMap"]["hugepages-1Gi"].update(reserved=0),
        lambda s: s["machineState"]["0"]["memoryMap"]["memory"].update(total=9 * Gi),
        lambda s: s["entries"]["c"]["c"][0].update(size=7 * Gi),
        lambda s: s["entries"]["a"]["c"].pop(),  # the 1Gi hugepage block
    ]
    for tamper in tampers:
        state = json.loads(json.dumps(base))
        tamper(state)
        assert kubelet_restart_outcomes(mm.initial_machine_state(), state)[0] == {False}
        with pytest.raises(KubeletStartError, match="expected machine state is different"):
            static(mm.topology, state=state)


def test_state_with_zero_page_sizes_and_zero_size_blocks_round_trips():
    # a hugepage size with 0 pages keeps its (all-zero) table; zero-size blocks still count
    # as assignments and bind cells
    t = topo((4 * Gi, {HP2M: 64, HP1G: 0}), (4 * Gi, {HP2M: 64, HP1G: 0}))
    mm = static(t, {0: {"memory": 512 * Mi}, 1: {"memory": 0}})
    admit(mm, gpod("a", ctr("c", 5 * Gi, hp1Gi=0, hp2Mi=0)))
    admit(mm, gpod("b", ctr("c", Gi, hp1Gi=0)), H([0, 1], False))
    state = json.loads(json.dumps(mm.to_state()))
    assert state["machineState"]["0"]["numberOfAssignments"] == 5
    assert state["machineState"]["1"]["memoryMap"]["hugepages-1Gi"]["total"] == 0
    assert kubelet_restart_outcomes(mm.initial_machine_state(), state) == ({True}, True)
    assert static(t, {0: {"memory": 512 * Mi}, 1: {"memory": 0}}, state=state).to_state() == state
    state["machineState"]["1"]["memoryMap"]["hugepages-1Gi"]["free"] = 1
    with pytest.raises(KubeletStartError, match="expected machine state is different"):
        static(t, {0: {"memory": 512 * Mi}, 1: {"memory": 0}}, state=state)
