"""Write every report of a run into one folder, and the summary table the CLI prints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from numacert.reports.catalogue import CheckSpec, load_catalogue
from numacert.reports.html import render_html
from numacert.reports.junit import junit_filename, rewrite
from numacert.reports.markdown import render_markdown
from numacert.reports.results import load_results
from numacert.reports.verdict import NodeVerdict, verdict

SUMMARY_COLUMNS = ("NODE", "POLICY", "VERDICT", "PASSED", "FAILED", "ERROR", "SKIPPED", "NOT RUN")


@dataclass(frozen=True)
class ReportPaths:
    """What write_reports wrote (junit paths are None without a pytest JUnit file), and the
    verdicts it computed, so the caller can print the summary and pick the exit code."""

    verdict_json: Path
    markdown: Path
    html: Path
    junit: Path | None
    junit_strict: Path | None
    verdicts: list[NodeVerdict]


def write_reports(
    results_path: Path,
    out_dir: Path,
    junit_src: Path | None,
    context: str = "numacert",
    catalogue: list[CheckSpec] | None = None,
) -> ReportPaths:
    """verdict.json, report.md, report.html and, when `junit_src` exists, junit_<context>.xml
    and junit_<context>-strict.xml. `catalogue` defaults to the shipped one."""
    results = load_results(Path(results_path))
    specs = load_catalogue() if catalogue is None else catalogue
    verdicts = verdict(results, specs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "verdict_json": _write(out / "verdict.json", _verdict_json(verdicts)),
        "markdown": _write(out / "report.md", render_markdown(results, verdicts, specs)),
        "html": _write(out / "report.html", render_html(results, verdicts, specs)),
    }
    junit = strict = None
    if junit_src is not None and Path(junit_src).is_file():
        junit = out / junit_filename(context)
        strict = out / junit_filename(f"{context}-strict")
        rewrite(Path(junit_src), junit, results)
        rewrite(Path(junit_src), strict, results, strict=True)
    return ReportPaths(**paths, junit=junit, junit_strict=strict, verdicts=verdicts)


def summary_table(verdicts: list[NodeVerdict]) -> str:
    """A plain-text table, one row per node and policy, check counts by aggregated status."""
    rows = [list(SUMMARY_COLUMNS)]
    for v in verdicts:
        counts = v.counts()
        rows.append(
            [v.node, v.policy, v.status.value]
            + [str(counts[s]) for s in ("passed", "failed", "error", "skipped", "not-run")]
        )
    if len(rows) == 1:
        return "no node to certify"
    widths = [max(len(r[i]) for r in rows) for i in range(len(SUMMARY_COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _verdict_json(verdicts: list[NodeVerdict]) -> str:
    return json.dumps([v.to_dict() for v in verdicts], indent=2) + "\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
