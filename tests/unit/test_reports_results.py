"""results.json and catalogue loading: good files, tolerated extras, errors naming the file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from numacert.errors import InputError
from numacert.reports.catalogue import KINDS, load_catalogue, parse_catalogue
from numacert.reports.results import load_results, parse_results

DATA = Path(__file__).parent / "data" / "reports"


def test_load_results_reads_nodes_and_records():
    results = load_results(DATA / "results_failed.json")
    assert results.numacert_version == "0.1.0"
    assert results.target["kind"] == "lab" and results.interrupted is False
    assert list(results.nodes) == ["127.0.0.2", "127.0.0.3"]
    node = results.nodes["127.0.0.2"]
    assert node.kubelet_version == "v1.37.2" and node.policy["cpu_manager"] == "static"
    assert node.node_access is True and node.error is None
    assert len(node.topology["cpus"]) == 16
    failed = [r for r in results.checks if r.status == "failed"]
    assert [(r.check, r.case, r.label) for r in failed] == [
        ("TM-ALIGN", "gu-4cpu", "TM-ALIGN[gu-4cpu]")
    ]
    assert failed[0].predicted["cpus"] == "2-5" and failed[0].duration == 0.5


def test_unknown_keys_and_missing_optional_fields_are_tolerated():
    results = parse_results(
        {
            "brand_new": {"x": 1},
            "nodes": {"n1": {"surprise": True}},
            "checks": [{"check": "A", "node": "n1", "status": "passed", "surprise": 1}],
        }
    )
    assert results.nodes["n1"].policy == {} and results.nodes["n1"].topology is None
    record = results.checks[0]
    assert (record.policy, record.case, record.nodeid) == ("", None, "")
    assert results.require is None and results.interrupted is False


def test_a_numeric_case_id_becomes_text():
    record = {"check": "A", "node": "n", "status": "passed", "case": 4}
    results = parse_results({"checks": [record]})
    assert results.checks[0].case == "4"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "results.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"nodes": []}', "`nodes` must be an object, got an array"),
        ('{"checks": [{"check": "A", "node": "n"}]}', "checks[0]: `status` must be"),
        ('{"checks": [{"check": "A", "node": "n", "status": "ok"}]}', "got 'ok'"),
        (
            '{"checks": [{"check": "A", "node": "n", "status": "passed", "duration": true}]}',
            "`duration` must be a number",
        ),
        ('{"nodes": {"n": {"error": 3}}}', "nodes.n: `error` must be a string"),
        ('{"interrupted": "yes"}', "`interrupted` must be true or false"),
    ],
)
def test_bad_results_name_the_file_and_field(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as e:
        load_results(path)
    assert str(path) in str(e.value)
    assert message in str(e.value)


def test_a_missing_results_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_results(tmp_path / "nope.json")


def test_the_test_fixture_is_plain_json():
    # Guard: the fixtures stay loadable by anything that reads JSON, not just our parser.
    assert json.loads((DATA / "results_certified.json").read_text())["checks"]


# ---- catalogue -----------------------------------------------------------------------------


def test_the_shipped_catalogue_loads_with_unique_ids():
    specs = load_catalogue()
    ids = [s.id for s in specs]
    assert len(ids) == len(set(ids)) > 0
    assert all(s.kind in KINDS and s.title and s.proves for s in specs)
    assert all(isinstance(s.applies, dict) and isinstance(s.needs, dict) for s in specs)


def test_parse_catalogue_folds_the_proves_text():
    [spec] = parse_catalogue(
        'checks:\n  - {id: X, area: cpu, kind: behaviour, title: T, proves: "a\n   b"}\n'
    )
    assert (spec.id, spec.proves, spec.applies, spec.needs, spec.failure_modes) == (
        "X",
        "a b",
        {},
        {},
        (),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("checks: [", "not valid YAML"),
        ("{}", "expected a map with a list under `checks`"),
        ("checks: [3]", "checks[0]: a check must be a map"),
        ("checks: [{id: X, area: a, kind: behaviour, title: t}]", "`proves` must be"),
        ("checks: [{id: X, area: a, kind: other, title: t, proves: p}]", "`kind` must be one of"),
        (
            "checks: [{id: X, area: a, kind: behaviour, title: t, proves: p, needs: [1]}]",
            "`needs` must be a map",
        ),
        (
            "checks: [{id: X, area: a, kind: behaviour, title: t, proves: p},"
            " {id: X, area: a, kind: behaviour, title: t, proves: p}]",
            "check id X appears twice",
        ),
    ],
)
def test_bad_catalogue_is_an_input_error(text, message):
    with pytest.raises(InputError, match=re.escape(message)) as e:
        parse_catalogue(text, "cat.yaml")
    assert str(e.value).startswith("cat.yaml")
