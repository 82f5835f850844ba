"""Maturity of CPU Manager and Topology Manager policy options, per Kubernetes minor 1.30-1.37.

Sources (facts only, no code copied):
  * shared/reference/upstream-node-e2e.md §6 (option maturity, gates, failCgroupV1),
  * shared/reference/kubelet-algorithms.md §2.1.1 and §3.2 (option names, value types, messages),
  * kubernetes/kubernetes pkg/features/kube_features.go (versioned gate specs, 1.35 cycle):
    CPUManagerPolicyAlphaOptions alpha since 1.23 (default off); CPUManagerPolicyBetaOptions
    beta since 1.23 (default on); CPUManagerPolicyOptions GA and locked on in 1.33 ("remove in
    1.36"); TopologyManagerPolicyAlphaOptions alpha since 1.26 (default off);
    TopologyManagerPolicyBetaOptions beta, default on since 1.28; TopologyManagerPolicyOptions
    beta (on) since 1.28, GA in 1.32 (not locked).
  * kubernetes/kubernetes pkg/kubelet/cm/{cpumanager,topologymanager}/policy_options.go, several
    stored versions: the alpha/beta/stable sets and the order of the checks.

Marked [inference] below: anything for 1.36 and 1.37 (no source covers them; we assume no
change after 1.35), strict-cpu-reservation beta in 1.33 (the reference marks the exact version
unverified), max-allowable-numa-nodes in 1.31 (one 1.31-cycle source has it alpha, the release
docs and the reference say beta; we use beta).
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
    "align-by-socket": _span(30, 37, ALPHA),  # still alpha in the 1.35 docs; 1.36+ [inference]
    "distribute-cpus-across-cores": _span(31, 37, ALPHA),  # added 1.31
    # alpha 1.32, beta 1.33 [inference: exact version unverified], GA 1.35
    "strict-cpu-reservation": {32: ALPHA, **_span(33, 34, BETA), **_span(35, 37, GA)},
    "prefer-align-cpus-by-uncorecache": {**_span(32, 33, ALPHA), **_span(34, 37, BETA)},
}

TOPOLOGY_MANAGER_OPTIONS: dict[str, dict[int, str]] = {
    "prefer-closest-numa-nodes": {**_span(30, 31, BETA), **_span(32, 37, GA)},
    # added 1.31 (beta [inference, see module doc]), GA 1.35
    "max-allowable-numa-nodes": {**_span(31, 34, BETA), **_span(35, 37, GA)},
}

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
    # beta (on) until 1.32, GA locked from 1.33; "remove in 1.36" [inference: assumed still
    # accepted as locked in 1.36/1.37, validate warns when it is set there]
    "CPUManagerPolicyOptions": {
        **{m: (True, False) for m in range(30, 33)},
        **{m: (True, True) for m in range(33, 38)},
    },
    "TopologyManagerPolicyAlphaOptions": {m: (False, False) for m in SUPPORTED_MINORS},
    "TopologyManagerPolicyBetaOptions": {m: (True, False) for m in SUPPORTED_MINORS},
    "TopologyManagerPolicyOptions": {m: (True, False) for m in SUPPORTED_MINORS},
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
