"""Spreading combinations over nodes (numacert.matrix.schedule)."""

from __future__ import annotations

from collections import Counter

import pytest

from numacert.errors import InputError
from numacert.kubelet.parse import from_dict
from numacert.matrix.resolve import Resolved, Status
from numacert.matrix.schedule import (
    PLAN_COLUMNS,
    STATUS_COLUMNS,
    plan_rows,
    policy_cells,
    queues,
    schedule,
    status_rows,
)
from numacert.matrix.spec import Combination


def resolved(i: int, status: Status = Status.OK) -> Resolved:
    c = Combination(f"c{i}", {}, ("2Mi",) if i == 0 else (), {})
    config = from_dict({"cpuManagerPolicy": "static", "reservedSystemCPUs": "0"})
    return Resolved(c, config, status, None if status == Status.OK else "why", None)


@pytest.mark.parametrize(("combinations", "nodes"), [(7, 3), (6, 3), (2, 5), (1, 1), (10, 4)])
def test_one_per_node_per_round_balanced_and_complete(combinations, nodes):
    items = [resolved(i) for i in range(combinations)]
    names = [f"node-{n}" for n in range(nodes)]
    rounds = schedule(items, names)
    for number, assignments in enumerate(rounds, start=1):
        assert all(a.round == number for a in assignments)
        assert len({a.node for a in assignments}) == len(assignments) <= nodes
    flat = [a.resolved for r in rounds for a in r]
    assert flat == items  # every combination once, in matrix order
    counts = Counter(a.node for r in rounds for a in r)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert len(rounds) == -(-combinations // nodes)


def test_deterministic_and_per_node_queues():
    items = [resolved(i) for i in range(5)]
    a = schedule(items, ["x", "y"])
    assert a == schedule(list(items), ["x", "y"])
    q = queues(a)
    assert [r.id for r in q["x"]] == ["c0", "c2", "c4"]
    assert [r.id for r in q["y"]] == ["c1", "c3"]


def test_no_combinations_no_rounds():
    assert schedule([], ["x"]) == []


def test_bad_input():
    with pytest.raises(InputError, match="no nodes"):
        schedule([resolved(0)], [])
    with pytest.raises(InputError, match="named twice"):
        schedule([resolved(0)], ["x", "x"])
    with pytest.raises(ValueError, match="not runnable: c1"):
        schedule([resolved(0), resolved(1, Status.UNSUPPORTED)], ["x"])


def test_rows():
    rounds = schedule([resolved(0), resolved(1)], ["x"])
    rows = plan_rows(rounds)
    assert rows == [
        ("1", "x", "c0", "static", "none", "container", "None", "2Mi"),
        ("2", "x", "c1", "static", "none", "container", "None", "-"),
    ]
    assert all(len(r) == len(PLAN_COLUMNS) for r in rows)
    bad = resolved(2, Status.UNSUPPORTED)
    assert status_rows([bad]) == [("c2", "unsupported", "", "why")]
    assert len(STATUS_COLUMNS) == 4


def test_policy_cells_show_options():
    config = from_dict(
        {
            "cpuManagerPolicy": "static",
            "cpuManagerPolicyOptions": {"full-pcpus-only": "true", "align-by-socket": "false"},
            "topologyManagerPolicy": "best-effort",
            "topologyManagerPolicyOptions": {"max-allowable-numa-nodes": "16"},
            "topologyManagerScope": "pod",
            "memoryManagerPolicy": "Static",
        }
    )
    assert policy_cells(config) == (
        "static+full-pcpus-only",
        "best-effort+max-allowable-numa-nodes=16",
        "pod",
        "Static",
    )
