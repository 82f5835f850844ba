"""takeByTopology: which CPUs the kubelet's static CPU Manager picks (kubelet-algorithms.md §3.7).

Three strategies behind one entry point, `take_by_topology`:

* NUMA-packed (§3.7.1): whole NUMA nodes / sockets first, then (optionally) uncore caches, then
  whole cores, then single CPUs, each level in the kubelet's "fewest free CPUs first" order.
  With `spread` (distribute-cpus-across-cores) the whole-core step is skipped and single CPUs
  are taken socket by socket in ascending id order (§3.7.2).
* NUMA-distributed (§3.7.3, distribute-cpus-across-numa): spread a request that needs several
  NUMA nodes evenly over them, in groups of `group_size` CPUs. From 1.37 the kubelet passes
  align-by-socket into it (`align_by_socket`): NUMA combinations within one socket win over
  cross-socket ones, and the even share is capped by the smallest node of the combination
  (v1.37.2 pkg/kubelet/cm/cpumanager/cpu_assignment.go:930-1112, policy_static.go:829).

Pure functions over a Topology. Lookup tables are derived once per Topology object
(`topology_index`) so that a call costs roughly the sorts it has to do.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import combinations

from numacert.cpuset import CPUSet
from numacert.oracle.hints import AllocationError
from numacert.topology.model import Topology

NOT_ENOUGH_CPUS = "not enough cpus available to satisfy request: requested={}, available={}"
FAILED_TO_ALLOCATE = "failed to allocate cpus"


# The first minor whose takeByTopologyNUMADistributed reads align-by-socket (1.34.4-1.36.3 have
# no such parameter; v1.37.2 cpu_assignment.go:892).
DISTRIBUTED_ALIGN_BY_SOCKET_FROM = 37


@dataclass(frozen=True)
class TakeOptions:
    """The static policy options that change takeByTopology (§3.7 dispatcher)."""

    spread: bool = False  # distribute-cpus-across-cores
    prefer_uncore: bool = False  # prefer-align-cpus-by-uncorecache
    distribute_numa: bool = False  # distribute-cpus-across-numa
    group_size: int = 1  # NUMA-distributed group: CPUsPerCore with full-pcpus-only, else 1
    # align-by-socket as the NUMA-distributed strategy reads it (1.37 on); the packed strategy
    # never reads it (the caller narrows the pool to the hint's sockets instead).
    align_by_socket: bool = False

    @classmethod
    def from_policy_options(
        cls, enabled: Mapping[str, bool], cpus_per_core: int, *, k8s_minor: int | None = None
    ) -> TakeOptions:
        """From the static policy's boolean options (option name -> enabled), for the kubelet
        1.<k8s_minor> (None: the newest numacert models)."""
        full = bool(enabled.get("full-pcpus-only"))
        newer = k8s_minor is None or k8s_minor >= DISTRIBUTED_ALIGN_BY_SOCKET_FROM
        return cls(
            spread=bool(enabled.get("distribute-cpus-across-cores")),
            prefer_uncore=bool(enabled.get("prefer-align-cpus-by-uncorecache")),
            distribute_numa=bool(enabled.get("distribute-cpus-across-numa")),
            group_size=max(cpus_per_core, 1) if full else 1,
            align_by_socket=bool(enabled.get("align-by-socket")) and newer,
        )


PACKED = TakeOptions()

# (child id, CPUs of the child that are also in the parent), children ascending by id
_Rel = dict[int, list[tuple[int, frozenset[int]]]]


class TopologyIndex:
    """Lookup tables of one Topology for takeByTopology and the CPU Manager's hints."""

    def __init__(self, topology: Topology) -> None:
        numa: dict[int, set[int]] = {}
        socket: dict[int, set[int]] = {}
        core: dict[int, set[int]] = {}
        uncore: dict[int, set[int]] = {}
        pairs: dict[str, dict[tuple[int, int], set[int]]] = {
            k: {} for k in ("socket_in_numa", "numa_in_socket", "core_in_socket", "core_in_numa")
        }
        pairs["uncore_in_numa"] = {}
        self.numa_of: dict[int, int] = {}
        self.socket_of: dict[int, int] = {}
        self.core_of: dict[int, int] = {}
        self.uncore_of: dict[int, int] = {}
        for c in topology.cpus:
            numa.setdefault(c.numa, set()).add(c.id)
            socket.setdefault(c.socket, set()).add(c.id)
            core.setdefault(c.core, set()).add(c.id)
            uncore.setdefault(c.uncore, set()).add(c.id)
            self.numa_of[c.id] = c.numa
            self.socket_of[c.id] = c.socket
            self.core_of[c.id] = c.core
            self.uncore_of[c.id] = c.uncore
            pairs["socket_in_numa"].setdefault((c.numa, c.socket), set()).add(c.id)
            pairs["numa_in_socket"].setdefault((c.socket, c.numa), set()).add(c.id)
            pairs["core_in_socket"].setdefault((c.socket, c.core), set()).add(c.id)
            pairs["core_in_numa"].setdefault((c.numa, c.core), set()).add(c.id)
            pairs["uncore_in_numa"].setdefault((c.numa, c.uncore), set()).add(c.id)

        def frozen(d: dict[int, set[int]]) -> dict[int, frozenset[int]]:
            return {k: frozenset(v) for k, v in sorted(d.items())}

        def rel(p: dict[tuple[int, int], set[int]]) -> _Rel:
            out: _Rel = {}
            for (parent, child), cpus in sorted(p.items()):
                out.setdefault(parent, []).append((child, frozenset(cpus)))
            return out

        self.all_cpus = frozenset(topology.all_cpus)
        self.numa_sets = frozen(numa)
        self.socket_sets = frozen(socket)
        self.core_sets = frozen(core)
        self.uncore_sets = frozen(uncore)
        self.socket_in_numa = rel(pairs["socket_in_numa"])
        self.numa_in_socket = rel(pairs["numa_in_socket"])
        self.core_in_socket = rel(pairs["core_in_socket"])
        self.core_in_numa = rel(pairs["core_in_numa"])
        self.uncore_in_numa = rel(pairs["uncore_in_numa"])
        # Cores of an uncore cache, ascending (takePartialUncore walks them in id order).
        self.cores_in_uncore: dict[int, list[int]] = {}
        for c in topology.cpus:
            lst = self.cores_in_uncore.setdefault(c.uncore, [])
            if c.core not in lst:
                lst.append(c.core)
        for lst in self.cores_in_uncore.values():
            lst.sort()
        self.numa_ids: tuple[int, ...] = tuple(self.numa_sets)
        # Indexed by the accumulator's unit kinds (_NUMA, _SOCKET, _CORE, _UNCORE).
        self.sets_of_kind = (self.numa_sets, self.socket_sets, self.core_sets, self.uncore_sets)
        self.unit_of_kind = (self.numa_of, self.socket_of, self.core_of, self.uncore_of)
        self.num_cpus = topology.num_cpus
        self.num_sockets = topology.num_sockets
        self.num_numa_nodes = topology.num_numa_nodes
        self.cpus_per_core = topology.cpus_per_core
        self.cpus_per_socket = topology.cpus_per_socket
        self.cpus_per_uncore = topology.cpus_per_uncore


_INDEX_CACHE: dict[int, tuple[weakref.ref, TopologyIndex]] = {}


def topology_index(topology: Topology) -> TopologyIndex:
    """The TopologyIndex of `topology`, built once per Topology object."""
    key = id(topology)
    hit = _INDEX_CACHE.get(key)
    if hit is not None and hit[0]() is topology:
        return hit[1]
    index = TopologyIndex(topology)
    ref = weakref.ref(topology, lambda _r, k=key: _INDEX_CACHE.pop(k, None))
    _INDEX_CACHE[key] = (ref, index)
    return index


def take_by_topology(
    topology: Topology,
    available: Iterable[int],
    n: int,
    options: TakeOptions | None = None,
    *,
    num_numa_nodes: int | None = None,
) -> CPUSet:
    """The n CPUs of `available` the kubelet's static policy would take.

    Raises AllocationError("not enough cpus available to satisfy request: ...") when n exceeds
    what is available. `num_numa_nodes` overrides the topology's NUMANodes count in the
    numaFirst/socketsFirst decision only: upstream test fixtures leave it 0 (§7.2); real nodes
    never need it.
    """
    ix = topology_index(topology)
    opts = options or PACKED
    numa_first = ix.num_sockets >= (ix.num_numa_nodes if num_numa_nodes is None else num_numa_nodes)
    avail = available if isinstance(available, frozenset | set) else frozenset(available)
    if opts.distribute_numa:
        return CPUSet(
            _numa_distributed(
                ix, avail, n, opts.group_size, opts.spread, numa_first, opts.align_by_socket
            )
        )
    return CPUSet(_numa_packed(ix, avail, n, opts.spread, opts.prefer_uncore, numa_first))


# ---- accumulator ---------------------------------------------------------------------------


_NUMA, _SOCKET, _CORE, _UNCORE = range(4)


class _Acc:
    """The kubelet's cpuAccumulator: free candidates, what is still needed, the result.

    Free-CPU counts per unit are computed on first use and kept current by `take`, so the
    repeated orderings of one call cost dictionary lookups, not set intersections.
    """

    __slots__ = ("ix", "free", "need", "result", "numa_first", "_counts")

    def __init__(self, ix: TopologyIndex, available: Iterable[int], n: int, numa_first: bool):
        self.ix = ix
        self.free: set[int] = set(available)
        self.need = n
        self.result: set[int] = set()
        self.numa_first = numa_first
        self._counts: tuple[dict[int, int], ...] = ({}, {}, {}, {})

    def count(self, kind: int, unit: int) -> int:
        """Free CPUs in a NUMA node / socket / core / uncore cache."""
        cache = self._counts[kind]
        k = cache.get(unit)
        if k is None:
            k = cache[unit] = len(self.free.intersection(self.ix.sets_of_kind[kind][unit]))
        return k

    def take(self, cpus: Iterable[int]) -> None:
        # The kubelet subtracts the size of the set it takes (whole topology units).
        cpus = list(cpus)
        free = self.free
        new = [c for c in cpus if c in free]
        self.result.update(cpus)
        free.difference_update(new)
        self.need -= len(cpus)
        for kind, cache in enumerate(self._counts):
            if cache:
                unit_of = self.ix.unit_of_kind[kind]
                for c in new:
                    u = unit_of[c]
                    if u in cache:
                        cache[u] -= 1

    @property
    def satisfied(self) -> bool:
        return self.need < 1

    @property
    def failed(self) -> bool:
        return self.need > len(self.free)

    # ---- orderings: ascending free-CPU count, ties by id; concatenations keep first ---------
    def _sort(self, ids: Iterable[int], kind: int) -> list[int]:
        count = self.count
        keyed = [(count(kind, i), i) for i in ids]
        keyed.sort()
        return [i for k, i in keyed if k]

    def _children(self, parents: Iterable[int], rel: _Rel, kind: int) -> Iterator[int]:
        """Children with free CPUs inside each parent, parent by parent, each sorted by its
        own free count. Lazy per parent: children of different parents are disjoint, so a
        later parent's order is the same whenever it is computed."""
        free, count = self.free, self.count
        seen: set[int] = set()
        for p in parents:
            keyed = []
            for child, part in rel.get(p, ()):
                if child not in seen and not free.isdisjoint(part):
                    keyed.append((count(kind, child), child))
            keyed.sort()
            for _, child in keyed:
                seen.add(child)
                yield child

    def numa_order(self) -> list[int]:
        ix = self.ix
        if self.numa_first:
            return self._sort(ix.numa_ids, _NUMA)
        return list(self._children(self.socket_order(), ix.numa_in_socket, _NUMA))

    def socket_order(self) -> list[int]:
        ix = self.ix
        if self.numa_first:
            return list(self._children(self.numa_order(), ix.socket_in_numa, _SOCKET))
        return self._sort(ix.socket_sets, _SOCKET)

    def core_order(self) -> Iterator[int]:
        ix = self.ix
        if self.numa_first:
            return self._children(self.socket_order(), ix.core_in_socket, _CORE)
        return self._children(self.numa_order(), ix.core_in_numa, _CORE)

    def uncore_order(self) -> list[int]:
        ix = self.ix
        return list(self._children(self.numa_order(), ix.uncore_in_numa, _UNCORE))

    def cpu_order(self, spread: bool) -> Iterator[int]:
        free = self.free
        if spread:
            sets = self.ix.socket_sets
            units: Iterable[int] = self.socket_order()
        else:
            sets = self.ix.core_sets
            units = self.core_order()
        seen: set[int] = set()
        for u in units:
            for cpu in sorted(free.intersection(sets[u])):
                if cpu not in seen:
                    seen.add(cpu)
                    yield cpu

    # ---- steps -----------------------------------------------------------------------------
    def _take_free_units(self, order: list[int], kind: int, free_size: int | None) -> None:
        """Take every free unit of `order` (its list computed before the first take) that the
        request still needs whole. free_size None = a unit is free when all its CPUs are."""
        sets = self.ix.sets_of_kind[kind]
        count = self.count
        units = [
            u for u in order if count(kind, u) == (len(sets[u]) if free_size is None else free_size)
        ]
        for u in units:
            if self.need >= len(sets[u]):
                self.take(sets[u])

    def take_full_numa_nodes(self) -> None:
        self._take_free_units(self.numa_order(), _NUMA, None)

    def take_full_sockets(self) -> None:
        # A socket is free when its free count equals CPUsPerSocket (the kubelet's test).
        self._take_free_units(self.socket_order(), _SOCKET, self.ix.cpus_per_socket)

    def take_full_uncores(self) -> None:
        self._take_free_units(self.uncore_order(), _UNCORE, None)

    def take_partial_uncore(self, uncore: int) -> None:
        ix, free = self.ix, self.free
        per_core = ix.cpus_per_core
        cores_needed = -(-self.need // per_core) if per_core else self.need
        cores = [
            c for c in ix.cores_in_uncore.get(uncore, ()) if not free.isdisjoint(ix.core_sets[c])
        ]
        cpus = sorted(
            cpu for c in cores[:cores_needed] for cpu in free.intersection(ix.core_sets[c])
        )
        if self.need % 2 == 1 and per_core > 1 and len(cpus) > self.need:
            cpus.pop()  # odd request on SMT: leave the highest-numbered thread
        if len(cpus) == self.need:
            self.take(cpus)

    def take_uncore_cache(self) -> None:
        per_uncore = self.ix.cpus_per_uncore
        for u in self.uncore_order():
            if self.need >= per_uncore:
                self.take_full_uncores()
            if self.satisfied:
                return
            self.take_partial_uncore(u)
            if self.satisfied:
                return

    def take_full_cores(self) -> None:
        sets, size = self.ix.core_sets, self.ix.cpus_per_core
        count = self.count
        if self.need < size:
            return  # no free core fits (a free core holds >= CPUsPerCore CPUs)
        for core in self.core_order():
            if count(_CORE, core) != size:
                continue
            if self.need >= len(sets[core]):
                self.take(sets[core])
                if self.need < size:
                    return

    def take_remaining_cpus(self, spread: bool) -> None:
        for cpu in self.cpu_order(spread):
            self.take((cpu,))
            if self.satisfied:
                return


def _not_enough(n: int, available: int) -> AllocationError:
    return AllocationError(NOT_ENOUGH_CPUS.format(n, available))


def _numa_packed(
    ix: TopologyIndex,
    available: frozenset[int] | set[int],
    n: int,
    spread: bool,
    uncore: bool,
    numa_first: bool,
) -> set[int]:
    acc = _Acc(ix, available, n, numa_first)
    if acc.satisfied:
        return acc.result
    if acc.failed:
        raise _not_enough(n, len(available))
    steps: list[Callable[[], None]] = (
        [acc.take_full_numa_nodes, acc.take_full_sockets]
        if numa_first
        else [acc.take_full_sockets, acc.take_full_numa_nodes]
    )
    if uncore:
        steps.append(acc.take_uncore_cache)
    if not spread:
        steps.append(acc.take_full_cores)
    for step in steps:
        step()
        if acc.satisfied:
            return acc.result
    acc.take_remaining_cpus(spread)
    if acc.satisfied:
        return acc.result
    raise AllocationError(FAILED_TO_ALLOCATE)


def _round3(x: float) -> float:
    # Go's math.Round (half away from zero) to 3 decimals; values here are never negative.
    return math.floor(x * 1000 + 0.5) / 1000


def _stdev(values: Iterable[int]) -> float:
    xs = list(values)
    mean = _round3(sum(xs) / len(xs))
    return _round3(math.sqrt(sum((x - mean) * (x - mean) for x in xs) / len(xs)))


def _numa_distributed(
    ix: TopologyIndex,
    available: frozenset[int] | set[int],
    n: int,
    g: int,
    spread: bool,
    numa_first: bool,
    align_by_socket: bool = False,
) -> set[int]:
    if n % g != 0:
        return _numa_packed(ix, available, n, spread, False, numa_first)
    acc = _Acc(ix, available, n, numa_first)
    if acc.satisfied:
        return acc.result
    if acc.failed:
        raise _not_enough(n, len(available))
    sets = ix.numa_sets
    numas = acc.numa_order()
    free = {x: len(acc.free.intersection(sets[x])) for x in numas}

    groups_total = (ix.num_cpus - 1) // g + 1
    groups_per_numa = (groups_total - 1) // len(sets) + 1
    groups_needed = (n - 1) // g + 1
    min_k = (groups_needed - 1) // groups_per_numa + 1
    max_k = min(groups_needed, len(numas))

    for k in range(min_k, max_k + 1):
        best_balance = math.inf
        best_combo: tuple[int, ...] | None = None
        best_rem: tuple[int, ...] | None = None
        best_in_one_socket = False
        for combo in combinations(numas, k):
            # With align-by-socket a perfect balance across sockets does not end the search:
            # a combination inside one socket may still come.
            if best_balance == 0 and (not align_by_socket or best_in_one_socket):
                break
            if sum(free[x] for x in combo) < n:
                continue
            if sum(free[x] // g for x in combo) * g < n:
                continue
            dist = (n // k // g) * g
            if align_by_socket:
                # The even share never exceeds what the smallest node can give in whole groups.
                dist = min([dist] + [free[x] // g * g for x in combo])
            if any(free[x] < dist for x in combo):
                continue
            after = dict(free)
            for x in combo:
                after[x] -= dist
            rem = n - dist * k
            candidates = [x for x in combo if after[x] >= g]
            local_balance = math.inf
            local_rem: tuple[int, ...] | None = None
            if rem == 0:
                local_balance = _stdev(after.values())
            s = len(candidates)
            while rem > 0 and s >= 1:
                for subset in combinations(candidates, s):
                    if sum(after[x] for x in subset) < rem:
                        continue
                    # Nodes give whole groups only: where those cannot cover the remainder the
                    # kubelet's round-robin would spin forever; such a subset is no candidate.
                    if sum(after[x] // g for x in subset) * g < rem:
                        continue
                    a = dict(after)
                    r = rem
                    while r > 0:
                        for x in subset:
                            if r == 0:
                                break
                            if a[x] < g:
                                continue
                            a[x] -= g
                            r -= g
                    balance = _stdev(a.values())
                    if balance < local_balance:
                        local_balance, local_rem = balance, subset
                s -= 1
            # align-by-socket: a combination inside one socket beats any cross-socket one;
            # within the same kind the lower balance score wins (the first found on a tie).
            in_one_socket = False
            if align_by_socket:
                in_one_socket = (
                    len({s for x in combo for s, _ in ix.socket_in_numa.get(x, ())}) <= 1
                )
            better = local_balance < best_balance
            if align_by_socket and in_one_socket != best_in_one_socket:
                better = in_one_socket
            if better:
                best_balance, best_combo, best_rem = local_balance, combo, local_rem
                if align_by_socket:
                    best_in_one_socket = in_one_socket
        if best_combo is None:
            continue
        dist = (n // len(best_combo) // g) * g
        # Never ask a chosen node for more whole groups than it has (a no-op unless
        # align-by-socket capped the share above; the 1.37 kubelet does it unconditionally).
        dist = min([dist] + [free[x] // g * g for x in best_combo])
        for x in best_combo:
            acc.take(_numa_packed(ix, acc.free & sets[x], dist, spread, False, numa_first))
        rem = n - dist * len(best_combo)
        progressed = True
        while rem > 0 and best_rem and progressed:
            progressed = False  # guards a loop the kubelet could spin in forever
            for x in best_rem:
                if rem == 0:
                    break
                part = acc.free & sets[x]
                if len(part) < g:
                    continue
                acc.take(_numa_packed(ix, part, g, spread, False, numa_first))
                rem -= g
                progressed = True
        if acc.need != 0:
            raise AllocationError(f"accounting error, CPUs still needed: {acc.need}")
        return acc.result
    return _numa_packed(ix, available, n, spread, False, numa_first)
