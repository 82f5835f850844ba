"""matrix.md and matrix.html: combinations (rows) against checks (columns).

A cell is the check's aggregated status on the combination's node(s): pass, FAIL, skip, error,
or – (no result: the check did not run, or the combination did not run at all). Where a
combination ran on several nodes the cell shows the worst of them. The HTML cell expands to
each node's status, reasons and, for a failure, predicted against observed. The template
(matrix.html.j2) only lays out; Jinja2 autoescapes every value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from numacert.reports.comparison import pretty_json
from numacert.reports.html import _failure, load_template  # as report.html does
from numacert.reports.markdown import cell, code
from numacert.reports.matrix import CombinationVerdict, MatrixVerdict
from numacert.reports.results import CheckRecord
from numacert.reports.verdict import NOT_RUN

TEMPLATE = "matrix.html.j2"
NONE = "none"  # a cell without any result: the combination did not run, or has no such check
STATUS_TEXT = {
    "passed": "pass",
    "failed": "FAIL",
    "skipped": "skip",
    "error": "error",
    NOT_RUN: "–",
    NONE: "–",
}
_BAD_VERDICTS = ("NOT CERTIFIED", "INCOMPLETE")
LEGEND = (
    "pass · FAIL (a check failed) · error (infrastructure) · skip (not applicable or not "
    "exercisable on this hardware; bold when required but skipped) · – no result (bold: a "
    "required check did not run)"
)


@dataclass(frozen=True)
class CellEntry:
    """One node's result for one check of one combination."""

    node: str
    policy: str
    status: str  # passed | failed | skipped | error | not-run
    blocking: bool
    reasons: tuple[str, ...]
    failures: tuple[CheckRecord, ...]


@dataclass(frozen=True)
class Cell:
    status: str  # passed | failed | skipped | error | not-run | none
    blocking: bool
    entries: tuple[CellEntry, ...]

    @property
    def text(self) -> str:
        return STATUS_TEXT[self.status]


def cells(combination: CombinationVerdict, checks: tuple[str, ...]) -> list[Cell]:
    """One cell per check id, in `checks` order."""
    return [_cell(combination, check) for check in checks]


def _cell(combination: CombinationVerdict, check: str) -> Cell:
    entries = tuple(
        CellEntry(
            node=v.node,
            policy=v.policy,
            status=c.status,
            blocking=c.blocking,
            reasons=c.reasons,
            failures=tuple(r for r in c.records if r.status == "failed"),
        )
        for v in combination.nodes
        for c in v.checks
        if c.check == check
    )
    if not entries:
        return Cell(NONE, False, ())
    worst = min(entries, key=_rank)
    return Cell(worst.status, worst.blocking, entries)


def _rank(entry: CellEntry) -> int:
    """The worst first: failed, error, not run, required but skipped, passed, skipped."""
    if entry.status == "skipped":
        return 3 if entry.blocking else 5
    return {"failed": 0, "error": 1, NOT_RUN: 2, "passed": 4}.get(entry.status, 5)


# ---- Markdown ------------------------------------------------------------------------------


def render_matrix_markdown(mv: MatrixVerdict, links: dict[str, str]) -> str:
    """The header, the grid, then unsupported, errored and not certified combinations.
    `links` maps a combination id to its report (relative to the matrix folder)."""
    parts = [_md_header(mv), _md_grid(mv, links)]
    if mv.unsupported:
        items = [
            f"- {code(c.id)}: {cell(c.combination.reason_text or 'no reason given')}"
            + (f" ({code(c.combination.reason_code)})" if c.combination.reason_code else "")
            for c in mv.unsupported
        ]
        parts.append("## Unsupported combinations\n\n" + "\n".join(items))
    details = [_md_details(c, links) for c in mv.combinations if c.causes]
    if details:
        parts.append("## Why\n\n" + "\n\n".join(details))
    return "\n\n".join(parts).rstrip() + "\n"


def _md_header(mv: MatrixVerdict) -> str:
    m = mv.matrix
    lines = [
        f"# numacert matrix: {cell(m.name)}",
        "",
        f"**Overall: {mv.overall}** · {_tally(mv)}",
        "",
        f"source {code(m.source or '?')} · started {cell(m.started or '?')} · "
        f"finished {cell(m.finished or '?')}",
    ]
    if m.interrupted:
        lines += [
            "",
            "> **The matrix run was interrupted**: combinations it did not reach make it "
            "INCOMPLETE.",
        ]
    return "\n".join(lines)


def _tally(mv: MatrixVerdict) -> str:
    counts = ", ".join(f"{n} {verdict}" for verdict, n in mv.tally().items() if n)
    total = len(mv.combinations)
    noun = "combination" if total == 1 else "combinations"
    return f"{total} {noun}" + (f": {counts}" if counts else "")


def _md_grid(mv: MatrixVerdict, links: dict[str, str]) -> str:
    head = ["combination", "node", "verdict", *mv.checks]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in mv.combinations:
        row = [
            _md_link(c, links),
            cell(c.combination.node or "–"),
            f"**{c.verdict}**" if c.verdict in _BAD_VERDICTS else c.verdict,
        ]
        row += [_md_cell(x) for x in cells(c, mv.checks)]
        lines.append("| " + " | ".join(row) + " |")
    return "## Combinations × checks\n\n" + "\n".join(lines) + "\n\n" + LEGEND


def _md_link(c: CombinationVerdict, links: dict[str, str]) -> str:
    link = links.get(c.id)
    return f"[{cell(c.id)}]({link})" if link else cell(c.id)


def _md_cell(x: Cell) -> str:
    if x.status in ("failed", "error") or x.blocking:
        return f"**{x.text}**"
    return x.text


def _md_details(c: CombinationVerdict, links: dict[str, str]) -> str:
    head = f"### {cell(c.id)}: {c.verdict}"
    if links.get(c.id):
        head += f" ([report]({links[c.id]}))"
    return head + "\n\n" + "\n".join(f"- {cell(line)}" for line in c.causes)


# ---- HTML ------------------------------------------------------------------------------------


def render_matrix_html(mv: MatrixVerdict, links: dict[str, str], titles: dict[str, str]) -> str:
    """matrix.html; `titles` maps check ids to catalogue titles (column tooltips)."""
    m = mv.matrix
    return load_template(TEMPLATE).render(
        overall=mv.overall,
        css=mv.overall.lower().replace(" ", "-"),
        matrix={
            "name": m.name,
            "source": m.source or "?",
            "started": m.started or "?",
            "finished": m.finished or "?",
            "interrupted": m.interrupted,
        },
        tally=_tally(mv),
        causes=list(mv.causes),
        checks=[{"id": c, "title": titles.get(c, "(not in the catalogue)")} for c in mv.checks],
        rows=[_row(c, mv.checks, links, titles) for c in mv.combinations],
        unsupported=[
            {
                "id": c.id,
                "node": c.combination.node,
                "text": c.combination.reason_text or "no reason given",
                "code": c.combination.reason_code,
            }
            for c in mv.unsupported
        ],
        legend=LEGEND,
    )


def _row(
    c: CombinationVerdict, checks: tuple[str, ...], links: dict[str, str], titles: dict[str, str]
) -> dict[str, Any]:
    combination = c.combination
    return {
        "id": c.id,
        "link": links.get(c.id),
        "node": combination.node or "–",
        "status": c.status,
        "verdict": c.verdict,
        "css": c.css,
        "labels": " · ".join(f"{k}={v}" for k, v in combination.labels.items()),
        "timings": " · ".join(f"{k} {v:.1f} s" for k, v in combination.timings.items()),
        "reason": c.reason,
        "causes": list(c.causes),
        "kubelet": pretty_json(combination.kubelet) if combination.kubelet else None,
        "cells": [
            _html_cell(check, x, titles) for check, x in zip(checks, cells(c, checks), strict=True)
        ],
    }


def _html_cell(check: str, x: Cell, titles: dict[str, str]) -> dict[str, Any]:
    hover = "; ".join(
        f"{e.node}: {STATUS_TEXT[e.status] if e.status != NOT_RUN else 'did not run'}"
        + (f" ({e.reasons[0]})" if e.reasons else "")
        for e in x.entries
    )
    return {
        "check": check,
        "title": titles.get(check, "(not in the catalogue)"),
        "status": x.status,
        "text": x.text,
        "strong": x.status in ("failed", "error") or x.blocking,
        "hover": f"{check} · {hover}" if hover else f"{check} · no result",
        "entries": [
            {
                "node": e.node,
                "policy": e.policy,
                "status": e.status,
                "status_text": e.status.replace("-", " "),
                "reasons": list(e.reasons),
                "failures": [_failure(r) for r in e.failures],
            }
            for e in x.entries
        ],
    }
