"""skip_reason: each reason kind, None when everything holds, and a catalogue that only uses
keys and values skip_reason acts on (a typo must not silently make a check always run)."""

from __future__ import annotations

import copy

import pytest

from numacert.certify.applicability import SEPARATOR, RunMeans, skip_reason
from numacert.kubelet.options import CPU_MANAGER_OPTIONS, TOPOLOGY_MANAGER_OPTIONS
from numacert.kubelet.parse import from_dict
from numacert.reports.catalogue import load_catalogue
from numacert.reports.skips import SkipClass, skip_class, skip_kind
from numacert.topology.generate import generate

FULL = RunMeans(node_access=True, require=True, allocatable_cpus=15, hugepages_2m_bytes=64 << 21)
SMT_4_NUMA = generate(4, 1, 2, 2, "1Gi", cpu_numbering="qemu")
STATIC = from_dict(
    {
        "cpuManagerPolicy": "static",
        "cpuManagerPolicyOptions": {"full-pcpus-only": "true"},
        "reservedSystemCPUs": "0",
        "topologyManagerPolicy": "restricted",
        "topologyManagerScope": "pod",
        "topologyManagerPolicyOptions": {"prefer-closest-numa-nodes": "true"},
        "memoryManagerPolicy": "Static",
    }
)

# What a catalogue entry may say, and the values skip_reason can compare with.
POLICY_VALUES = {
    "cpu_manager": {"none", "static"},
    "topology_manager": {"none", "best-effort", "restricted", "single-numa-node"},
    "topology_scope": {"container", "pod"},
    "memory_manager": {"None", "Static"},
}
OPTION_KEYS = {"cpu_options": CPU_MANAGER_OPTIONS, "tm_options": TOPOLOGY_MANAGER_OPTIONS}
NEEDS_KEYS = {"numa_nodes", "smt", "hugepages", "free_cpus", "node_access", "require"}


def reason(applies=None, needs=None, config=STATIC, topology=SMT_4_NUMA, means=FULL):
    return skip_reason(applies or {}, needs or {}, config, topology, means)


def machine(text: str | None) -> str | None:
    return None if text is None else text.split(SEPARATOR)[0]


def test_none_when_everything_holds():
    applies = {
        "cpu_manager": ["static"],
        "topology_manager": ["restricted", "best-effort"],
        "topology_scope": ["pod"],
        "memory_manager": ["Static"],
        "cpu_options": ["full-pcpus-only"],
        "tm_options": ["prefer-closest-numa-nodes"],
    }
    needs = {
        "numa_nodes": 4,
        "smt": True,
        "hugepages": "2Mi",
        "free_cpus": 15,
        "node_access": True,
        "require": True,
    }
    assert reason(applies, needs) is None


@pytest.mark.parametrize(
    ("key", "values", "want"),
    [
        ("cpu_manager", ["none"], "not-applicable:cpu_manager=static"),
        ("topology_manager", ["single-numa-node"], "not-applicable:topology_manager=restricted"),
        ("topology_scope", ["container"], "not-applicable:topology_scope=pod"),
        ("memory_manager", ["None"], "not-applicable:memory_manager=Static"),
    ],
)
def test_not_applicable_by_policy_field(key, values, want):
    text = reason({key: values})
    assert machine(text) == want
    assert text.split(SEPARATOR)[1] == (
        f"applies to {key} {', '.join(values)}, the node runs {want.split('=')[1]}"
    )
    assert skip_class(machine(text)) == SkipClass.NOT_REQUIRED


@pytest.mark.parametrize(
    ("key", "option"),
    [("cpu_options", "strict-cpu-reservation"), ("tm_options", "max-allowable-numa-nodes")],
)
def test_not_applicable_by_option(key, option):
    text = reason({key: ["full-pcpus-only", option]} if key == "cpu_options" else {key: [option]})
    assert machine(text) == f"not-applicable:{option}=off"
    assert text.endswith(f"needs the option {option}")
    assert skip_class(machine(text)) == SkipClass.NOT_REQUIRED


def test_option_set_to_false_is_off():
    config = copy.deepcopy(STATIC)
    config.cpu_manager_policy_options = {"full-pcpus-only": "false"}
    assert machine(reason({"cpu_options": ["full-pcpus-only"]}, config=config)) == (
        "not-applicable:full-pcpus-only=off"
    )


@pytest.mark.parametrize(
    ("needs", "topology", "means", "want", "klass"),
    [
        ({"numa_nodes": 2}, generate(1, 1, 4, 2, "1Gi"), FULL, "needs-numa-nodes:2", "hardware"),
        ({"numa_nodes": 9}, SMT_4_NUMA, FULL, "needs-numa-nodes:9", "hardware"),
        ({"smt": True}, generate(2, 1, 4, 1, "1Gi"), FULL, "needs-smt", "hardware"),
        (
            {"hugepages": "2Mi"},
            SMT_4_NUMA,
            RunMeans(True, True, 15, (4 << 20) - 1),
            "needs-hugepages:2Mi",
            "hardware",
        ),
        (
            {"free_cpus": 16},
            SMT_4_NUMA,
            FULL,
            "needs-free-cpus:16",
            "hardware",
        ),
        (
            {"node_access": True},
            SMT_4_NUMA,
            RunMeans(False, True, 15, 64 << 21),
            "needs-node-access",
            "blocking",
        ),
        (
            {"require": True},
            SMT_4_NUMA,
            RunMeans(True, False, 15, 64 << 21),
            "needs-require",
            "not-required",
        ),
    ],
)
def test_each_needs_kind(needs, topology, means, want, klass):
    text = reason(needs=needs, topology=topology, means=means)
    assert machine(text) == want
    # the plugin records the part before the separator as the skip reason (pytest_plugin.py)
    assert skip_kind(machine(text)) == want.split(":")[0]
    assert skip_class(machine(text)) == SkipClass(klass)
    assert text.split(SEPARATOR)[1]  # a sentence for people


def test_needs_hold_exactly_at_the_limit():
    assert reason(needs={"numa_nodes": 4, "free_cpus": 15}) is None
    assert reason(needs={"hugepages": "2Mi"}, means=RunMeans(True, True, 1, 4 << 20)) is None


def test_false_needs_are_no_needs():
    none = RunMeans(False, False, 0, 0)
    topology = generate(1, 1, 1, 1, "1Gi")
    needs = {"smt": False, "node_access": False, "require": False, "numa_nodes": 0}
    assert reason(needs=needs, topology=topology, means=none) is None


def test_applies_is_checked_before_needs():
    text = reason({"cpu_manager": ["none"]}, {"numa_nodes": 8, "node_access": True})
    assert machine(text) == "not-applicable:cpu_manager=static"


def test_needs_are_checked_in_a_fixed_order():
    nothing = RunMeans(False, False, 0, 0)
    topology = generate(1, 1, 1, 1, "1Gi", hugepages_per_numa={})
    needs = {
        "require": True,
        "node_access": True,
        "free_cpus": 2,
        "hugepages": "2Mi",
        "smt": True,
        "numa_nodes": 2,
    }
    order = []
    while needs:
        text = machine(reason(needs=needs, topology=topology, means=nothing))
        order.append(text)
        needs.pop(
            {
                "needs-numa-nodes:2": "numa_nodes",
                "needs-smt": "smt",
                "needs-hugepages:2Mi": "hugepages",
                "needs-free-cpus:2": "free_cpus",
                "needs-node-access": "node_access",
                "needs-require": "require",
            }[text]
        )
    assert order == [
        "needs-numa-nodes:2",
        "needs-smt",
        "needs-hugepages:2Mi",
        "needs-free-cpus:2",
        "needs-node-access",
        "needs-require",
    ]


# ---- the shipped catalogue ---------------------------------------------------------------

CATALOGUE = load_catalogue()


def test_catalogue_uses_only_keys_skip_reason_knows():
    for spec in CATALOGUE:
        unknown_applies = set(spec.applies) - set(POLICY_VALUES) - set(OPTION_KEYS)
        unknown_needs = set(spec.needs) - NEEDS_KEYS
        assert not unknown_applies, (spec.id, unknown_applies)
        assert not unknown_needs, (spec.id, unknown_needs)


def test_catalogue_values_are_ones_skip_reason_can_match():
    for spec in CATALOGUE:
        for key, values in spec.applies.items():
            assert isinstance(values, list) and values, (spec.id, key)
            if key in POLICY_VALUES:
                assert set(values) <= POLICY_VALUES[key], (spec.id, key, values)
            else:
                for option in values:
                    assert option in OPTION_KEYS[key], (spec.id, key, option)
                    assert option != "max-allowable-numa-nodes", "a number, never `on`"
        needs = spec.needs
        if "numa_nodes" in needs:
            assert isinstance(needs["numa_nodes"], int) and needs["numa_nodes"] >= 2, spec.id
        if "free_cpus" in needs:
            assert isinstance(needs["free_cpus"], int) and needs["free_cpus"] >= 1, spec.id
        if "hugepages" in needs:
            assert needs["hugepages"] == "2Mi", (spec.id, "skip_reason only knows 2Mi")
        for flag in ("smt", "node_access", "require"):
            if flag in needs:
                assert needs[flag] is True, (spec.id, flag)


_ATTR = {
    "cpu_manager": "cpu_manager_policy",
    "topology_manager": "topology_manager_policy",
    "topology_scope": "topology_manager_scope",
    "memory_manager": "memory_manager_policy",
}
_KIND = {
    "numa_nodes": "needs-numa-nodes",
    "smt": "needs-smt",
    "hugepages": "needs-hugepages",
    "free_cpus": "needs-free-cpus",
    "node_access": "needs-node-access",
    "require": "needs-require",
}


def _node_for(spec, broken: str | None = None):
    """A (config, topology, means) meeting every condition of `spec` but `broken`."""
    config = copy.deepcopy(STATIC)
    for key, values in spec.applies.items():
        if key in _ATTR:
            setattr(config, _ATTR[key], values[0])
        elif key == "cpu_options":
            config.cpu_manager_policy_options = {o: "true" for o in values}
        else:
            config.topology_manager_policy_options = {o: "true" for o in values}
    needs = spec.needs
    numa, threads = max(needs.get("numa_nodes", 1), 4), 2
    means = {
        "node_access": True,
        "require": True,
        "allocatable_cpus": max(needs.get("free_cpus", 0), 15),
        "hugepages_2m_bytes": 64 << 21,
    }
    if broken in _ATTR:
        other = sorted(POLICY_VALUES[broken] - set(spec.applies[broken]))[0]
        setattr(config, _ATTR[broken], other)
    elif broken == "cpu_options":
        config.cpu_manager_policy_options = {}
    elif broken == "tm_options":
        config.topology_manager_policy_options = {}
    elif broken == "numa_nodes":
        numa = needs["numa_nodes"] - 1
    elif broken == "smt":
        threads = 1
    elif broken == "hugepages":
        means["hugepages_2m_bytes"] = 0
    elif broken == "free_cpus":
        means["allocatable_cpus"] = needs["free_cpus"] - 1
    elif broken in ("node_access", "require"):
        means[broken] = False
    return config, generate(numa, 1, 2, threads, "1Gi"), RunMeans(**means)


@pytest.mark.parametrize("spec", CATALOGUE, ids=[s.id for s in CATALOGUE])
def test_every_catalogue_condition_can_skip_its_check(spec):
    """All conditions met, the check runs; each applies/needs key alone violated, the check
    skips with the reason kind of that key (a key skip_reason ignored would not)."""
    assert skip_reason(spec.applies, spec.needs, *_node_for(spec)) is None
    for key in [*spec.applies, *spec.needs]:
        text = skip_reason(spec.applies, spec.needs, *_node_for(spec, broken=key))
        want = _KIND.get(key, "not-applicable")
        assert skip_kind(machine(text)) == want, (spec.id, key, text)


def test_a_typo_in_the_catalogue_would_be_caught():
    """What the two tests above protect against: skip_reason ignores keys it does not know."""
    typo = {"numa_node": 2}  # not numa_nodes
    assert reason(needs=typo, topology=generate(1, 1, 2, 2, "1Gi")) is None
    assert not set(typo) <= NEEDS_KEYS
