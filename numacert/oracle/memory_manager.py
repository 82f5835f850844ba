"""The kubelet's Memory Manager (policies None and Static) as a hint provider for the oracle.

Specification: kubelet-algorithms.md §4 (machine state, eligibility, hints, Allocate, release,
cpuset.mems, memory_manager_state) with §2.2/§2.5 for how the Topology Manager uses it.
Pure logic, no I/O, deterministic.

Representation (chosen for speed; the kubelet iterates up to 2**n - 1 masks per call):

* NUMA nodes are addressed internally by *position* (index into the ascending node ids), and
  NUMA sets by *local masks* over positions. Hints, blocks and state files use real node ids.
  Positions are monotonic in ids, so counts and numeric mask order agree in both spaces.
* Per resource type, free and allocatable amounts are lists by position, and the sums over every
  local mask come from a subset-sum table (sum[m] = sum[m without its highest bit] + value of
  that bit, built by doubling the table once per node). Allocatable sums never change; free
  sums are rebuilt lazily, only for a type that changed and is asked for again.
* Group binding (cells, numberOfAssignments) is summarised after every change as bitmasks:
  nodes bound to a multi-node group, used nodes, and the groups that may take more.
* The capacity pass of calculateHints (which masks could hold the request by allocatable
  memory, and minAffinitySize) depends only on the request, so it is cached per request.

Container start (`container_started`): the kubelet's AddContainer runs when a container is about
to start, after admission; each regular init container runs to completion before the next
container starts. A prediction models the settled node: the driver calls `container_started`
for every container of an admitted pod, in spec order, before the next step, so by then the
blocks of every regular init container are gone and their memory (what app containers did not
reuse) is free again. `allocated_mems` still answers what an init container was pinned to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations

from numacert.errors import InputError
from numacert.kubelet.messages import MM_NO_SYSTEM_RESERVED
from numacert.oracle.bitmask import bits_of, mask_of
from numacert.oracle.hints import AllocationError, Hint, KubeletStartError, ProviderHints
from numacert.oracle.pod import Container, Pod
from numacert.quantity import hugepage_resource_name
from numacert.topology.model import Topology

POLICY_NONE = "None"
POLICY_STATIC = "Static"
MEMORY = "memory"

# Allocate errors, verbatim (each becomes UnexpectedAdmissionError, §4.5).
ERR_DEFAULT_AFFINITY = (
    "[memorymanager] failed to get the default NUMA affinity, "
    "no NUMA nodes with enough memory is available"
)
ERR_DEFAULT_PREFERRED = "[memorymanager] failed to find the default preferred hint"
ERR_EXTEND = "[memorymanager] failed to find NUMA nodes to extend the current topology hint"
ERR_EXTENDED_PREFERRED = "[memorymanager] failed to find the extended preferred hint"
ERR_VIOLATES = "[memorymanager] preferred hint violates NUMA node allocation"

# Start errors (KubeletStartError).
ERR_NO_SYSTEM_RESERVED = MM_NO_SYSTEM_RESERVED
ERR_STATE_DIFFERS = "[memorymanager] the expected machine state is different from the real one"
ERR_EMPTY_MACHINE_STATE = (
    "[memorymanager] machine state can not be empty when it has memory assignments"
)

_TABLE_FIELDS = ("total", "systemReserved", "allocatable", "reserved", "free")


@dataclass(slots=True)
class Block:
    """One memory block of a container: `size` bytes of `type` on the NUMA nodes listed."""

    numa_affinity: tuple[int, ...]
    type: str
    size: int
    mask: int = field(init=False, repr=False, compare=False)  # real mask, for comparisons

    def __post_init__(self) -> None:
        self.mask = mask_of(self.numa_affinity)

    def to_dict(self) -> dict:
        return {"numaAffinity": list(self.numa_affinity), "type": self.type, "size": self.size}

    def copy(self) -> Block:
        return Block(self.numa_affinity, self.type, self.size)


class _Resource:
    """One resource type's memory tables, by NUMA position."""

    __slots__ = ("name", "present", "total", "system_reserved", "allocatable", "reserved",
                 "free", "alloc_sum", "free_sum")  # fmt: skip

    def __init__(self, name: str, n: int) -> None:
        self.name = name
        self.present = [False] * n  # the node has a table for this type (kubelet: map entry)
        self.total = [0] * n
        self.system_reserved = [0] * n
        self.allocatable = [0] * n
        self.reserved = [0] * n
        self.free = [0] * n
        self.alloc_sum: list[int] = []
        self.free_sum: list[int] | None = None


def pod_requested_resources(pod: Pod) -> dict[str, int]:
    """getPodRequestedResources (§4.3): per type, max(regular init peak incl. sidecars so far,
    Σ app + Σ sidecars); only types that app containers request."""
    init_max: dict[str, int] = {}
    sidecars: dict[str, int] = {}
    for c in pod.init_containers:
        for name, qty in c.memory_requests().items():
            init_max.setdefault(name, 0)
            if c.sidecar:
                sidecars[name] = sidecars.get(name, 0) + qty
            elif sidecars.get(name, 0) + qty > init_max[name]:
                init_max[name] = sidecars.get(name, 0) + qty
    app: dict[str, int] = {}
    for c in pod.containers:
        for name, qty in c.memory_requests().items():
            app[name] = app.get(name, 0) + qty
    return {
        name: max(init_max.get(name, 0), total + sidecars.get(name, 0))
        for name, total in app.items()
    }


def _req_key(requests: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    # memory first, then hugepages by name: the order blocks are written in (Go's is random).
    return tuple(sorted(requests.items(), key=lambda kv: (kv[0] != MEMORY, kv[0])))


class MemoryManager:
    """The Memory Manager with policy "None" or "Static" (HintProvider, see hints.py).

    `reserved_memory` is reservedMemory in bytes: {numa id: {"memory": n, "hugepages-2Mi": n}}.
    Its sums are validated elsewhere (numacert/kubelet/validate.py); only the Static policy's
    own start check is made here. `state` is a memory_manager_state dict to start from.
    """

    def __init__(
        self,
        topology: Topology,
        policy: str,
        reserved_memory: Mapping[int, Mapping[str, int]] | None = None,
        state: Mapping | None = None,
    ) -> None:
        if policy not in (POLICY_NONE, POLICY_STATIC):
            raise KubeletStartError(f'unknown policy: "{policy}"')
        self.policy = policy
        self.topology = topology
        self.reserved_memory = {int(k): dict(v) for k, v in (reserved_memory or {}).items()}
        if policy == POLICY_STATIC:
            total = sum(v.get(MEMORY, 0) for v in self.reserved_memory.values())
            if total <= 0:
                raise KubeletStartError(ERR_NO_SYSTEM_RESERVED)

        ids = topology.numa_ids
        n = len(ids)
        self._ids: tuple[int, ...] = ids
        self._pos: dict[int, int] = {nid: i for i, nid in enumerate(ids)}
        self._n = n
        size = 1 << n
        self._popcount = [m.bit_count() for m in range(size)]
        self._real = [0] * size  # local mask -> real mask
        for m in range(1, size):
            low = m & -m
            self._real[m] = self._real[m ^ low] | (1 << ids[low.bit_length() - 1])
        # IterateBitMasks order: by size, then itertools.combinations order of positions.
        self._order: list[int] = [
            sum(1 << p for p in combo)
            for k in range(1, n + 1)
            for combo in combinations(range(n), k)
        ]
        self._positions = [[p for p in range(n) if m >> p & 1] for m in range(size)]
        # Hint objects per local mask, built once (hint lists hold up to 2**n - 1 of them).
        self._hint_pref = [Hint(r, True) for r in self._real]
        self._hint_non_pref = [Hint(r, False) for r in self._real]

        self._resources: dict[str, _Resource] = {}
        self._assign = [0] * n
        self._cells = [1 << p for p in range(n)]  # local masks
        self._entries: dict[str, dict[str, list[Block]]] = {}
        # initContainersReusableMemory: pod uid -> local mask -> type -> bytes
        self._reusable: dict[str, dict[int, dict[str, int]]] = {}
        self._mems_at_alloc: dict[str, dict[str, str]] = {}
        self._cap_cache: dict[tuple, tuple[list[int], int]] = {}
        self._multi_cell = 0
        self._used = 0
        self._used_by_cell: dict[int, int] = {}
        self._open_groups: set[int] = set()
        if policy == POLICY_STATIC:
            self._init_default_state()
        self._initial_state = self.machine_state()
        if state is not None:
            self.restore(state)

    @classmethod
    def from_state(
        cls,
        topology: Topology,
        policy: str,
        reserved_memory: Mapping[int, Mapping[str, int]] | None,
        state: Mapping,
    ) -> MemoryManager:
        return cls(topology, policy, reserved_memory, state=state)

    # ---- machine state -------------------------------------------------------------------
    def _resource(self, name: str) -> _Resource:
        res = self._resources.get(name)
        if res is None:
            # A type no node has (e.g. hugepages-1Gi on a 2Mi-only machine): zero everywhere.
            res = _Resource(name, self._n)
            res.alloc_sum = [0] * (1 << self._n)
            self._resources[name] = res
        return res

    def _init_default_state(self) -> None:
        """§4.2: tables per node for memory and every hugepage size the node reports."""
        n = self._n
        tables: dict[str, _Resource] = {}
        for i, node in enumerate(self.topology.numa_nodes):
            reserved = self.reserved_memory.get(node.id, {})
            hp_total = 0
            for page_size, pages in sorted(node.hugepages.items()):
                name = hugepage_resource_name(page_size)
                res = tables.get(name) or tables.setdefault(name, _Resource(name, n))
                total = pages * page_size
                sr = reserved.get(name, 0)
                res.present[i] = True
                res.total[i], res.system_reserved[i] = total, sr
                res.allocatable[i] = res.free[i] = total - sr
                hp_total += total
            res = tables.get(MEMORY) or tables.setdefault(MEMORY, _Resource(MEMORY, n))
            sr = reserved.get(MEMORY, 0)
            res.present[i] = True
            res.total[i], res.system_reserved[i] = node.memory, sr
            res.allocatable[i] = res.free[i] = node.memory - sr - hp_total
        self._resources = {}
        for name in sorted(tables):
            res = tables[name]
            res.alloc_sum = self._subset_sums(res.allocatable)
            self._resources[name] = res
        self._assign = [0] * n
        self._cells = [1 << p for p in range(n)]
        self._refresh_groups()

    @staticmethod
    def _subset_sums(values: list[int]) -> list[int]:
        """Σ values over every local mask: the table doubles once per node (mask m with bit k
        = mask m without it, plus values[k])."""
        sums = [0]
        for v in values:
            sums += [x + v for x in sums]
        return sums

    def _free_sum(self, name: str) -> list[int]:
        res = self._resource(name)
        if res.free_sum is None:
            res.free_sum = self._subset_sums(res.free)
        return res.free_sum

    def _refresh_groups(self) -> None:
        """Derived views of cells/numberOfAssignments used by the group checks of §4.4."""
        multi = used = 0
        by_cell: dict[int, int] = {}
        for p in range(self._n):
            cell = self._cells[p]
            if cell & (cell - 1):
                multi |= 1 << p
            if self._assign[p] > 0:
                used |= 1 << p
                by_cell[cell] = by_cell.get(cell, 0) | (1 << p)
        self._multi_cell, self._used, self._used_by_cell = multi, used, by_cell
        # multi-node groups that may take more: every used node in them is bound to them
        self._open_groups = {
            g for g, nodes in by_cell.items() if g & (g - 1) and not g & used & ~nodes
        }

    def _local(self, real_mask: int) -> int:
        local = 0
        m = real_mask
        while m:
            low = m & -m
            pos = self._pos.get(low.bit_length() - 1)
            if pos is None:
                raise ValueError(f"NUMA node {low.bit_length() - 1} is not on this machine")
            local |= 1 << pos
            m ^= low
        return local

    def _reserve(self, name: str, local: int, size: int) -> None:
        """updateMachineState: count the assignment on every node of the mask, bind the group,
        and take `size` from free node by node, ascending."""
        res = self._resource(name)
        free, reserved, present = res.free, res.reserved, res.present
        for p in self._positions[local]:
            self._assign[p] += 1
            self._cells[p] = local
            if size == 0 or not present[p] or free[p] <= 0:
                continue
            take = free[p] if free[p] < size else size
            reserved[p] += take
            free[p] -= take
            size -= take
        res.free_sum = None

    def _release(self, blocks: Iterable[Block]) -> None:
        """RemoveContainer (§4.6): give each block's size back node by node, ascending."""
        pos = self._pos
        for b in blocks:
            res = self._resource(b.type)
            remaining = b.size
            for nid in b.numa_affinity:
                p = pos[nid]
                self._assign[p] -= 1
                if self._assign[p] == 0:
                    self._cells[p] = 1 << p
                if remaining == 0 or not res.present[p]:
                    continue
                r = res.reserved[p]
                if r == 0:
                    continue
                if r < remaining:
                    remaining -= r
                    res.free[p] += r
                    res.reserved[p] = 0
                else:
                    res.free[p] += remaining
                    res.reserved[p] -= remaining
                    remaining = 0
            res.free_sum = None
        self._refresh_groups()

    # ---- eligibility and requests ----------------------------------------------------------
    def _eligible(self, pod: Pod) -> bool:
        return (
            self.policy == POLICY_STATIC
            and not pod.has_pod_level_resources
            and pod.qos_class == "Guaranteed"
        )

    # ---- hints ----------------------------------------------------------------------------
    def _calculate(self, uid: str, req: tuple[tuple[str, int], ...]) -> tuple[list[int], int]:
        """calculateHints (§4.4): the qualifying local masks in IterateBitMasks order, and
        minAffinitySize (a hint is preferred iff its count equals it).

        The checks are the kubelet's, applied as whole-list filters (the order of the checks
        does not change which masks pass): capacity (cached per request), group binding,
        then free memory plus the pod's reusable init memory."""
        cached = self._cap_cache.get(req)
        if cached is None:
            cands = self._order
            for name, size in req:
                sums = self._resource(name).alloc_sum
                cands = [m for m in cands if sums[m] >= size]
            pc = self._popcount
            # masks come by size, so the first one has the fewest nodes
            min_size = pc[cands[0]] if cands else self._n
            if len(self._cap_cache) > 4096:  # bounded: requests are few in practice
                self._cap_cache.clear()
            # single-node masks come first in IterateBitMasks order
            cached = self._cap_cache[req] = (
                [m for m in cands if pc[m] == 1],
                [m for m in cands if pc[m] > 1],
                min_size,
            )
        singles, multis, min_size = cached
        multi = self._multi_cell
        if multi:  # a node bound to a multi-NUMA group gets no single-node hint
            singles = [m for m in singles if not m & multi]
        used = self._used
        if used and multis:
            # every used node of a multi-node mask must already be in exactly that group
            groups = self._open_groups
            multis = [m for m in multis if not m & used or m in groups]
        out = singles + multis
        pod_reuse = self._reusable.get(uid)
        if not pod_reuse:
            if len(req) == 1:
                f1, s1 = self._free_sum(req[0][0]), req[0][1]
                return [m for m in out if f1[m] >= s1], min_size
            if len(req) == 2:
                f1, f2 = self._free_sum(req[0][0]), self._free_sum(req[1][0])
                s1, s2 = req[0][1], req[1][1]
                return [m for m in out if f1[m] >= s1 and f2[m] >= s2], min_size
            for name, size in req:
                if not out:
                    break
                free = self._free_sum(name)
                out = [m for m in out if free[m] >= size]
            return out, min_size
        frees = [(name, self._free_sum(name), size) for name, size in req]
        kept = []
        for m in out:
            reuse = pod_reuse.get(m) or {}
            if all(free[m] + reuse.get(name, 0) >= size for name, free, size in frees):
                kept.append(m)
        return kept, min_size

    def _hints_map(self, uid: str, req: tuple[tuple[str, int], ...]) -> dict[str, list[Hint]]:
        masks, min_size = self._calculate(uid, req)
        if not masks:
            return {}  # empty map: "no preference" to the Topology Manager (§4.4, §8.4)
        pref, non_pref, pc = self._hint_pref, self._hint_non_pref, self._popcount
        hints = [pref[m] if pc[m] == min_size else non_pref[m] for m in masks]
        out = {}
        for name, _ in req:  # the same hints for every requested type, one list each
            out[name] = hints if not out else hints.copy()
        return out

    @staticmethod
    def _regenerate(
        blocks: list[Block], req: tuple[tuple[str, int], ...]
    ) -> dict[str, list[Hint]] | None:
        """Hints of an already allocated container: one preferred hint per block."""
        wanted = dict(req)
        if len(blocks) != len(wanted):
            return None
        hints: dict[str, list[Hint]] = {name: [] for name in wanted}
        for b in blocks:
            if b.type not in wanted or b.size != wanted[b.type]:
                return None
            hints[b.type].append(Hint(b.mask, True))
        return hints

    def get_topology_hints(self, pod: Pod, container: Container) -> ProviderHints:
        if not self._eligible(pod):
            return None
        req = _req_key(container.memory_requests())
        blocks = self._entries.get(pod.uid, {}).get(container.name)
        if blocks is not None:
            return self._regenerate(blocks, req)
        return self._hints_map(pod.uid, req)

    def get_pod_topology_hints(self, pod: Pod) -> ProviderHints:
        if not self._eligible(pod):
            return None
        req = _req_key(pod_requested_resources(pod))
        pod_entries = self._entries.get(pod.uid, {})
        for c in pod.all_containers():
            blocks = pod_entries.get(c.name)
            if blocks is not None:
                return self._regenerate(blocks, req)
        return self._hints_map(pod.uid, req)

    # ---- allocation -----------------------------------------------------------------------
    def _best(self, masks: Iterable[int], min_size: int) -> tuple[int, bool]:
        """findBestHint: preferred first, then fewest nodes, then lowest mask."""
        pc = self._popcount
        best = min(masks, key=lambda m: (pc[m] != min_size, pc[m], m))
        return best, pc[best] == min_size

    def _satisfies(self, local: int, req: tuple[tuple[str, int], ...]) -> bool:
        # isAffinitySatisfyRequest: free memory only (reusable init memory is not counted)
        # summed directly: cheaper than rebuilding a stale subset-sum table for one mask
        positions = self._positions[local]
        for name, size in req:
            free = self._resource(name).free
            if sum(free[p] for p in positions) < size:
                return False
        return True

    def _violates(self, local: int) -> bool:
        if self._popcount[local] <= 1:
            return False
        u = local & self._used
        return bool(u & ~self._used_by_cell.get(local, 0))

    def _reusable_for(self, uid: str, local: int, name: str) -> int:
        pod_reuse = self._reusable.get(uid)
        if not pod_reuse:
            return 0
        return pod_reuse.get(local, {}).get(name, 0)

    def allocate(self, pod: Pod, container: Container, hint: Hint) -> None:
        """Allocate (§4.5). Raises AllocationError (no reason: UnexpectedAdmissionError)."""
        if not self._eligible(pod):
            return
        uid = pod.uid
        existing = self._entries.get(uid, {}).get(container.name)
        if existing is not None:
            self._update_reusable(pod, container, existing)
            return
        req = _req_key(container.memory_requests())

        if hint.mask is None:
            masks, min_size = self._calculate(uid, req)
            if not masks or not req:  # no requested type: the kubelet's hint map is empty too
                raise AllocationError(ERR_DEFAULT_AFFINITY)
            # hints are identical for every type; the kubelet looks at "memory"
            best, preferred = self._best(masks, min_size)
            if not preferred and hint.preferred:
                raise AllocationError(ERR_DEFAULT_PREFERRED)
        else:
            best, preferred = self._local(hint.mask), hint.preferred

        if not self._satisfies(best, req):
            masks, min_size = self._calculate(uid, req)
            wider = [m for m in masks if m & best == best] if MEMORY in dict(req) else []
            if not wider:
                raise AllocationError(ERR_EXTEND)
            extended, ext_preferred = self._best(wider, min_size)
            if not ext_preferred and preferred:
                raise AllocationError(ERR_EXTENDED_PREFERRED)
            best, preferred = extended, ext_preferred

        if self._violates(best):
            raise AllocationError(ERR_VIOLATES)

        affinity = tuple(self._ids[p] for p in self._positions[best])
        blocks: list[Block] = []
        for name, size in req:
            blocks.append(Block(affinity, name, size))
            reuse = self._reusable_for(uid, best, name)
            self._reserve(name, best, 0 if reuse >= size else size - reuse)
        self._refresh_groups()
        self._update_reusable(pod, container, blocks)
        self._entries.setdefault(uid, {})[container.name] = blocks
        self._mems_at_alloc.setdefault(uid, {})[container.name] = ",".join(map(str, affinity))
        self._shrink_init_blocks(pod, container, blocks)

    def _update_reusable(self, pod: Pod, container: Container, blocks: list[Block]) -> None:
        """updatePodReusableMemory: only the pod being admitted keeps entries; a regular init
        container raises reusable[mask][type] to its block size, any other container uses it up."""
        uid = pod.uid
        for other in [u for u in self._reusable if u != uid]:
            del self._reusable[other]
        if container.init and not container.sidecar:  # a regular init container
            pod_reuse = self._reusable.setdefault(uid, {})
            for b in blocks:
                per_type = pod_reuse.setdefault(self._local(b.mask), {})
                if b.size > per_type.get(b.type, 0):
                    per_type[b.type] = b.size
            return
        pod_reuse = self._reusable.get(uid)
        if not pod_reuse:
            return
        for b in blocks:
            per_type = pod_reuse.get(self._local(b.mask))
            current = per_type.get(b.type, 0) if per_type else 0
            if current:
                per_type[b.type] = 0 if b.size >= current else current - b.size

    def _shrink_init_blocks(self, pod: Pod, container: Container, blocks: list[Block]) -> None:
        """updateInitContainersMemoryBlocks: shrink earlier regular init containers' blocks of
        the same type and mask, FIFO, so Σ block sizes of the pod == memory reserved for it."""
        pod_entries = self._entries.get(pod.uid, {})
        for cb in blocks:
            remaining = cb.size
            for ic in pod.init_containers:
                if ic.name == container.name:
                    break
                if ic.sidecar:
                    continue
                for ib in pod_entries.get(ic.name) or ():
                    if ib.size == 0 or ib.type != cb.type or ib.mask != cb.mask:
                        continue
                    if ib.size > remaining:
                        ib.size -= remaining
                        remaining = 0
                    else:
                        remaining -= ib.size
                        ib.size = 0

    def container_started(self, pod: Pod, container: Container) -> None:
        """AddContainer: the container is starting, so every regular init container before it
        has completed; their blocks are released (sidecars keep theirs)."""
        pod_entries = self._entries.get(pod.uid)
        if not pod_entries:
            return
        for ic in pod.init_containers:
            if ic.name == container.name:
                break
            if ic.sidecar:
                continue
            blocks = pod_entries.pop(ic.name, None)
            if blocks is not None:
                self._release(blocks)
        if not pod_entries:
            del self._entries[pod.uid]

    def remove_container(self, pod_uid: str, name: str) -> None:
        pod_entries = self._entries.get(pod_uid)
        if not pod_entries or name not in pod_entries:
            return
        self._release(pod_entries.pop(name))
        if not pod_entries:
            del self._entries[pod_uid]

    def remove_pod(self, pod_uid: str) -> None:
        """Garbage-collect the pod: release every container's blocks (§4.6). Its reusable
        init memory is forgotten too: a later pod with the same uid is a new pod."""
        pod_entries = self._entries.pop(pod_uid, None)
        if pod_entries:
            for blocks in pod_entries.values():
                self._release(blocks)
        self._reusable.pop(pod_uid, None)
        self._mems_at_alloc.pop(pod_uid, None)

    # ---- queries --------------------------------------------------------------------------
    def pod_uids(self) -> list[str]:
        return list(self._entries)

    def pod_memory(self, pod_uid: str) -> dict[str, int]:
        """Bytes the pod's blocks hold now, per resource type."""
        out: dict[str, int] = {}
        for blocks in self._entries.get(pod_uid, {}).values():
            for b in blocks:
                out[b.type] = out.get(b.type, 0) + b.size
        return out

    def blocks(self, pod_uid: str, container: str | Container) -> list[Block]:
        name = container if isinstance(container, str) else container.name
        return [b.copy() for b in self._entries.get(pod_uid, {}).get(name, ())]

    def container_mems(self, pod_uid: str, container: str | Container) -> str | None:
        """cpuset.mems (§4.7): the union of the blocks' NUMA nodes, or None without blocks."""
        name = container if isinstance(container, str) else container.name
        blocks = self._entries.get(pod_uid, {}).get(name)
        if not blocks:
            return None
        mask = 0
        for b in blocks:
            mask |= b.mask
        return ",".join(str(i) for i in bits_of(mask))

    def allocated_mems(self, pod_uid: str, container: str | Container) -> str | None:
        """cpuset.mems the container got when it was allocated; unlike container_mems this
        survives the release of a regular init container's blocks at the next start."""
        name = container if isinstance(container, str) else container.name
        return self._mems_at_alloc.get(pod_uid, {}).get(name)

    def free(self, numa_id: int, resource: str = MEMORY) -> int:
        res = self._resources.get(resource)
        return res.free[self._pos[numa_id]] if res is not None else 0

    # ---- memory_manager_state ---------------------------------------------------------------
    def machine_state(self) -> dict:
        """machineState as the kubelet writes it (node ids as strings, sizes in bytes)."""
        if self.policy != POLICY_STATIC:
            return {}
        out: dict[str, dict] = {}
        names = sorted(self._resources)
        for p in sorted(range(self._n), key=lambda q: str(self._ids[q])):
            memory_map = {}
            for name in names:
                res = self._resources[name]
                if not res.present[p]:
                    continue
                memory_map[name] = {
                    "total": res.total[p],
                    "systemReserved": res.system_reserved[p],
                    "allocatable": res.allocatable[p],
                    "reserved": res.reserved[p],
                    "free": res.free[p],
                }
            out[str(self._ids[p])] = {
                "numberOfAssignments": self._assign[p],
                "memoryMap": memory_map,
                "cells": [self._ids[q] for q in self._positions[self._cells[p]]],
            }
        return out

    def initial_machine_state(self) -> dict:
        """The machine state before any allocation (the kubelet's default machine state)."""
        return {k: {**v, "cells": list(v["cells"])} for k, v in self._initial_state.items()}

    def to_state(self) -> dict:
        """memory_manager_state without the checksum; `entries` omitted when empty."""
        state: dict = {"policyName": self.policy, "machineState": self.machine_state()}
        entries = {
            uid: {name: [b.to_dict() for b in blocks] for name, blocks in sorted(cs.items())}
            for uid, cs in sorted(self._entries.items())
            if cs
        }
        if entries:
            state["entries"] = entries
        return state

    def restore(self, state: Mapping) -> None:
        """Start from a memory_manager_state dict (checksum ignored), checking it as the kubelet
        does at start. Without a `machineState` key the machine state is derived from the
        entries (a convenience for scenario files; the kubelet's own files always have one)."""
        where = "state.memory"
        if not isinstance(state, Mapping):
            raise InputError("the memory state must be a mapping", where)
        name = state.get("policyName")
        if name != self.policy:
            raise KubeletStartError(
                f'[memorymanager] configured policy "{self.policy}" differs from state '
                f'checkpoint policy "{name}"'
            )
        entries = _parse_entries(state.get("entries") or {}, f"{where}.entries")
        if self.policy != POLICY_STATIC:
            return
        has_machine_state = "machineState" in state
        stored = state.get("machineState") or {}
        if not isinstance(stored, Mapping):
            raise InputError("machineState must be a mapping", f"{where}.machineState")
        self._init_default_state()
        self._cap_cache.clear()
        if has_machine_state and not stored:
            if entries:
                raise KubeletStartError(ERR_EMPTY_MACHINE_STATE)
            return
        # The machine state the entries imply, in the kubelet's order of reservation.
        for uid, containers in entries.items():
            for cname, blocks in containers.items():
                for b in blocks:
                    for nid in b.numa_affinity:
                        if nid not in self._pos:
                            raise KubeletStartError(
                                f"[memorymanager] (pod: {uid}, container: {cname}) the memory "
                                "assignment uses the NUMA that does not exist"
                            )
                        res = self._resources.get(b.type)
                        if res is None or not res.present[self._pos[nid]]:
                            raise KubeletStartError(
                                f"[memorymanager] (pod: {uid}, container: {cname}) the memory "
                                "assignment uses memory resource that does not exist"
                            )
                    self._reserve_ids(b)
        self._entries = entries
        for uid, containers in entries.items():
            for cname in containers:
                mems = self.container_mems(uid, cname)
                if mems is not None:
                    self._mems_at_alloc.setdefault(uid, {})[cname] = mems
        self._refresh_groups()
        if not has_machine_state:
            return
        expected = self.machine_state()
        actual = _parse_machine_state(stored, f"{where}.machineState")
        if not _machine_states_equal(actual, expected, entries):
            raise KubeletStartError(ERR_STATE_DIFFERS)
        self._load_machine_state(actual)

    def _reserve_ids(self, b: Block) -> None:
        """Like _reserve, but in the block's own node order and with its own cells list."""
        res = self._resource(b.type)
        size = b.size
        group = self._local(b.mask)
        for nid in b.numa_affinity:
            p = self._pos[nid]
            self._assign[p] += 1
            self._cells[p] = group
            if size == 0 or res.free[p] <= 0:
                continue
            take = min(res.free[p], size)
            res.reserved[p] += take
            res.free[p] -= take
            size -= take
        res.free_sum = None

    def _load_machine_state(self, parsed: dict) -> None:
        """Keep the file's machine state (it passed the check, so only the split of free and
        reserved inside a NUMA group may differ from the derived one)."""
        for key, node in parsed.items():
            p = self._pos[int(key)]
            self._assign[p] = node["numberOfAssignments"]
            self._cells[p] = self._local(sum(1 << c for c in set(node["cells"])))
            for name, table in node["memoryMap"].items():
                res = self._resources[name]
                res.reserved[p] = table["reserved"]
                res.free[p] = table["free"]
                res.free_sum = None
        self._refresh_groups()


def _parse_entries(raw: object, where: str) -> dict[str, dict[str, list[Block]]]:
    if not isinstance(raw, Mapping):
        raise InputError("entries must be a mapping of pod uid to containers", where)
    out: dict[str, dict[str, list[Block]]] = {}
    for uid, containers in raw.items():
        if not isinstance(containers, Mapping):
            raise InputError("must map container names to blocks", f"{where}.{uid}")
        for cname, blocks in containers.items():
            at = f"{where}.{uid}.{cname}"
            if not isinstance(blocks, list):
                raise InputError("must be a list of blocks", at)
            parsed = []
            for i, b in enumerate(blocks):
                try:
                    affinity = tuple(int(x) for x in b["numaAffinity"])
                    size = int(b["size"])
                    rtype = str(b["type"])
                except (KeyError, TypeError, ValueError):
                    raise InputError(
                        "a block needs numaAffinity (list of ints), type and size", f"{at}[{i}]"
                    ) from None
                if size < 0 or not affinity:
                    raise InputError("size must be >= 0 and numaAffinity non-empty", f"{at}[{i}]")
                parsed.append(Block(affinity, rtype, size))
            out.setdefault(str(uid), {})[str(cname)] = parsed
    return out


def _parse_machine_state(raw: Mapping, where: str) -> dict:
    out: dict[str, dict] = {}
    for key, node in raw.items():
        at = f"{where}.{key}"
        try:
            int(key)
            tables = {
                str(name): {f: int(t[f]) for f in _TABLE_FIELDS}
                for name, t in (node.get("memoryMap") or {}).items()
            }
            out[str(int(key))] = {
                "numberOfAssignments": int(node.get("numberOfAssignments", 0)),
                "memoryMap": tables,
                "cells": [int(c) for c in node.get("cells") or []],
            }
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError(
                "a node needs numberOfAssignments, memoryMap {type: {total, systemReserved, "
                "allocatable, reserved, free}} and cells",
                at,
            ) from None
    return out


def _machine_states_equal(
    actual: dict, expected: dict, entries: dict[str, dict[str, list[Block]]]
) -> bool:
    """areMachineStatesEqual, made independent of the order the entries are replayed in.

    The kubelet replays the entries in Go map order (random), so where blocks of different
    NUMA sets share a node (a single-NUMA allocation on a node of a group), the re-derived
    `cells` and the split of free/reserved between nodes depend on that order. Compared here:
    per node numberOfAssignments and total/systemReserved/allocatable exactly; `cells` must be
    the NUMA set of some block on that node (the last one replayed), or the node alone when no
    block uses it; free and reserved summed over each set of nodes linked by blocks or cells.

    Like the kubelet's, the replay drops what a block finds no free memory for on its nodes, so
    a file the manager wrote itself can be refused: e.g. a single-NUMA block on a node of a
    group whose memory the group's since-deleted blocks had held (a best-effort hint). Its
    `cells` force it to be replayed last, when the group's blocks have filled its node; the
    kubelet then fails to start in every replay order, and so does this check.
    """
    if actual.keys() != expected.keys():
        return False
    touching: dict[str, set[tuple[int, ...]]] = {k: set() for k in actual}
    parent = {k: k for k in actual}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def link(keys: list[str]) -> bool:
        for k in keys:
            if k not in parent:
                return False
            parent[find(k)] = find(keys[0])
        return True

    for containers in entries.values():
        for blocks in containers.values():
            for b in blocks:
                group = tuple(sorted(set(b.numa_affinity)))
                keys = [str(n) for n in group]
                if not link(keys):
                    return False
                for k in keys:
                    touching[k].add(group)
    for key, a in actual.items():
        e = expected[key]
        if a["numberOfAssignments"] != e["numberOfAssignments"]:
            return False
        cells = tuple(sorted(set(a["cells"])))
        allowed = touching[key] if a["numberOfAssignments"] else {(int(key),)}
        if cells not in allowed or not link([str(c) for c in cells]):
            return False
        if a["memoryMap"].keys() != e["memoryMap"].keys():
            return False
        for name, ta in a["memoryMap"].items():
            te = e["memoryMap"][name]
            if any(ta[f] != te[f] for f in ("total", "systemReserved", "allocatable")):
                return False
    sums: dict[tuple[str, str, str], list[int]] = {}
    for which, state in (("a", actual), ("e", expected)):
        for key, node in state.items():
            for name, t in node["memoryMap"].items():
                acc = sums.setdefault((find(key), name, which), [0, 0])
                acc[0] += t["free"]
                acc[1] += t["reserved"]
    return all(
        v == sums.get((root, name, "e" if w == "a" else "a")) for (root, name, w), v in sums.items()
    )
