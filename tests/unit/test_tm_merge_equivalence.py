"""Property tests: the fast Topology Manager merge returns exactly what the kubelet's
cross-product walk (merge_exhaustive) returns, and neither depends on the order of resources
(Go map order) or of providers."""

from __future__ import annotations

from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numacert.oracle import topology_manager as tm_module
from numacert.oracle.bitmask import bits_of, iterate_masks
from numacert.oracle.hints import Hint, ProviderHints
from numacert.oracle.topology_manager import POLICIES, TopologyManager, reachable_by_transform

# The machine is slow and shared: no deadlines.
SETTINGS = settings(
    deadline=None,
    max_examples=600,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Largest cross product the exhaustive merge walks per example.
PERMUTATION_BUDGET = 3000


@st.composite
def node_ids(draw) -> list[int]:
    n = draw(st.integers(1, 5))
    if draw(st.booleans()):
        return list(range(n))
    # non-contiguous ids, as on machines with memory-less or offlined nodes
    return sorted(draw(st.sets(st.integers(0, 7), min_size=n, max_size=n)))


@st.composite
def distance_table(draw, ids: list[int]) -> dict[int, tuple[int, ...]]:
    """Symmetric SLIT over ids 0..max(ids) (rows are indexed by node id); a few distinct
    values so that equal average distances (ties) happen."""
    size = max(ids) + 1
    table = [[10] * size for _ in range(size)]
    for i in range(size):
        for j in range(i + 1, size):
            table[i][j] = table[j][i] = draw(st.sampled_from([11, 12, 20, 21, 30]))
    return {i: tuple(table[i]) for i in ids}


@st.composite
def provider_answers(draw, default: int, mode: str) -> list[ProviderHints]:
    """Random provider answers in every §2.2 form, with the cross product kept within budget.
    `mode` "never" makes every hint non-preferred, to reach the non-preferred selection often."""
    product = 1
    providers: list[ProviderHints] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["nil-map", "empty-map", "map", "map", "map"]))
        if kind == "nil-map":
            providers.append(None)
            continue
        if kind == "empty-map":
            providers.append({})
            continue
        resources: dict[str, list[Hint] | None] = {}
        for r in range(draw(st.integers(1, 3))):
            form = draw(st.sampled_from(["nil", "empty", "hints", "hints", "hints", "hints"]))
            if form == "nil":
                resources[f"r{r}"] = None
            elif form == "empty":
                resources[f"r{r}"] = []
            else:
                room = max(1, min(8, PERMUTATION_BUDGET // product))
                if draw(st.booleans()):
                    hints = draw(st.lists(hint(default, mode), min_size=1, max_size=room))
                else:
                    hints = draw(provider_like_hints(default, room, mode))
                product *= len(hints)
                resources[f"r{r}"] = hints
        providers.append(resources)
    return providers


@st.composite
def provider_like_hints(draw, default: int, room: int, mode: str) -> list[Hint]:
    """Like the real providers: distinct masks in IterateBitMasks order, often upward closed
    (every superset of a fitting mask fits too), the narrowest ones preferred."""
    all_masks = list(iterate_masks(bits_of(default)))
    if draw(st.booleans()):
        floor = draw(st.sampled_from(all_masks))
        chosen = [m for m in all_masks if m & floor == floor]
    else:
        chosen = draw(st.lists(st.sampled_from(all_masks), min_size=1, unique=True))
        chosen.sort(key=all_masks.index)
    chosen = chosen[:room]
    narrowest = min(m.bit_count() for m in chosen)
    if mode == "never":
        return [Hint(m, False) for m in chosen]
    if draw(st.booleans()):
        return [Hint(m, m.bit_count() == narrowest) for m in chosen]
    return [Hint(m, draw(st.booleans())) for m in chosen]


def hint(default: int, mode: str) -> st.SearchStrategy[Hint]:
    # submasks of default, the empty mask included (rare), or nil
    mask = st.one_of(
        st.none(), st.integers(0, default).map(lambda m: m & default) | st.just(default)
    )
    return st.builds(Hint, mask, st.just(False) if mode == "never" else st.booleans())


@st.composite
def scenarios(draw):
    ids = draw(node_ids())
    default = sum(1 << i for i in ids)
    policy = draw(st.sampled_from([p for p in POLICIES if p != "none"]))
    prefer_closest = draw(st.booleans())
    distances = draw(distance_table(ids)) if prefer_closest else None
    mode = draw(st.sampled_from(["any", "never"]))
    providers = draw(provider_answers(default, mode))
    manager = TopologyManager(policy, "container", ids, distances, prefer_closest)
    return manager, providers


def reordered(providers: list[ProviderHints], rng) -> list[ProviderHints]:
    """Same answers, resources (and providers) in another order."""
    out: list[ProviderHints] = []
    for answer in providers:
        if answer:
            items = list(answer.items())
            rng.shuffle(items)
            answer = dict(items)
        out.append(answer)
    rng.shuffle(out)
    return out


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_fast_merge_equals_exhaustive(scenario, rng):
    manager, providers = scenario
    expected = manager.merge_exhaustive(providers)
    assert manager.merge_fast(providers) == expected
    assert manager.merge(providers) == expected

    shuffled = reordered(providers, rng)
    assert manager.merge_exhaustive(shuffled) == expected
    assert manager.merge_fast(shuffled) == expected


@SETTINGS
@given(scenarios())
def test_fast_merge_with_subset_transform_equals_exhaustive(scenario):
    """Force the big-list path (subset transform) on every non-preferred merge."""
    manager, providers = scenario
    expected = manager.merge_exhaustive(providers)
    with mock.patch.object(tm_module, "_PAIRWISE_WORK_LIMIT", 0):
        assert manager.merge_fast(providers) == expected


@SETTINGS
@given(scenarios())
def test_none_policy_never_merges(scenario):
    manager, providers = scenario
    none = TopologyManager("none", "pod", manager.numa_ids)
    assert (
        none.merge_fast(providers) == none.merge_exhaustive(providers) == (Hint(None, False), True)
    )


@st.composite
def mask_families(draw):
    ids = sorted(draw(st.sets(st.integers(0, 9), min_size=1, max_size=8)))
    default = sum(1 << i for i in ids)
    sub = st.integers(0, default).map(lambda m: m & default)
    families = draw(st.lists(st.sets(sub, min_size=0, max_size=12), min_size=0, max_size=4))
    return default, families


@SETTINGS
@given(mask_families())
def test_subset_transform_equals_pairwise_ands(case):
    default, families = case
    reachable = {default}
    for masks in families:
        reachable = {s & m for s in reachable for m in masks}
    reachable.discard(0)
    assert reachable_by_transform(families, default) == reachable


@st.composite
def candidate_sets(draw):
    """Candidates as merged hints of one kind, T anywhere from 0 to beyond the node count."""
    ids = draw(node_ids())
    default = sum(1 << i for i in ids)
    masks = draw(
        st.lists(st.integers(1, default).map(lambda m: m & default).filter(bool), min_size=1)
    )
    target = draw(st.integers(0, len(ids) + 1))
    prefer_closest = draw(st.booleans())
    distances = draw(distance_table(ids)) if prefer_closest else None
    policy = draw(st.sampled_from(["best-effort", "restricted"]))
    return TopologyManager(policy, "container", ids, distances, prefer_closest), masks, target


@SETTINGS
@given(candidate_sets(), st.booleans())
def test_sort_keys_equal_compare_fold(case, preferred):
    """The fast merge's keys pick what folding compare() over the same candidates keeps, in any
    order: compare is "keep the better" under a total order (rare shapes of the non-preferred
    order, e.g. counts below and above T without T itself, are hit directly here)."""
    manager, masks, target = case
    kept = None
    for mask in masks:
        kept = manager.compare(kept, Hint(mask, preferred), target)
    assert kept is not None
    if preferred:
        assert kept.mask == min(masks, key=manager.pick_key)
    else:
        assert kept.mask == min(masks, key=lambda m: manager._np_rank(m, target))
        grouped = tm_module._SetReachable(set(masks))
        assert manager._select_non_preferred(grouped, target) == kept.mask
