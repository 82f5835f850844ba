"""policy_token / policy_line, skip reason classes, and the topology summary."""

from __future__ import annotations

import pytest

from numacert.reports.policy import policy_line, policy_token
from numacert.reports.skips import SkipClass, describe_skip, skip_class, skip_kind
from numacert.reports.topology_view import human_bytes, numa_rows, topology_line
from numacert.topology.generate import generate

FULL = {
    "cpu_manager": "static",
    "cpu_manager_options": {"full-pcpus-only": "true"},
    "topology_manager": "single-numa-node",
    "topology_scope": "pod",
    "topology_manager_options": {},
    "memory_manager": "Static",
    "reserved_cpus": "0",
}


@pytest.mark.parametrize(
    ("policy", "token"),
    [
        (FULL, "static+full-pcpus-only_single-numa-node-pod_Static"),
        (
            {
                "cpu_manager": "none",
                "topology_manager": "none",
                "topology_scope": "container",
                "memory_manager": "None",
            },
            "none_none-container_None",
        ),
        (
            {
                **FULL,
                "cpu_manager_options": {
                    "full-pcpus-only": "true",
                    "distribute-cpus-across-numa": "false",
                    "align-by-socket": True,
                },
                "topology_manager": "best-effort",
                "topology_manager_options": {
                    "prefer-closest-numa-nodes": "true",
                    "max-allowable-numa-nodes": "16",
                },
            },
            "static+align-by-socket+full-pcpus-only_best-effort-pod"
            "+max-allowable-numa-nodes=16+prefer-closest-numa-nodes_Static",
        ),
        ({"cpu_manager": "static"}, "static_unknown-unknown_unknown"),
        ({}, "unknown"),
        (None, "unknown"),
        ({"cpu_manager": "odd name_v1.2"}, "odd-name-v1-2_unknown-unknown_unknown"),
    ],
)
def test_policy_token(policy, token):
    assert policy_token(policy) == token


def test_policy_token_has_no_dots_or_spaces_and_three_parts():
    token = policy_token({**FULL, "cpu_manager_options": {"a.b c_d": "x.y"}})
    assert "." not in token and " " not in token
    assert len(token.split("_")) == 3


def test_policy_line_is_readable():
    assert policy_line(FULL) == (
        "CPU static (full-pcpus-only) · TM single-numa-node/pod · MM Static · reserved CPUs 0"
    )
    assert policy_line({}) == "unknown policy"


@pytest.mark.parametrize(
    ("reason", "kind", "cls"),
    [
        ("not-applicable:topology_manager=none", "not-applicable", SkipClass.NOT_REQUIRED),
        ("needs-require", "needs-require", SkipClass.NOT_REQUIRED),
        ("needs-numa-nodes:2", "needs-numa-nodes", SkipClass.HARDWARE),
        ("needs-smt", "needs-smt", SkipClass.HARDWARE),
        ("needs-hugepages:2Mi", "needs-hugepages", SkipClass.HARDWARE),
        ("needs-free-cpus:4", "needs-free-cpus", SkipClass.HARDWARE),
        ("needs-node-access", "needs-node-access", SkipClass.BLOCKING),
        ("needs-cgroup-v2", "needs-cgroup-v2", SkipClass.BLOCKING),
        (None, "", SkipClass.BLOCKING),
    ],
)
def test_skip_classes(reason, kind, cls):
    assert skip_kind(reason) == kind
    assert skip_class(reason) is cls


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("needs-numa-nodes:3", "needs 3 NUMA nodes"),
        ("needs-hugepages:1Gi", "needs 1Gi hugepages"),
        ("needs-free-cpus:4", "needs 4 free CPUs"),
        ("needs-smt", "needs SMT"),
        ("not-applicable:topology_manager=none", "not applicable: topology_manager=none"),
        ("needs-node-access", "needs node access"),
        ("something-new:x", "something-new:x"),
        (None, "skipped without a reason"),
    ],
)
def test_describe_skip(reason, text):
    assert describe_skip(reason) == text


def test_topology_line_and_rows_from_a_generated_topology():
    topo = generate(
        sockets=2,
        numa_per_socket=1,
        cores_per_numa=4,
        threads_per_core=2,
        memory_per_numa=8 * 2**30,
        hugepages_per_numa={"2Mi": 64},
    ).to_dict()
    assert topology_line(topo) == (
        "2 sockets · 2 NUMA nodes · 8 CPUs per NUMA node · 2 threads per core"
        " · hugepages 2Mi×64 per node"
    )
    rows = numa_rows(topo)
    assert [(r.id, r.cpu_count, r.memory, r.hugepages) for r in rows] == [
        (0, 8, "8.0 GiB", "2Mi×64"),
        (1, 8, "8.0 GiB", "2Mi×64"),
    ]
    assert rows[0].cpus.count("-") >= 1  # list syntax, e.g. 0-3,8-11


def test_topology_line_with_uneven_nodes_and_no_hugepages():
    topo = {
        "cpus": [
            {"id": 0, "socket": 0, "numa": 0, "core": 0},
            {"id": 1, "socket": 0, "numa": 0, "core": 1},
            {"id": 2, "socket": 0, "numa": 1, "core": 2},
        ],
        "numa": [
            {"id": 0, "memory": 1024, "hugepages": {"2097152": 4}},
            {"id": 1, "memory": 0, "hugepages": {}},
            {"id": 2, "memory": 0, "hugepages": {}},
        ],
    }
    assert topology_line(topo) == (
        "1 socket · 3 NUMA nodes · CPUs per NUMA node 2/1/0 · 1 thread per core"
        " · hugepages node 0: 2Mi×4, node 1: none, node 2: none"
    )
    assert numa_rows(topo)[2].cpus == "none"


def test_missing_or_broken_topology_does_not_raise():
    assert topology_line(None) == "topology not discovered"
    assert topology_line({"cpus": [{"id": 0}], "numa": []}) == "unreadable topology"
    assert numa_rows({"numa": "x"}) == []


def test_human_bytes():
    assert [human_bytes(v) for v in (512, 2048, 3 * 2**30)] == ["512 B", "2.0 KiB", "3.0 GiB"]
