"""Spread the runnable combinations of a matrix over the nodes under test.

Each node runs one combination at a time (reconfigure, certify, next); nodes run in parallel.
The order is deterministic and balanced: combination i (in matrix order) goes to node
i mod N as that node's round i div N + 1, so no node gets more than one combination more than
another, and the same matrix on the same node list always gives the same plan.

Rounds are the plan as people read it ("round 2: node-b runs X"); a node does not wait for the
others to finish a round, it works through its own queue (see queues()).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from numacert.errors import InputError
from numacert.kubelet.config import KubeletConfig
from numacert.matrix.resolve import Resolved, Status


@dataclass(frozen=True)
class Assignment:
    """Combination `resolved` is the `round`-th (1-based) one `node` runs."""

    round: int
    node: str
    resolved: Resolved

    @property
    def combination_id(self) -> str:
        return self.resolved.combination.id


def schedule(runnable: Sequence[Resolved], nodes: Sequence[str]) -> list[list[Assignment]]:
    """The rounds: in each, every node runs at most one combination (round-robin over `nodes`
    in the order given). Every combination must be runnable (status ok)."""
    if not nodes:
        raise InputError("no nodes to run the matrix on")
    seen: set[str] = set()
    for n in nodes:
        if n in seen:
            raise InputError(f"node {n!r} is named twice")
        seen.add(n)
    not_ok = [r.combination.id for r in runnable if r.status != Status.OK]
    if not_ok:
        raise ValueError(f"not runnable: {', '.join(not_ok)}")
    rounds: list[list[Assignment]] = []
    for i, r in enumerate(runnable):
        if i % len(nodes) == 0:
            rounds.append([])
        rounds[-1].append(Assignment(i // len(nodes) + 1, nodes[i % len(nodes)], r))
    return rounds


def queues(rounds: list[list[Assignment]]) -> dict[str, list[Resolved]]:
    """Each node's combinations in the order it runs them (nodes that got none are absent)."""
    out: dict[str, list[Resolved]] = {}
    for assignments in rounds:
        for a in assignments:
            out.setdefault(a.node, []).append(a.resolved)
    return out


def policy_cells(config: KubeletConfig) -> tuple[str, str, str, str]:
    """(cpu manager, topology manager, scope, memory manager) for a table, options appended:
    "static+full-pcpus-only", "best-effort+max-allowable-numa-nodes=16"."""

    def with_options(policy: str, options: dict[str, str]) -> str:
        parts = [policy]
        for name, value in sorted(options.items()):
            if value in ("true", "True", "TRUE", "t", "T", "1"):
                parts.append(name)
            elif value not in ("false", "False", "FALSE", "f", "F", "0"):
                parts.append(f"{name}={value}")
        return "+".join(parts)

    return (
        with_options(config.cpu_manager_policy, config.cpu_manager_policy_options),
        with_options(config.topology_manager_policy, config.topology_manager_policy_options),
        config.topology_manager_scope,
        config.memory_manager_policy,
    )


PLAN_COLUMNS = (
    "round",
    "node",
    "combination",
    "cpu manager",
    "topology manager",
    "scope",
    "memory manager",
    "hugepages",
)


def plan_rows(rounds: list[list[Assignment]]) -> list[tuple[str, ...]]:
    """One row per assignment, round by round, cells as PLAN_COLUMNS (`numacert plan
    --matrix`)."""
    rows = []
    for assignments in rounds:
        for a in assignments:
            hugepages = ", ".join(a.resolved.combination.hugepages) or "-"
            rows.append(
                (
                    str(a.round),
                    a.node,
                    a.combination_id,
                    *policy_cells(a.resolved.config),
                    hugepages,
                )
            )
    return rows


STATUS_COLUMNS = ("combination", "status", "code", "reason")


def status_rows(resolved: Sequence[Resolved]) -> list[tuple[str, str, str, str]]:
    """One row per combination, cells as STATUS_COLUMNS: what will not run, and why."""
    return [(r.combination.id, str(r.status), r.code or "", r.reason or "") for r in resolved]
