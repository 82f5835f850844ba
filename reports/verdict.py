"""The verdict per node and policy, from the check records and the catalogue. Pure: no I/O.

- NOT CERTIFIED: at least one record failed (this wins over everything else).
- INCOMPLETE: a record errored, a required check was skipped (needs-node-access or a skip kind
  this version does not know), a catalogue check has no record at all for the node (deselected,
  interrupted), the node's discovery failed, or the run was interrupted.
- CERTIFIED: none of the above: every required check ran and passed.

A check skipped as not applicable (or for want of --require) is not required; one the hardware
cannot exercise (too few NUMA nodes, no SMT, ...) is not required either but is listed as "not
exercised" with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from numacert.reports.catalogue import CheckSpec
from numacert.reports.policy import policy_token
from numacert.reports.results import CheckRecord, NodeInfo, Results
from numacert.reports.skips import SkipClass, describe_skip, skip_class

NOT_RUN = "not-run"  # the aggregated status of a catalogue check without any record
COUNTED = ("passed", "failed", "error", "skipped", NOT_RUN)


class Verdict(StrEnum):
    CERTIFIED = "CERTIFIED"
    NOT_CERTIFIED = "NOT CERTIFIED"
    INCOMPLETE = "INCOMPLETE"

    @property
    def css(self) -> str:
        """certified | not-certified | incomplete (HTML class names)."""
        return self.value.lower().replace(" ", "-")


@dataclass(frozen=True)
class NotExercised:
    """A case the node's hardware could not exercise."""

    check: str
    case: str | None
    skip_reason: str

    @property
    def label(self) -> str:
        return f"{self.check}[{self.case}]" if self.case else self.check

    @property
    def description(self) -> str:
        return describe_skip(self.skip_reason)


@dataclass(frozen=True)
class CheckVerdict:
    """One check on one node and policy, its cases aggregated."""

    check: str
    title: str | None  # None for a check id the catalogue does not know
    status: str  # passed | failed | error | skipped | not-run
    reasons: tuple[str, ...]
    not_exercised: tuple[NotExercised, ...]
    records: tuple[CheckRecord, ...]
    blocking: bool  # required but not passed: keeps the node from CERTIFIED


@dataclass(frozen=True)
class NodeVerdict:
    node: str
    policy: str  # policy_token(...)
    policy_settings: dict[str, Any]  # the node's policy dict; {} when it is not this token's
    kubelet_version: str | None
    topology_fingerprint: str | None
    status: Verdict
    causes: tuple[str, ...]  # one line per reason the node is not CERTIFIED
    checks: tuple[CheckVerdict, ...]

    @property
    def not_exercised(self) -> tuple[NotExercised, ...]:
        return tuple(n for c in self.checks for n in c.not_exercised)

    @property
    def failures(self) -> tuple[CheckRecord, ...]:
        return tuple(r for c in self.checks for r in c.records if r.status == "failed")

    def counts(self) -> dict[str, int]:
        """Checks per aggregated status."""
        return {s: sum(1 for c in self.checks if c.status == s) for s in COUNTED}

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "policy": self.policy,
            "policy_settings": self.policy_settings,
            "kubelet_version": self.kubelet_version,
            "topology_fingerprint": self.topology_fingerprint,
            "verdict": self.status.value,
            "causes": list(self.causes),
            "counts": self.counts(),
            "checks": [_check_dict(c) for c in self.checks],
            "not_exercised": [_not_exercised_dict(n) for n in self.not_exercised],
        }


def verdict(results: Results, catalogue: list[CheckSpec]) -> list[NodeVerdict]:
    """One NodeVerdict per (node, policy token), nodes in results order."""
    out = []
    for (node, token), records in _groups(results).items():
        info = results.nodes.get(node)
        out.append(_node_verdict(node, token, info, records, catalogue, results.interrupted))
    return out


def exit_code(verdicts: list[NodeVerdict]) -> int:
    """0 all CERTIFIED, 1 any NOT CERTIFIED, 3 any INCOMPLETE, 2 nothing to certify."""
    if not verdicts:
        return 2
    statuses = {v.status for v in verdicts}
    if Verdict.NOT_CERTIFIED in statuses:
        return 1
    if Verdict.INCOMPLETE in statuses:
        return 3
    return 0


def overall(verdicts: list[NodeVerdict]) -> str:
    """The run's verdict in one phrase, matching exit_code."""
    return {0: "CERTIFIED", 1: "NOT CERTIFIED", 3: "INCOMPLETE"}.get(
        exit_code(verdicts), "NOTHING TO CERTIFY"
    )


def aggregate_status(records: list[CheckRecord]) -> str:
    """A check's status over its cases: failed > error > passed (the rest skipped but not
    blocking) > skipped; not-run without records."""
    if not records:
        return NOT_RUN
    statuses = {r.status for r in records}
    for status in ("failed", "error"):
        if status in statuses:
            return status
    if "passed" in statuses and not any(_blocking_skip(r) for r in records):
        return "passed"
    return "skipped"


def _groups(results: Results) -> dict[tuple[str, str], list[CheckRecord]]:
    """Records keyed by (node, token); a node without records still gets its own group."""
    groups: dict[tuple[str, str], list[CheckRecord]] = {}
    for name, info in results.nodes.items():
        if not any(r.node == name for r in results.checks):
            groups[(name, policy_token(info.policy))] = []
    for r in results.checks:
        info = results.nodes.get(r.node)
        token = r.policy or policy_token(info.policy if info else None)
        groups.setdefault((r.node, token), []).append(r)
    order = {name: i for i, name in enumerate(results.nodes)}
    return dict(sorted(groups.items(), key=lambda kv: order.get(kv[0][0], len(order))))


def _node_verdict(
    node: str,
    token: str,
    info: NodeInfo | None,
    records: list[CheckRecord],
    catalogue: list[CheckSpec],
    interrupted: bool,
) -> NodeVerdict:
    checks = _check_verdicts(records, catalogue)
    failed = [f"{c.check}: failed" for c in checks if c.status == "failed"]
    incomplete = _node_causes(info, records, interrupted) + [
        f"{c.check}: {_blocking_text(c)}" for c in checks if c.blocking and c.status != "failed"
    ]
    status = (
        Verdict.NOT_CERTIFIED if failed else Verdict.INCOMPLETE if incomplete else Verdict.CERTIFIED
    )
    settings = info.policy if info and policy_token(info.policy) == token else {}
    return NodeVerdict(
        node=node,
        policy=token,
        policy_settings=dict(settings),
        kubelet_version=info.kubelet_version if info else None,
        topology_fingerprint=info.topology_fingerprint if info else None,
        status=status,
        causes=tuple(failed + incomplete),
        checks=tuple(checks),
    )


def _node_causes(info: NodeInfo | None, records: list[CheckRecord], interrupted: bool) -> list[str]:
    causes = []
    if interrupted:
        causes.append("the run was interrupted")
    if info is None:
        causes.append("the node has records but no discovery entry in results")
    elif info.error:
        causes.append(f"discovery failed: {info.error}")
    if not records:
        causes.append("no check ran on this node")
    return causes


def _check_verdicts(records: list[CheckRecord], catalogue: list[CheckSpec]) -> list[CheckVerdict]:
    by_check: dict[str, list[CheckRecord]] = {spec.id: [] for spec in catalogue}
    for r in records:
        by_check.setdefault(r.check, []).append(r)
    titles = {spec.id: spec.title for spec in catalogue}
    return [_check_verdict(cid, titles.get(cid), rs) for cid, rs in by_check.items()]


def _check_verdict(check: str, title: str | None, records: list[CheckRecord]) -> CheckVerdict:
    status = aggregate_status(records)
    blocking = status in ("failed", "error", NOT_RUN) or (
        status == "skipped" and any(_blocking_skip(r) for r in records)
    )
    return CheckVerdict(
        check=check,
        title=title,
        status=status,
        reasons=_reasons(status, records),
        not_exercised=tuple(
            NotExercised(check, r.case, r.skip_reason or "")
            for r in records
            if r.status == "skipped" and skip_class(r.skip_reason) is SkipClass.HARDWARE
        ),
        records=tuple(records),
        blocking=blocking,
    )


def _reasons(status: str, records: list[CheckRecord]) -> tuple[str, ...]:
    """The lines that explain the status: failures, errors, or skips (blocking ones first)."""
    if status == NOT_RUN:
        return ("no result: the check did not run (deselected or interrupted)",)
    if status in ("failed", "error"):
        picked = [r for r in records if r.status == status]
    elif status == "skipped":
        picked = sorted(
            (r for r in records if r.status == "skipped"), key=lambda r: not _blocking_skip(r)
        )
    else:
        return ()
    return tuple(_reason_line(r) for r in picked)


def _reason_line(record: CheckRecord) -> str:
    if record.status == "skipped":
        text = describe_skip(record.skip_reason)
    else:
        text = _one_line(record.reason) or f"{record.status} (no message)"
    return f"{record.case}: {text}" if record.case else text


def _blocking_text(check: CheckVerdict) -> str:
    if check.status == "skipped":
        first = next(r for r in check.records if _blocking_skip(r))
        return f"required but skipped: {describe_skip(first.skip_reason)}"
    if check.status == "error":
        return "error"
    return "did not run"


def _blocking_skip(record: CheckRecord) -> bool:
    return record.status == "skipped" and skip_class(record.skip_reason) is SkipClass.BLOCKING


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _check_dict(check: CheckVerdict) -> dict[str, Any]:
    return {
        "check": check.check,
        "status": check.status,
        "reasons": list(check.reasons),
        "not_exercised": [_not_exercised_dict(n) for n in check.not_exercised],
        "cases": [
            {"case": r.case, "status": r.status, "skip_reason": r.skip_reason}
            for r in check.records
        ],
    }


def _not_exercised_dict(item: NotExercised) -> dict[str, Any]:
    return {
        "check": item.check,
        "case": item.case,
        "skip_reason": item.skip_reason,
        "description": item.description,
    }
