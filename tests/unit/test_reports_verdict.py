"""The verdict rules: CERTIFIED, NOT CERTIFIED, INCOMPLETE, case aggregation, exit codes."""

from __future__ import annotations

import pytest

from numacert.reports.catalogue import CheckSpec
from numacert.reports.policy import policy_token
from numacert.reports.results import CheckRecord, NodeInfo, Results
from numacert.reports.verdict import (
    NOT_RUN,
    Verdict,
    aggregate_status,
    exit_code,
    overall,
    verdict,
)

NODE = "127.0.0.2"
POLICY = {
    "cpu_manager": "static",
    "cpu_manager_options": {"full-pcpus-only": "true"},
    "topology_manager": "single-numa-node",
    "topology_scope": "pod",
    "topology_manager_options": {},
    "memory_manager": "Static",
}
TOKEN = policy_token(POLICY)


def spec(check: str) -> CheckSpec:
    return CheckSpec(id=check, area="x", kind="behaviour", title=f"{check} title", proves="p")


CATALOGUE = [spec("A"), spec("B"), spec("C")]


def rec(
    check: str,
    status: str = "passed",
    case: str | None = None,
    skip: str | None = None,
    reason: str | None = None,
    node: str = NODE,
    policy: str = TOKEN,
) -> CheckRecord:
    return CheckRecord(
        check=check,
        node=node,
        policy=policy,
        status=status,
        case=case,
        reason=reason,
        skip_reason=skip,
    )


def run(*records: CheckRecord, interrupted: bool = False, error: str | None = None) -> Results:
    info = NodeInfo(
        name=NODE, kubelet_version="v1.37.2", topology_fingerprint="fp", policy=POLICY, error=error
    )
    return Results(nodes={NODE: info}, checks=list(records), interrupted=interrupted)


def one(results: Results, catalogue: list[CheckSpec] = CATALOGUE):
    verdicts = verdict(results, catalogue)
    assert len(verdicts) == 1
    return verdicts[0]


def all_passed(*extra: CheckRecord) -> Results:
    return run(rec("A"), rec("B"), rec("C"), *extra)


# ---- CERTIFIED -----------------------------------------------------------------------------


def test_all_passed_is_certified_and_carries_the_node_facts():
    v = one(all_passed())
    assert v.status is Verdict.CERTIFIED
    assert v.causes == ()
    assert (v.node, v.policy, v.kubelet_version, v.topology_fingerprint) == (
        NODE,
        TOKEN,
        "v1.37.2",
        "fp",
    )
    assert v.policy_settings == POLICY
    assert [c.status for c in v.checks] == ["passed"] * 3


@pytest.mark.parametrize(
    "skip",
    ["not-applicable:topology_manager=best-effort", "not-applicable", "needs-require"],
)
def test_not_applicable_and_needs_require_are_not_required(skip):
    v = one(run(rec("A"), rec("B"), rec("C", "skipped", skip=skip)))
    assert v.status is Verdict.CERTIFIED
    assert v.not_exercised == ()
    assert v.checks[2].status == "skipped" and not v.checks[2].blocking


@pytest.mark.parametrize(
    "skip", ["needs-numa-nodes:2", "needs-smt", "needs-hugepages:1Gi", "needs-free-cpus:4"]
)
def test_hardware_skips_are_not_required_but_listed_as_not_exercised(skip):
    v = one(run(rec("A"), rec("B"), rec("C", "skipped", skip=skip)))
    assert v.status is Verdict.CERTIFIED
    [item] = v.not_exercised
    assert (item.check, item.case, item.skip_reason) == ("C", None, skip)
    assert item.description.startswith("needs ")


def test_a_hardware_skipped_case_of_a_passed_check_is_listed_too():
    v = one(all_passed(rec("C", "skipped", case="1gi", skip="needs-hugepages:1Gi")))
    assert v.status is Verdict.CERTIFIED
    assert v.checks[2].status == "passed"
    assert [n.label for n in v.not_exercised] == ["C[1gi]"]


# ---- NOT CERTIFIED -------------------------------------------------------------------------


def test_one_failed_record_is_not_certified_with_its_reason():
    v = one(run(rec("A"), rec("B", "failed", case="gu", reason="spans NUMA 0,1"), rec("C")))
    assert v.status is Verdict.NOT_CERTIFIED
    assert v.checks[1].reasons == ("gu: spans NUMA 0,1",)
    assert v.causes == ("B: failed",)
    assert [r.case for r in v.failures] == ["gu"]


def test_failure_wins_over_every_incomplete_cause():
    results = run(
        rec("A", "failed", reason="wrong"),
        rec("B", "error", reason="API timeout"),
        rec("C", "skipped", skip="needs-node-access"),
        interrupted=True,
        error="configz unreachable",
    )
    v = one(results, CATALOGUE + [spec("D")])
    assert v.status is Verdict.NOT_CERTIFIED
    # Every cause is still listed, the failure first.
    assert v.causes[0] == "A: failed"
    assert len(v.causes) == 6


def test_a_failed_check_outside_the_catalogue_still_fails_the_node():
    v = one(all_passed(rec("UNKNOWN", "failed", reason="x")))
    assert v.status is Verdict.NOT_CERTIFIED
    assert v.checks[-1].check == "UNKNOWN" and v.checks[-1].title is None


# ---- INCOMPLETE ----------------------------------------------------------------------------


def test_an_error_is_incomplete():
    v = one(run(rec("A"), rec("B", "error", reason="pod never started: timeout 120s"), rec("C")))
    assert v.status is Verdict.INCOMPLETE
    assert v.causes == ("B: error",)
    assert v.checks[1].reasons == ("pod never started: timeout 120s",)


@pytest.mark.parametrize("skip", ["needs-node-access", "needs-kernel:6.1", "", None])
def test_a_required_check_skipped_is_incomplete(skip):
    v = one(run(rec("A"), rec("B"), rec("C", "skipped", skip=skip)))
    assert v.status is Verdict.INCOMPLETE
    assert v.checks[2].blocking
    assert v.causes[0].startswith("C: required but skipped")


def test_a_catalogue_check_without_any_record_is_incomplete():
    v = one(run(rec("A"), rec("B")))
    assert v.status is Verdict.INCOMPLETE
    assert v.checks[2].status == NOT_RUN
    assert v.causes == ("C: did not run",)


def test_a_discovery_error_is_incomplete():
    v = one(run(rec("A"), rec("B"), rec("C"), error="cannot read configz: 403"))
    assert v.status is Verdict.INCOMPLETE
    assert v.causes == ("discovery failed: cannot read configz: 403",)


def test_an_interrupted_run_is_incomplete():
    v = one(run(rec("A"), rec("B"), rec("C"), interrupted=True))
    assert v.status is Verdict.INCOMPLETE
    assert v.causes == ("the run was interrupted",)


def test_a_node_without_records_is_incomplete():
    v = one(run())
    assert v.status is Verdict.INCOMPLETE
    assert "no check ran on this node" in v.causes
    assert {c.status for c in v.checks} == {NOT_RUN}


def test_records_of_a_node_missing_from_nodes_are_incomplete():
    results = Results(nodes={}, checks=[rec("A"), rec("B"), rec("C")])
    v = one(results)
    assert v.status is Verdict.INCOMPLETE
    assert v.kubelet_version is None and v.policy_settings == {}


def test_an_unknown_check_skipped_for_node_access_is_incomplete():
    v = one(all_passed(rec("EXTRA", "skipped", skip="needs-node-access")))
    assert v.status is Verdict.INCOMPLETE


# ---- several cases of one check ------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["passed", "failed", "error"], "failed"),
        (["passed", "error", "skipped"], "error"),
        (["passed", "passed"], "passed"),
        (["passed", "skipped:not-applicable:x"], "passed"),
        (["passed", "skipped:needs-numa-nodes:3"], "passed"),
        (["passed", "skipped:needs-node-access"], "skipped"),
        (["passed", "skipped:whatever"], "skipped"),
        (["skipped:needs-smt", "skipped:not-applicable"], "skipped"),
        ([], NOT_RUN),
    ],
)
def test_cases_aggregate(statuses, expected):
    records = []
    for i, s in enumerate(statuses):
        status, _, skip = s.partition(":")
        records.append(rec("A", status, case=f"c{i}", skip=skip or None))
    assert aggregate_status(records) == expected


def test_a_passed_case_does_not_hide_a_blocking_skip_of_another():
    v = one(all_passed(rec("C", "skipped", case="restart", skip="needs-node-access")))
    assert v.status is Verdict.INCOMPLETE
    assert v.checks[2].status == "skipped"
    assert v.checks[2].reasons == ("restart: needs node access",)


def test_a_failed_case_among_passed_fails_the_check():
    v = one(run(rec("A", case="x"), rec("A", "failed", case="y", reason="bad"), rec("B"), rec("C")))
    assert v.status is Verdict.NOT_CERTIFIED
    assert v.checks[0].status == "failed"
    assert v.checks[0].reasons == ("y: bad",)


# ---- grouping ------------------------------------------------------------------------------


def test_one_verdict_per_node_and_policy():
    other = "none_none-container_None"
    results = run(rec("A"), rec("B"), rec("C"), rec("A", policy=other))
    verdicts = verdict(results, CATALOGUE)
    assert [(v.node, v.policy) for v in verdicts] == [(NODE, TOKEN), (NODE, other)]
    assert verdicts[0].status is Verdict.CERTIFIED
    # The node's policy dict belongs to its own token only.
    assert verdicts[1].policy_settings == {}
    assert verdicts[1].status is Verdict.INCOMPLETE


def test_records_without_a_policy_token_take_the_nodes():
    v = one(run(rec("A", policy=""), rec("B", policy=""), rec("C", policy="")))
    assert v.policy == TOKEN and v.status is Verdict.CERTIFIED


def test_to_dict_has_fingerprint_kubelet_and_counts():
    d = one(all_passed(rec("C", "skipped", case="z", skip="needs-smt"))).to_dict()
    assert d["verdict"] == "CERTIFIED"
    assert d["topology_fingerprint"] == "fp" and d["kubelet_version"] == "v1.37.2"
    assert d["counts"] == {"passed": 3, "failed": 0, "error": 0, "skipped": 0, NOT_RUN: 0}
    assert d["not_exercised"][0]["skip_reason"] == "needs-smt"


# ---- exit codes ----------------------------------------------------------------------------


def _verdicts(*statuses: str):
    records = {"ok": [rec("A"), rec("B"), rec("C")], "fail": [rec("A", "failed")], "inc": []}
    out = []
    for i, s in enumerate(statuses):
        node = f"n{i}"
        rs = [rec(r.check, r.status, node=node) for r in records[s]]
        info = NodeInfo(name=node, policy=POLICY)
        out += verdict(Results(nodes={node: info}, checks=rs), CATALOGUE)
    return out


@pytest.mark.parametrize(
    ("statuses", "code", "phrase"),
    [
        ((), 2, "NOTHING TO CERTIFY"),
        (("ok",), 0, "CERTIFIED"),
        (("ok", "ok"), 0, "CERTIFIED"),
        (("ok", "fail"), 1, "NOT CERTIFIED"),
        (("inc", "fail", "ok"), 1, "NOT CERTIFIED"),
        (("ok", "inc"), 3, "INCOMPLETE"),
    ],
)
def test_exit_code(statuses, code, phrase):
    verdicts = _verdicts(*statuses)
    assert exit_code(verdicts) == code
    assert overall(verdicts) == phrase


def test_nothing_to_certify_when_results_are_empty():
    assert exit_code(verdict(Results(nodes={}, checks=[]), CATALOGUE)) == 2
