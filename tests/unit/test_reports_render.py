"""report.md, report.html, verdict.json and the summary table, from hand-written results."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from numacert.reports.catalogue import parse_catalogue
from numacert.reports.comparison import field_rows
from numacert.reports.html import render_html
from numacert.reports.markdown import render_markdown
from numacert.reports.results import Results, load_results
from numacert.reports.verdict import verdict
from numacert.reports.write import summary_table, write_reports

DATA = Path(__file__).parent / "data" / "reports"
CATALOGUE = parse_catalogue((DATA / "catalogue.yaml").read_text(), "catalogue.yaml")
TOKEN = "static+full-pcpus-only_single-numa-node-pod_Static"


def _render(name: str):
    results = load_results(DATA / f"results_{name}.json")
    verdicts = verdict(results, CATALOGUE)
    return results, verdicts


# ---- Markdown ------------------------------------------------------------------------------


def test_markdown_of_a_failed_run():
    md = render_markdown(*_render("failed"), CATALOGUE)
    assert "**Overall: NOT CERTIFIED**" in md
    assert f"## 127.0.0.2 · `{TOKEN}`: **NOT CERTIFIED**" in md
    assert f"## 127.0.0.3 · `{TOKEN}`: **INCOMPLETE**" in md
    assert "| kubelet | v1.37.2 |" in md
    assert "| topology fingerprint | `2s-2n-4c-2t-a1b2c3` |" in md
    assert (
        "| topology | 2 sockets · 2 NUMA nodes · 8 CPUs per NUMA node · 2 threads per core"
        " · hugepages 2Mi×128 per node |"
    ) in md
    assert "| policy | CPU static (full-pcpus-only) · TM single-numa-node/pod · MM Static" in md
    # The checks table, a failing reason on one line, raw HTML neutralised.
    assert re.search(
        r"\| TM-ALIGN \| Aligned resources on one NUMA node \| \*\*failed\*\* \| "
        r"gu-4cpu: container c1 .* &lt;script&gt;",
        md,
    )
    assert "<script>" not in md
    # Predicted against observed, per field; a pipe inside a value is escaped.
    assert '| cpus ⟵ differs | `"2-5"` | `"2-3,8-9"` |' in md
    assert '| note ⟵ differs | `—` | `"a\\|b"` |' in md
    # The INCOMPLETE node: why, and the not-exercised list.
    assert "- CFG-STATE: required but skipped: needs node access" in md
    assert "- CPU-SMT: needs SMT (`needs-smt`)" in md


def test_markdown_of_a_certified_run_lists_hardware_skips():
    md = render_markdown(*_render("certified"), CATALOGUE)
    assert "**Overall: CERTIFIED**" in md and "Why:" not in md
    assert "- TM-ALIGN[gu-1gi-hugepages]: needs 1Gi hugepages (`needs-hugepages:1Gi`)" in md
    assert "### Failures" not in md


def test_markdown_shows_non_object_values_as_json_blocks():
    results, _ = _render("failed")
    record = next(r for r in results.checks if r.status == "failed")
    record = type(record)(**{**record.__dict__, "predicted": [1, 2], "observed": "x"})
    patched = Results(nodes=results.nodes, checks=[record])
    md = render_markdown(patched, verdict(patched, CATALOGUE), CATALOGUE)
    assert 'Predicted:\n\n```json\n[\n  1,\n  2\n]\n```\n\nObserved:\n\n```json\n"x"\n```' in md


def test_markdown_says_when_the_run_was_interrupted():
    results = Results(nodes={}, checks=[], interrupted=True)
    md = render_markdown(results, [], CATALOGUE)
    assert "The run was interrupted" in md and "NOTHING TO CERTIFY" in md


def test_field_rows_mark_differences():
    rows = field_rows({"a": 1, "b": [0]}, {"b": [0], "c": None})
    assert [(r.field, r.predicted, r.observed, r.differs) for r in rows] == [
        ("a", "1", "—", True),
        ("b", "[0]", "[0]", False),
        ("c", "—", "null", True),
    ]
    assert field_rows([1], {"a": 1}) is None


# ---- HTML ----------------------------------------------------------------------------------


class _Tags(HTMLParser):
    """Collects the tags, attributes and text of a page (and fails on nothing: a browser
    does not either; the browser test checks the rendering)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


def test_html_has_one_banner_per_node_with_its_class():
    page = render_html(*_render("failed"), CATALOGUE)
    classes = [a.get("class") for t, a in _parse(page).tags if "verdict" in (a.get("class") or "")]
    assert classes == ["verdict not-certified", "verdict incomplete"]
    assert ">NOT CERTIFIED<" in page and ">INCOMPLETE<" in page


def test_html_is_self_contained():
    page = render_html(*_render("failed"), CATALOGUE)
    tags = _parse(page).tags
    assert not [t for t, _ in tags if t in ("script", "link", "img", "iframe", "object")]
    assert not re.search(r"(src|href)\s*=|@import|url\(", page)
    assert "<style>" in page


def test_html_escapes_text_from_the_node():
    page = render_html(*_render("failed"), CATALOGUE)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_shows_topology_policy_and_the_comparison():
    page = render_html(*_render("failed"), CATALOGUE)
    text = " ".join(" ".join(_parse(page).text).split())
    assert "Topology Manager scope pod" in text
    assert "CPU Manager options full-pcpus-only=true" in text
    assert "node CPUs count memory hugepages distances 0 0-7 8 4.0 GiB 2Mi×128 10 21" in text
    assert 'field predicted observed cpus "2-5" "2-3,8-9"' in text
    assert "CPU-SMT : needs SMT needs-smt" in text
    assert "kubelet v1.37.2" in text and "topology fingerprint 2s-2n-4c-2t-a1b2c3" in text


def test_html_of_a_certified_run():
    page = render_html(*_render("certified"), CATALOGUE)
    assert 'class="verdict certified"' in page
    assert "<title>numacert report: CERTIFIED</title>" in page


# ---- write_reports and the summary ---------------------------------------------------------


def test_write_reports_writes_every_file(tmp_path):
    junit = tmp_path / "pytest.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest" tests="1" failures="0" errors="0">'
        '<testcase classname="m" name="t"><properties>'
        '<property name="numacert.node" value="127.0.0.2"/>'
        '<property name="numacert.check" value="CFG-STATE"/></properties></testcase>'
        "</testsuite></testsuites>"
    )
    paths = write_reports(
        DATA / "results_failed.json", tmp_path / "out", junit, "numacert", CATALOGUE
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "junit_numacert-strict.xml",
        "junit_numacert.xml",
        "report.html",
        "report.md",
        "verdict.json",
    ]
    assert (paths.junit, paths.junit_strict) == (
        tmp_path / "out" / "junit_numacert.xml",
        tmp_path / "out" / "junit_numacert-strict.xml",
    )
    data = json.loads(paths.verdict_json.read_text())
    assert [(d["node"], d["verdict"]) for d in data] == [
        ("127.0.0.2", "NOT CERTIFIED"),
        ("127.0.0.3", "INCOMPLETE"),
    ]
    assert data[0]["topology_fingerprint"] == "2s-2n-4c-2t-a1b2c3"
    assert data[0]["kubelet_version"] == "v1.37.2"
    assert "<property" in paths.junit.read_text()
    assert "<property" not in paths.junit_strict.read_text()
    assert paths.html.read_text().startswith("<!doctype html>")


@pytest.mark.parametrize("junit", [None, "missing.xml"])
def test_write_reports_without_junit(tmp_path, junit):
    src = tmp_path / junit if junit else None
    paths = write_reports(DATA / "results_certified.json", tmp_path, src, catalogue=CATALOGUE)
    assert paths.junit is None and paths.junit_strict is None
    assert not list(tmp_path.glob("junit_*"))


def test_write_reports_uses_the_shipped_catalogue_by_default(tmp_path):
    # The fixture runs only some of the shipped checks: the others did not run.
    paths = write_reports(DATA / "results_certified.json", tmp_path, None)
    assert paths.verdicts[0].status.value == "INCOMPLETE"


def test_summary_table():
    _, verdicts = _render("failed")
    lines = summary_table(verdicts).splitlines()
    assert lines[0].split() == [
        "NODE",
        "POLICY",
        "VERDICT",
        "PASSED",
        "FAILED",
        "ERROR",
        "SKIPPED",
        "NOT",
        "RUN",
    ]
    assert lines[1].split() == ["127.0.0.2", TOKEN, "NOT", "CERTIFIED", "3", "1", "0", "2", "0"]
    assert lines[2].split() == ["127.0.0.3", TOKEN, "INCOMPLETE", "2", "0", "0", "4", "0"]
    # Columns line up.
    assert len({line.index(TOKEN) for line in lines[1:]}) == 1
    assert summary_table([]) == "no node to certify"
