"""takeByTopology against the upstream vectors of kubelet-algorithms.md §7.3/§7.4, plus
properties over generated topologies.

The fixture topologies of §7.2 are rebuilt here with make_cpus. Upstream leaves NumNUMANodes
at 0 on some of them, which forces the numaFirst ordering; those vectors pass
num_numa_nodes=0 (the FORCE_NUMA_FIRST set below).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numacert.cpuset import CPUSet
from numacert.oracle.cpu_assignment import TakeOptions, take_by_topology, topology_index
from numacert.oracle.hints import AllocationError
from numacert.topology.model import NUMANode, Topology, make_cpus


def build(rows: list[dict]) -> Topology:
    cpus = make_cpus(rows)
    return Topology(cpus, [NUMANode(n, 1 << 30) for n in sorted({c.numa for c in cpus})])


def single_socket_ht() -> Topology:
    return build([{"id": i, "socket": 0, "numa": 0, "core": i % 4} for i in range(8)])


def dual_socket_ht() -> Topology:
    return build(
        [{"id": i, "socket": i % 2, "numa": i % 2, "core": i % 6, "uncore": 0} for i in range(12)]
    )


def dual_socket_no_ht() -> Topology:
    return build([{"id": i, "socket": i // 4, "numa": i // 4, "core": i} for i in range(8)])


def multi_numa_per_socket_ht() -> Topology:
    rows = []
    for i in range(80):
        core = i % 40
        numa = core // 10
        rows.append({"id": i, "socket": numa // 2, "numa": numa, "core": core})
    return build(rows)


def uncore_single_socket_no_smt() -> Topology:
    return build(
        [{"id": i, "socket": 0, "numa": 0, "core": i, "uncore": i // 4} for i in range(16)]
    )


def uncore_dual_socket_no_smt() -> Topology:
    return build(
        [{"id": i, "socket": i // 8, "numa": 0, "core": i, "uncore": i // 4} for i in range(16)]
    )


def uncore_single_socket_multi_numa() -> Topology:
    return build(
        [{"id": i, "socket": 0, "numa": i // 8, "core": i, "uncore": i // 4} for i in range(16)]
    )


def uncore_single_socket_smt() -> Topology:
    return build(
        [
            {"id": i, "socket": 0, "numa": 0, "core": i % 8, "uncore": (i % 8) // 4}
            for i in range(16)
        ]
    )


def hints_topology() -> Topology:
    """returnMachineInfo of topology_hints_test.go: cores {0,6},{1,7},{2,8} on NUMA/socket 0,
    {3,9},{4,10},{5,11} on NUMA/socket 1."""
    return build(
        [{"id": i, "socket": (i % 6) // 3, "numa": (i % 6) // 3, "core": i % 6} for i in range(12)]
    )


TOPOS = {
    "SingleSocketHT": single_socket_ht(),
    "DualSocketHT": dual_socket_ht(),
    "DualSocketNoHT": dual_socket_no_ht(),
    "MultiNuma": multi_numa_per_socket_ht(),
    "UncoreSingleSocketNoSMT": uncore_single_socket_no_smt(),
    "UncoreDualSocketNoSMT": uncore_dual_socket_no_smt(),
    "UncoreSingleSocketMultiNuma": uncore_single_socket_multi_numa(),
    "UncoreSingleSocketSMT": uncore_single_socket_smt(),
}
# Fixtures whose NumNUMANodes upstream leaves unset (0).
FORCE_NUMA_FIRST = {"SingleSocketHT", "DualSocketHT", "UncoreSingleSocketMultiNuma"}


def take(topo: str, avail: str, n: int, options: TakeOptions | None = None) -> CPUSet:
    return take_by_topology(
        TOPOS[topo],
        CPUSet.parse(avail),
        n,
        options,
        num_numa_nodes=0 if topo in FORCE_NUMA_FIRST else None,
    )


def test_fixture_shapes():
    t = TOPOS["MultiNuma"]
    assert (t.num_cpus, t.num_cores, t.num_sockets, t.num_numa_nodes) == (80, 40, 2, 4)
    assert t.cores[3] == CPUSet({3, 43})
    assert TOPOS["DualSocketHT"].cores[2] == CPUSet({2, 8})
    assert TOPOS["UncoreSingleSocketSMT"].num_uncore_caches == 2
    assert hints_topology().cpus_by_numa[1] == CPUSet.parse("3-5,9-11")


PACKED_VECTORS = [
    ("P2", "SingleSocketHT", "0-7", 0, ""),
    ("P3", "SingleSocketHT", "0-7", 1, "0"),
    ("P4", "SingleSocketHT", "1,3,5,6,7", 1, "6"),
    ("P5", "SingleSocketHT", "0-7", 2, "0,4"),
    ("P6", "SingleSocketHT", "0-7", 8, "0-7"),
    ("P7", "SingleSocketHT", "0,1,2,3,6", 2, "2,6"),
    ("P8", "DualSocketHT", "0-11", 6, "0,2,4,6,8,10"),
    ("P9", "MultiNuma", "0-79", 40, "0-19,40-59"),
    ("P10", "MultiNuma", "0-79", 20, "0-9,40-49"),
    ("P11", "MultiNuma", "10-39,50-79", 20, "10-19,50-59"),
    ("P12", "MultiNuma", "0-79", 60, "0-29,40-69"),
    ("P13", "MultiNuma", "1-39,41-79", 60, "10-39,50-79"),
    ("P14", "DualSocketHT", "1,2,3,4,5,7,8,9,10,11", 1, "2"),
    ("P15", "DualSocketHT", "0-11", 8, "0,6,2,8,4,10,1,7"),
    ("P16", "MultiNuma", "0-79", 64, "0-29,40-69,30,31,70,71"),
]

UNCORE_VECTORS = [
    ("U1", "UncoreSingleSocketNoSMT", "1-15", 10, "1,2,4,5,6,7,8,9,10,11"),
    ("U2", "DualSocketHT", "1,2,3,4,5,7,8,9,10,11", 1, "1"),
    ("U3", "UncoreDualSocketNoSMT", "0-15", 4, "0,1,2,3"),
    ("U4", "UncoreDualSocketNoSMT", "2-15", 6, "2,3,4,5,6,7"),
    ("U5", "UncoreDualSocketNoSMT", "8-15", 4, "8,9,10,11"),
    ("U6", "UncoreSingleSocketMultiNuma", "3,4-8,12", 2, "4,5"),
    ("U7", "UncoreSingleSocketSMT", "2-3,10-11,4-7,12-15", 6, "4,5,6,12,13,14"),
    ("U8", "UncoreSingleSocketSMT", "1-7,9-15", 10, "4-7,12-15,1,9"),
]

SPREAD_VECTORS = [
    ("SingleSocketHT", "0-7", 3, "0,1,2"),
    ("DualSocketHT", "0-11", 2, "0,2"),
    ("DualSocketHT", "0-11", 3, "0,2,4"),
    ("DualSocketHT", "0-11", 6, "0,2,4,6,8,10"),
    ("DualSocketHT", "0-11", 8, "0,2,4,6,8,10,1,3"),
    ("DualSocketNoHT", "0-7", 2, "0,1"),
    ("MultiNuma", "0-79", 8, "0-7"),
]

DISTRIBUTED_VECTORS = [
    ("D1", "DualSocketHT", "0-11", 8, 1, "0,6,2,8,1,7,3,9"),
    ("D2", "MultiNuma", "0-79", 64, 1, "0-7,10-17,20-27,30-37,40-47,50-57,60-67,70-77"),
    ("D3", "MultiNuma", "0-79", 48, 1, "0-7,10-17,20-27,40-47,50-57,60-67"),
    ("D4", "MultiNuma", "1-29,32-39,41-69,72-79", 48, 1, "1-8,10-17,20-27,41-48,50-57,60-67"),
    ("D5", "MultiNuma", "2-29,31-39,42-69,71-79", 48, 1, "10-17,20-27,31-38,50-57,60-67,71-78"),
    (
        "D6",
        "MultiNuma",
        "0-2,10-12,20-22,30-32,40-41,50-51,60-61,70-71",
        16,
        1,
        "0-1,10-11,20-21,30-31,40-41,50-51,60-61,70-71",
    ),
    ("D7", "DualSocketHT", "1,2,3,4,5,7,8,9,10,11", 1, 1, "1"),
    ("D8", "DualSocketHT", "1,2,3,4,5,7,8,9,10,11", 1, 2, "2"),
    ("D9", "MultiNuma", "0-79", 26, 1, "0-6,10-16,40-45,50-55"),
    ("D10", "MultiNuma", "0-79", 26, 2, "0-6,10-15,40-46,50-55"),
    ("D11", "MultiNuma", "0-79", 62, 1, "0-7,10-17,20-27,30-37,40-47,50-57,60-66,70-76"),
    ("D12", "MultiNuma", "0-79", 62, 2, "0-7,10-17,20-27,30-36,40-47,50-57,60-67,70-76"),
    (
        "D13",
        "MultiNuma",
        "0-8,10-18,20-39,40-48,50-58,60-79",
        62,
        1,
        "0-7,10-17,20-27,30-37,40-46,50-56,60-67,70-77",
    ),
    (
        "D14",
        "MultiNuma",
        "0-8,10-18,20-39,40-48,50-58,60-79",
        62,
        2,
        "0-7,10-16,20-27,30-37,40-47,50-56,60-67,70-77",
    ),
    (
        "D15",
        "MultiNuma",
        "0-3,10-13,20-23,30-36,40-43,50-53,60-63,70-76",
        34,
        1,
        "0-3,10-13,20-23,30-34,40-43,50-53,60-63,70-74",
    ),
]


def test_p1_not_enough():
    with pytest.raises(AllocationError) as exc:
        take("SingleSocketHT", "0,2,4,6", 5)
    assert exc.value.message == (
        "not enough cpus available to satisfy request: requested=5, available=4"
    )
    assert exc.value.reason is None


@pytest.mark.parametrize(
    "vid,topo,avail,n,want", PACKED_VECTORS, ids=[v[0] for v in PACKED_VECTORS]
)
def test_numa_packed(vid, topo, avail, n, want):
    assert take(topo, avail, n) == CPUSet.parse(want)


@pytest.mark.parametrize(
    "vid,topo,avail,n,want", UNCORE_VECTORS, ids=[v[0] for v in UNCORE_VECTORS]
)
def test_uncore(vid, topo, avail, n, want):
    assert take(topo, avail, n, TakeOptions(prefer_uncore=True)) == CPUSet.parse(want)


@pytest.mark.parametrize("topo,avail,n,want", SPREAD_VECTORS)
def test_spread(topo, avail, n, want):
    assert take(topo, avail, n, TakeOptions(spread=True)) == CPUSet.parse(want)


@pytest.mark.parametrize(
    "vid,topo,avail,n,g,want", DISTRIBUTED_VECTORS, ids=[v[0] for v in DISTRIBUTED_VECTORS]
)
def test_numa_distributed(vid, topo, avail, n, g, want):
    opts = TakeOptions(distribute_numa=True, group_size=g)
    assert take(topo, avail, n, opts) == CPUSet.parse(want)


P2_TO_P13 = [v for v in PACKED_VECTORS if int(v[0][1:]) <= 13]


@pytest.mark.parametrize("vid,topo,avail,n,want", P2_TO_P13, ids=[v[0] for v in P2_TO_P13])
def test_distributed_g1_matches_packed_vectors(vid, topo, avail, n, want):
    """§7.4: P1-P13 give the same result through the distributed variant with group size 1
    (P1 is test_distributed_not_enough)."""
    assert take(topo, avail, n, TakeOptions(distribute_numa=True)) == CPUSet.parse(want)


def test_distributed_not_enough():
    with pytest.raises(AllocationError, match="requested=5, available=4"):
        take("SingleSocketHT", "0,2,4,6", 5, TakeOptions(distribute_numa=True))


def test_socket_first_without_override_differs_only_in_order():
    # UncoreSingleSocketMultiNuma has 2 NUMA nodes on 1 socket: socketsFirst without the
    # override. U6 gives the same answer either way.
    t = TOPOS["UncoreSingleSocketMultiNuma"]
    got = take_by_topology(t, CPUSet.parse("3-8,12"), 2, TakeOptions(prefer_uncore=True))
    assert got == CPUSet({4, 5})


def test_index_is_cached_per_topology_object():
    t = TOPOS["MultiNuma"]
    assert topology_index(t) is topology_index(t)
    assert topology_index(multi_numa_per_socket_ht()) is not topology_index(t)


def test_from_policy_options():
    o = TakeOptions.from_policy_options(
        {"full-pcpus-only": True, "distribute-cpus-across-numa": True}, cpus_per_core=2
    )
    assert o == TakeOptions(distribute_numa=True, group_size=2)
    assert TakeOptions.from_policy_options({"distribute-cpus-across-cores": True}, 2).spread
    # align-by-socket reaches the NUMA-distributed strategy from 1.37 (v1.37.2
    # cpumanager/policy_static.go:829); newest by default
    both = {"distribute-cpus-across-numa": True, "align-by-socket": True}
    assert TakeOptions.from_policy_options(both, 2).align_by_socket
    assert TakeOptions.from_policy_options(both, 2, k8s_minor=37).align_by_socket
    assert not TakeOptions.from_policy_options(both, 2, k8s_minor=36).align_by_socket


# ---- properties over generated topologies ---------------------------------------------------


def generated(
    sockets: int, numa_per_socket: int, cores_per_numa: int, threads: int, cores_per_l3: int = 0
) -> Topology:
    """Linux-style numbering: first threads of every core, then the second threads, ...
    cores_per_l3 > 0 splits cores into L3 (uncore) groups; 0 leaves the socket fallback."""
    rows = []
    ncores = sockets * numa_per_socket * cores_per_numa
    for t in range(threads):
        for core in range(ncores):
            numa = core // cores_per_numa
            rows.append(
                {
                    "id": t * ncores + core,
                    "socket": numa // numa_per_socket,
                    "numa": numa,
                    "core": core,
                    "uncore": core // cores_per_l3 if cores_per_l3 else None,
                }
            )
    return build(rows)


topologies = st.builds(
    generated,
    st.integers(1, 2),
    st.integers(1, 2),
    st.integers(1, 4),
    st.integers(1, 2),
    st.integers(0, 3),
)

OPTION_SETS = [
    TakeOptions(),
    TakeOptions(spread=True),
    TakeOptions(prefer_uncore=True),
    TakeOptions(distribute_numa=True),
    TakeOptions(distribute_numa=True, group_size=2),
    TakeOptions(distribute_numa=True, align_by_socket=True),
    TakeOptions(distribute_numa=True, group_size=2, align_by_socket=True),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topologies, st.data())
def test_take_returns_n_available_cpus(topo, data):
    all_cpus = sorted(topo.all_cpus)
    avail = CPUSet(data.draw(st.sets(st.sampled_from(all_cpus))))
    n = data.draw(st.integers(0, len(all_cpus)))
    opts = data.draw(st.sampled_from(OPTION_SETS))
    if n > len(avail):
        with pytest.raises(AllocationError, match="not enough cpus"):
            take_by_topology(topo, avail, n, opts)
        return
    got = take_by_topology(topo, avail, n, opts)
    assert len(got) == n
    assert got <= avail
    assert take_by_topology(topo, avail, n, opts) == got  # deterministic


@settings(max_examples=60, deadline=None)
@given(topologies, st.data())
def test_packed_takes_whole_cores_when_it_can(topo, data):
    """With every CPU free and n a multiple of the SMT level, packed returns whole cores."""
    per_core = topo.cpus_per_core
    n = per_core * data.draw(st.integers(0, topo.num_cores))
    got = take_by_topology(topo, topo.all_cpus, n)
    for core in topo.cores.values():
        assert core <= got or not (core & got)


def test_distributed_never_spins_when_whole_groups_cannot_cover_the_remainder():
    # 1 socket, 4 NUMA nodes x 4 cores x 2 threads (siblings adjacent); free CPUs per node
    # 5, 5, 4, 2: odd counts leave half cores that groups of 2 cannot use. The kubelet's
    # round-robin over such a subset never ends; the oracle must still answer.
    rows = [{"id": c, "socket": 0, "numa": c // 8, "core": c // 2} for c in range(32)]
    nodes = [NUMANode(i, 1 << 30) for i in range(4)]
    topo = Topology(make_cpus(rows), nodes)
    avail = CPUSet.parse("0-4,8-12,16-19,24-25")
    got = take_by_topology(topo, avail, 14, TakeOptions(distribute_numa=True, group_size=2))
    assert len(got) == 14 and got <= avail
