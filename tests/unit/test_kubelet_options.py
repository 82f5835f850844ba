"""Option maturity and gate specs for 1.34-1.37, as read from each minor's own kubelet source.

Every expected value below was read from k8s.io/kubernetes at the module version named in
numacert.kubelet.options.SOURCE_MODULES (the file and line are in each test id and assertion
message). A test per minor asserts the level of every option and the spec of every gate, so a
table edit that disagrees with the source fails with the line to re-read.
"""

from __future__ import annotations

import pytest

from numacert.kubelet import options as opt
from numacert.kubelet.parse import from_dict
from numacert.kubelet.validate import errors, validate
from numacert.topology.model import CPU, NUMANode, Topology

A, B, GA = opt.ALPHA, opt.BETA, opt.GA

# minor -> {(kind, option): level}: the alphaOptions / betaOptions / stableOptions sets.
OPTION_FACTS: dict[int, dict[tuple[str, str], str]] = {
    34: {
        ("cpu", "align-by-socket"): A,
        ("cpu", "distribute-cpus-across-cores"): A,
        ("cpu", "strict-cpu-reservation"): B,
        ("cpu", "distribute-cpus-across-numa"): B,
        ("cpu", "prefer-align-cpus-by-uncorecache"): B,
        ("cpu", "full-pcpus-only"): GA,
        ("tm", "max-allowable-numa-nodes"): B,
        ("tm", "prefer-closest-numa-nodes"): GA,
    },
    35: {
        ("cpu", "align-by-socket"): A,
        ("cpu", "distribute-cpus-across-cores"): A,
        ("cpu", "distribute-cpus-across-numa"): B,
        ("cpu", "prefer-align-cpus-by-uncorecache"): B,
        ("cpu", "full-pcpus-only"): GA,
        ("cpu", "strict-cpu-reservation"): GA,
        ("tm", "prefer-closest-numa-nodes"): GA,
        ("tm", "max-allowable-numa-nodes"): GA,
    },
    36: {
        ("cpu", "align-by-socket"): A,
        ("cpu", "distribute-cpus-across-cores"): A,
        ("cpu", "distribute-cpus-across-numa"): B,
        ("cpu", "full-pcpus-only"): GA,
        ("cpu", "strict-cpu-reservation"): GA,
        ("cpu", "prefer-align-cpus-by-uncorecache"): GA,
        ("tm", "prefer-closest-numa-nodes"): GA,
        ("tm", "max-allowable-numa-nodes"): GA,
    },
    37: {
        ("cpu", "align-by-socket"): A,
        ("cpu", "distribute-cpus-across-cores"): A,
        ("cpu", "distribute-cpus-across-numa"): B,
        ("cpu", "full-pcpus-only"): GA,
        ("cpu", "strict-cpu-reservation"): GA,
        ("cpu", "prefer-align-cpus-by-uncorecache"): GA,
        ("tm", "prefer-closest-numa-nodes"): GA,
        ("tm", "max-allowable-numa-nodes"): GA,
    },
}

# minor -> {gate: (default, locked)}: the versioned spec entry in force for that minor.
GATE_FACTS: dict[int, dict[str, tuple[bool, bool]]] = {
    34: {
        "CPUManagerPolicyAlphaOptions": (False, False),
        "CPUManagerPolicyBetaOptions": (True, False),
        "CPUManagerPolicyOptions": (True, True),
        "TopologyManagerPolicyAlphaOptions": (False, False),
        "TopologyManagerPolicyBetaOptions": (True, False),
        "TopologyManagerPolicyOptions": (True, False),
    },
    35: {
        "CPUManagerPolicyAlphaOptions": (False, False),
        "CPUManagerPolicyBetaOptions": (True, False),
        "CPUManagerPolicyOptions": (True, True),
        "TopologyManagerPolicyAlphaOptions": (False, False),
        "TopologyManagerPolicyBetaOptions": (True, False),
        "TopologyManagerPolicyOptions": (True, False),
    },
    36: {
        "CPUManagerPolicyAlphaOptions": (False, False),
        "CPUManagerPolicyBetaOptions": (True, False),
        "CPUManagerPolicyOptions": (True, True),
        "TopologyManagerPolicyAlphaOptions": (False, False),
        "TopologyManagerPolicyBetaOptions": (True, False),
        "TopologyManagerPolicyOptions": (True, True),
    },
    37: {
        "CPUManagerPolicyAlphaOptions": (False, False),
        "CPUManagerPolicyBetaOptions": (True, False),
        "CPUManagerPolicyOptions": (True, True),
        "TopologyManagerPolicyAlphaOptions": (False, False),
        "TopologyManagerPolicyBetaOptions": (True, False),
        "TopologyManagerPolicyOptions": (True, True),
    },
}


def _option_cases():
    for minor, facts in OPTION_FACTS.items():
        for (kind, name), level in facts.items():
            src = opt.source_of(kind, name, minor)
            case_id = f"1.{minor}-{kind}-{name}-{level}@{src}"
            yield pytest.param(minor, kind, name, level, id=case_id)


def _gate_cases():
    for minor, facts in GATE_FACTS.items():
        for gate, spec in facts.items():
            src = opt.source_of("gate", gate, minor)
            yield pytest.param(minor, gate, spec, id=f"1.{minor}-{gate}@{src}")


@pytest.mark.parametrize("minor,kind,name,level", list(_option_cases()))
def test_option_level_matches_source(minor, kind, name, level):
    src = opt.source_of(kind, name, minor)
    assert src is not None and src.startswith(opt.SOURCE_MODULES[minor] + "/")
    level_of = opt.cpu_option_level if kind == "cpu" else opt.tm_option_level
    assert level_of(name, minor) == level, f"{src} puts {name} in the {level} set"


@pytest.mark.parametrize("minor", sorted(OPTION_FACTS))
def test_every_option_of_the_minor_is_asserted(minor):
    """The tables know exactly the options the source lists, no more."""
    known = {("cpu", n) for n, lv in opt.CPU_MANAGER_OPTIONS.items() if minor in lv}
    known |= {("tm", n) for n, lv in opt.TOPOLOGY_MANAGER_OPTIONS.items() if minor in lv}
    assert known == set(OPTION_FACTS[minor]), f"{opt.SOURCE_MODULES[minor]} option sets"
    assert set(opt.OPTION_SOURCES) == set(OPTION_FACTS[minor])


@pytest.mark.parametrize("minor,gate,spec", list(_gate_cases()))
def test_gate_spec_matches_source(minor, gate, spec):
    src = opt.source_of("gate", gate, minor)
    assert src is not None and "/pkg/features/kube_features.go:" in src
    assert opt.GATES[gate][minor] == spec, f"{src}: (default, locked) = {spec}"


def test_source_of_formats_module_file_and_line():
    assert opt.source_of("cpu", "prefer-align-cpus-by-uncorecache", 36) == (
        "k8s.io/kubernetes@v1.36.3/pkg/kubelet/cm/cpumanager/policy_options.go:51"
    )
    assert opt.source_of("tm", "max-allowable-numa-nodes", 34) == (
        "k8s.io/kubernetes@v1.34.4/pkg/kubelet/cm/topologymanager/policy_options.go:37"
    )
    assert opt.source_of("gate", "TopologyManagerPolicyOptions", 37) == (
        "k8s.io/kubernetes@v1.37.2/pkg/features/kube_features.go:2247"
    )
    # 1.30-1.33: no source of those minors was read
    assert opt.source_of("cpu", "full-pcpus-only", 33) is None
    assert opt.source_of("cpu", "no-such-option", 37) is None


# ---- what the corrected facts change in validation ---------------------------------------------
T = Topology(
    [CPU(id=i, socket=0, numa=0, core=i, uncore=0) for i in range(4)],
    [NUMANode(id=0, memory=1 << 33)],
)
STATIC = {"cpuManagerPolicy": "static", "reservedSystemCPUs": "0"}


def test_uncore_option_needs_no_gate_from_136():
    # beta in 1.35 (v1.35.4 cpumanager/policy_options.go:47), GA in 1.36 (v1.36.3 :51)
    c = from_dict(
        {
            **STATIC,
            "cpuManagerPolicyOptions": {"prefer-align-cpus-by-uncorecache": "true"},
            "featureGates": {"CPUManagerPolicyBetaOptions": False},
        }
    )
    assert [p.message for p in errors(validate(c, T, 35))] == [
        "CPU Manager Policy Beta-level Options not enabled, but option "
        '"prefer-align-cpus-by-uncorecache" provided'
    ]
    assert errors(validate(c, T, 36)) == []
    assert errors(validate(c, T, 37)) == []


def test_topology_manager_options_gate_is_locked_from_136():
    c = from_dict({"featureGates": {"TopologyManagerPolicyOptions": False}})
    assert errors(validate(c, T, 35)) == []
    for minor in (36, 37):
        assert [p.message for p in errors(validate(c, T, minor))] == [
            "cannot set feature gate TopologyManagerPolicyOptions to false, feature is locked "
            "to true"
        ], opt.source_of("gate", "TopologyManagerPolicyOptions", minor)


def test_cpu_manager_policy_options_gate_still_accepted_in_136_and_137():
    # "remove in 1.36" did not happen: v1.36.3 kube_features.go:1294, v1.37.2 :1391
    c = from_dict({"featureGates": {"CPUManagerPolicyOptions": True}})
    for minor in (36, 37):
        assert validate(c, T, minor) == []
