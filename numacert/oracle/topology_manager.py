"""The kubelet's Topology Manager: hint merge, policies and scopes (kubelet-algorithms.md §2).

Pure logic, no I/O. Two merges compute the same hint:

* `merge_exhaustive` walks the cross product of the hint lists exactly as the kubelet does
  (mergePermutation + compare); it is the reference, and the tests judge the fast one by it.
* `merge_fast` (the default) never walks the cross product. It relies on `compare` being
  "keep the better of the two" under a strict total order of hints (checked rule by rule in
  `_np_rank`), so the kubelet's result is the best candidate of the *set* of merged hints,
  whatever the iteration order (and so whatever Go's map order of resources):

  - A permutation is preferred only when all its hints are preferred and all its non-nil masks
    are identical, so the preferred candidates are `default & m` for the masks m that every
    list offers as (m, True) unless it offers (nil, True); plus `default` when every list
    offers (nil, True). Preferred beats non-preferred, so if one of those is non-empty it wins.
  - Otherwise every candidate is non-preferred; the candidate masks are the non-zero ANDs
    reachable by picking one mask per list (nil = default), computed as a set (pairwise ANDs
    of deduplicated masks while that stays small, else a subset transform on packed big ints,
    see _SubsetTransform), and the best one under the non-preferred order wins.
"""

from __future__ import annotations

import itertools
import sys
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache, reduce
from operator import mul, or_
from typing import Protocol

from numacert.oracle.bitmask import avg_distance, is_less_than, is_narrower_than, mask_of
from numacert.oracle.hints import (
    TOPOLOGY_AFFINITY_ERROR,
    AdmissionError,
    AllocationError,
    Hint,
    HintProvider,
    ProviderHints,
)
from numacert.oracle.pod import Container, Pod

POLICY_NONE = "none"
POLICY_BEST_EFFORT = "best-effort"
POLICY_RESTRICTED = "restricted"
POLICY_SINGLE_NUMA_NODE = "single-numa-node"
POLICIES = (POLICY_NONE, POLICY_BEST_EFFORT, POLICY_RESTRICTED, POLICY_SINGLE_NUMA_NODE)

SCOPE_CONTAINER = "container"
SCOPE_POD = "pod"
SCOPES = (SCOPE_CONTAINER, SCOPE_POD)

# The set-based reachability switches to the subset-transform method once a single step
# would AND more pairs than this (and the node count keeps 2**n fields small).
_PAIRWISE_WORK_LIMIT = 1024
_TRANSFORM_MAX_NODES = 10

# The hint the kubelet stores when no merge happens (policy none): the zero TopologyHint.
NO_HINT = Hint(None, False)


def filter_provider_hints(providers_hints: Iterable[ProviderHints]) -> list[list[Hint]]:
    """One hint list per resource, applying the provider-return conventions of §2.2."""
    lists: list[list[Hint]] = []
    for provider_hints in providers_hints:
        if not provider_hints:  # nil map or empty map: no preference at all
            lists.append([Hint(None, True)])
            continue
        for resource_hints in provider_hints.values():
            if resource_hints is None:  # nil list: no preference for this resource
                lists.append([Hint(None, True)])
            elif len(resource_hints) == 0:  # empty list: this resource cannot be satisfied
                lists.append([Hint(None, False)])
            else:
                lists.append(list(resource_hints))
    return lists


def filter_single_numa_hints(lists: Iterable[Sequence[Hint]]) -> list[list[Hint]]:
    """single-numa-node keeps only preferred hints that are nil or name exactly one node."""
    return [
        [h for h in hints if h.preferred and (h.mask is None or h.mask.bit_count() == 1)]
        for hints in lists
    ]


def max_of_min_affinity_counts(lists: Iterable[Sequence[Hint]]) -> int:
    """bestNonPreferredAffinityCount: the largest, over lists, of the node count of the list's
    narrowest non-nil mask (lists of nil hints only count for nothing)."""
    best = 0
    for hints in lists:
        counts = [h.mask.bit_count() for h in hints if h.mask is not None]
        if counts:
            best = max(best, min(counts))
    return best


class TopologyManager:
    """One kubelet Topology Manager: policy, scope and NUMA nodes (values already validated).

    `distances[i]` is NUMA node i's distance row, indexed by node id; it is only read when
    `prefer_closest` is on, which single-numa-node ignores.
    """

    def __init__(
        self,
        policy: str,
        scope: str,
        numa_ids: Sequence[int],
        distances: Mapping[int, Sequence[int]] | None = None,
        prefer_closest: bool = False,
        *,
        exhaustive: bool = False,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy: {policy!r}")
        if scope not in SCOPES:
            raise ValueError(f"unknown scope: {scope!r}")
        self.policy = policy
        self.scope = scope
        self.numa_ids: tuple[int, ...] = tuple(sorted(numa_ids))
        self.default_mask: int = mask_of(self.numa_ids)
        self.distances = distances
        self.prefer_closest = prefer_closest
        # pickMask uses Closest only outside single-numa-node.
        self.use_closest = prefer_closest and policy != POLICY_SINGLE_NUMA_NODE
        if self.use_closest and distances is None:
            raise ValueError("prefer-closest-numa-nodes needs NUMA distances")
        # merge() is the fast merge unless the reference one is asked for (tests use both).
        self.exhaustive = exhaustive
        self._avg_cache: dict[int, float] = {}

    # -- ordering -------------------------------------------------------------------------

    def _avg(self, mask: int) -> float:
        avg = self._avg_cache.get(mask)
        if avg is None:
            assert self.distances is not None
            avg = self._avg_cache[mask] = avg_distance(mask, self.distances)
        return avg

    def pick_key(self, mask: int) -> tuple[int, float, int]:
        """Sort key of pickMask: the smaller key wins. Narrowest = (count, value); Closest =
        (count, average distance, value). Both are strict total orders on masks."""
        if self.use_closest:
            return (mask.bit_count(), self._avg(mask), mask)
        return (mask.bit_count(), 0.0, mask)

    def pick_mask(self, current: Hint, candidate: Hint) -> Hint:
        """pickMask: equal masks keep current; else the hint owning the Narrowest/Closest mask.
        Written literally (not through pick_key) so the exhaustive merge stays an independent
        reference for the fast one."""
        assert current.mask is not None and candidate.mask is not None
        if current.mask == candidate.mask:
            return current
        cur, cand = current.mask, candidate.mask
        if self.use_closest:
            winner = self._closest(cur, cand)
        else:
            winner = cur if is_narrower_than(cur, cand) else cand
        return current if winner == cur else candidate

    def _closest(self, m1: int, m2: int) -> int:
        """NUMAInfo.Closest: narrower first; same count: lower average distance, then lower
        value."""
        if m1.bit_count() != m2.bit_count():
            return m1 if is_narrower_than(m1, m2) else m2
        d1 = self._avg(m1)
        d2 = self._avg(m2)
        if d1 == d2:
            return m1 if is_less_than(m1, m2) else m2
        return m1 if d1 < d2 else m2

    def compare(
        self, current: Hint | None, candidate: Hint, best_non_preferred_affinity_count: int
    ) -> Hint | None:
        """The kubelet's HintMerger.compare, literally: the hint to keep (§2.3)."""
        assert candidate.mask is not None
        if candidate.mask.bit_count() == 0:
            return current
        if current is None:
            return candidate
        assert current.mask is not None
        if not current.preferred and candidate.preferred:
            return candidate
        if current.preferred and not candidate.preferred:
            return current
        if current.preferred and candidate.preferred:
            return self.pick_mask(current, candidate)
        # both non-preferred
        target = best_non_preferred_affinity_count
        cur_count = current.mask.bit_count()
        cand_count = candidate.mask.bit_count()
        if cur_count > target:
            return self.pick_mask(current, candidate)
        if cur_count == target:
            if cand_count != target:
                return current
            return self.pick_mask(current, candidate)
        # cur_count < target
        if cand_count > target:
            return current
        if cand_count == target:
            return candidate
        if cand_count > cur_count:
            return candidate
        if cand_count < cur_count:
            return current
        return self.pick_mask(current, candidate)

    def _np_rank(self, mask: int, target: int) -> tuple[int, int, tuple[int, float, int]]:
        """Sort key equivalent to compare() between two non-preferred hints (smaller wins):
        count == T first; then counts below T, larger first; then counts above T. Within a
        tier pickMask decides. Rule by rule: c > T always defers to pickMask, which puts any
        smaller count first (tier 0 and 1 beat tier 2, tier 2 by count then pickMask); c == T
        keeps current unless d == T; c < T prefers d == T, then larger d, and keeps current
        over d > T."""
        n = mask.bit_count()
        if n == target:
            return (0, 0, self.pick_key(mask))
        if n < target:
            return (1, -n, self.pick_key(mask))
        return (2, 0, self.pick_key(mask))

    # -- merge ----------------------------------------------------------------------------

    def merge(self, providers_hints: Sequence[ProviderHints]) -> tuple[Hint, bool]:
        """(best hint, admit) for the providers' answers, in provider order."""
        if self.exhaustive:
            return self.merge_exhaustive(providers_hints)
        return self.merge_fast(providers_hints)

    def merge_fast(self, providers_hints: Sequence[ProviderHints]) -> tuple[Hint, bool]:
        return self._merge_with(providers_hints, self._best_fast)

    def merge_exhaustive(self, providers_hints: Sequence[ProviderHints]) -> tuple[Hint, bool]:
        return self._merge_with(providers_hints, self._best_exhaustive)

    def _merge_with(
        self,
        providers_hints: Sequence[ProviderHints],
        best_of: Callable[[list[list[Hint]]], Hint],
    ) -> tuple[Hint, bool]:
        if self.policy == POLICY_NONE:
            # policy none never merges; its Merge would return the zero hint and admit.
            return NO_HINT, True
        lists = filter_provider_hints(providers_hints)
        if self.policy == POLICY_SINGLE_NUMA_NODE:
            lists = filter_single_numa_hints(lists)
        best = best_of(lists)
        if self.policy == POLICY_SINGLE_NUMA_NODE and best.mask == self.default_mask:
            best = Hint(None, best.preferred)
        if self.policy == POLICY_BEST_EFFORT:
            return best, True
        return best, best.preferred

    def _best_exhaustive(self, lists: list[list[Hint]]) -> Hint:
        """HintMerger.Merge: every permutation, first list outermost, folded with compare()."""
        default = self.default_mask
        target = max_of_min_affinity_counts(lists)
        best: Hint | None = None
        for permutation in itertools.product(*lists):
            preferred = True
            merged = default
            first: int | None = None
            for mask, hint_preferred in permutation:
                if mask is not None:
                    if first is None:
                        first = mask
                    elif mask != first:
                        preferred = False
                    merged &= mask
                if not hint_preferred:
                    preferred = False
            best = self.compare(best, Hint(merged, preferred), target)
        if best is None:
            return Hint(default, False)
        return best

    def _best_fast(self, lists: list[list[Hint]]) -> Hint:
        default = self.default_mask
        preferred = self._preferred_candidates(lists)
        if preferred:
            if self.use_closest:
                return Hint(min(preferred, key=self.pick_key), True)
            return Hint(min(preferred, key=_count_then_value), True)

        # No preferred candidate: the reachable non-zero ANDs (nil standing for default) and
        # bestNonPreferredAffinityCount, in one pass over distinct masks.
        target = 0
        outside = ~default
        mask_sets: list[set[int]] = []
        for hints in lists:
            masks: set = {mask for mask, _ in hints}
            has_nil = None in masks
            if has_nil:
                masks.discard(None)
            if masks:
                target = max(target, min(map(int.bit_count, masks)))
                if reduce(or_, masks) & outside:
                    masks = {m & default for m in masks}
            if has_nil:
                masks.add(default)
            mask_sets.append(masks)
        reachable = self._reachable(mask_sets)
        best = self._select_non_preferred(reachable, target)
        if best is None:
            return Hint(default, False)
        return Hint(best, False)

    def _select_non_preferred(self, reachable: _Reachable, target: int) -> int | None:
        """The mask compare() keeps among non-preferred candidates (see _np_rank): count == T,
        else the largest count below T, else the smallest count; then pickMask."""
        counts = reachable.counts()
        if not counts:
            return None
        if target in counts:
            chosen = target
        else:
            below = [c for c in counts if c < target]
            chosen = max(below) if below else min(counts)
        if self.use_closest:
            return min(reachable.masks_of_count(chosen), key=self.pick_key)
        return reachable.lowest_of_count(chosen)

    def _preferred_candidates(self, lists: list[list[Hint]]) -> set[int]:
        """Non-zero merged masks of the preferred permutations."""
        default = self.default_mask
        every_list_has_nil = True
        offered_anywhere: set[int] = set()
        offered_everywhere: set[int] | None = None  # over lists without (nil, True)
        for hints in lists:
            masks = {mask for mask, preferred in hints if preferred}
            if None in masks:
                masks.discard(None)
                offered_anywhere |= masks  # type: ignore[arg-type]
                continue
            every_list_has_nil = False
            if offered_everywhere is None:
                offered_everywhere = masks  # type: ignore[assignment]
            else:
                offered_everywhere &= masks  # type: ignore[operator]
            if not offered_everywhere:
                return set()
        if every_list_has_nil:
            # any single list's mask with nil elsewhere, or nil everywhere (= default)
            candidates = {m & default for m in offered_anywhere}
            candidates.add(default)
        else:
            assert offered_everywhere is not None
            candidates = {m & default for m in offered_everywhere}
        candidates.discard(0)
        return candidates

    def _reachable(self, mask_sets: list[set[int]]) -> _Reachable:
        """Non-zero values of default & m_1 & ... & m_k over all picks m_i from mask_sets[i]."""
        default = self.default_mask
        reachable = {default}
        # Smaller sets first keeps the intermediate sets small; the result does not depend on
        # the order (AND is commutative and associative).
        remaining = sorted(mask_sets, key=len)
        for index, masks in enumerate(remaining):
            if len(masks) == 1 and default in masks:
                continue
            if (
                len(reachable) * len(masks) > _PAIRWISE_WORK_LIMIT
                and len(self.numa_ids) <= _TRANSFORM_MAX_NODES
            ):
                transform = _subset_transform(self.numa_ids)
                flags = transform.reachable_flags([reachable, *remaining[index:]])
                return _PackedReachable(transform, flags)
            reachable = {s & m for s in reachable for m in masks}
            reachable.discard(0)
            if not reachable:
                break
        return _SetReachable(reachable)

    # -- admission ------------------------------------------------------------------------

    def admit(self, pod: Pod, providers: Sequence[HintProvider]) -> dict[str, Hint]:
        """Admit the pod (§2.5): the hint stored per container name. Raises AdmissionError with
        the kubelet's reason and message when the pod is rejected."""
        stored: dict[str, Hint] = {}
        if self.policy == POLICY_NONE:
            for container in pod.all_containers():
                stored[container.name] = NO_HINT
                self._allocate(pod, container, NO_HINT, providers)
            return stored
        if self.scope == SCOPE_POD:
            best, admit = self.merge([p.get_pod_topology_hints(pod) for p in providers])
            if not admit:
                raise _topology_affinity_error()
            for container in pod.all_containers():
                stored[container.name] = best
                self._allocate(pod, container, best, providers)
            return stored
        for container in pod.all_containers():
            best, admit = self.merge([p.get_topology_hints(pod, container) for p in providers])
            if not admit:
                raise _topology_affinity_error()
            stored[container.name] = best
            self._allocate(pod, container, best, providers)
        return stored

    @staticmethod
    def _allocate(
        pod: Pod, container: Container, hint: Hint, providers: Sequence[HintProvider]
    ) -> None:
        for provider in providers:
            try:
                provider.allocate(pod, container, hint)
            except AllocationError as exc:
                raise exc.to_admission_error() from exc


def _topology_affinity_error() -> AdmissionError:
    # A fresh instance per rejection: raising the shared constant would chain tracebacks.
    return AdmissionError(TOPOLOGY_AFFINITY_ERROR.reason, TOPOLOGY_AFFINITY_ERROR.message)


def _count_then_value(mask: int) -> tuple[int, int]:
    return (mask.bit_count(), mask)


class _Reachable(Protocol):
    """The reachable merged masks, grouped by node count."""

    def counts(self) -> set[int]: ...

    def masks_of_count(self, count: int) -> list[int]: ...

    def lowest_of_count(self, count: int) -> int: ...


class _SetReachable:
    def __init__(self, masks: set[int]) -> None:
        self.by_count: dict[int, list[int]] = {}
        for mask in masks:
            self.by_count.setdefault(mask.bit_count(), []).append(mask)

    def counts(self) -> set[int]:
        return set(self.by_count)

    def masks_of_count(self, count: int) -> list[int]:
        return self.by_count[count]

    def lowest_of_count(self, count: int) -> int:
        return min(self.by_count[count])


class _PackedReachable:
    def __init__(self, transform: _SubsetTransform, flags: int) -> None:
        self.transform = transform
        self.flags = flags

    def counts(self) -> set[int]:
        by_count = self.transform.flags_by_count
        return {k for k in range(1, len(by_count)) if self.flags & by_count[k]}

    def masks_of_count(self, count: int) -> list[int]:
        return self.transform.masks(self.flags & self.transform.flags_by_count[count])

    def lowest_of_count(self, count: int) -> int:
        # index order is mask order: compression keeps the relative order of bits
        return self.transform.lowest(self.flags & self.transform.flags_by_count[count])


class _SubsetTransform:
    """Reachable ANDs without pairing masks: every subset of the n NUMA nodes gets one 64-bit
    field of a big int, and whole-int shifts, ANDs and adds run the transforms.

    With N_i(x) = #{m in family i : m ⊇ x} (superset sums), the number of picks, one mask per
    family, whose AND is ⊇ x is the product of the N_i(x); Möbius inversion of that product
    gives the number of picks whose AND is exactly t, so t is reachable iff it is positive.
    Field values: N_i(x) <= 2**n, a chunk of c families multiplies to <= 2**(n*c) < 2**62
    (chunks chain through their 0/1 result), and partial inversions are partial superset sums
    of non-negative counts, so no field ever carries, borrows or reaches bit 63."""

    WIDTH = 64

    def __init__(self, positions: tuple[int, ...]) -> None:
        n = len(positions)
        self.n = n
        self.size = 1 << n
        width = self.WIDTH
        contiguous = positions == tuple(range(n))
        # subset index <-> mask; the index keeps the mask's bit order
        self.expand: list[int] | None = (
            None if contiguous else [_expand(index, positions) for index in range(self.size)]
        )
        self.compress: dict[int, int] | None = (
            None if self.expand is None else {m: i for i, m in enumerate(self.expand)}
        )
        field = (1 << width) - 1
        self.low_fields = []  # per bit: all-ones in the fields whose index lacks the bit
        for bit in range(n):
            mask = 0
            for index in range(self.size):
                if not index >> bit & 1:
                    mask |= field << (width * index)
            self.low_fields.append(mask)
        top = 1 << (width - 1)
        self.high_bits = sum(top << (width * index) for index in range(self.size))
        self.below_top = sum((top - 1) << (width * index) for index in range(self.size))
        # flags_by_count[k]: the top bit of every field whose subset has k nodes
        self.flags_by_count = [0] * (n + 1)
        for index in range(self.size):
            self.flags_by_count[index.bit_count()] |= top << (width * index)
        self.chunk = max(2, 62 // max(n, 1))
        self.bit = [1 << index for index in range(self.size)]
        self.bitset_bytes = max(1, self.size // 8)

    def reachable_flags(self, families: Sequence[Iterable[int]]) -> int:
        """Top bit of field t set iff t (non-empty) is an AND of one mask from each family.
        Masks must be submasks of the manager's default mask; needs at least one family."""
        compress = self.compress
        indicators = []
        for masks in families:
            if not masks:
                return 0
            # 1 in each member's field: a plain bitset of the members first, then each of its
            # bytes becomes 8 fields through a table (far cheaper than adding 1 << (64 * i)
            # big ints or setting bytes one by one)
            indices = masks if compress is None else map(compress.__getitem__, masks)
            bitset = sum(map(self.bit.__getitem__, indices))
            raw = b"".join(
                map(_SPREAD_BYTE.__getitem__, bitset.to_bytes(self.bitset_bytes, "little"))
            )
            indicators.append(int.from_bytes(raw[: self.size * 8], "little"))
        while True:
            chunk, indicators = indicators[: self.chunk], indicators[self.chunk :]
            products = None
            for indicator in chunk:
                counts = self._unpack(self._superset_sums(indicator))
                if products is None:
                    products = counts
                else:
                    products = array("Q", map(mul, products, counts))
            exact = self._superset_differences(self._pack(products))
            # top bit set iff the field is >= 1 (fields stay below 2**62); drop the empty set
            flags = ((exact + self.below_top) & self.high_bits) & ~self.flags_by_count[0]
            if not indicators or not flags:
                return flags
            indicators.insert(0, flags >> (self.WIDTH - 1))

    def masks(self, flags: int) -> list[int]:
        out = []
        shift = self.WIDTH.bit_length() - 1
        while flags:
            low = flags & -flags
            index = (low.bit_length() - 1) >> shift
            out.append(index if self.expand is None else self.expand[index])
            flags ^= low
        return out

    def lowest(self, flags: int) -> int:
        index = ((flags & -flags).bit_length() - 1) >> (self.WIDTH.bit_length() - 1)
        return index if self.expand is None else self.expand[index]

    def _superset_sums(self, packed: int) -> int:
        width = self.WIDTH
        for bit, low in enumerate(self.low_fields):
            packed += (packed >> (width << bit)) & low
        return packed

    def _superset_differences(self, packed: int) -> int:
        width = self.WIDTH
        for bit, low in enumerate(self.low_fields):
            packed -= (packed >> (width << bit)) & low
        return packed

    def _unpack(self, packed: int) -> array:
        values = array("Q")
        values.frombytes(packed.to_bytes(self.size * 8, "little"))
        if sys.byteorder != "little":
            values.byteswap()
        return values

    def _pack(self, values: Iterable[int]) -> int:
        packed = array("Q", values)
        if sys.byteorder != "little":
            packed.byteswap()
        return int.from_bytes(packed.tobytes(), "little")


# byte b -> eight little-endian 64-bit fields holding the bits of b (bit 0 first)
_SPREAD_BYTE = [
    b"".join((b >> bit & 1).to_bytes(8, "little") for bit in range(8)) for b in range(256)
]


@lru_cache(maxsize=16)
def _subset_transform(positions: tuple[int, ...]) -> _SubsetTransform:
    return _SubsetTransform(positions)


def _expand(index: int, positions: Sequence[int]) -> int:
    mask = 0
    for k, p in enumerate(positions):
        if index >> k & 1:
            mask |= 1 << p
    return mask


def reachable_by_transform(mask_sets: Sequence[Iterable[int]], default: int) -> set[int]:
    """The non-zero values of default & m_1 & ... & m_k, one m_i from each of mask_sets (which
    hold submasks of `default`), computed by the subset transform (for tests and callers that
    want a plain set)."""
    positions = tuple(i for i in range(default.bit_length()) if default >> i & 1)
    transform = _subset_transform(positions)
    return set(transform.masks(transform.reachable_flags([{default}, *mask_sets])))
