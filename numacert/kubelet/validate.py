"""What the kubelet checks at start-up about its NUMA-related configuration, per version.

validate(config, topology, k8s_minor) walks the checks in the kubelet's own order:

  1. configuration validation (pkg/kubelet/apis/config/validation): feature gates,
     topologyManagerPolicy/Scope values, reservedSystemCPUs syntax, reservedMemory entries,
     failCgroupV1 on a cgroup v1 host;
  2. the options gates in cmd/kubelet (CPUManagerPolicyOptions, TopologyManagerPolicyOptions);
  3. the container manager: Topology Manager, then CPU Manager, then Memory Manager.

Messages are the kubelet's own text (Problem.verbatim) where the references or the upstream
source give it; the rest are numacert's words, marked verbatim=False. The kubelet stops at its
first error; validate() returns every problem it can see (without cascades), in that order.

Sources: shared/reference/kubelet-algorithms.md §2.1, §3.2, §4.1, §7.6; upstream-node-e2e.md §6;
the kubelet source files named above. Notes where we deviate from a naive reading:

* static CPU policy with no CPU reservation: GetNodeAllocatableReservation drops zero sums, so
  the kubelet reports "[cpumanager] unable to determine reserved CPU resources for static
  policy" (also quoted in kind's docs, kubernetes#70161); the "... to be greater than zero"
  message (CPU_ZERO_RESERVATION) is unreachable from a configuration file.
* invalid topologyManagerPolicy/Scope values are caught by configuration validation
  ("invalid configuration: topologyManagerPolicy (--topology-manager-policy) ...") before the
  Topology Manager's own `unknown policy: "<x>"` could be reached. cpuManagerPolicy and
  memoryManagerPolicy are not in configuration validation: their managers print
  `unknown policy: "<x>"`.
* Go iterates option maps and resource types in random order; we report in sorted order
  (memory before hugepages).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

from numacert.cpuset import CPUSet, CPUSetError
from numacert.errors import InputError
from numacert.kubelet import options as opt
from numacert.kubelet.config import KubeletConfig, ReservedMemory
from numacert.kubelet.messages import (
    ALIGN_BY_SOCKET_HW,
    ALIGN_BY_SOCKET_SNN,
    CPU_NO_RESERVATION,
    MM_NO_SYSTEM_RESERVED,
)
from numacert.kubelet.parse import FIELD_BY_KEY
from numacert.quantity import format_bytes, is_binary_suffixed, to_bytes, to_millis
from numacert.topology.model import Topology

# The kubelet's default evictionHard on Linux (applies only when evictionHard is unset: a set
# map replaces the defaults, it does not merge with them).
DEFAULT_EVICTION_HARD: dict[str, str] = {
    "memory.available": "100Mi",
    "nodefs.available": "10%",
    "nodefs.inodesFree": "5%",
    "imagefs.available": "15%",
}
DEFAULT_MAX_ALLOWABLE_NUMA_NODES = 8

NUMA_DISTANCES = "cannot discover NUMA topology: error getting NUMA distances from cadvisor"

TM_POLICIES = ("none", "best-effort", "restricted", "single-numa-node")
TM_SCOPES = ("container", "pod")
CPU_POLICIES = ("none", "static")
MM_POLICIES = ("None", "Static")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration on a given node and version.

    field     the KubeletConfiguration path at fault ("reservedMemory[0].numaNode")
    message   the kubelet's message when verbatim, else numacert's
    code      a stable id for programs ("cpu.option-unknown"), independent of the wording
    severity  "error": the kubelet refuses to start (or numacert refuses a sure mistake);
              "warning": it starts, but not as the file's author most likely meant
    """

    field: str
    message: str
    code: str
    severity: str = "error"
    verbatim: bool = True

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


# ---- Go formatting helpers -------------------------------------------------------------------
def _q(s: str) -> str:
    """Go's %q for plain strings."""
    return json.dumps(s, ensure_ascii=False)


def _gomap(m: dict[str, str]) -> str:
    """Go's %v of a map[string]string: map[k1:v1 k2:v2], keys sorted."""
    return "map[" + " ".join(f"{k}:{m[k]}" for k in sorted(m)) + "]"


_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _parse_bool(value: str) -> bool | None:
    """strconv.ParseBool; None when it would fail."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    return None


def _atoi(value: str) -> tuple[int | None, str]:
    """strconv.Atoi: (value, "") or (None, Go error text)."""
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        return None, f"strconv.Atoi: parsing {_q(value)}: invalid syntax"
    n = int(value)
    if not -(2**63) <= n < 2**63:
        return None, f"strconv.Atoi: parsing {_q(value)}: value out of range"
    return n, ""


# ---- quantities with their Kubernetes format ------------------------------------------------
class _Qty(NamedTuple):
    value: int
    binary: bool  # BinarySI ("Mi", "Gi") vs DecimalSI: decides how Quantity.String() prints it

    def __str__(self) -> str:
        return format_bytes(self.value, binary=self.binary)


def _qty(value: str | int | float | _Qty) -> _Qty:
    if isinstance(value, _Qty):
        return value
    return _Qty(to_bytes(value), isinstance(value, str) and is_binary_suffixed(value))


def _sum_first_format(parts: list[_Qty]) -> _Qty:
    # Quantity.Add keeps the receiver's format unless the receiver is zero, so a sum started
    # at 0 takes the format of its first non-zero addend.
    total, binary = 0, False
    for p in parts:
        if total == 0 and p.value != 0:
            binary = p.binary
        total += p.value
    return _Qty(total, binary)


def _f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def _eviction_memory(config: KubeletConfig, topology: Topology | None) -> _Qty:
    """The hard-eviction memory.available threshold in bytes (kubelet default when unset)."""
    thresholds = DEFAULT_EVICTION_HARD if config.eviction_hard is None else config.eviction_hard
    raw = thresholds.get("memory.available")
    if raw is None:
        return _Qty(0, False)
    raw = raw.strip()
    if raw.endswith("%"):
        if topology is None:
            raise InputError(
                "a percentage needs the node's memory capacity (no topology given)",
                "evictionHard.memory.available",
            )
        # The kubelet parses the percentage as float32 and multiplies in float64.
        pct = _f32(_f32(float(raw[:-1])) / 100)
        capacity = sum(n.memory for n in topology.numa_nodes)
        return _Qty(int(float(capacity) * pct), True)
    return _qty(raw)


def _is_memory_type(resource: str) -> bool:
    return resource == "memory" or resource.startswith("hugepages-")


def _allocatable(config: KubeletConfig, topology: Topology | None) -> dict[str, _Qty]:
    """GetNodeAllocatableReservation restricted to memory and hugepages, zeros dropped.

    [inference] hugepages-<size> is taken for every size named in kube/systemReserved; the
    kubelet only counts sizes in its capacity, which lists every size the kernel supports.
    """
    resources = {"memory"} | {
        r for r in (*config.system_reserved, *config.kube_reserved) if r.startswith("hugepages-")
    }
    out: dict[str, _Qty] = {}
    for r in sorted(resources, key=_resource_order):
        parts = [
            _qty(config.system_reserved[r]) if r in config.system_reserved else _Qty(0, False),
            _qty(config.kube_reserved[r]) if r in config.kube_reserved else _Qty(0, False),
        ]
        if r == "memory":
            parts.append(_eviction_memory(config, topology))
        total = _sum_first_format(parts)
        if total.value != 0:
            out[r] = total
    return out


def _resource_order(resource: str) -> tuple[int, int, str]:
    if resource == "memory":
        return (0, 0, resource)
    try:
        return (1, to_bytes(resource[len("hugepages-") :]), resource)
    except Exception:
        return (2, 0, resource)


# ---- public helpers ---------------------------------------------------------------------------
def node_allocatable_reservation(
    config: KubeletConfig, topology: Topology | None
) -> dict[str, int]:
    """{resource: bytes} the kubelet withholds from pods: memory = kubeReserved + systemReserved
    + evictionHard memory.available (kubelet default 100Mi when evictionHard is unset),
    hugepages-<size> = kubeReserved + systemReserved. Zero entries are left out, as the kubelet
    does. The topology is needed only for a percentage threshold."""
    return {r: q.value for r, q in _allocatable(config, topology).items()}


def reserved_cpu_millis(config: KubeletConfig) -> int:
    """The CPU reservation in milli-CPUs: |reservedSystemCPUs| x 1000 when that list is set
    (the kubelet then overwrites systemReserved.cpu and drops kubeReserved.cpu), else
    kubeReserved.cpu + systemReserved.cpu."""
    if config.reserved_system_cpus and config.reserved_system_cpus.strip():
        try:
            return len(CPUSet.parse(config.reserved_system_cpus)) * 1000
        except CPUSetError as e:
            raise InputError(str(e), "reservedSystemCPUs") from None
    total = 0
    for m in (config.kube_reserved, config.system_reserved):
        if "cpu" in m:
            total += to_millis(m["cpu"])
    return total


def reserved_memory_bytes(config: KubeletConfig) -> dict[int, dict[str, int]]:
    """reservedMemory as {NUMA node: {resource: bytes}} (entries for one node are combined)."""
    out: dict[int, dict[str, int]] = {}
    for entry in config.reserved_memory:
        node = out.setdefault(entry.numa_node, {})
        for res, q in entry.limits.items():
            node[res] = node.get(res, 0) + to_bytes(q)
    return out


def derive_reserved_memory(config: KubeletConfig, topology: Topology) -> list[ReservedMemory]:
    """A reservedMemory the kubelet accepts for this config: the whole node-allocatable
    reservation of every memory type on the lowest-numbered NUMA node.

    That is what upstream node e2e and OpenShift's NTO do; spreading evenly would have to split
    quantities that need not divide, and a single entry is the easiest for users to read.
    """
    node = min(topology.numa_ids)
    alloc = _allocatable(config, topology)
    if not alloc:
        return []
    limits = {r: format_bytes(q.value) for r, q in alloc.items()}
    return [ReservedMemory(numa_node=node, limits=limits)]


def check_reserved_memory(
    numa_ids: list[int] | tuple[int, ...],
    allocatable: dict[str, Any],
    reserved: list[ReservedMemory],
) -> list[Problem]:
    """The Memory Manager's validateReservedMemory: every NUMA node named must exist, and per
    memory type the reservedMemory sum must equal the node-allocatable reservation.

    `allocatable` maps resource -> quantity (string, int bytes); this is the level of the
    kubelet's TestValidateReservedMemory vectors. The kubelet stops at the first problem.
    """
    known = set(numa_ids)
    for i, entry in enumerate(reserved):
        if entry.numa_node not in known:
            return [
                Problem(
                    f"reservedMemory[{i}].numaNode",
                    "the reserved memory configuration references a NUMA node "
                    f"{entry.numa_node} that does not exist on this machine",
                    "mm.reserved-numa-missing",
                )
            ]
    totals: dict[str, _Qty] = {}
    for entry in reserved:
        for res, raw in entry.limits.items():
            q = _qty(raw)
            prev = totals.get(res)
            # q.Add(previous total): keeps this entry's format (entries are never zero).
            totals[res] = q if prev is None else _Qty(q.value + prev.value, q.binary)
    alloc = {r: _qty(v) for r, v in allocatable.items()}
    types = {r for r in (*totals, *alloc) if _is_memory_type(r)}
    problems = []
    for r in sorted(types, key=_resource_order):
        want = alloc.get(r, _Qty(0, False))
        have = totals.get(r, _Qty(0, False))
        if want.value != have.value:
            problems.append(
                Problem(
                    "reservedMemory",
                    f"the total amount {_q(str(have))} of type {_q(r)} is not equal to the value "
                    f"{_q(str(want))} determined by Node Allocatable feature",
                    "mm.reserved-sum",
                )
            )
    return problems


def system_reserved_memory(
    numa_ids: list[int] | tuple[int, ...],
    allocatable: dict[str, Any],
    reserved: list[ReservedMemory],
) -> dict[int, dict[str, int]]:
    """The Memory Manager's getSystemReservedMemory: {node: {resource: bytes}} for every NUMA
    node of the machine; InputError (the kubelet's message) when check_reserved_memory fails."""
    problems = check_reserved_memory(numa_ids, allocatable, reserved)
    if problems:
        raise InputError(problems[0].message, problems[0].field)
    out: dict[int, dict[str, int]] = {n: {} for n in numa_ids}
    for entry in reserved:
        for res, q in entry.limits.items():
            out[entry.numa_node][res] = to_bytes(q)
    return out


def fail_cgroup_v1_effective(config: KubeletConfig, k8s_minor: int) -> bool:
    """Whether the kubelet refuses a cgroup v1 host: failCgroupV1 exists from 1.31 (default
    false), its default is true from 1.35."""
    if k8s_minor < 31:
        return False
    if config.fail_cgroup_v1 is not None:
        return config.fail_cgroup_v1
    return k8s_minor >= 35


# ---- validate ---------------------------------------------------------------------------------
def check_minor(k8s_minor: int) -> None:
    if isinstance(k8s_minor, bool) or not isinstance(k8s_minor, int):
        raise InputError(f"Kubernetes minor must be an integer, got {k8s_minor!r}", "k8s_minor")
    if k8s_minor not in opt.SUPPORTED_MINORS:
        raise InputError(
            f"Kubernetes 1.{k8s_minor} is not supported: numacert models 1.{opt.MIN_MINOR} to "
            f"1.{opt.MAX_MINOR}",
            "k8s_minor",
        )


def validate(
    config: KubeletConfig,
    topology: Topology | None,
    k8s_minor: int,
    *,
    cgroup_version: int | None = None,
    raise_first: bool = False,
    source: str | None = None,
    prefix: str = "",
) -> list[Problem]:
    """Problems the kubelet 1.<k8s_minor> would have with `config` on `topology`.

    topology None skips the checks that need the machine; cgroup_version (1 or 2) enables the
    failCgroupV1 check. With raise_first, the first error is raised as InputError (where =
    "<source>: <prefix><field>", prefix as in parse.from_dict) instead; warnings never raise.
    """
    check_minor(k8s_minor)
    problems: list[Problem] = []
    _check_fields(config, problems)
    _check_gates(config, k8s_minor, problems)
    _check_config_validation(config, k8s_minor, cgroup_version, problems)
    _check_options_gates(config, k8s_minor, problems)
    _check_topology_manager(config, topology, k8s_minor, problems)
    _check_cpu_manager(config, topology, k8s_minor, problems)
    _check_memory_manager(config, topology, k8s_minor, problems)
    if raise_first:
        for p in problems:
            if p.severity == "error":
                where = f"{source}: {prefix}{p.field}" if source else f"{prefix}{p.field}"
                raise InputError(p.message, where)
    return problems


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


# Real KubeletConfiguration fields close in spelling to the ones we model: never "typos".
_KNOWN_OTHER_FIELDS = {
    "kubeReservedCgroup",
    "systemReservedCgroup",
    "cpuManagerReconcilePeriod",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionMinimumReclaim",
    "evictionPressureTransitionPeriod",
    "evictionMaxPodGracePeriod",
    "memoryManagerPolicyOptions",
    "enforceNodeAllocatable",
    "failSwapOn",
}
_ALIASES = {"reservedcpus": "reservedSystemCPUs", "failcgroupv1": "failCgroupV1"}


def _norm(name: str) -> str:
    return name.replace("-", "").replace("_", "").lower()


def _check_fields(config: KubeletConfig, problems: list[Problem]) -> None:
    """Unknown fields that look like a misspelt NUMA field: the kubelet ignores them (FM-05)."""
    known = list(FIELD_BY_KEY)
    by_norm = {_norm(k): k for k in known}
    by_norm.update(_ALIASES)
    for key in config.extra:
        if key in _KNOWN_OTHER_FIELDS:
            continue
        guess = by_norm.get(_norm(key))
        if guess is None:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.85)
            guess = close[0] if close else None
        if guess:
            problems.append(
                Problem(
                    key,
                    f"unknown field {_q(key)} (did you mean {_q(guess)}?): the kubelet ignores it",
                    "config.unknown-field",
                    severity="warning",
                    verbatim=False,
                )
            )


def _check_gates(config: KubeletConfig, minor: int, problems: list[Problem]) -> None:
    for gate, value in sorted(config.feature_gates.items()):
        if gate not in opt.GATES:
            continue
        default, locked = opt.GATES[gate][minor]
        if locked and value != default:
            problems.append(
                Problem(
                    f"featureGates.{gate}",
                    f"cannot set feature gate {gate} to {str(value).lower()}, feature is locked "
                    f"to {str(default).lower()}",
                    "gate.locked",
                )
            )
    if minor < 32 and config.feature_gates.get("MemoryManager") is False:
        problems.append(
            Problem(
                "featureGates.MemoryManager",
                "the Memory Manager is disabled: memoryManagerPolicy and reservedMemory are "
                "ignored",
                "gate.memory-manager-off",
                severity="warning",
                verbatim=False,
            )
        )


def _check_config_validation(
    config: KubeletConfig, minor: int, cgroup_version: int | None, problems: list[Problem]
) -> None:
    if config.topology_manager_policy not in TM_POLICIES:
        choices = "[" + " ".join(_q(p) for p in TM_POLICIES) + "]"
        problems.append(
            Problem(
                "topologyManagerPolicy",
                "invalid configuration: topologyManagerPolicy (--topology-manager-policy) "
                f"{_q(config.topology_manager_policy)} must be one of: {choices}",
                "tm.policy-unknown",
            )
        )
    if config.topology_manager_scope not in TM_SCOPES:
        problems.append(
            Problem(
                "topologyManagerScope",
                "invalid configuration: topologyManagerScope (--topology-manager-scope) "
                f'{_q(config.topology_manager_scope)} must be one of: "container", or "pod"',
                "tm.scope-unknown",
            )
        )
    if config.reserved_system_cpus:
        try:
            CPUSet.parse(config.reserved_system_cpus)
        except CPUSetError as e:
            problems.append(
                Problem(
                    "reservedSystemCPUs",
                    "invalid configuration: unable to parse reservedSystemCPUs (--reserved-cpus) "
                    f"{config.reserved_system_cpus}, error: {e}",
                    "cpu.reserved-cpus-syntax",
                )
            )
    seen: set[tuple[int, str]] = set()
    for i, entry in enumerate(config.reserved_memory):
        for res, raw in entry.limits.items():
            f = f"reservedMemory[{i}].limits.{res}"
            if not _is_memory_type(res):
                problems.append(
                    Problem(
                        f,
                        f"invalid configuration: the limit type {_q(res)} for NUMA node "
                        f"{entry.numa_node} is not supported, only "
                        "[memory hugepages-<HugePageSize>] is accepted",
                        "mm.reserved-type",
                    )
                )
            if to_bytes(raw) == 0:
                problems.append(
                    Problem(
                        f,
                        "invalid configuration: reserved memory may not be zero for NUMA node "
                        f"{entry.numa_node} and resource {_q(res)}",
                        "mm.reserved-zero",
                    )
                )
            if (entry.numa_node, res) in seen:
                problems.append(
                    Problem(
                        f,
                        "invalid configuration: the reserved memory has a duplicate value for "
                        f"NUMA node {entry.numa_node} and resource {_q(res)}",
                        "mm.reserved-duplicate",
                    )
                )
            seen.add((entry.numa_node, res))
    if config.fail_cgroup_v1 is not None and minor < 31:
        problems.append(
            Problem(
                "failCgroupV1",
                f"failCgroupV1 is not a field of the 1.{minor} kubelet (added in 1.31): ignored",
                "cgroup.field-unknown",
                severity="warning",
                verbatim=False,
            )
        )
    if cgroup_version == 1 and fail_cgroup_v1_effective(config, minor):
        # The second sentence changed over releases; "in maintenance mode" is the 1.31-era text,
        # the other is seen from 1.35/1.36 kubelets [inference: exact release of the change].
        tail = (
            "cgroup v1 support is in maintenance mode"
            if minor < 35
            else "cgroup v1 support is unsupported and will be removed in a future release"
        )
        problems.append(
            Problem(
                "failCgroupV1",
                f"kubelet is configured to not run on a host using cgroup v1. {tail}",
                "cgroup.v1-refused",
            )
        )


def _check_options_gates(config: KubeletConfig, minor: int, problems: list[Problem]) -> None:
    # cmd/kubelet refuses option maps whose top-level gate is off (set false in featureGates).
    pairs = (
        ("cpuManagerPolicyOptions", config.cpu_manager_policy_options, "CPUManagerPolicyOptions"),
        (
            "topologyManagerPolicyOptions",
            config.topology_manager_policy_options,
            "TopologyManagerPolicyOptions",
        ),
    )
    for field_name, options, gate in pairs:
        if options and not opt.gate_enabled(gate, minor, config.feature_gates):
            problems.append(
                Problem(
                    field_name,
                    f"{field_name} {_gomap(options)} require feature gate {gate}, which "
                    "featureGates disables",
                    "gate.options-off",
                    verbatim=False,
                )
            )


def _tm_ok(config: KubeletConfig) -> bool:
    return (
        config.topology_manager_policy in TM_POLICIES and config.topology_manager_scope in TM_SCOPES
    )


def _check_topology_manager(
    config: KubeletConfig, topology: Topology | None, minor: int, problems: list[Problem]
) -> None:
    options = config.topology_manager_policy_options
    if config.topology_manager_policy == "none":
        if options:
            problems.append(
                Problem(
                    "topologyManagerPolicyOptions",
                    "ignored: the none Topology Manager policy reads no options",
                    "tm.options-ignored",
                    severity="warning",
                    verbatim=False,
                )
            )
        return
    if not _tm_ok(config) or not opt.gate_enabled(
        "TopologyManagerPolicyOptions", minor, config.feature_gates
    ):
        return
    before = len(problems)
    prefer_closest = False
    max_nodes = DEFAULT_MAX_ALLOWABLE_NUMA_NODES
    for name in sorted(options):
        value = options[name]
        f = f"topologyManagerPolicyOptions.{name}"
        if not _option_available("tm", name, minor, config.feature_gates, problems):
            continue
        if opt.TOPOLOGY_MANAGER_OPTION_TYPES[name] == "bool":
            b = _parse_bool(value)
            if b is None:
                problems.append(Problem(f, _bad_bool(name, value), "tm.option-value"))
            elif name == "prefer-closest-numa-nodes":
                prefer_closest = b
        else:
            n, err = _atoi(value)
            if n is None:
                msg = f"unable to convert policy option to integer {_q(name)}: {err}"
                problems.append(Problem(f, msg, "tm.option-value"))
            elif n < DEFAULT_MAX_ALLOWABLE_NUMA_NODES:
                msg = (
                    f"the minimum value of {_q(name)} should not be less than "
                    f"{DEFAULT_MAX_ALLOWABLE_NUMA_NODES}"
                )
                problems.append(Problem(f, msg, "tm.option-value"))
            else:
                max_nodes = n
    if len(problems) != before or topology is None:
        return
    if prefer_closest and any(n.distances is None for n in topology.numa_nodes):
        problems.append(
            Problem(
                "topologyManagerPolicyOptions.prefer-closest-numa-nodes",
                NUMA_DISTANCES,
                "tm.no-distances",
            )
        )
        return
    if len(topology.numa_ids) > max_nodes:
        problems.append(
            Problem(
                "topologyManagerPolicy",
                f"unsupported on machines with more than {max_nodes} NUMA Nodes",
                "tm.too-many-numa-nodes",
            )
        )


# manager -> (options field, the kubelet's name for the manager in its messages, level lookup)
_OPTION_KINDS = {
    "cpu": ("cpuManagerPolicyOptions", "CPU Manager", opt.cpu_option_level),
    "tm": ("topologyManagerPolicyOptions", "Topology Manager", opt.tm_option_level),
}


def _option_available(
    manager: str, name: str, minor: int, gates: dict[str, bool], problems: list[Problem]
) -> bool:
    """Whether the kubelet 1.<minor> knows option `name` of `manager` ("cpu" or "tm") and its
    maturity gate is on; otherwise record the kubelet's error and return False."""
    field_name, label, level_of = _OPTION_KINDS[manager]
    f = f"{field_name}.{name}"
    level = level_of(name, minor)
    if level is None:
        msg = f"unknown {label} Policy option: {_q(name)}"
        problems.append(Problem(f, msg, f"{manager}.option-unknown"))
        return False
    gate = opt.required_gate(manager, level)
    if gate and not opt.gate_enabled(gate, minor, gates):
        lvl = "Alpha" if level == opt.ALPHA else "Beta"
        msg = f"{label} Policy {lvl}-level Options not enabled, but option {_q(name)} provided"
        if manager == "tm" and minor >= opt.TM_GATE_MESSAGE_LOWERCASE_FROM:
            msg = (
                f"topology manager policy {lvl.lower()}-level options not enabled, but option "
                f"{_q(name)} provided"
            )
        problems.append(Problem(f, msg, f"{manager}.option-gate"))
        return False
    return True


def _bad_bool(name: str, value: str) -> str:
    return (
        f"bad value for option {_q(name)}: strconv.ParseBool: parsing {_q(value)}: invalid syntax"
    )


def _check_cpu_manager(
    config: KubeletConfig, topology: Topology | None, minor: int, problems: list[Problem]
) -> None:
    policy = config.cpu_manager_policy
    options = config.cpu_manager_policy_options
    if policy not in CPU_POLICIES:
        problems.append(
            Problem("cpuManagerPolicy", f"unknown policy: {_q(policy)}", "cpu.policy-unknown")
        )
        return
    if not opt.gate_enabled("CPUManagerPolicyOptions", minor, config.feature_gates):
        options = {}  # already reported by _check_options_gates when non-empty
    if policy == "none":
        if options:
            problems.append(
                Problem(
                    "cpuManagerPolicyOptions",
                    f"None policy: received unsupported options={_gomap(options)}",
                    "cpu.none-with-options",
                )
            )
        return

    # static: the reservation is checked first (NewManager), then the options (NewStaticPolicy).
    reserved_cpus: CPUSet | None = None
    if config.reserved_system_cpus and config.reserved_system_cpus.strip():
        try:
            reserved_cpus = CPUSet.parse(config.reserved_system_cpus)
        except CPUSetError:
            return  # reported by configuration validation
    millis = reserved_cpu_millis(config)
    if millis <= 0:
        field_name = "reservedSystemCPUs" if reserved_cpus is not None else "kubeReserved.cpu"
        problems.append(Problem(field_name, CPU_NO_RESERVATION, "cpu.static-no-reservation"))
        return

    before = len(problems)
    values: dict[str, bool] = {}
    for name in sorted(options):
        f = f"cpuManagerPolicyOptions.{name}"
        if not _option_available("cpu", name, minor, config.feature_gates, problems):
            continue
        b = _parse_bool(options[name])
        if b is None:
            problems.append(Problem(f, _bad_bool(name, options[name]), "cpu.option-value"))
            continue
        values[name] = b
    if len(problems) != before:
        return
    for a, b in opt.CPU_EXCLUSIVE_PAIRS:
        if values.get(a) and values.get(b):
            problems.append(
                Problem(
                    "cpuManagerPolicyOptions",
                    f"static policy options {a} and {b} can not be used at the same time",
                    "cpu.options-exclusive",
                )
            )
    if len(problems) != before:
        return
    if values.get("align-by-socket"):
        if config.topology_manager_policy == "single-numa-node":
            problems.append(
                Problem(
                    "cpuManagerPolicyOptions.align-by-socket",
                    ALIGN_BY_SOCKET_SNN,
                    "cpu.align-by-socket-snn",
                )
            )
            return
        if topology is not None and topology.num_sockets > topology.num_numa_nodes:
            problems.append(
                Problem(
                    "cpuManagerPolicyOptions.align-by-socket",
                    ALIGN_BY_SOCKET_HW,
                    "cpu.align-by-socket-hw",
                )
            )
            return
    if topology is None:
        return
    wanted = math.ceil(millis / 1000)
    if reserved_cpus is not None:
        missing = reserved_cpus - topology.all_cpus
        if missing:
            problems.append(
                Problem(
                    "reservedSystemCPUs",
                    f"reservedSystemCPUs {_q(config.reserved_system_cpus)} names CPUs this "
                    f"machine does not have: {missing} (online CPUs: {topology.all_cpus}); the "
                    "kubelet starts once, then refuses to restart with "
                    '"not all reserved cpus ... are present in defaultCpuSet"',
                    "cpu.reserved-cpus-missing",
                    verbatim=False,
                )
            )
    elif wanted > topology.num_cpus:
        # takeByTopology fails and leaves the reserved set empty.
        problems.append(
            Problem(
                "kubeReserved.cpu",
                "[cpumanager] unable to reserve the required amount of CPUs (size of  did not "
                f"equal {wanted})",
                "cpu.reserve-too-many",
            )
        )


def _check_memory_manager(
    config: KubeletConfig, topology: Topology | None, minor: int, problems: list[Problem]
) -> None:
    policy = config.memory_manager_policy
    if policy not in MM_POLICIES:
        problems.append(
            Problem("memoryManagerPolicy", f"unknown policy: {_q(policy)}", "mm.policy-unknown")
        )
        return
    if policy == "None":
        if config.reserved_memory:
            problems.append(
                Problem(
                    "reservedMemory",
                    "ignored: only the Static Memory Manager policy reads reservedMemory",
                    "mm.reserved-ignored",
                    severity="warning",
                    verbatim=False,
                )
            )
        return
    if topology is None:
        return
    if any(p.code.startswith("mm.reserved-") for p in problems):
        return  # configuration validation already refused the entries
    alloc = _allocatable(config, topology)
    found = check_reserved_memory(topology.numa_ids, alloc, config.reserved_memory)
    if found:
        problems.extend(found)
        return
    total = sum(
        to_bytes(e.limits["memory"]) for e in config.reserved_memory if "memory" in e.limits
    )
    if total <= 0:
        problems.append(Problem("reservedMemory", MM_NO_SYSTEM_RESERVED, "mm.no-system-reserved"))
