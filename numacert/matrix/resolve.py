"""Resolve a matrix on one node: each combination's full kubelet configuration and its status.

    ok           the kubelet accepts it and the node's hardware can exercise it: run it
    invalid      the kubelet would refuse to start with it (the kubelet's own message); the
                 caller rejects the whole matrix (exit 2) before any node is touched
    unsupported  the kubelet accepts it but this node cannot exercise what it adds (an SMT
                 option without SMT, prefer-closest-numa-nodes on 2 NUMA nodes, a hugepage size
                 the node lacks, an option this kubelet version does not have yet): reported
                 with a sentence and a machine-readable code, never run, never a failure

The configuration of a combination is the node's own (its kubelet config file) with every field
the matrix manages reset to the kubelet default, then the combination's fragment on top, so a
combination fully determines its policies and nothing leaks from whatever the node ran before.
Reservations (reservedSystemCPUs, systemReserved, kubeReserved, evictionHard) stay the node's.

Pure: no I/O. Rules follow shared/reference/kubelet-algorithms.md (sections cited below).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from enum import StrEnum

from numacert.certify.applicability import SEPARATOR
from numacert.errors import InputError
from numacert.kubelet import options as opt
from numacert.kubelet.config import POLICY_DEFAULTS, KubeletConfig
from numacert.kubelet.parse import FIELD_BY_KEY, merge
from numacert.kubelet.validate import (
    DEFAULT_MAX_ALLOWABLE_NUMA_NODES,
    Problem,
    derive_reserved_memory,
    node_allocatable_reservation,
    validate,
)
from numacert.matrix.spec import Combination, Matrix
from numacert.quantity import format_bytes, hugepage_resource_name, to_bytes
from numacert.topology.model import Topology

# Fields a combination fully determines: reset to the kubelet default before it is applied.
MANAGED_FIELDS = (*POLICY_DEFAULTS, "reservedMemory")


class Status(StrEnum):
    OK = "ok"
    UNSUPPORTED = "unsupported"
    INVALID = "invalid"


@dataclass(frozen=True)
class Resolved:
    """A combination on one node.

    config    the complete kubelet configuration to apply (node's own + combination)
    reason    None when ok; the kubelet's message(s) when invalid; a sentence when unsupported
    code      None when ok; the kubelet problem code when invalid ("tm.policy-unknown");
              needs-<what>[:<detail>] when unsupported ("needs-smt", "needs-numa-nodes:3")
    problems  everything validate() said, errors and warnings
    run_anyway  the coded reason it was UNSUPPORTED for, when --run-unsupported made it ok
    """

    combination: Combination
    config: KubeletConfig
    status: Status
    reason: str | None = None
    code: str | None = None
    problems: tuple[Problem, ...] = ()
    run_anyway: str | None = None

    @property
    def id(self) -> str:
        return self.combination.id

    @property
    def coded_reason(self) -> str | None:
        """`code | sentence`, the form skip reasons and matrix.json carry; None when ok."""
        if self.reason is None:
            return None
        return f"{self.code}{SEPARATOR}{self.reason}" if self.code else self.reason

    @property
    def warnings(self) -> list[str]:
        """What the kubelet accepts but likely not as meant (an option the policy ignores)."""
        return [str(p) for p in self.problems if p.severity == "warning"]


def policy_free(base: KubeletConfig) -> KubeletConfig:
    """`base` with every MANAGED_FIELDS field back to the kubelet default (and no longer
    explicit), everything else kept."""
    config = copy.deepcopy(base)
    defaults = KubeletConfig()
    for key in MANAGED_FIELDS:
        attr = FIELD_BY_KEY[key][0]
        setattr(config, attr, copy.deepcopy(getattr(defaults, attr)))
        config.explicit.discard(key)
    return config


def combination_config(
    combination: Combination, base: KubeletConfig, topology: Topology, source: str | None = None
) -> KubeletConfig:
    """The kubelet configuration of `combination` on a node whose own configuration is `base`:
    managed fields reset, the fragment merged, reservedMemory derived from the node's
    reservations where Memory Manager Static is asked for without one (as the lab does)."""
    config = merge(policy_free(base), copy.deepcopy(combination.kubelet), source)
    if config.memory_manager_policy == "Static" and not config.reserved_memory:
        config.reserved_memory = derive_reserved_memory(config, topology)
        config.explicit.add("reservedMemory")
    return config


def resolve(
    matrix: Matrix, base: KubeletConfig, topology: Topology, k8s_minor: int
) -> list[Resolved]:
    """Every combination of `matrix` on a node with this topology, this kubelet minor
    (1.<k8s_minor>) and this original configuration, in the matrix's order."""
    out = []
    for c in matrix.combinations:
        config = combination_config(c, base, topology, f"{matrix.source}: {c.id}")
        problems = tuple(validate(config, topology, k8s_minor))
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            newer = _needs_newer_kubelet(errors, k8s_minor)
            if newer is not None:
                code, reason = newer
                out.append(Resolved(c, config, Status.UNSUPPORTED, reason, code, problems))
            else:
                reason = "; ".join(str(p) for p in errors)
                out.append(Resolved(c, config, Status.INVALID, reason, errors[0].code, problems))
            continue
        gap = unsupported_reason(config, topology, c.hugepages)
        if gap is not None:
            code, reason = gap
            out.append(Resolved(c, config, Status.UNSUPPORTED, reason, code, problems))
        else:
            out.append(Resolved(c, config, Status.OK, None, None, problems + _no_effect(config)))
    return out


def run_anyway(resolved: list[Resolved]) -> list[Resolved]:
    """UNSUPPORTED combinations made runnable (`--run-unsupported`): the kubelet accepts them,
    so they are applied and certified like the others; the reason stays in `run_anyway` and,
    in the run, each check the node cannot exercise skips with it. Invalid ones stay invalid."""
    return [replace(r, status=Status.OK, reason=None, code=None, run_anyway=r.coded_reason)
            if r.status == Status.UNSUPPORTED else r for r in resolved]


def runnable(resolved: list[Resolved]) -> list[Resolved]:
    """The combinations to run (status ok), in order."""
    return [r for r in resolved if r.status == Status.OK]


def raise_if_invalid(resolved: list[Resolved], source: str) -> None:
    """One InputError for the first invalid combination (the kubelet's reason, the matrix file
    and the path in it that set the refused field), naming the other invalid ones."""
    invalid = [r for r in resolved if r.status == Status.INVALID]
    if not invalid:
        return
    first = invalid[0]
    error = next(p for p in first.problems if p.severity == "error")
    at = first.combination.locate(error.field)
    if at is None:
        # Not set by the matrix: the node's own configuration, or the derived reservedMemory.
        at = first.combination.where
        note = f" ({error.field} comes from the node's configuration, not the matrix)"
    else:
        note = ""
    more = ""
    if len(invalid) > 1:
        more = f"; also invalid: {', '.join(r.id for r in invalid[1:])}"
    raise InputError(
        f"combination {first.id!r}: the kubelet would refuse it: {first.reason}{note}{more}",
        f"{source}: {at}" if at else source,
    )


# ---- unsupported: the kubelet accepts it, the node cannot exercise it ------------------------
def _needs_newer_kubelet(errors: list[Problem], minor: int) -> tuple[str, str] | None:
    """When every error is an option this kubelet does not know yet but a later supported one
    does, the combination is not wrong, the node is too old for it: unsupported, code
    needs-kubernetes:1.<first minor that has every such option>."""
    tables = {"cpu": opt.CPU_MANAGER_OPTIONS, "tm": opt.TOPOLOGY_MANAGER_OPTIONS}
    names, first = [], 0
    for p in errors:
        if p.code not in ("cpu.option-unknown", "tm.option-unknown"):
            return None
        manager = p.code.split(".")[0]
        name = p.field.split(".", 1)[1]
        later = [m for m in tables[manager].get(name, {}) if m > minor]
        if not later:
            return None  # unknown in every version numacert models: a real mistake
        names.append(f"{name} (1.{min(later)})")
        first = max(first, min(later))
    return (
        f"needs-kubernetes:1.{first}",
        f"the kubelet 1.{minor} does not have the option {', '.join(names)}",
    )


def _uniform_distances(topology: Topology) -> bool:
    """Every local distance equal and every remote distance equal: the average distance of a
    set of k nodes, (k*local + k*(k-1)*remote) / k^2, then depends on k only."""
    rows = [n.distances for n in topology.numa_nodes]
    if any(r is None for r in rows):
        return True  # not reachable: validate refuses prefer-closest without distances
    n = len(rows)
    local = {rows[i][i] for i in range(n)}
    remote = {rows[i][j] for i in range(n) for j in range(n) if i != j}
    return len(local) <= 1 and len(remote) <= 1


def unsupported_reason(
    config: KubeletConfig, topology: Topology, hugepages: tuple[str, ...] = ()
) -> tuple[str, str] | None:
    """(code, sentence) when the node cannot exercise what `config` adds over a simpler one,
    else None. `config` must be valid (validate() found no error). First rule that applies."""
    numa = len(topology.numa_ids)  # the Topology Manager's and Memory Manager's node list (§1.1)
    tm = config.topology_manager_policy

    # A single NUMA node: every hint is {0} (single-numa-node turns it into nil, §2.4 note a),
    # so no Topology Manager policy can align or reject anything differently from none, and
    # the Memory Manager can only pin cpuset.mems to the one node there is.
    if numa < 2:
        if tm != "none":
            return (
                "needs-numa-nodes:2",
                f"the Topology Manager policy {tm} has nothing to align on a single NUMA node",
            )
        if config.memory_manager_policy == "Static":
            return (
                "needs-numa-nodes:2",
                "Memory Manager Static has nothing to align on a single NUMA node",
            )

    # Topology Manager options are read only under a policy other than none (§2.1).
    if tm != "none":
        # prefer-closest-numa-nodes changes which of several equally narrow multi-node hints
        # wins (Closest vs Narrowest, §2.6): by average distance instead of the lower mask.
        # With 2 nodes there is one multi-node mask, {0,1}, and single nodes tie on the local
        # distance; with uniform distances the average depends on the node count only. Either
        # way Closest picks what Narrowest picks. (Under single-numa-node it never has an
        # effect on any node: a warning, see _no_effect.)
        if config.tm_option("prefer-closest-numa-nodes") and tm != "single-numa-node":
            if numa < 3:
                return (
                    "needs-numa-nodes:3",
                    "prefer-closest-numa-nodes needs 3 or more NUMA nodes to choose between "
                    f"equally narrow sets by distance, the node has {numa}",
                )
            if _uniform_distances(topology):
                return (
                    "needs-unequal-numa-distances",
                    "prefer-closest-numa-nodes needs NUMA distances that differ between node "
                    "pairs, the node's are all equal",
                )
        # max-allowable-numa-nodes only raises the 8-node limit above which the Topology
        # Manager refuses to start (§7.1 TestNewManager); validate refuses values below 8.
        if "max-allowable-numa-nodes" in config.topology_manager_policy_options:
            if numa <= DEFAULT_MAX_ALLOWABLE_NUMA_NODES:
                return (
                    f"needs-numa-nodes:{DEFAULT_MAX_ALLOWABLE_NUMA_NODES + 1}",
                    "max-allowable-numa-nodes only matters on more than "
                    f"{DEFAULT_MAX_ALLOWABLE_NUMA_NODES} NUMA nodes, the node has {numa}",
                )

    if config.cpu_manager_policy == "static":
        # The kubelet's CPUsPerCore is NumCPUs / NumCores (integer division, §1.1).
        per_core = topology.cpus_per_core
        # full-pcpus-only: with 1 CPU per core every request is a multiple of CPUsPerCore and
        # a whole core is one CPU, so SMTAlignmentError never happens and allocation is plain
        # static (§3.6). distribute-cpus-across-cores only skips the whole-core step and
        # alternates cores instead of filling siblings (§3.7.2): with one thread per core
        # there are no siblings to avoid.
        for option in ("full-pcpus-only", "distribute-cpus-across-cores"):
            if config.cpu_option(option) and per_core < 2:
                return (
                    "needs-smt",
                    f"{option} needs SMT (2 or more threads per core), the node has "
                    f"{per_core} CPU per core",
                )
        # distribute-cpus-across-numa acts only when an allocation needs more than one NUMA
        # node (§3.7.3); the CPU Manager counts NUMA nodes that own CPUs.
        cpu_numa = len(topology.cpu_numa_ids)
        if config.cpu_option("distribute-cpus-across-numa") and cpu_numa < 2:
            return (
                "needs-numa-nodes:2",
                "distribute-cpus-across-numa needs 2 or more NUMA nodes with CPUs, the node "
                f"has {cpu_numa}",
            )
        # align-by-socket widens hints and the aligned pool from NUMA nodes to their sockets
        # (§3.5, §3.6): with one NUMA node per socket, a socket is its NUMA node and
        # isHintSocketAligned reduces to the plain minimal-count rule. (More sockets than
        # NUMA nodes is refused by the kubelet: invalid, not here.)
        if config.cpu_option("align-by-socket"):
            per_socket = {
                s: {c.numa for c in topology.cpus if c.socket == s} for s in topology.socket_ids
            }
            if all(len(nodes) < 2 for nodes in per_socket.values()):
                return (
                    "needs-numa-per-socket:2",
                    "align-by-socket needs a socket with 2 or more NUMA nodes, every socket of "
                    "the node has one",
                )

    # Hugepages the combination needs: the size must exist and pods must be able to get at
    # least one page (the node's pages minus what kube/systemReserved withhold from pods).
    sizes = topology.hugepage_sizes
    reservation = node_allocatable_reservation(config, topology)
    for size in hugepages:
        page = to_bytes(size)
        if page not in sizes:
            offered = ", ".join(format_bytes(s) for s in sizes) or "none"
            return (
                f"needs-hugepages:{size}",
                f"needs {size} hugepages, the node offers no such size (sizes: {offered})",
            )
        pages = sum(n.hugepages.get(page, 0) for n in topology.numa_nodes)
        reserved = reservation.get(hugepage_resource_name(page), 0)
        if pages * page - reserved < page:
            withheld = f", {format_bytes(reserved)} of them reserved" if reserved else ""
            return (
                f"needs-hugepages:{size}",
                f"needs {size} hugepages for pods, the node has {pages}{withheld}",
            )
    return None


def _no_effect(config: KubeletConfig) -> tuple[Problem, ...]:
    """Warnings for settings the kubelet accepts but never acts on, whatever the node."""
    if config.topology_manager_policy == "single-numa-node" and config.tm_option(
        "prefer-closest-numa-nodes"
    ):
        return (
            Problem(
                "topologyManagerPolicyOptions.prefer-closest-numa-nodes",
                "has no effect under single-numa-node: only one-node hints are kept",
                "matrix.option-no-effect",
                severity="warning",
                verbatim=False,
            ),
        )
    return ()
