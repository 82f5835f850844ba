"""Resolving a matrix on a node (numacert.matrix.resolve): configuration, invalid, unsupported."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from numacert.errors import InputError
from numacert.kubelet.parse import from_dict
from numacert.kubelet.render import to_dict
from numacert.lab.kubelet_config import lab_kubelet_config
from numacert.lab.profile import load_lab_profile
from numacert.matrix.resolve import (
    MANAGED_FIELDS,
    Status,
    raise_if_invalid,
    resolve,
    runnable,
    unsupported_reason,
)
from numacert.matrix.spec import matrix_from_text
from numacert.topology.generate import generate

LAB = load_lab_profile("default")
LAB_BASE = lab_kubelet_config(LAB.topology, LAB.kubelet)
# A node config with only the reservations a static CPU Manager and Memory Manager Static need.
BASE = from_dict({"reservedSystemCPUs": "0", "systemReserved": {"memory": "256Mi"}})


def topo(sockets=2, numa_per_socket=1, cores=2, threads=2, hugepages=None, distances=None):
    return generate(
        sockets,
        numa_per_socket,
        cores,
        threads,
        "4Gi",
        {"2Mi": 64} if hugepages is None else hugepages,
        distances,
        "qemu",
    )


def matrix(kubelet: dict, hugepages: list[str] | None = None, source: str = "m.yaml"):
    """A one-combination matrix (id "c") from a fragment."""
    entry = {"id": "c", "kubelet": kubelet}
    if hugepages is not None:
        entry["hugepages"] = hugepages
    return matrix_from_text(yaml.safe_dump({"name": "t", "include": [entry]}), source)


def one(kubelet: dict, topology=None, base=BASE, minor=37, hugepages=None):
    [r] = resolve(matrix(kubelet, hugepages), base, topology or topo(), minor)
    return r


STATIC = {"cpuManagerPolicy": "static"}


# ---- configuration ---------------------------------------------------------------------------
def test_managed_fields_are_reset_from_the_node_config():
    base = from_dict(
        {
            "cpuManagerPolicy": "static",
            "cpuManagerPolicyOptions": {"full-pcpus-only": "true"},
            "reservedSystemCPUs": "0",
            "systemReserved": {"memory": "256Mi"},
            "kubeReserved": {"memory": "100Mi"},
            "topologyManagerPolicy": "best-effort",
            "topologyManagerScope": "pod",
            "topologyManagerPolicyOptions": {"prefer-closest-numa-nodes": "true"},
            "memoryManagerPolicy": "Static",
            "reservedMemory": [{"numaNode": 1, "limits": {"memory": "456Mi"}}],
            "cpuManagerReconcilePeriod": "2s",
        }
    )
    r = one({"cpuManagerPolicy": "static", "topologyManagerPolicy": "restricted"}, base=base)
    assert r.status == Status.OK
    c = r.config
    assert c.cpu_manager_policy_options == {}  # the node's option does not leak in
    assert (c.topology_manager_policy, c.topology_manager_scope) == ("restricted", "container")
    assert c.topology_manager_policy_options == {}
    assert (c.memory_manager_policy, c.reserved_memory) == ("None", [])
    # reservations and everything else stay the node's
    assert c.reserved_system_cpus == "0"
    assert c.system_reserved == {"memory": "256Mi"} and c.kube_reserved == {"memory": "100Mi"}
    assert c.extra == {"cpuManagerReconcilePeriod": "2s"}
    rendered = to_dict(c)
    for key in ("cpuManagerPolicyOptions", "topologyManagerPolicyOptions", "reservedMemory"):
        assert key not in rendered
    assert set(MANAGED_FIELDS) >= {"cpuManagerPolicyOptions", "reservedMemory"}


def test_reserved_memory_is_derived_from_the_node_reservations():
    r = one({**STATIC, "memoryManagerPolicy": "Static"}, base=LAB_BASE, topology=LAB.topology)
    assert r.status == Status.OK
    # systemReserved 256Mi + the lab's evictionHard memory.available 100Mi, on NUMA node 0
    assert [(e.numa_node, e.limits) for e in r.config.reserved_memory] == [(0, {"memory": "356Mi"})]
    assert "reservedMemory" in to_dict(r.config)


def test_explicit_reserved_memory_is_kept():
    rm = [
        {"numaNode": 0, "limits": {"memory": "178Mi"}},
        {"numaNode": 1, "limits": {"memory": "178Mi"}},
    ]
    r = one(
        {**STATIC, "memoryManagerPolicy": "Static", "reservedMemory": rm},
        base=LAB_BASE,
        topology=LAB.topology,
    )
    assert r.status == Status.OK
    assert [e.numa_node for e in r.config.reserved_memory] == [0, 1]


# ---- invalid ---------------------------------------------------------------------------------
def test_invalid_policy_carries_the_kubelet_reason():
    r = one({**STATIC, "topologyManagerPolicy": "bogus"})
    assert r.status == Status.INVALID
    assert r.code == "tm.policy-unknown"
    assert r.reason.startswith(
        "topologyManagerPolicy: invalid configuration: topologyManagerPolicy "
        '(--topology-manager-policy) "bogus" must be one of'
    )


def test_cpu_options_with_policy_none_are_refused():
    r = one({"cpuManagerPolicy": "none", "cpuManagerPolicyOptions": {"full-pcpus-only": "true"}})
    assert r.status == Status.INVALID
    assert "None policy: received unsupported options=map[full-pcpus-only:true]" in r.reason


def test_raise_if_invalid_names_file_path_combination_and_reason():
    m = matrix_from_text(
        textwrap.dedent(
            """\
            name: t
            axes:
              cpu: {static: {cpuManagerPolicy: static}}
              topology:
                ok: {topologyManagerPolicy: restricted}
                bogus: {topologyManagerPolicy: bogus}
                bogus2: {topologyManagerPolicy: bogus2}
            """
        ),
        "m.yaml",
    )
    resolved = resolve(m, BASE, topo(), 37)
    assert [r.status for r in resolved] == [Status.OK, Status.INVALID, Status.INVALID]
    with pytest.raises(InputError) as exc:
        raise_if_invalid(resolved, m.source)
    assert exc.value.where == "m.yaml: axes.topology.bogus.topologyManagerPolicy"
    assert exc.value.what.startswith("combination 'static.bogus': the kubelet would refuse it: ")
    assert '"bogus" must be one of' in exc.value.what
    assert exc.value.what.endswith("also invalid: static.bogus2")
    raise_if_invalid(resolved[:1], m.source)  # nothing invalid: no error


def test_invalid_because_of_the_node_config_says_so():
    base = from_dict({"systemReserved": {"memory": "256Mi"}})  # no CPU reservation at all
    resolved = resolve(matrix(STATIC), base, topo(), 37)
    assert resolved[0].status == Status.INVALID
    with pytest.raises(InputError) as exc:
        raise_if_invalid(resolved, "m.yaml")
    assert exc.value.where == "m.yaml: include[0]"
    assert "unable to determine reserved CPU resources" in exc.value.what
    assert "comes from the node's configuration" in exc.value.what


def test_more_than_eight_numa_nodes_without_max_allowable_is_invalid():
    nine = load_lab_profile("nine-numa").topology
    r = one({**STATIC, "topologyManagerPolicy": "best-effort"}, topology=nine)
    assert r.status == Status.INVALID
    assert "unsupported on machines with more than 8 NUMA Nodes" in r.reason


def test_option_of_a_later_kubelet_is_unsupported_an_unknown_one_invalid():
    tm = {**STATIC, "topologyManagerPolicy": "best-effort"}
    r = one({**tm, "topologyManagerPolicyOptions": {"max-allowable-numa-nodes": "16"}}, minor=30)
    assert (r.status, r.code) == (Status.UNSUPPORTED, "needs-kubernetes:1.31")
    assert "1.30 does not have the option max-allowable-numa-nodes (1.31)" in r.reason
    r = one({**tm, "topologyManagerPolicyOptions": {"no-such-option": "true"}}, minor=30)
    assert (r.status, r.code) == (Status.INVALID, "tm.option-unknown")


# ---- unsupported: one topology that triggers each rule, one that does not -------------------
SINGLE = topo(sockets=1, cores=4)
NO_SMT = topo(threads=1, cores=4)
FOUR_UNIFORM = topo(sockets=4, cores=1)
FOUR_UNEQUAL = load_lab_profile("four-numa").topology
NINE = load_lab_profile("nine-numa").topology
ALPHA = {"featureGates": {"CPUManagerPolicyAlphaOptions": True}}

RULES = [
    # (fragment, hugepages, triggering topology, code, topology where it runs)
    (
        {**STATIC, "cpuManagerPolicyOptions": {"full-pcpus-only": "true"}},
        None,
        NO_SMT,
        "needs-smt",
        topo(),
    ),
    (
        {**STATIC, **ALPHA, "cpuManagerPolicyOptions": {"distribute-cpus-across-cores": "true"}},
        None,
        NO_SMT,
        "needs-smt",
        topo(),
    ),
    (
        {**STATIC, "cpuManagerPolicyOptions": {"distribute-cpus-across-numa": "true"}},
        None,
        SINGLE,
        "needs-numa-nodes:2",
        topo(),
    ),
    (
        {
            **STATIC,
            **ALPHA,
            "topologyManagerPolicy": "best-effort",
            "cpuManagerPolicyOptions": {"align-by-socket": "true"},
        },
        None,
        topo(),  # 2 sockets x 1 NUMA node
        "needs-numa-per-socket:2",
        topo(sockets=1, numa_per_socket=2),
    ),
    (
        {
            **STATIC,
            "topologyManagerPolicy": "restricted",
            "topologyManagerPolicyOptions": {"prefer-closest-numa-nodes": "true"},
        },
        None,
        topo(),
        "needs-numa-nodes:3",
        FOUR_UNEQUAL,
    ),
    (
        {
            **STATIC,
            "topologyManagerPolicy": "best-effort",
            "topologyManagerPolicyOptions": {"prefer-closest-numa-nodes": "true"},
        },
        None,
        FOUR_UNIFORM,
        "needs-unequal-numa-distances",
        FOUR_UNEQUAL,
    ),
    (
        {
            **STATIC,
            "topologyManagerPolicy": "best-effort",
            "topologyManagerPolicyOptions": {"max-allowable-numa-nodes": "9"},
        },
        None,
        topo(),
        "needs-numa-nodes:9",
        NINE,
    ),
    ({**STATIC, "topologyManagerPolicy": "restricted"}, None, SINGLE, "needs-numa-nodes:2", topo()),
    ({**STATIC, "memoryManagerPolicy": "Static"}, None, SINGLE, "needs-numa-nodes:2", topo()),
    (STATIC, ["1Gi"], topo(), "needs-hugepages:1Gi", topo(hugepages={"2Mi": 8, "1Gi": 1})),
    (STATIC, ["2Mi"], topo(hugepages={}), "needs-hugepages:2Mi", topo()),
    (STATIC, ["2Mi"], topo(hugepages={"2Mi": 0}), "needs-hugepages:2Mi", topo()),
]


@pytest.mark.parametrize(
    ("kubelet", "hugepages", "bad", "code", "good"),
    RULES,
    ids=[f"{i}-{r[3]}" for i, r in enumerate(RULES)],
)
def test_unsupported_rules(kubelet, hugepages, bad, code, good):
    r = one(kubelet, topology=bad, hugepages=hugepages)
    assert (r.status, r.code) == (Status.UNSUPPORTED, code), r.reason
    assert r.reason and not r.reason.endswith(".")
    r = one(kubelet, topology=good, hugepages=hugepages)
    assert r.status == Status.OK, r.reason


def test_single_numa_node_static_cpu_alone_is_runnable():
    assert one(STATIC, topology=SINGLE).status == Status.OK


def test_hugepages_all_reserved_for_the_system_are_unsupported():
    base = from_dict(
        {"reservedSystemCPUs": "0", "systemReserved": {"memory": "256Mi", "hugepages-2Mi": "4Mi"}}
    )
    r = one(STATIC, topology=topo(sockets=1, hugepages={"2Mi": 2}), base=base, hugepages=["2Mi"])
    assert (r.status, r.code) == (Status.UNSUPPORTED, "needs-hugepages:2Mi")
    assert "4Mi of them reserved" in r.reason
    r = one(STATIC, topology=topo(sockets=1, hugepages={"2Mi": 3}), base=base, hugepages=["2Mi"])
    assert r.status == Status.OK


def test_lab_lists_1gi_without_pages():
    r = one(STATIC, topology=LAB.topology, base=LAB_BASE, hugepages=["1Gi"])
    assert (r.status, r.code) == (Status.UNSUPPORTED, "needs-hugepages:1Gi")
    r = one(STATIC, topology=topo(hugepages={"2Mi": 4}), hugepages=["1Gi"])
    assert "offers no such size (sizes: 2Mi)" in r.reason


def test_prefer_closest_under_single_numa_node_is_ok_with_a_warning():
    r = one(
        {
            **STATIC,
            "topologyManagerPolicy": "single-numa-node",
            "topologyManagerPolicyOptions": {"prefer-closest-numa-nodes": "true"},
        }
    )
    assert r.status == Status.OK
    assert any("no effect under single-numa-node" in w for w in r.warnings)


def test_unsupported_reason_direct():
    cfg = from_dict({**STATIC, "reservedSystemCPUs": "0"})
    assert unsupported_reason(cfg, topo()) is None
    assert unsupported_reason(cfg, topo(), ("1Gi",))[0] == "needs-hugepages:1Gi"


def test_runnable_keeps_order():
    m = matrix_from_text(
        "name: t\naxes:\n  topology:\n    a: {topologyManagerPolicy: restricted}\n"
        "    b: {topologyManagerPolicy: bogus}\n    c: {topologyManagerPolicy: none}\n",
        "m.yaml",
    )
    assert [r.id for r in runnable(resolve(m, BASE, topo(), 37))] == ["a", "c"]
