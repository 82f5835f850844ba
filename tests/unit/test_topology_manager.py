"""Topology Manager vectors transcribed from kubelet-algorithms.md §7.1 (upstream policy_test.go,
numa_info_test.go, topology_manager_test.go). Every merge vector runs against both merges."""

from __future__ import annotations

import pytest

from numacert.oracle.bitmask import (
    avg_distance,
    count,
    is_less_than,
    is_narrower_than,
    iterate_masks,
    mask_of,
)
from numacert.oracle.hints import (
    AdmissionError,
    AllocationError,
    Hint,
    ProviderHints,
)
from numacert.oracle.pod import Container, Pod
from numacert.oracle.topology_manager import (
    NO_HINT,
    TopologyManager,
    filter_provider_hints,
    max_of_min_affinity_counts,
)

MERGES = ["fast", "exhaustive"]

# 8-node SLIT of mergeTestCasesClosestNUMA (row 7 is deliberately asymmetric upstream).
DISTANCES_8 = {
    0: (10, 11, 12, 12, 30, 30, 30, 30),
    1: (11, 10, 12, 12, 30, 30, 30, 30),
    2: (12, 12, 10, 11, 30, 30, 30, 30),
    3: (12, 12, 11, 10, 30, 30, 30, 30),
    4: (30, 30, 30, 30, 10, 11, 12, 12),
    5: (30, 30, 30, 30, 11, 10, 12, 12),
    6: (30, 30, 30, 30, 12, 12, 10, 11),
    7: (30, 30, 30, 30, 12, 12, 13, 10),
}
DISTANCES_4 = {
    0: (10, 11, 12, 12),
    1: (11, 10, 12, 12),
    2: (12, 12, 10, 11),
    3: (12, 12, 11, 10),
}
ALL_10_4 = {i: (10, 10, 10, 10) for i in range(4)}


def h(nodes: list[int] | None, preferred: bool) -> Hint:
    """Hint from a NUMA id list (None = nil mask)."""
    return Hint(None if nodes is None else mask_of(nodes), preferred)


T, F = True, False
ALL = "ALL"  # placeholder for the mask of every NUMA node of the manager


def run_merge(tm: TopologyManager, impl: str, providers: list[ProviderHints]):
    return getattr(tm, f"merge_{impl}")(providers)


def expected_hint(tm: TopologyManager, nodes, preferred: bool) -> Hint:
    if nodes == ALL:
        return Hint(tm.default_mask, preferred)
    return h(nodes, preferred)


# ---- commonPolicyMergeTestCases: best-effort, restricted and single-numa-node ---------------

COMMON = {
    "M1": ([{"r1": [h([0], T)]}, {"r2": [h([0], T)]}], [0]),
    "M2": ([{"r1": [h([1], T)]}, {"r2": [h([1], T)]}], [1]),
    "M3": ([None, {"r": [h([0], T)]}], [0]),
    "M4": ([{"r1": [h([0], T), h([1], T)]}, {"r2": [h([0], T)]}], [0]),
    "M5": ([{"r1": [h([0], T), h([1], T)]}, {"r2": [h([1], T)]}], [1]),
    "M6": ([{"r1": [h([0], T), h([1], T)]}, {"r2": [h([0], T), h([0, 1], F)]}], [0]),
    "M7": (
        [{"r1": [h([1], T), h([0, 1], F)]}, {"r2": [h([0], T), h([1], T), h([0, 1], F)]}],
        [1],
    ),
    "M8": (
        [{"r1": [h([1], T), h([0, 1], F)], "r2": [h([0], T), h([1], T), h([0, 1], F)]}],
        [1],
    ),
}


@pytest.mark.parametrize("impl", MERGES)
@pytest.mark.parametrize("policy", ["best-effort", "restricted", "single-numa-node"])
@pytest.mark.parametrize("numa", [[0, 1], [0, 1, 2, 3]])
@pytest.mark.parametrize("case", sorted(COMMON))
def test_common_merge(case, numa, policy, impl):
    providers, nodes = COMMON[case]
    tm = TopologyManager(policy, "container", numa)
    assert run_merge(tm, impl, providers) == (h(nodes, T), True)


@pytest.mark.parametrize("impl", MERGES)
@pytest.mark.parametrize("policy", ["best-effort", "restricted", "single-numa-node"])
@pytest.mark.parametrize("case", sorted(COMMON))
def test_common_merge_prefer_closest(case, policy, impl):
    providers, nodes = COMMON[case]
    tm = TopologyManager(policy, "container", range(8), DISTANCES_8, prefer_closest=True)
    assert run_merge(tm, impl, providers) == (h(nodes, T), True)


# ---- mergeTestCases: best-effort and restricted, NUMA {0..3} --------------------------------

P1_WIDE = {"r1": [h([0, 1, 2, 3], F), h([0, 1], F)]}
# case: (providers, expected nodes, expected preferred, expected nodes with prefer-closest)
BEST_EFFORT_CASES = {
    "B1": (
        [{"r1": [h([0, 1], T), h([0, 2], T)]}, {"r2": [h([0, 1], T), h([0, 2], T)]}],
        [0, 1],
        T,
        [0, 1],
    ),
    "B2": ([], ALL, T, ALL),
    "B3": ([{}], ALL, T, ALL),
    "B4": ([{"r": None}], ALL, T, ALL),
    "B5": ([{"r": []}], ALL, F, ALL),
    "B6": ([{"r": [h(None, T)]}], ALL, T, ALL),
    "B7": ([{"r": [h(None, F)]}], ALL, F, ALL),
    "B8": ([{"r1": [h([0], T)]}, {"r2": [h([1], T)]}], ALL, F, ALL),
    "B9": ([{"r1": [h([0], T)]}, {"r2": [h([0], F)]}], [0], F, [0]),
    "B10": ([{"r1": [h([0], T)]}, {"r2": [h([0, 1], T)]}], [0], F, [0]),
    "B11": ([{"r1": [h([0], T), h([1], T)]}, {"r2": [h([0, 1], F)]}], [0], F, [0]),
    "B12": ([{"r1": [h([1], T)]}, {"r2": [h([0, 1], T)]}], [1], F, [1]),
    "B13": ([P1_WIDE, {"r2": [h([0, 1], F)]}], [0, 1], F, [0, 1]),
    "B14": ([P1_WIDE, {"r2": [h([0, 3], F)]}], [0, 3], F, [0, 3]),
    "B15": ([P1_WIDE, {"r2": [h([1, 2], F)]}], [1, 2], F, [1, 2]),
    "B16": ([P1_WIDE, {"r2": [h([2, 3], F)]}], [2, 3], F, [2, 3]),
    "B17": ([P1_WIDE, {"r2": [h([1, 2], F), h([2, 3], F)]}], [1, 2], F, [2, 3]),
    "B18": (
        [P1_WIDE, {"r2": [h([1, 2, 3], F), h([1, 2], F), h([1, 3], F), h([2, 3], F)]}],
        [1, 2],
        F,
        [2, 3],
    ),
}


def _admit_for(policy: str, best: Hint) -> bool:
    return True if policy == "best-effort" else best.preferred


@pytest.mark.parametrize("impl", MERGES)
@pytest.mark.parametrize("policy", ["best-effort", "restricted"])
@pytest.mark.parametrize("numa", [[0, 1, 2, 3], list(range(8))])
@pytest.mark.parametrize("case", sorted(BEST_EFFORT_CASES, key=lambda c: int(c[1:])))
def test_best_effort_restricted_merge(case, numa, policy, impl):
    providers, nodes, preferred, _ = BEST_EFFORT_CASES[case]
    tm = TopologyManager(policy, "container", numa)
    want = expected_hint(tm, nodes, preferred)
    assert run_merge(tm, impl, providers) == (want, _admit_for(policy, want))


@pytest.mark.parametrize("impl", MERGES)
@pytest.mark.parametrize("policy", ["best-effort", "restricted"])
@pytest.mark.parametrize("case", sorted(BEST_EFFORT_CASES, key=lambda c: int(c[1:])))
def test_best_effort_restricted_merge_prefer_closest(case, policy, impl):
    providers, _, preferred, nodes = BEST_EFFORT_CASES[case]
    tm = TopologyManager(policy, "container", range(8), DISTANCES_8, prefer_closest=True)
    want = expected_hint(tm, nodes, preferred)
    assert run_merge(tm, impl, providers) == (want, _admit_for(policy, want))


CLOSEST_CASES = {
    "C1": ([{"r1": [h([0, 4], T), h([0, 2], T)]}, {"r2": [h([0, 4], T), h([0, 2], T)]}], [0, 2]),
    "C2": ([{"r1": [h([4], T), h([0, 2], T)]}, {"r2": [h([4], T), h([0, 2], T)]}], [4]),
}


@pytest.mark.parametrize("impl", MERGES)
@pytest.mark.parametrize("policy", ["best-effort", "restricted"])
@pytest.mark.parametrize("case", sorted(CLOSEST_CASES))
def test_merge_closest_numa(case, policy, impl):
    providers, nodes = CLOSEST_CASES[case]
    tm = TopologyManager(policy, "container", range(8), DISTANCES_8, prefer_closest=True)
    assert run_merge(tm, impl, providers) == (h(nodes, T), True)


# Non-preferred selections beyond §7.1, derived by hand from compare() (T = 2 in each).
NON_PREFERRED_TIERS = {
    # counts below and above T, none equal: the largest count below T wins
    "below-and-above": (
        [{"a": [h([0, 1], F), h([0, 1, 2, 3], F)]}, {"b": [h([0], F), h([1, 2, 3], F)]}],
        [0],
    ),
    # only counts above T: the narrowest wins
    "only-above": (
        [{"a": [h([0, 1], F), h([0, 1, 2, 3], F)]}, {"b": [h([1, 2, 3], F)]}],
        [1, 2, 3],
    ),
    # equal count T beats a narrower count below T
    "equal-beats-below": (
        [{"a": [h([0, 1], F), h([2, 3], F)]}, {"b": [h([0], F), h([2, 3], F)]}],
        [2, 3],
    ),
}


@pytest.mark.parametrize("impl", MERGES)
@pytest.mark.parametrize("case", sorted(NON_PREFERRED_TIERS))
def test_non_preferred_tiers(case, impl):
    providers, nodes = NON_PREFERRED_TIERS[case]
    tm = TopologyManager("best-effort", "container", range(4))
    assert run_merge(tm, impl, providers) == (h(nodes, F), True)


@pytest.mark.parametrize("impl", MERGES)
def test_prefer_closest_changes_b17_only_when_enabled(impl):
    providers = BEST_EFFORT_CASES["B17"][0]
    plain = TopologyManager("best-effort", "container", range(8), DISTANCES_8)
    assert run_merge(plain, impl, providers) == (h([1, 2], F), True)


# ---- single-numa-node mergeTestCases, NUMA {0,1} --------------------------------------------

SINGLE_NUMA_CASES = {
    "S1-no-providers": ([], None, T),
    "S1-empty-map": ([{}], None, T),
    "S1-nil-list": ([{"r": None}], None, T),
    "S1-nil-hint": ([{"r": [h(None, T)]}], None, T),
    "S2-empty-list": ([{"r": []}], None, F),
    "S2-nil-nonpreferred": ([{"r": [h(None, F)]}], None, F),
    "S3": ([{"r1": [h([0], T)]}, {"r2": [h([1], T)]}], None, F),
    "S4": ([{"r1": [h([0], T)]}, {"r2": [h([0], F)]}], None, F),
    "S5": ([{"r1": [h([0], T), h([1], T)]}, {"r2": [h([0, 1], F)]}], None, F),
    "S6": ([{"r1": [h([0, 1], T)], "r2": [h([0], T), h([1], T), h([0, 1], F)]}], None, F),
    "S7": ([{"r1": [h([0], T), h([1], T), h([0, 1], F)]}, None], [0], T),
}


@pytest.mark.parametrize("impl", MERGES)
@pytest.mark.parametrize("prefer_closest", [False, True])
@pytest.mark.parametrize("case", sorted(SINGLE_NUMA_CASES))
def test_single_numa_node_merge(case, prefer_closest, impl):
    providers, nodes, preferred = SINGLE_NUMA_CASES[case]
    distances = {0: (10, 11), 1: (11, 10)} if prefer_closest else None
    tm = TopologyManager("single-numa-node", "container", [0, 1], distances, prefer_closest)
    assert run_merge(tm, impl, providers) == (h(nodes, preferred), preferred)


@pytest.mark.parametrize("impl", MERGES)
def test_single_numa_node_on_one_node_machine_gives_nil(impl):
    tm = TopologyManager("single-numa-node", "container", [0])
    assert run_merge(tm, impl, [{"cpu": [h([0], T)]}]) == (h(None, T), True)


@pytest.mark.parametrize("impl", MERGES)
def test_policy_none_merge_is_zero_hint(impl):
    tm = TopologyManager("none", "container", [0, 1])
    assert run_merge(tm, impl, [{"cpu": []}]) == (NO_HINT, True)


# ---- compare / helpers ----------------------------------------------------------------------

# (bestNonPreferredAffinityCount, current, candidate, expected: "current" | "candidate")
COMPARE_NARROWEST = [
    (-1, None, h([], F), "current"),
    (-1, None, h([0], T), "candidate"),
    (-1, h([0], F), h([0], T), "candidate"),
    (-1, h([0], T), h([0], F), "current"),
    (-1, h([0], T), h([0], T), "current"),
    (-1, h([0, 1], T), h([0], T), "candidate"),
    (-1, h([0], T), h([0, 1], T), "current"),
    (1, h([0, 1], F), h([0, 1], F), "current"),
    (1, h([1, 2], F), h([0, 1], F), "candidate"),
    (1, h([0, 1], F), h([1, 2], F), "current"),
    (2, h([0, 1], F), h([0], F), "current"),
    (2, h([1, 2], F), h([0, 1], F), "candidate"),
    (2, h([0], F), h([0, 1, 2], F), "current"),
    (2, h([0], F), h([0, 1], F), "candidate"),
    (3, h([0], F), h([0, 1], F), "candidate"),
    (3, h([0], F), h([1, 2], F), "candidate"),
    (4, h([0, 1], F), h([1, 2, 3], F), "candidate"),
    (4, h([1, 2, 3], F), h([0, 1], F), "current"),
    (4, h([0, 1, 2], F), h([1, 2, 3], F), "current"),
    (4, h([1, 2, 3], F), h([0, 1, 2], F), "candidate"),
]


@pytest.mark.parametrize("target,current,candidate,expected", COMPARE_NARROWEST)
def test_compare_hints_narrowest(target, current, candidate, expected):
    tm = TopologyManager("best-effort", "container", [0, 1, 2, 3])
    got = tm.compare(current, candidate, target)
    assert got is (current if expected == "current" else candidate)


@pytest.mark.parametrize(
    "target,current,candidate,expected",
    [
        (target, cur, cand, expected)
        for target, cur, cand, expected in COMPARE_NARROWEST
        if cur is not None and not cur.preferred and not cand.preferred
    ],
)
def test_np_rank_agrees_with_compare(target, current, candidate, expected):
    """The sort key the fast merge uses orders non-preferred hints as compare() does."""
    tm = TopologyManager("best-effort", "container", [0, 1, 2, 3])
    cur, cand = tm._np_rank(current.mask, target), tm._np_rank(candidate.mask, target)
    if current.mask == candidate.mask:
        assert cur == cand
    else:
        assert (cand < cur) == (expected == "candidate")


@pytest.mark.parametrize(
    "lists,expected",
    [
        ([], 0),
        ([[h([], F)]], 0),
        ([[h([0], F)]], 1),
        ([[h([0, 1], F)]], 2),
        ([[h([0, 1], F), h([0, 1, 2], F)]], 2),
        ([[h([0, 1], F), h([0, 1, 2], F)], [h([0, 1, 2], F)]], 3),
        ([[h([0, 1], F), h([0, 1, 2], F)], [h([0, 1, 2], F), h([0, 1, 2, 3], F)]], 3),
        ([[h(None, T)], [h(None, F), h([2], F)]], 1),
    ],
)
def test_max_of_min_affinity_counts(lists, expected):
    assert max_of_min_affinity_counts(lists) == expected


def test_filter_provider_hints_conventions():
    hints = [h([0], T)]
    assert filter_provider_hints([None, {}, {"a": None, "b": [], "c": hints}]) == [
        [h(None, T)],
        [h(None, T)],
        [h(None, T)],
        [h(None, F)],
        hints,
    ]


# ---- numa_info_test.go ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "nodes,distances,expected",
    [
        ([0], {0: (10,)}, 10.0),
        ([0], {0: (10, 11), 1: (11, 10)}, 10.0),
        ([0, 1], {0: (10, 11), 1: (11, 10)}, 10.5),
        ([0, 2], DISTANCES_4, 11.0),
        ([0, 2, 3], DISTANCES_4, 100 / 9),
        ([], DISTANCES_4, 0.0),
    ],
)
def test_avg_distance(nodes, distances, expected):
    assert avg_distance(mask_of(nodes), distances) == pytest.approx(expected)


@pytest.mark.parametrize(
    "current,candidate,distances,expected",
    [
        ([0], [0, 2], DISTANCES_4, "current"),
        ([0, 1], [0, 2], ALL_10_4, "current"),
        ([0, 3], [0, 2], ALL_10_4, "candidate"),
        ([0, 3], [0, 1], DISTANCES_4, "candidate"),
        ([2, 3], [0, 3], DISTANCES_4, "current"),
    ],
)
def test_closest(current, candidate, distances, expected):
    tm = TopologyManager("best-effort", "container", range(4), distances, prefer_closest=True)
    cur, cand = h(current, T), h(candidate, T)
    assert tm.pick_mask(cur, cand) is (cur if expected == "current" else cand)


def test_single_numa_node_ignores_prefer_closest():
    tm = TopologyManager("single-numa-node", "container", range(4), DISTANCES_4, True)
    assert not tm.use_closest
    # Narrowest: lower value wins although {2,3} is closer.
    assert tm.pick_mask(h([0, 2], T), h([2, 3], T)) == h([0, 2], T)


# ---- bitmask --------------------------------------------------------------------------------


def test_iterate_masks_order():
    assert list(iterate_masks([2, 0, 1])) == [
        0b001,
        0b010,
        0b100,
        0b011,
        0b101,
        0b110,
        0b111,
    ]
    assert list(iterate_masks([])) == []
    assert len(list(iterate_masks(range(8)))) == 255


def test_mask_ordering():
    assert count(0b1011) == 3
    assert is_less_than(0b01, 0b10) and not is_less_than(0b10, 0b10)
    assert is_narrower_than(0b100, 0b011)  # fewer nodes
    assert is_narrower_than(0b011, 0b101)  # same count, lower value
    assert not is_narrower_than(0b101, 0b011)
    assert not is_narrower_than(0b011, 0b011)


# ---- construction (the parts TopologyManager itself checks) ----------------------------------


def test_new_manager_rejects_unknown_policy_and_scope():
    with pytest.raises(ValueError, match='unknown policy: "unknown"|unknown policy'):
        TopologyManager("unknown", "container", [0])
    with pytest.raises(ValueError, match="unknown scope"):
        TopologyManager("best-effort", "unknown", [0])


def test_new_manager_prefer_closest_needs_distances():
    with pytest.raises(ValueError):
        TopologyManager("best-effort", "container", [0, 1], None, prefer_closest=True)
    # single-numa-node ignores the option, so it needs no distances
    TopologyManager("single-numa-node", "container", [0, 1], None, prefer_closest=True)


# ---- admission (topology_manager_test.go TestAdmit and the scope flows of §2.5) --------------


class FakeProvider:
    """Returns fixed hints (per container name, or one answer for everyone) and records calls."""

    def __init__(
        self,
        hints: ProviderHints = None,
        per_container: dict[str, ProviderHints] | None = None,
        pod_hints: ProviderHints = None,
        fail_on: dict[str, AllocationError] | None = None,
        log: list | None = None,
        name: str = "fake",
    ) -> None:
        self.hints = hints
        self.per_container = per_container or {}
        self.pod_hints = pod_hints if pod_hints is not None else hints
        self.fail_on = fail_on or {}
        self.log = log if log is not None else []
        self.name = name

    def get_topology_hints(self, pod: Pod, container: Container) -> ProviderHints:
        self.log.append((self.name, "hints", container.name))
        return self.per_container.get(container.name, self.hints)

    def get_pod_topology_hints(self, pod: Pod) -> ProviderHints:
        self.log.append((self.name, "pod_hints", pod.name))
        return self.pod_hints

    def allocate(self, pod: Pod, container: Container, hint: Hint) -> None:
        self.log.append((self.name, "allocate", container.name, hint))
        if container.name in self.fail_on:
            raise self.fail_on[container.name]

    def remove_pod(self, pod_uid: str) -> None:
        pass


def make_pod(qos: str = "Guaranteed", inits: int = 0, apps: int = 1) -> Pod:
    def container(name: str, init: bool) -> Container:
        if qos == "Guaranteed":
            return Container(name, 1000, 1000, {"memory": 1 << 30}, {"memory": 1 << 30}, init)
        if qos == "Burstable":
            return Container(name, 500, None, {"memory": 1 << 30}, {}, init)
        return Container(name, None, None, {}, {}, init)

    return Pod(
        name="p",
        uid="p",
        init_containers=tuple(container(f"init{i}", True) for i in range(inits)),
        containers=tuple(container(f"c{i}", False) for i in range(apps)),
    )


ADMIT_CASES = [
    ("none", "Guaranteed", None, True),
    ("none", "BestEffort", None, True),
    ("single-numa-node", "BestEffort", [None], True),
    ("restricted", "BestEffort", [None], True),
    ("best-effort", "Guaranteed", [{"r": [h([0], T), h([0, 1], F)]}], True),
    ("best-effort", "Guaranteed", [{"r": [h([0], T), h([1], T), h([0, 1], F)]}], True),
    ("best-effort", "Guaranteed", [{"r": [h([0, 1], F)]}], True),
    ("restricted", "Guaranteed", [{"r": [h([0], T), h([0, 1], F)]}], True),
    ("restricted", "Guaranteed", [{"r": [h([0], T), h([1], T), h([0, 1], F)]}], True),
    ("restricted", "Guaranteed", [{"r": [h([0, 1], F)]}], False),
    ("restricted", "Burstable", [{"r": [h([0, 1], F)]}], False),
]


@pytest.mark.parametrize("impl", MERGES)
@pytest.mark.parametrize("scope", ["container", "pod"])
@pytest.mark.parametrize("policy,qos,provider_hints,admitted", ADMIT_CASES)
def test_admit(policy, qos, provider_hints, admitted, scope, impl):
    tm = TopologyManager(policy, scope, [0, 1], exhaustive=impl == "exhaustive")
    providers = [FakeProvider(hints) for hints in provider_hints or []]
    pod = make_pod(qos)
    if admitted:
        assert set(tm.admit(pod, providers)) == {"c0"}
    else:
        with pytest.raises(AdmissionError) as err:
            tm.admit(pod, providers)
        assert err.value.reason == "TopologyAffinityError"
        assert err.value.message == "Resources cannot be allocated with Topology locality"
        assert not any(entry[1] == "allocate" for p in providers for entry in p.log)


@pytest.mark.parametrize("impl", MERGES)
def test_container_scope_flow(impl):
    log: list = []
    cpu = FakeProvider(
        per_container={"init0": {"cpu": [h([1], T)]}, "c0": {"cpu": [h([0], T)]}},
        log=log,
        name="cpu",
    )
    mem = FakeProvider(hints=None, log=log, name="mem")
    tm = TopologyManager("restricted", "container", [0, 1], exhaustive=impl == "exhaustive")
    pod = make_pod(inits=1, apps=2)
    stored = tm.admit(pod, [cpu, mem])
    assert stored == {"init0": h([1], T), "c0": h([0], T), "c1": h([0, 1], T)}
    assert list(stored) == ["init0", "c0", "c1"]
    # per container: hints from every provider, then allocate in provider order
    assert log[:4] == [
        ("cpu", "hints", "init0"),
        ("mem", "hints", "init0"),
        ("cpu", "allocate", "init0", h([1], T)),
        ("mem", "allocate", "init0", h([1], T)),
    ]
    assert [e[2] for e in log if e[1] == "hints" and e[0] == "cpu"] == ["init0", "c0", "c1"]


@pytest.mark.parametrize("impl", MERGES)
def test_container_scope_rejects_later_container_after_earlier_allocations(impl):
    cpu = FakeProvider(per_container={"c0": {"cpu": [h([0], T)]}, "c1": {"cpu": []}})
    tm = TopologyManager("single-numa-node", "container", [0, 1], exhaustive=impl == "exhaustive")
    with pytest.raises(AdmissionError) as err:
        tm.admit(make_pod(apps=2), [cpu])
    assert err.value.reason == "TopologyAffinityError"
    assert [e[2] for e in cpu.log if e[1] == "allocate"] == ["c0"]


@pytest.mark.parametrize("impl", MERGES)
def test_pod_scope_merges_once_and_stores_same_hint(impl):
    cpu = FakeProvider(pod_hints={"cpu": [h([1], T), h([0, 1], F)]})
    mem = FakeProvider(pod_hints={"memory": [h([0], T), h([1], T)]})
    tm = TopologyManager("single-numa-node", "pod", [0, 1], exhaustive=impl == "exhaustive")
    stored = tm.admit(make_pod(inits=1, apps=2), [cpu, mem])
    assert stored == {"init0": h([1], T), "c0": h([1], T), "c1": h([1], T)}
    assert [e[1] for e in cpu.log].count("pod_hints") == 1
    assert not any(e[1] == "hints" for e in cpu.log)


def test_single_numa_node_stores_nil_for_default_mask_on_one_node():
    cpu = FakeProvider({"cpu": [h([0], T)]})
    tm = TopologyManager("single-numa-node", "container", [0])
    assert tm.admit(make_pod(), [cpu]) == {"c0": h(None, T)}


def test_policy_none_allocates_with_zero_hint_without_asking_for_hints():
    cpu = FakeProvider({"cpu": []})
    tm = TopologyManager("none", "container", [0, 1])
    assert tm.admit(make_pod(inits=1), [cpu]) == {"init0": NO_HINT, "c0": NO_HINT}
    assert [e[1] for e in cpu.log] == ["allocate", "allocate"]


@pytest.mark.parametrize("policy", ["none", "best-effort", "restricted", "single-numa-node"])
@pytest.mark.parametrize("scope", ["container", "pod"])
def test_allocation_errors_become_admission_errors(policy, scope):
    tm = TopologyManager(policy, scope, [0, 1])
    typed = FakeProvider(
        fail_on={"c0": AllocationError("SMT Alignment Error: ...", "SMTAlignmentError")}
    )
    with pytest.raises(AdmissionError) as err:
        tm.admit(make_pod(), [typed])
    assert err.value.reason == "SMTAlignmentError"
    assert err.value.message == "SMT Alignment Error: ..."

    first = FakeProvider(name="first")
    untyped = FakeProvider(fail_on={"c0": AllocationError("not enough cpus available")})
    later = FakeProvider(name="later")
    with pytest.raises(AdmissionError) as err:
        tm.admit(make_pod(), [first, untyped, later])
    assert err.value.reason == "UnexpectedAdmissionError"
    assert err.value.message == (
        "Allocate failed due to not enough cpus available, which is unexpected"
    )
    # the first error stops the provider loop
    assert any(e[1] == "allocate" for e in first.log)
    assert not any(e[1] == "allocate" for e in later.log)


# ---- scale: the fast merge on 8 nodes with full hint lists ----------------------------------


@pytest.mark.parametrize("prefer_closest", [False, True])
def test_fast_merge_matches_exhaustive_on_full_8_node_lists(prefer_closest):
    """Two resources with 255 hints each (65k permutations), non-preferred outcome: exercises
    the subset-transform path of the fast merge."""
    masks = list(iterate_masks(range(8)))
    cpu = [Hint(m, m.bit_count() == 3 and m & 1 == 1) for m in masks]
    memory = [Hint(m, m.bit_count() == 2 and m & 1 == 0) for m in masks if m.bit_count() >= 2]
    providers: list[ProviderHints] = [{"cpu": cpu}, {"memory": memory}]
    tm = TopologyManager("restricted", "container", range(8), DISTANCES_8, prefer_closest)
    assert tm.merge_fast(providers) == tm.merge_exhaustive(providers)
