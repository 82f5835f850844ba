"""The kubelet's CPU Manager, policies none and static, as a hint provider (reference §3).

CPUManager keeps the state the kubelet keeps in cpu_manager_state (the shared pool
`defaultCpuSet` and the exclusive assignments) plus the in-memory `cpusToReuse`, answers the
Topology Manager's hint calls, allocates and releases. Pure: no I/O, deterministic.

Hints iterate every NUMA mask; to keep that cheap, per-mask totals are precomputed once and
the free CPUs outside the reserved set are kept as per-NUMA counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import combinations

from numacert.cpuset import CPUSet, CPUSetError
from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.messages import (
    ALIGN_BY_SOCKET_HW,
    CPU_NO_RESERVATION,
    CPU_ZERO_RESERVATION,
)
from numacert.oracle.cpu_assignment import TakeOptions, take_by_topology, topology_index
from numacert.oracle.hints import AllocationError, Hint, KubeletStartError, ProviderHints
from numacert.oracle.pod import Container, Pod
from numacert.quantity import QuantityError, to_millis
from numacert.topology.model import Topology

STATIC = "static"
NONE = "none"

OPTIONS = (
    "full-pcpus-only",
    "distribute-cpus-across-numa",
    "align-by-socket",
    "distribute-cpus-across-cores",
    "strict-cpu-reservation",
    "prefer-align-cpus-by-uncorecache",
)

SMT_ALIGNMENT_ERROR = "SMTAlignmentError"


def guaranteed_cpus(pod: Pod, container: Container) -> int:
    """Exclusive CPUs the static policy gives `container` (§3.3); 0 = shared pool."""
    if pod.has_pod_level_resources:
        # Without the alpha PodLevelResourceManagers gate the CPU Manager skips such pods.
        return 0
    if pod.qos_class != "Guaranteed":
        return 0
    millis = container.cpu_request
    if millis is None or millis % 1000 != 0:
        return 0
    return millis // 1000


def pod_guaranteed_cpus(pod: Pod) -> int:
    """The pod-scope request (§3.4): max(largest init step, app containers + sidecars)."""
    init_max = 0
    sidecars = 0
    for c in pod.init_containers:
        if c.cpu_request is None:
            continue
        n = guaranteed_cpus(pod, c)
        if c.sidecar:
            sidecars += n
        else:
            init_max = max(init_max, sidecars + n)
    app = sum(guaranteed_cpus(pod, c) for c in pod.containers if c.cpu_request is not None)
    return max(init_max, app + sidecars)


def smt_not_multiple(requested: int, per_core: int) -> AllocationError:
    return AllocationError(
        f"SMT Alignment Error: requested {requested} cpus not multiple cpus per core = {per_core}",
        SMT_ALIGNMENT_ERROR,
    )


def smt_not_enough_physical(requested: int, per_core: int, available: int) -> AllocationError:
    return AllocationError(
        "SMT Alignment Error: not enough free physical CPUs: "
        f"available physical CPUs = {available}, requested CPUs = {requested}, "
        f"CPUs per core = {per_core}",
        SMT_ALIGNMENT_ERROR,
    )


class CPUManager:
    """One kubelet's CPU Manager.

    `config` supplies cpuManagerPolicy, its options, reservedSystemCPUs, kubeReserved and
    systemReserved (option names and feature gates are validated elsewhere). `state` is a
    cpu_manager_state document to start from (validated as the kubelet's Start does).
    `reserved_cpus` replaces the reservation the kubelet would derive from `config` with this
    exact set, possibly empty: upstream's unit tests construct the policy that way.
    `k8s_minor` picks the kubelet release where the algorithms differ (None: the newest numacert
    models); today only takeByTopologyNUMADistributed does (align-by-socket from 1.37).
    """

    name = "cpu"

    def __init__(
        self,
        topology: Topology,
        config: KubeletConfig,
        state: Mapping | None = None,
        *,
        reserved_cpus: Iterable[int] | None = None,
        k8s_minor: int | None = None,
    ) -> None:
        self.topology = topology
        self.policy = config.cpu_manager_policy
        self._ix = topology_index(topology)
        self.options: dict[str, bool] = {o: config.cpu_option(o) for o in OPTIONS}
        self._take_opts = TakeOptions.from_policy_options(
            self.options, topology.cpus_per_core, k8s_minor=k8s_minor
        )
        self.reserved = CPUSet()
        self.reserved_physical = CPUSet()
        self._entries: dict[str, dict[str, CPUSet]] = {}
        self._reuse: dict[str, CPUSet] = {}
        self._default: set[int] = set()
        self._free_numa: dict[int, int] = {}  # per NUMA: |defaultCpuSet - reserved|
        if self.policy == STATIC:
            self._init_static(config, reserved_cpus)
        elif self.policy != NONE:
            raise KubeletStartError(f'unknown policy: "{self.policy}"')
        self._init_hint_tables()
        self.load_state(state or {})

    @classmethod
    def from_state(
        cls, topology: Topology, config: KubeletConfig, state: Mapping, **kwargs
    ) -> CPUManager:
        return cls(topology, config, state, **kwargs)

    # ---- construction ----------------------------------------------------------------------
    def _init_static(self, config: KubeletConfig, reserved_cpus: Iterable[int] | None) -> None:
        topo = self.topology
        explicit: CPUSet | None = None
        if reserved_cpus is not None:
            explicit = CPUSet(reserved_cpus)
            num_reserved = len(explicit)
        else:
            if config.reserved_system_cpus and config.reserved_system_cpus.strip():
                try:
                    explicit = CPUSet.parse(config.reserved_system_cpus)
                except CPUSetError as exc:
                    raise KubeletStartError(str(exc)) from None
            num_reserved = self._num_reserved(config, explicit)
        # NewStaticPolicy: option validation that needs the topology, then the reservation.
        if self.options["align-by-socket"] and topo.num_sockets > topo.num_numa_nodes:
            raise KubeletStartError(ALIGN_BY_SOCKET_HW)
        if explicit is not None:
            reserved = explicit
        else:
            try:
                # Lowest-numbered whole cores first with the default options.
                reserved = self.take(topo.all_cpus, num_reserved)
            except AllocationError:
                reserved = CPUSet()  # the kubelet ignores the error; the size check reports it
        if len(reserved) != num_reserved:
            raise KubeletStartError(
                "[cpumanager] unable to reserve the required amount of CPUs "
                f"(size of {reserved} did not equal {num_reserved})"
            )
        self.reserved = reserved
        self.reserved_physical = CPUSet(
            cpu for r in reserved if r in topo.cpu_by_id for cpu in topo.siblings(r)
        )

    @staticmethod
    def _num_reserved(config: KubeletConfig, explicit: CPUSet | None) -> int:
        if explicit:
            # The kubelet overwrites systemReserved.cpu with |reservedSystemCPUs| and drops
            # kubeReserved.cpu.
            return len(explicit)
        amounts = [r["cpu"] for r in (config.kube_reserved, config.system_reserved) if "cpu" in r]
        if not amounts:
            raise KubeletStartError(CPU_NO_RESERVATION)
        try:
            millis = sum(to_millis(a) for a in amounts)
        except QuantityError as exc:
            raise KubeletStartError(str(exc)) from None
        if millis == 0:
            raise KubeletStartError(CPU_ZERO_RESERVATION)
        return -(-millis // 1000)

    def _init_hint_tables(self) -> None:
        """Per NUMA mask in IterateBitMasks order (row i+1): its mask, the row of the mask
        without its lowest node, that node, node count, total CPUs, sockets spanned, and the
        two Hint objects it can produce (hints are immutable, so they are shared)."""
        nodes, ix = self.topology.cpu_numa_ids, self._ix
        row_of: dict[int, int] = {0: 0}
        self._masks: list[int] = []
        self._parents: list[int] = []
        self._lows: list[int] = []
        self._sizes: list[int] = []
        self._totals: list[int] = []
        self._sockets: list[int] = []
        for size in range(1, len(nodes) + 1):
            for combo in combinations(nodes, size):
                mask = 0
                for n in combo:
                    mask |= 1 << n
                low = combo[0]
                self._masks.append(mask)
                self._parents.append(row_of[mask & ~(1 << low)])
                self._lows.append(low)
                self._sizes.append(size)
                self._totals.append(sum(len(ix.numa_sets[n]) for n in combo))
                self._sockets.append(len({s for n in combo for s, _ in ix.socket_in_numa[n]}))
                row_of[mask] = len(self._masks)
        self._hint_objs = [(Hint(m, False), Hint(m, True)) for m in self._masks]
        self._prefer_cache: dict[int, list[Hint]] = {}
        self._aligned_sets: dict[int, frozenset[int]] = {}

    # ---- state -----------------------------------------------------------------------------
    @property
    def _all_cpus(self) -> CPUSet:
        """allCPUs of the static policy: online CPUs, minus reserved under strict."""
        if self.options["strict-cpu-reservation"]:
            return self.topology.all_cpus - self.reserved
        return self.topology.all_cpus

    def load_state(self, state: Mapping, validate: bool = True) -> None:
        """Start from a cpu_manager_state document (checksum ignored, entries optional).

        Raises KubeletStartError with the kubelet's message where it would refuse to start.
        validate=False skips validateState (upstream hint vectors use states it rejects).
        """
        policy = state.get("policyName", self.policy)
        if policy != self.policy:
            raise KubeletStartError(
                f'configured policy "{self.policy}" differs from state checkpoint policy "{policy}"'
            )
        raw_default = state.get("defaultCpuSet", "")
        try:
            default = CPUSet.parse(raw_default or "")
        except CPUSetError as exc:
            raise KubeletStartError(
                f'could not parse default cpu set "{raw_default}": {exc}'
            ) from None
        entries: dict[str, dict[str, CPUSet]] = {}
        for pod_uid, containers in (state.get("entries") or {}).items():
            for name, raw in (containers or {}).items():
                try:
                    entries.setdefault(pod_uid, {})[name] = CPUSet.parse(raw or "")
                except CPUSetError as exc:
                    raise KubeletStartError(
                        f'could not parse cpuset "{raw}" for container "{name}" in pod '
                        f'"{pod_uid}": {exc}'
                    ) from None
        if self.policy == STATIC and validate:
            default = self._validate_state(default, entries)
        self._entries = entries
        self._reuse = {}
        self._set_default(default)

    def _validate_state(self, default: CPUSet, entries: dict[str, dict[str, CPUSet]]) -> CPUSet:
        """The static policy's validateState; returns the (possibly initialised) default set."""
        all_cpus = self._all_cpus
        strict = self.options["strict-cpu-reservation"]
        if not default:
            if entries:
                raise KubeletStartError("default cpuset cannot be empty")
            return all_cpus
        if strict:
            overlap = self.reserved & default
            if overlap:
                raise KubeletStartError(
                    f'some of strictly reserved cpus: "{overlap}" are present in '
                    f'defaultCpuSet: "{default}"'
                )
        elif not self.reserved <= default:
            raise KubeletStartError(
                f'not all reserved cpus: "{self.reserved}" are present in defaultCpuSet: '
                f'"{default}"'
            )
        for pod_uid, containers in entries.items():
            for name, cset in containers.items():
                if default & cset:
                    raise KubeletStartError(
                        f'pod: {pod_uid}, container: {name} cpuset: "{cset}" overlaps with '
                        f'default cpuset "{default}"'
                    )
        known = set(default)
        for containers in entries.values():
            for cset in containers.values():
                known |= cset
        if known != all_cpus:
            raise KubeletStartError(
                f'current set of available CPUs "{all_cpus}" doesn\'t match with CPUs in '
                f'state "{CPUSet(known)}"'
            )
        return default

    def to_state(self) -> dict:
        """The cpu_manager_state document (without checksum); Go sorts map keys."""
        out: dict = {"policyName": self.policy, "defaultCpuSet": str(CPUSet(self._default))}
        if self._entries:
            out["entries"] = {
                uid: {name: str(cset) for name, cset in sorted(containers.items())}
                for uid, containers in sorted(self._entries.items())
            }
        return out

    def _set_default(self, cpus: Iterable[int]) -> None:
        self._default = set(cpus)
        numa_of = self._ix.numa_of
        counts = dict.fromkeys(self.topology.cpu_numa_ids, 0)
        for c in self._default:
            if c not in self.reserved and c in numa_of:
                counts[numa_of[c]] += 1
        self._free_numa = counts

    def _default_remove(self, cpus: Iterable[int]) -> None:
        numa_of, reserved, default = self._ix.numa_of, self.reserved, self._default
        for c in cpus:
            if c in default:
                default.discard(c)
                if c not in reserved:
                    self._free_numa[numa_of[c]] -= 1

    def _default_add(self, cpus: Iterable[int]) -> None:
        numa_of, reserved, default = self._ix.numa_of, self.reserved, self._default
        for c in cpus:
            if c not in default:
                default.add(c)
                if c not in reserved:
                    self._free_numa[numa_of[c]] += 1

    # ---- queries ---------------------------------------------------------------------------
    def pod_uids(self) -> list[str]:
        return list(self._entries)

    def pod_cpus(self, pod_uid: str) -> CPUSet:
        """Every exclusive CPU the pod's containers hold now."""
        out: set[int] = set()
        for cset in self._entries.get(pod_uid, {}).values():
            out |= cset
        return CPUSet(out)

    def exclusive_cpus(self, pod_uid: str, container: str) -> CPUSet | None:
        return self._entries.get(pod_uid, {}).get(container)

    def shared_pool(self) -> CPUSet:
        """defaultCpuSet; every online CPU under the none policy."""
        if self.policy == NONE:
            return self.topology.all_cpus
        return CPUSet(self._default)

    def container_cpuset(self, pod_uid: str, container: str) -> CPUSet:
        """cpuset.cpus of the container now: exclusive CPUs or the current shared pool."""
        exclusive = self.exclusive_cpus(pod_uid, container)
        return exclusive if exclusive is not None else self.shared_pool()

    def available_cpus(self) -> CPUSet:
        """CPUs free for exclusive allocation: defaultCpuSet - reserved."""
        return CPUSet(self._default - self.reserved)

    def take(self, available: Iterable[int], n: int) -> CPUSet:
        """takeByTopology with this policy's options."""
        return take_by_topology(self.topology, available, n, self._take_opts)

    # ---- hints -----------------------------------------------------------------------------
    def get_topology_hints(self, pod: Pod, container: Container) -> ProviderHints:
        if self.policy != STATIC:
            return None
        request = guaranteed_cpus(pod, container)
        if request == 0:
            return None
        allocated = self.exclusive_cpus(pod.uid, container.name)
        if allocated is not None:
            if len(allocated) != request:
                return {"cpu": []}
            return {"cpu": self._hints_for_set(allocated, request)}
        reusable = self._reuse.get(pod.uid, CPUSet())
        return {"cpu": self._hints(self._free_numa, reusable, request)}

    def get_pod_topology_hints(self, pod: Pod) -> ProviderHints:
        if self.policy != STATIC:
            return None
        request = pod_guaranteed_cpus(pod)
        if request == 0:
            return None
        assigned: set[int] = set()
        for c in pod.all_containers():
            allocated = self.exclusive_cpus(pod.uid, c.name)
            if allocated is not None:
                if len(allocated) != guaranteed_cpus(pod, c):
                    return {"cpu": []}
                assigned |= allocated
        if len(assigned) == request:
            return {"cpu": self._hints_for_set(assigned, request)}
        reusable = self._reuse.get(pod.uid, CPUSet()) | assigned
        return {"cpu": self._hints(self._free_numa, reusable, request)}

    def _hints_for_set(self, cpus: Iterable[int], request: int) -> list[Hint]:
        counts = dict.fromkeys(self.topology.cpu_numa_ids, 0)
        numa_of = self._ix.numa_of
        for c in cpus:
            counts[numa_of[c]] += 1
        return self._hints(counts, CPUSet(), request)

    def _candidates(self, request: int) -> list[Hint]:
        """Per row, the hint it gives if kept, Preferred already decided for this request
        size: count == minAffinitySize, or socket-aligned under align-by-socket."""
        hit = self._prefer_cache.get(request)
        if hit is not None:
            return hit
        topo = self.topology
        min_size = len(topo.cpu_numa_ids)
        for size, total in zip(self._sizes, self._totals, strict=True):
            if total >= request:
                min_size = size
                break  # rows are ordered by size
        min_sockets = -1
        if self.options["align-by-socket"]:
            per_socket = topo.num_numa_nodes // topo.num_sockets
            if per_socket:
                min_sockets = -(-min_size // per_socket)
        hit = []
        for objs, size, sockets in zip(self._hint_objs, self._sizes, self._sockets, strict=True):
            hit.append(objs[size == min_size or sockets == min_sockets])
        if len(self._prefer_cache) > 512:
            self._prefer_cache.clear()
        self._prefer_cache[request] = hit
        return hit

    def _hints(
        self, free_numa: Mapping[int, int], reusable: Iterable[int], request: int
    ) -> list[Hint]:
        """generateCPUTopologyHints over per-NUMA counts of the available CPUs."""
        numa_of = self._ix.numa_of
        reuse_mask = 0
        n_reuse = 0
        for c in reusable:
            reuse_mask |= 1 << numa_of[c]
            n_reuse += 1
        need = request - n_reuse
        cands = self._candidates(request)
        counts = [0]
        append = counts.append
        hints: list[Hint] = []
        keep = hints.append
        if reuse_mask:
            for parent, low, mask, h in zip(
                self._parents, self._lows, self._masks, cands, strict=True
            ):
                c = counts[parent] + free_numa[low]
                append(c)
                if c >= need and not reuse_mask & ~mask:
                    keep(h)
        else:
            for parent, low, h in zip(self._parents, self._lows, cands, strict=True):
                c = counts[parent] + free_numa[low]
                append(c)
                if c >= need:
                    keep(h)
        return hints

    # ---- allocation ------------------------------------------------------------------------
    def allocate(self, pod: Pod, container: Container, hint: Hint) -> None:
        if self.policy != STATIC:
            return
        n = guaranteed_cpus(pod, container)
        if n == 0:
            return
        if self.options["full-pcpus-only"]:
            per_core = self.topology.cpus_per_core
            if n % per_core != 0:
                raise smt_not_multiple(n, per_core)
            physical = len(self._default - self.reserved_physical)
            if n > physical:
                raise smt_not_enough_physical(n, per_core, physical)
        existing = self.exclusive_cpus(pod.uid, container.name)
        if existing is not None:
            self._update_reuse(pod, container, existing)
            return
        cpus = self._allocate_cpus(n, hint.mask, self._reuse.get(pod.uid, CPUSet()))
        self._entries.setdefault(pod.uid, {})[container.name] = cpus
        self._update_reuse(pod, container, cpus)

    def _aligned(self, mask: int) -> frozenset[int]:
        """CPUs of the hint's NUMA nodes (of their sockets with align-by-socket)."""
        hit = self._aligned_sets.get(mask)
        if hit is None:
            ix = self._ix
            nodes = [n for n in ix.numa_ids if mask >> n & 1]
            if self.options["align-by-socket"]:
                sockets = {s for n in nodes for s, _ in ix.socket_in_numa[n]}
                hit = frozenset().union(*(ix.socket_sets[s] for s in sockets))
            else:
                hit = frozenset().union(*(ix.numa_sets[n] for n in nodes))
            self._aligned_sets[mask] = hit
        return hit

    def _allocate_cpus(self, n: int, mask: int | None, reusable: CPUSet) -> CPUSet:
        pool = (self._default - self.reserved) | reusable
        result: set[int] = set()
        if mask is not None:
            aligned = pool & self._aligned(mask)
            result = set(self.take(aligned, min(n, len(aligned))))
        if len(result) < n:
            result |= self.take(pool - result, n - len(result))
        self._default_remove(result)
        return CPUSet(result)

    def _update_reuse(self, pod: Pod, container: Container, cpus: CPUSet) -> None:
        for uid in [u for u in self._reuse if u != pod.uid]:
            del self._reuse[uid]
        current = self._reuse.get(pod.uid, CPUSet())
        if container.init and not container.sidecar:
            self._reuse[pod.uid] = current | cpus
        else:
            self._reuse[pod.uid] = current - cpus

    # ---- release ---------------------------------------------------------------------------
    def remove_container(self, pod_uid: str, name: str) -> None:
        """RemoveContainer: CPUs still held by other containers of the pod stay out."""
        containers = self._entries.get(pod_uid)
        if not containers or name not in containers:
            return
        cset = containers.pop(name)
        in_use: set[int] = set()
        for other in containers.values():
            in_use |= other
        if not containers:
            del self._entries[pod_uid]
        self._default_add(cset - in_use)

    def remove_pod(self, pod_uid: str) -> None:
        for name in list(self._entries.get(pod_uid, ())):
            self.remove_container(pod_uid, name)
        # The kubelet keeps a removed pod's cpusToReuse until the next allocation of another
        # pod; dropping it now is equivalent except for a pod re-added under the same uid.
        self._reuse.pop(pod_uid, None)
