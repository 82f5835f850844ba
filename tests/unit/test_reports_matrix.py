"""Policy matrix reports: matrix-verdict.json, the merged JUnit, matrix.md and matrix.html.

The fixture output folder is what `numacert run --matrix` leaves: matrix.json and, per
combination that ran, the outputs of write_reports (run here on hand-written results.json and a
pytest-like JUnit file, so the per-combination JUnit is the real rewrite's). Four combinations:
certified, not certified (a failed check with predicted and observed, and the same policy token
as the certified one), unsupported (needs SMT) and error (the apply failed).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import junitparser
import pytest
import xmlschema

from numacert.errors import InputError
from numacert.reports.catalogue import parse_catalogue
from numacert.reports.junit import pytest_address
from numacert.reports.matrix import (
    MATRIX_JSON,
    Combination,
    Matrix,
    load_matrix,
    load_run,
    matrix_exit_code,
    matrix_summary_table,
    matrix_verdict,
    parse_matrix,
    write_matrix_reports,
)
from numacert.reports.matrix_junit import fragment_policy
from numacert.reports.policy import policy_token
from numacert.reports.results import parse_results
from numacert.reports.verdict import Verdict
from numacert.reports.write import write_reports

DATA = Path(__file__).parent / "data"
XSD = DATA / "junit-10.xsd"
CATALOGUE = parse_catalogue((DATA / "reports" / "catalogue.yaml").read_text(), "catalogue.yaml")
CHECK_IDS = [s.id for s in CATALOGUE]
NODE = "127.0.0.2"
POLICY = {
    "cpu_manager": "static",
    "cpu_manager_options": {},
    "topology_manager": "single-numa-node",
    "topology_scope": "pod",
    "topology_manager_options": {},
    "memory_manager": "Static",
    "reserved_cpus": "0",
}
TOKEN = policy_token(POLICY)  # static_single-numa-node-pod_Static
CLASSNAME = f"127-0-0-2.{TOKEN}"
FRAGMENT = {
    "cpuManagerPolicy": "static",
    "topologyManagerPolicy": "single-numa-node",
    "topologyManagerScope": "pod",
    "memoryManagerPolicy": "Static",
}

OK = "static.single-numa-node-pod.static.none"
BAD = "static.single-numa-node-pod.static.2mi"  # same policy token as OK: only hugepages differ
SMT = "static+full-pcpus-only.restricted-pod.static.none"
ERR = "none.none-container.none.none"
SMT_REASON = "needs-smt | needs SMT (2+ threads per core), the node has 1"
ERR_REASON = "apply failed: kubelet on 127.0.0.2 did not become Ready in 120s"
PREDICTED = {"cpus": "2-5", "numa_affinity": [0]}
OBSERVED = {"cpus": "2-3,8-9", "numa_affinity": [0, 1]}


def _record(check, status="passed", case=None, skip=None, reason=None, **kw) -> dict:
    test = f"test_{check.lower().replace('-', '_')}[{NODE}{'-' + case if case else ''}]"
    return {
        "check": check,
        "node": NODE,
        "policy": TOKEN,
        "case": case,
        "status": status,
        "reason": reason,
        "skip_reason": skip,
        "nodeid": f"suites/test_{check.lower()}.py::{test}",
        "duration": 0.5,
        **kw,
    }


def _records(tm_align_4cpu: str = "passed", cfg_state: dict | None = None) -> list[dict]:
    failed = tm_align_4cpu == "failed"
    return [
        _record("CPU-EXCLUSIVE", case="gu-2cpu"),
        _record("CPU-SMT", "skipped", skip="not-applicable:cpu_manager_options"),
        _record("TM-ALIGN", case="gu-2cpu"),
        _record(
            "TM-ALIGN",
            tm_align_4cpu,
            case="gu-4cpu",
            reason="container c1 of pod gu-4cpu spans NUMA nodes 0,1" if failed else None,
            predicted=PREDICTED,
            observed=OBSERVED,
        ),
        _record("TM-CLOSEST", "skipped", skip="not-applicable:topology_manager"),
        _record("CFG-POLICY", "skipped", skip="needs-require"),
        cfg_state or _record("CFG-STATE"),
    ]


def _results(records: list[dict], interrupted: bool = False) -> dict:
    return {
        "numacert_version": "0.1.0",
        "started": "2026-11-29T21:00:00Z",
        "finished": "2026-11-29T21:03:00Z",
        "interrupted": interrupted,
        "target": {"kind": "lab"},
        "nodes": {
            NODE: {
                "kubelet_version": "v1.37.2",
                "topology_fingerprint": "2s-2n-4c-2t-a1b2c3",
                "policy": POLICY,
                "policy_source": "configz",
                "node_access": True,
            }
        },
        "checks": records,
    }


def _pytest_junit(records: list[dict]) -> str:
    """What pytest's --junitxml writes for these records (numacert properties per testcase)."""
    cases = []
    for r in records:
        classname, name = pytest_address(r["nodeid"])
        props = [("numacert.node", NODE), ("numacert.check", r["check"])]
        props.append(("numacert.case", r["case"] or "None"))
        body = (
            "<properties>"
            + "".join(f'<property name="{k}" value="{v}"/>' for k, v in props)
            + "</properties>"
        )
        if r["status"] == "failed":
            body += f'<failure message="{r["reason"]}">AssertionError</failure>'
        elif r["status"] == "skipped":
            body += f'<skipped type="pytest.skip" message="{r["skip_reason"]}">skip</skipped>'
        elif r["status"] == "error":
            body += f'<error message="failed on setup with {r["reason"]}">boom</error>'
        cases.append(
            f'<testcase classname="{classname}" name="{name}" time="0.500">{body}</testcase>'
        )
    count = {s: sum(1 for r in records if r["status"] == s) for s in ("failed", "skipped", "error")}
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" errors="{count["error"]}" failures="{count["failed"]}" '
        f'skipped="{count["skipped"]}" tests="{len(records)}" time="3.500" '
        f'timestamp="2026-11-29T21:00:00.000000+00:00" hostname="ci">'
        + "".join(cases)
        + "</testsuite></testsuites>"
    )


def _run_dir(out: Path, cid: str, records: list[dict], interrupted: bool = False) -> None:
    """One combination's outputs, as `numacert run` writes them."""
    folder = out / cid
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(_results(records, interrupted)))
    (folder / "pytest-junit.xml").write_text(_pytest_junit(records))
    write_reports(
        folder / "results.json", folder, folder / "pytest-junit.xml", "numacert", CATALOGUE
    )


def _entry(cid: str, status: str, labels: dict, **kw) -> dict:
    ran = status == "run"
    return {
        "id": cid,
        "labels": labels,
        "kubelet": kw.pop("kubelet", FRAGMENT),
        "status": status,
        "reason": kw.pop("reason", None),
        "node": kw.pop("node", NODE),
        "dir": kw.pop("dir", cid if ran else None),
        "timings": kw.pop(
            "timings", {"apply": 41.2, "certify": 150.3 if ran else 0.0, "restore": 0.0}
        ),
    }


def _labels(cpu: str, topology: str, hugepages: str) -> dict:
    return {"cpu": cpu, "topology": topology, "memory": "static", "hugepages": hugepages}


def _matrix(*entries: dict, interrupted: bool = False) -> dict:
    return {
        "matrix": "reduced",
        "source": "/path/clusters/matrix/reduced.yaml",
        "started": "2026-11-29T21:00:00Z",
        "finished": "2026-11-29T21:40:00Z",
        "interrupted": interrupted,
        "combinations": list(entries),
    }


ENTRIES = {
    OK: _entry(OK, "run", _labels("static", "single-numa-node-pod", "none")),
    BAD: _entry(BAD, "run", _labels("static", "single-numa-node-pod", "2mi")),
    SMT: _entry(
        SMT,
        "unsupported",
        _labels("static+full-pcpus-only", "restricted-pod", "none"),
        reason=SMT_REASON,
        kubelet={
            "cpuManagerPolicy": "static",
            "cpuManagerPolicyOptions": {"full-pcpus-only": "true"},
            "topologyManagerPolicy": "restricted",
            "topologyManagerScope": "pod",
            "memoryManagerPolicy": "Static",
        },
        timings={"apply": 0.0, "certify": 0.0, "restore": 0.0},
    ),
    ERR: _entry(
        ERR,
        "error",
        _labels("none", "none-container", "none"),
        reason=ERR_REASON,
        kubelet={"cpuManagerPolicy": "none", "topologyManagerPolicy": "none"},
    ),
}


def _out(tmp_path: Path, *ids: str, interrupted: bool = False) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    if OK in ids:
        _run_dir(out, OK, _records())
    if BAD in ids:
        _run_dir(out, BAD, _records(tm_align_4cpu="failed"))
    (out / MATRIX_JSON).write_text(
        json.dumps(_matrix(*(ENTRIES[i] for i in ids), interrupted=interrupted))
    )
    return out


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """All four combinations, reports written: (out folder, MatrixVerdict)."""
    out = _out(tmp_path_factory.mktemp("matrix"), OK, BAD, SMT, ERR)
    return out, write_matrix_reports(out, catalogue=CATALOGUE)


# ---- matrix-verdict.json and the verdict rules -------------------------------------------------


def test_write_matrix_reports_writes_every_file(full):
    out, mv = full
    written = {"matrix-verdict.json", "matrix.md", "matrix.html"}
    written |= {"junit_numacert.xml", "junit_numacert-strict.xml"}
    assert written <= {p.name for p in out.iterdir()}
    assert mv.paths.verdict_json == out / "matrix-verdict.json"
    assert (mv.paths.junit, mv.paths.junit_strict) == (
        out / "junit_numacert.xml",
        out / "junit_numacert-strict.xml",
    )


def test_matrix_verdict_json(full):
    out, mv = full
    data = json.loads((out / "matrix-verdict.json").read_text())
    assert data["verdict"] == "NOT CERTIFIED" and data["exit_code"] == 1 == mv.exit_code
    assert (data["matrix"], data["source"]) == ("reduced", "/path/clusters/matrix/reduced.yaml")
    assert data["counts"] == {"CERTIFIED": 1, "NOT CERTIFIED": 1, "INCOMPLETE": 1, "UNSUPPORTED": 1}
    combos = {c["id"]: c for c in data["combinations"]}
    assert list(combos) == [OK, BAD, SMT, ERR]
    assert [combos[i]["verdict"] for i in combos] == [
        "CERTIFIED",
        "NOT CERTIFIED",
        "UNSUPPORTED",
        "INCOMPLETE",
    ]
    ok, bad, smt, err = combos.values()
    assert ok["counts"] == {"passed": 3, "failed": 0, "error": 0, "skipped": 3, "not-run": 0}
    assert ok["failing_checks"] == [] and ok["causes"] == [] and ok["reason"] is None
    assert ok["labels"]["hugepages"] == "none" and ok["node"] == NODE and ok["dir"] == OK
    assert ok["nodes"] == [{"node": NODE, "policy": TOKEN, "verdict": "CERTIFIED"}]
    assert bad["failing_checks"] == ["TM-ALIGN"] and bad["counts"]["failed"] == 1
    assert bad["causes"] == ["TM-ALIGN: failed"]
    assert smt["status"] == "unsupported" and smt["reason"] == SMT_REASON
    assert smt["counts"] == {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "not-run": 0}
    assert err["status"] == "error" and err["reason"] == ERR_REASON
    assert err["causes"] == [f"error: {ERR_REASON}"]
    assert data["causes"] == [
        f"{BAD}: NOT CERTIFIED (TM-ALIGN failed)",
        f"{ERR}: error: {ERR_REASON}",
    ]


def _verdict(*entries: str | dict, interrupted: bool = False, runs: dict | None = None):
    """The MatrixVerdict (pure) of these matrix entries (ids of ENTRIES, or entries)."""
    chosen = [ENTRIES[e] if isinstance(e, str) else e for e in entries]
    matrix = parse_matrix(_matrix(*chosen, interrupted=interrupted))
    default = {
        OK: parse_results(_results(_records())),
        BAD: parse_results(_results(_records(tm_align_4cpu="failed"))),
    }
    return matrix_verdict(matrix, {**default, **(runs or {})}, CATALOGUE)


def _variant(cid: str, new: str, **changes) -> dict:
    """A copy of matrix entry `cid` under the id `new`."""
    return {**ENTRIES[cid], "id": new, "dir": new, **changes}


@pytest.mark.parametrize(
    ("ids", "interrupted", "overall", "code"),
    [
        ((OK, BAD, SMT, ERR), False, "NOT CERTIFIED", 1),  # a failure wins over an error
        ((OK, BAD), True, "NOT CERTIFIED", 1),  # ...and over an interrupt
        ((OK, SMT, ERR), False, "INCOMPLETE", 3),  # an error combination
        ((OK, SMT), True, "INCOMPLETE", 3),  # the matrix run was interrupted
        ((OK, SMT), False, "CERTIFIED", 0),  # unsupported: listed, neither passed nor failing
        ((OK,), False, "CERTIFIED", 0),
        ((SMT,), False, "NOTHING TO CERTIFY", 2),  # nothing ran
        ((SMT,), True, "INCOMPLETE", 3),
        ((), False, "NOTHING TO CERTIFY", 2),
    ],
)
def test_overall_verdict_rules(ids, interrupted, overall, code):
    mv = _verdict(*ids, interrupted=interrupted)
    assert (mv.overall, mv.exit_code, matrix_exit_code(mv)) == (overall, code, code)


def test_a_not_run_combination_makes_the_matrix_incomplete():
    not_run = _variant(ERR, "late", status="not-run", reason="interrupted before it", dir=None)
    mv = _verdict(OK, not_run, interrupted=True)
    assert mv.status is Verdict.INCOMPLETE
    combo = mv.combinations[1]
    assert (combo.status, combo.verdict) == ("not-run", "INCOMPLETE")
    assert mv.causes == (
        "late: not-run: interrupted before it",
        "the matrix run was interrupted",
    )


def test_an_incomplete_combination_makes_the_matrix_incomplete():
    blocked = _record("CFG-STATE", "skipped", skip="needs-node-access")
    incomplete = _variant(OK, "blocked", labels=_labels("static", "single-numa-node-pod", "1gi"))
    runs = {"blocked": parse_results(_results(_records(cfg_state=blocked)))}
    mv = _verdict(OK, incomplete, runs=runs)
    assert mv.status is Verdict.INCOMPLETE and mv.exit_code == 3
    assert mv.combinations[1].verdict == "INCOMPLETE"
    assert mv.combinations[1].causes == ("CFG-STATE: required but skipped: needs node access",)
    assert mv.causes == (
        "blocked: INCOMPLETE (CFG-STATE: required but skipped: needs node access)",
    )


def test_an_interrupted_run_inside_a_combination_is_incomplete():
    runs = {OK: parse_results(_results(_records(), interrupted=True))}
    mv = _verdict(OK, runs=runs)
    assert mv.overall == "INCOMPLETE"
    assert "the run was interrupted" in mv.combinations[0].causes
    assert mv.causes == (f"{OK}: INCOMPLETE (the run was interrupted)",)


def test_a_run_combination_without_results_is_incomplete_not_a_crash(tmp_path):
    out = _out(tmp_path, OK, BAD, SMT, ERR)
    (out / OK / "results.json").unlink()
    (out / OK / "report.html").unlink()
    (out / OK / "junit_numacert.xml").unlink()
    mv = write_matrix_reports(out, catalogue=CATALOGUE)
    ok = mv.combinations[0]
    assert ok.verdict == "INCOMPLETE" and ok.nodes == ()
    assert ok.reason.startswith("no usable results: ")
    assert str(out / OK / "results.json") in ok.reason and "cannot read" in ok.reason
    assert mv.overall == "NOT CERTIFIED"  # BAD still failed
    data = json.loads((out / "matrix-verdict.json").read_text())
    assert data["combinations"][0]["verdict"] == "INCOMPLETE"
    assert data["combinations"][0]["causes"] == [ok.reason]
    # The JUnit says so with an error; the grid has no link to a report that is not there.
    suite = _suites(out / "junit_numacert.xml")[OK]
    (case,) = suite.findall("testcase")
    assert case.find("error").get("type") == "numacert.no-junit"
    assert f'href="{OK}/report.html"' not in (out / "matrix.html").read_text()
    xmlschema.XMLSchema(XSD).validate(str(out / "junit_numacert-strict.xml"))


def test_a_run_combination_without_dir_is_incomplete(tmp_path):
    no_dir = _variant(OK, "nowhere", dir=None)
    reason = load_run(tmp_path, Combination(id="nowhere", status="run"))
    assert reason.startswith("no output folder")
    mv = _verdict(no_dir, runs={"nowhere": reason})
    assert (mv.combinations[0].verdict, mv.combinations[0].reason) == ("INCOMPLETE", reason)
    assert mv.overall == "INCOMPLETE"


# ---- matrix.json errors --------------------------------------------------------------------


def test_a_missing_matrix_json_is_an_input_error_naming_it(tmp_path):
    with pytest.raises(InputError, match="cannot read") as e:
        write_matrix_reports(tmp_path, catalogue=CATALOGUE)
    assert str(tmp_path / "matrix.json") in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"combinations": []}', "`matrix` must be a non-empty string"),
        ('{"matrix": "m"}', "`combinations` must be an array"),
        ('{"matrix": "m", "combinations": [1]}', r"combinations\[0\]: a combination must be"),
        ('{"matrix": "m", "combinations": [{"id": "a"}]}', r"combinations\[0\]: `status` must be"),
        (
            '{"matrix": "m", "combinations": [{"id": "a", "status": "run", "dir": "../x"}]}',
            r"combinations\[0\]: `dir` must be a folder inside",
        ),
        (
            '{"matrix": "m", "combinations": [{"id": "a", "status": "run", "node": 3}]}',
            r"combinations\[0\]: `node` must be a string",
        ),
        (
            '{"matrix": "m", "combinations": [{"id": "a", "status": "error"},'
            ' {"id": "a", "status": "error"}]}',
            "combination id a appears twice",
        ),
        ('{"matrix": "m", "interrupted": "no", "combinations": []}', "`interrupted` must be"),
    ],
)
def test_a_malformed_matrix_json_is_an_input_error_naming_it(tmp_path, text, message):
    path = tmp_path / "matrix.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as e:
        write_matrix_reports(tmp_path, catalogue=CATALOGUE)
    assert str(e.value).startswith(str(path))
    with pytest.raises(InputError):
        load_matrix(path)


def test_unsupported_reason_code_and_sentence():
    c = Combination(id="x", status="unsupported", reason=SMT_REASON)
    assert c.reason_code == "needs-smt"
    assert c.reason_text == "needs SMT (2+ threads per core), the node has 1"
    plain = Combination(id="y", status="error", reason="boom | not a code")
    assert plain.reason_text == "not a code"
    assert Combination(id="z", status="error", reason="boom").reason_code is None


# ---- the merged JUnit ------------------------------------------------------------------------


def _suites(path: Path) -> dict[str, ET.Element]:
    return {s.get("name"): s for s in ET.parse(path).getroot().findall("testsuite")}


def _props(element: ET.Element) -> dict[str, str]:
    holder = element.find("properties")
    return {p.get("name"): p.get("value") for p in holder} if holder is not None else {}


def test_junit_has_one_suite_per_combination_named_after_it(full):
    out, _ = full
    suites = _suites(out / "junit_numacert.xml")
    assert list(suites) == [OK, BAD, SMT, ERR]
    for cid, suite in suites.items():
        assert _props(suite)["numacert.combination"] == cid
        assert _props(suite)["numacert.matrix"] == "reduced"
    # Every testcase carries the combination too (Prow reads testcase properties).
    ok_cases = suites[OK].findall("testcase")
    assert len(ok_cases) == 7
    assert {_props(c)["numacert.combination"] for c in ok_cases} == {OK}
    assert {_props(c)["numacert.node"] for c in ok_cases} == {NODE}
    # pytest's own suite attributes are kept.
    assert suites[BAD].get("failures") == "1" and suites[BAD].get("hostname") == "ci"


def test_junit_equal_policies_keep_their_classname_and_get_apart_by_name(full):
    out, _ = full
    suites = _suites(out / "junit_numacert.xml")
    ok = {c.get("name"): c.get("classname") for c in suites[OK].findall("testcase")}
    bad = {c.get("name"): c.get("classname") for c in suites[BAD].findall("testcase")}
    assert set(ok.values()) == set(bad.values()) == {CLASSNAME}
    assert f"TM-ALIGN[gu-4cpu] ({OK})" in ok and f"TM-ALIGN[gu-4cpu] ({BAD})" in bad
    assert not set(ok) & set(bad)


def test_junit_unsupported_is_a_skipped_suite_and_error_an_errored_one(full):
    out, _ = full
    suites = _suites(out / "junit_numacert.xml")
    (smt,) = suites[SMT].findall("testcase")
    assert (smt.get("name"), smt.get("classname")) == (
        SMT,
        "127-0-0-2.static+full-pcpus-only_restricted-pod_Static",
    )
    skipped = smt.find("skipped")
    assert skipped.get("message") == SMT_REASON and skipped.get("type") == "numacert.unsupported"
    assert (suites[SMT].get("tests"), suites[SMT].get("skipped")) == ("1", "1")
    (err,) = suites[ERR].findall("testcase")
    # The fragment leaves scope and memory manager to the node: `unknown` in the token.
    assert err.get("classname") == "127-0-0-2.none_none-unknown_unknown"
    assert err.find("error").get("message") == ERR_REASON
    assert (suites[ERR].get("tests"), suites[ERR].get("errors")) == ("1", "1")
    assert suites[ERR].get("time") == "41.200"


def test_junit_totals(full):
    out, _ = full
    root = ET.parse(out / "junit_numacert.xml").getroot()
    assert root.tag == "testsuites" and root.get("name") == "numacert matrix reduced"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("16", "1", "1")


def test_strict_junit_validates_against_junit_10_xsd(full):
    out, _ = full
    strict = out / "junit_numacert-strict.xml"
    xmlschema.XMLSchema(XSD).validate(str(strict))
    root = ET.parse(strict).getroot()
    assert not [p for c in root.iter("testcase") for p in c.findall("properties")]
    assert list(_suites(strict)) == [OK, BAD, SMT, ERR]
    assert _props(_suites(strict)[SMT])["numacert.combination"] == SMT  # suite properties stay
    # The same rows as the default flavour.
    default = [
        (c.get("classname"), c.get("name"))
        for c in ET.parse(out / "junit_numacert.xml").iter("testcase")
    ]
    assert [(c.get("classname"), c.get("name")) for c in root.iter("testcase")] == default


def test_default_junit_as_junitparser_reads_it(full):
    out, _ = full
    xml = junitparser.JUnitXml.fromfile(str(out / "junit_numacert.xml"))
    rows = {(suite.name, case.classname, case.name): case for suite in xml for case in suite}
    assert len(rows) == 16
    failed = rows[(BAD, CLASSNAME, f"TM-ALIGN[gu-4cpu] ({BAD})")]
    assert failed.is_failure and "spans NUMA nodes 0,1" in failed.result[0].message
    assert failed.system_out.startswith("predicted:\n")
    assert rows[(OK, CLASSNAME, f"TM-ALIGN[gu-4cpu] ({OK})")].is_passed
    assert rows[(OK, CLASSNAME, f"CPU-SMT ({OK})")].is_skipped
    assert rows[(SMT, "127-0-0-2.static+full-pcpus-only_restricted-pod_Static", SMT)].is_skipped
    assert rows[(ERR, "127-0-0-2.none_none-unknown_unknown", ERR)].is_error


def test_junit_context_names_the_files_read_and_written(tmp_path):
    out = _out(tmp_path, OK, SMT)
    for name in ("junit_numacert.xml", "junit_numacert-strict.xml"):
        (out / OK / name).rename(out / OK / name.replace("numacert", "numacert-node-1"))
    mv = write_matrix_reports(out, "numacert node_1", catalogue=CATALOGUE)
    assert mv.paths.junit == out / "junit_numacert-node-1.xml"
    assert mv.paths.junit_strict == out / "junit_numacert-node-1-strict.xml"
    suites = _suites(mv.paths.junit)
    assert len(suites[OK].findall("testcase")) == 7  # the renamed file was found
    assert not (out / "junit_numacert.xml").exists()


def test_control_characters_in_a_reason_stay_valid_xml(tmp_path):
    out = _out(tmp_path, OK, ERR)
    data = json.loads((out / MATRIX_JSON).read_text())
    data["combinations"][1]["reason"] = "apply failed: \x1b[31mtimeout\x1b[0m & <done>"
    (out / MATRIX_JSON).write_text(json.dumps(data))
    mv = write_matrix_reports(out, catalogue=CATALOGUE)
    xmlschema.XMLSchema(XSD).validate(str(mv.paths.junit_strict))
    (case,) = _suites(mv.paths.junit)[ERR].findall("testcase")
    assert case.find("error").get("message") == "apply failed: \\x1b[31mtimeout\\x1b[0m & <done>"


def test_fragment_policy():
    assert fragment_policy(ENTRIES[SMT]["kubelet"]) == {
        "cpu_manager": "static",
        "cpu_manager_options": {"full-pcpus-only": "true"},
        "topology_manager": "restricted",
        "topology_scope": "pod",
        "memory_manager": "Static",
    }


# ---- matrix.md -----------------------------------------------------------------------------


def test_markdown_header_and_unsupported_list(full):
    out, _ = full
    md = (out / "matrix.md").read_text()
    assert md.startswith("# numacert matrix: reduced\n")
    assert (
        "**Overall: NOT CERTIFIED** · 4 combinations: 1 CERTIFIED, 1 NOT CERTIFIED, "
        "1 INCOMPLETE, 1 UNSUPPORTED"
    ) in md
    assert "source `/path/clusters/matrix/reduced.yaml` · started 2026-11-29T21:00:00Z" in md
    assert "## Unsupported combinations" in md
    assert f"- `{SMT}`: needs SMT (2+ threads per core), the node has 1 (`needs-smt`)" in md
    assert f"- error: {ERR_REASON}" in md
    assert "interrupted" not in md


def test_markdown_grid_rows_and_cells(full):
    out, _ = full
    md = (out / "matrix.md").read_text()
    lines = md.splitlines()
    head = next(line for line in lines if line.startswith("| combination |"))
    assert head == "| combination | node | verdict | " + " | ".join(CHECK_IDS) + " |"
    rows = {
        line.split(" | ")[0]: line
        for line in lines
        if line.startswith("| [") or line.startswith(f"| {SMT}")
    }
    ok = rows[f"| [{OK}]({OK}/report.html)"]
    assert ok.endswith(f"| {NODE} | CERTIFIED | pass | skip | pass | skip | skip | pass |")
    bad = rows[f"| [{BAD}]({BAD}/report.html)"]
    assert bad.endswith(
        f"| {NODE} | **NOT CERTIFIED** | pass | skip | **FAIL** | skip | skip | pass |"
    )
    assert rows[f"| {SMT}"].endswith("| UNSUPPORTED | – | – | – | – | – | – |")
    err = next(line for line in lines if line.startswith(f"| {ERR} |"))
    assert err.endswith("| **INCOMPLETE** | – | – | – | – | – | – |")


def test_markdown_in_an_interrupted_matrix(tmp_path):
    out = _out(tmp_path, OK, interrupted=True)
    mv = write_matrix_reports(out, catalogue=CATALOGUE)
    md = mv.paths.markdown.read_text()
    assert "**Overall: INCOMPLETE**" in md and "The matrix run was interrupted" in md


# ---- matrix.html ---------------------------------------------------------------------------


class _Page(HTMLParser):
    """Tags, attributes and text; checks that every non-void element is closed in order."""

    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _page(out: Path) -> tuple[str, _Page]:
    page = (out / "matrix.html").read_text()
    parser = _Page()
    parser.feed(page)
    parser.close()
    return page, parser


def test_html_is_well_formed_and_self_contained(full):
    out, _ = full
    page, parsed = _page(out)
    assert page.startswith("<!doctype html>")
    assert parsed.problems == [] and parsed.stack == []
    assert not [t for t, _ in parsed.tags if t in ("script", "link", "img", "iframe", "object")]
    assert not re.search(r"src\s*=|@import|url\(|https?:", page)
    assert "<style>" in page


def test_html_links_each_row_to_its_report(full):
    out, _ = full
    _, parsed = _page(out)
    hrefs = [a["href"] for t, a in parsed.tags if t == "a"]
    assert set(hrefs) == {f"{OK}/report.html", f"{BAD}/report.html"}
    for href in set(hrefs):
        assert (out / href).is_file()


def test_html_cells_show_status_node_and_the_comparison(full):
    out, _ = full
    page, parsed = _page(out)
    cells = [a["class"] for t, a in parsed.tags if t == "td" and "cell" in (a.get("class") or "")]
    assert len(cells) == 4 * len(CHECK_IDS)
    assert cells.count("cell st-failed strong") == 1
    assert cells.count("cell st-passed") == 3 + 2
    assert cells.count("cell st-none") == 2 * len(CHECK_IDS)  # unsupported and error rows
    hovers = [a["title"] for t, a in parsed.tags if t == "summary" and a.get("title")]
    assert (
        f"TM-ALIGN · {NODE}: FAIL (gu-4cpu: container c1 of pod gu-4cpu spans NUMA nodes 0,1)"
        in hovers
    )
    text = " ".join(" ".join(parsed.text).split())
    assert f"node {NODE} · {TOKEN} · failed" in text
    assert 'field predicted observed cpus "2-5" "2-3,8-9" numa_affinity [0] [0, 1]' in text
    assert ">FAIL</summary>" in page and ">pass</summary>" in page


def test_html_header_verdict_and_unsupported(full):
    out, _ = full
    page, parsed = _page(out)
    banners = [
        a["class"] for t, a in parsed.tags if t == "div" and "verdict" in (a.get("class") or "")
    ]
    assert banners == ["verdict not-certified"]
    assert "<title>numacert matrix reduced: NOT CERTIFIED</title>" in page
    text = " ".join(" ".join(parsed.text).split())
    assert "source /path/clusters/matrix/reduced.yaml · started 2026-11-29T21:00:00Z" in text
    assert (
        f"Unsupported combinations {SMT} on {NODE}: "
        "needs SMT (2+ threads per core), the node has 1 needs-smt" in text
    )
    assert "apply 41.2 s · certify 150.3 s · restore 0.0 s" in text


def test_html_escapes_text_from_matrix_json(tmp_path):
    out = _out(tmp_path, OK, ERR)
    data = json.loads((out / MATRIX_JSON).read_text())
    data["combinations"][1]["reason"] = "<script>alert(1)</script>"
    (out / MATRIX_JSON).write_text(json.dumps(data))
    mv = write_matrix_reports(out, catalogue=CATALOGUE)
    page = mv.paths.html.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in mv.paths.markdown.read_text()


# ---- the CLI summary -------------------------------------------------------------------------


def test_summary_table(full):
    _, mv = full
    lines = matrix_summary_table(mv).splitlines()
    assert lines[0].split() == [
        "COMBINATION",
        "NODE",
        "STATUS",
        "VERDICT",
        "PASSED",
        "FAILED",
        "ERROR",
        "SKIPPED",
    ]
    assert lines[2].split() == [BAD, NODE, "run", "NOT", "CERTIFIED", "2", "1", "0", "3"]
    assert lines[3].split() == [SMT, NODE, "unsupported", "UNSUPPORTED", "0", "0", "0", "0"]
    empty = matrix_verdict(Matrix(name="m", combinations=()), {}, CATALOGUE)
    assert matrix_summary_table(empty) == "no combination in the matrix"
