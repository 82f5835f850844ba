"""Maturity of CPU Manager and Topology Manager policy options, per Kubernetes minor 1.30-1.37.

1.34-1.37 are facts read from each minor's own source: the k8s.io/kubernetes module at the
latest patch the Go module proxy serves for that minor (SOURCE_MODULES: v1.34.4, v1.35.4,
v1.36.3, v1.37.2), files

  * pkg/kubelet/cm/cpumanager/policy_options.go and
    pkg/kubelet/cm/topologymanager/policy_options.go: the alphaOptions / betaOptions /
    stableOptions sets (one option name per line);
  * pkg/features/kube_features.go: the versioned gate specs (the entry in force for that minor is
    the last one whose version is <= the minor).

OPTION_SOURCES and GATE_SOURCES give, per entry and minor, the file and line it was read from
(`source_of` formats it). Facts the 1.34-1.37 source corrected (formerly [inference] "unchanged
since 1.35"): prefer-align-cpus-by-uncorecache is GA (stableOptions) in 1.36 and 1.37, not beta;
the TopologyManagerPolicyOptions gate is locked to true in 1.36 and 1.37 ("remove in 1.37");
CPUManagerPolicyOptions is still a registered gate (GA, locked to true) in 1.36 and 1.37 despite
its "remove in 1.36" comment.

1.30-1.33 come from references, no source of those minors could be read here (the module proxy
serves k8s.io/kubernetes from v1.34.0 on): shared/reference/upstream-node-e2e.md §6,
shared/reference/kubelet-algorithms.md §2.1.1 and §3.2, and stored 1.31-1.35-cycle copies of
the policy_options.go files. The 1.34 versioned gate specs agree with them
(CPUManagerPolicyOptions GA and locked from 1.33, TopologyManagerPolicyOptions GA from 1.32,
not locked). Still
[inference] there: strict-cpu-reservation beta in 1.33 (the reference marks the exact version
unverified; the 1.34 source has it beta), max-allowable-numa-nodes in 1.31 (one 1.31-cycle
source has it alpha, the release docs and the reference say beta; we use beta).
"""

from __future__ import annotations

ALPHA = "alpha"
BETA = "beta"
GA = "GA"

MIN_MINOR = 30
MAX_MINOR = 37
SUPPORTED_MINORS = range(MIN_MINOR, MAX_MINOR + 1)


def _span(first: int, last: int, level: str) -> dict[int, str]:
    return {m: level for m in range(first, last + 1)}


# option -> {minor: level}; a minor missing from the map = the kubelet does not know the option.
CPU_MANAGER_OPTIONS: dict[str, dict[int, str]] = {
    "full-pcpus-only": {**_span(30, 32, BETA), **_span(33, 37, GA)},
    "distribute-cpus-across-numa": {**_span(30, 32, ALPHA), **_span(33, 37, BETA)},
    "align-by-socket": _span(30, 37, ALPHA),
    "distribute-cpus-across-cores": _span(31, 37, ALPHA),  # added 1.31
    # alpha 1.32, beta 1.33 [inference: exact version unverified] and 1.34, GA 1.35
    "strict-cpu-reservation": {32: ALPHA, **_span(33, 34, BETA), **_span(35, 37, GA)},
    "prefer-align-cpus-by-uncorecache": {
        **_span(32, 33, ALPHA),
        **_span(34, 35, BETA),
        **_span(36, 37, GA),
    },
}

TOPOLOGY_MANAGER_OPTIONS: dict[str, dict[int, str]] = {
    "prefer-closest-numa-nodes": {**_span(30, 31, BETA), **_span(32, 37, GA)},
    # added 1.31 (beta [inference, see module doc]), GA 1.35
    "max-allowable-numa-nodes": {**_span(31, 34, BETA), **_span(35, 37, GA)},
}

# ---- where the 1.34-1.37 entries were read -------------------------------------------------
SOURCE_MODULES: dict[int, str] = {
    34: "k8s.io/kubernetes@v1.34.4",
    35: "k8s.io/kubernetes@v1.35.4",
    36: "k8s.io/kubernetes@v1.36.3",
    37: "k8s.io/kubernetes@v1.37.2",
}
SOURCE_FILES: dict[str, str] = {
    "cpu": "pkg/kubelet/cm/cpumanager/policy_options.go",
    "tm": "pkg/kubelet/cm/topologymanager/policy_options.go",
    "gate": "pkg/features/kube_features.go",
}

# ("cpu" | "tm", option) -> {minor: line of the option's name in its alpha/beta/stable set}
OPTION_SOURCES: dict[tuple[str, str], dict[int, int]] = {
    ("cpu", "align-by-socket"): {34: 42, 35: 42, 36: 42, 37: 42},  # alphaOptions
    ("cpu", "distribute-cpus-across-cores"): {34: 43, 35: 43, 36: 43, 37: 43},  # alphaOptions
    # betaOptions in 1.34-1.37
    ("cpu", "distribute-cpus-across-numa"): {34: 47, 35: 46, 36: 46, 37: 46},
    # betaOptions in 1.34, stableOptions from 1.35
    ("cpu", "strict-cpu-reservation"): {34: 46, 35: 51, 36: 50, 37: 50},
    # betaOptions in 1.34 and 1.35, stableOptions from 1.36
    ("cpu", "prefer-align-cpus-by-uncorecache"): {34: 48, 35: 47, 36: 51, 37: 51},
    ("cpu", "full-pcpus-only"): {34: 51, 35: 50, 36: 49, 37: 49},  # stableOptions
    # betaOptions in 1.34, stableOptions from 1.35
    ("tm", "max-allowable-numa-nodes"): {34: 37, 35: 39, 36: 39, 37: 39},
    ("tm", "prefer-closest-numa-nodes"): {34: 40, 35: 38, 36: 38, 37: 38},  # stableOptions
}

# gate -> {minor: line of the versioned spec entry in force for that minor}
GATE_SOURCES: dict[str, dict[int, int]] = {
    # {1.23, false, Alpha}
    "CPUManagerPolicyAlphaOptions": {34: 1142, 35: 1161, 36: 1284, 37: 1381},
    # {1.23, true, Beta}
    "CPUManagerPolicyBetaOptions": {34: 1146, 35: 1165, 36: 1288, 37: 1385},
    # {1.33, true, GA, LockToDefault} // remove in 1.36 (still there in 1.36 and 1.37)
    "CPUManagerPolicyOptions": {34: 1152, 35: 1171, 36: 1294, 37: 1391},
    # {1.26, false, Alpha}
    "TopologyManagerPolicyAlphaOptions": {34: 1814, 35: 1871, 36: 2070, 37: 2236},
    # {1.28, true, Beta}
    "TopologyManagerPolicyBetaOptions": {34: 1819, 35: 1876, 36: 2075, 37: 2241},
    # {1.32, true, GA} in 1.34 and 1.35; {1.32, true, GA, LockToDefault} // remove in 1.37 in
    # 1.36 and 1.37
    "TopologyManagerPolicyOptions": {34: 1825, 35: 1882, 36: 2081, 37: 2247},
}

# The Topology Manager's gate errors are lower case from 1.34 on ("topology manager policy
# beta-level options not enabled, but option %q provided", 1.34.4 topologymanager/
# policy_options.go:54, 1.37.2 :53); 1.30-1.33 keep the reference's capitalised text
# ("Topology Manager Policy Beta-level Options ..."), seen in stored 1.31-1.33-cycle copies
# [inference: the release that lowered it is unverified, it is 1.34 at the latest].
TM_GATE_MESSAGE_LOWERCASE_FROM = 34


def source_of(kind: str, name: str, minor: int) -> str | None:
    """'k8s.io/kubernetes@v1.37.2/pkg/kubelet/cm/cpumanager/policy_options.go:51': where the
    entry for option `name` ("cpu" or "tm" kind) or gate `name` ("gate" kind) in 1.<minor> was
    read; None where no source of that minor was read (1.30-1.33)."""
    lines = GATE_SOURCES.get(name) if kind == "gate" else OPTION_SOURCES.get((kind, name))
    if not lines or minor not in lines:
        return None
    return f"{SOURCE_MODULES[minor]}/{SOURCE_FILES[kind]}:{lines[minor]}"


# Value types: every CPU option is a bool (strconv.ParseBool); TM options as listed.
TOPOLOGY_MANAGER_OPTION_TYPES: dict[str, str] = {
    "prefer-closest-numa-nodes": "bool",
    "max-allowable-numa-nodes": "int",
}

# Options that may not be combined (kubelet-algorithms.md §3.2), as (a, b) in the kubelet's order.
CPU_EXCLUSIVE_PAIRS: tuple[tuple[str, str], ...] = (
    ("full-pcpus-only", "distribute-cpus-across-cores"),
    ("distribute-cpus-across-numa", "distribute-cpus-across-cores"),
    ("prefer-align-cpus-by-uncorecache", "distribute-cpus-across-cores"),
    ("prefer-align-cpus-by-uncorecache", "distribute-cpus-across-numa"),
)

# Gate name for each (manager, level); GA options need no gate.
OPTION_GATES: dict[tuple[str, str], str] = {
    ("cpu", ALPHA): "CPUManagerPolicyAlphaOptions",
    ("cpu", BETA): "CPUManagerPolicyBetaOptions",
    ("tm", ALPHA): "TopologyManagerPolicyAlphaOptions",
    ("tm", BETA): "TopologyManagerPolicyBetaOptions",
}

# gate -> {minor: (default, locked)}. Locked gates refuse the opposite value.
GATES: dict[str, dict[int, tuple[bool, bool]]] = {
    "CPUManagerPolicyAlphaOptions": {m: (False, False) for m in SUPPORTED_MINORS},
    "CPUManagerPolicyBetaOptions": {m: (True, False) for m in SUPPORTED_MINORS},
    # beta (on) until 1.32, GA locked from 1.33; its "remove in 1.36" did not happen: the
    # 1.36.3 and 1.37.2 sources still register it, locked to true
    "CPUManagerPolicyOptions": {
        **{m: (True, False) for m in range(30, 33)},
        **{m: (True, True) for m in range(33, 38)},
    },
    "TopologyManagerPolicyAlphaOptions": {m: (False, False) for m in SUPPORTED_MINORS},
    "TopologyManagerPolicyBetaOptions": {m: (True, False) for m in SUPPORTED_MINORS},
    # beta (on) until 1.31, GA from 1.32, locked to true from 1.36
    "TopologyManagerPolicyOptions": {
        **{m: (True, False) for m in range(30, 36)},
        **{m: (True, True) for m in range(36, 38)},
    },
}


def cpu_option_level(name: str, minor: int) -> str | None:
    """alpha / beta / GA for a CPU Manager option in 1.<minor>, None if that kubelet lacks it."""
    return CPU_MANAGER_OPTIONS.get(name, {}).get(minor)


def tm_option_level(name: str, minor: int) -> str | None:
    return TOPOLOGY_MANAGER_OPTIONS.get(name, {}).get(minor)


def gate_enabled(gate: str, minor: int, feature_gates: dict[str, bool]) -> bool:
    """The gate's value in 1.<minor> given the config's featureGates (explicit value wins,
    except on a locked gate: that setting is an error of its own, reported once)."""
    if gate in feature_gates and not gate_locked(gate, minor):
        return bool(feature_gates[gate])
    return GATES[gate][minor][0]


def gate_locked(gate: str, minor: int) -> bool:
    return GATES.get(gate, {}).get(minor, (False, False))[1]


def required_gate(manager: str, level: str) -> str | None:
    """The gate an option of this level needs ("cpu" or "tm" manager); None for GA."""
    return OPTION_GATES.get((manager, level))
