"""report.md: the verdicts as Markdown (GitLab/GitHub render it; people read it raw too)."""

from __future__ import annotations

import html

from numacert.reports.catalogue import CheckSpec
from numacert.reports.comparison import field_rows, pretty_json
from numacert.reports.policy import policy_line
from numacert.reports.results import CheckRecord, NodeInfo, Results
from numacert.reports.topology_view import topology_line
from numacert.reports.verdict import CheckVerdict, NodeVerdict, overall


def render_markdown(
    results: Results, verdicts: list[NodeVerdict], catalogue: list[CheckSpec]
) -> str:
    """The whole report: a run header, then one section per node and policy."""
    titles = {spec.id: spec.title for spec in catalogue}
    parts = [_header(results, verdicts)]
    parts += [_node_section(v, results.nodes.get(v.node), titles) for v in verdicts]
    return "\n\n".join(parts).rstrip() + "\n"


def _header(results: Results, verdicts: list[NodeVerdict]) -> str:
    lines = [
        "# numacert report",
        "",
        f"**Overall: {overall(verdicts)}** · {len(verdicts)} node/policy verdicts",
        "",
        f"numacert {results.numacert_version or '?'} · target {_target(results)} · "
        f"started {results.started or '?'} · finished {results.finished or '?'}",
    ]
    if results.interrupted:
        lines += ["", "> **The run was interrupted**: checks that did not run make it INCOMPLETE."]
    return "\n".join(lines)


def _target(results: Results) -> str:
    kind = results.target.get("kind") or "?"
    context = results.target.get("context")
    return f"{kind} ({context})" if context else str(kind)


def _node_section(v: NodeVerdict, info: NodeInfo | None, titles: dict[str, str]) -> str:
    blocks = [f"## {cell(v.node)} · {code(v.policy)}: **{v.status.value}**", _facts(v, info)]
    if v.causes:
        blocks.append("Why:\n\n" + "\n".join(f"- {cell(c)}" for c in v.causes))
    blocks.append("### Checks\n\n" + _checks_table(v.checks, titles))
    if v.not_exercised:
        items = [
            f"- {cell(n.label)}: {cell(n.description)} ({code(n.skip_reason)})"
            for n in v.not_exercised
        ]
        blocks.append("### Not exercised\n\n" + "\n".join(items))
    if v.failures:
        blocks.append("### Failures\n\n" + "\n\n".join(_failure(r) for r in v.failures))
    return "\n\n".join(blocks)


def _facts(v: NodeVerdict, info: NodeInfo | None) -> str:
    settings = v.policy_settings or None
    rows = [
        ("policy", cell(policy_line(settings)) if settings else code(v.policy)),
        ("policy source", cell(info.policy_source if info and info.policy_source else "?")),
        ("kubelet", cell(v.kubelet_version or "?")),
        ("topology fingerprint", code(v.topology_fingerprint or "?")),
        ("topology", cell(topology_line(info.topology if info else None))),
    ]
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {val} |" for k, val in rows)


def _checks_table(checks: tuple[CheckVerdict, ...], titles: dict[str, str]) -> str:
    lines = ["| check | what | status | reason |", "|---|---|---|---|"]
    for c in checks:
        status = c.status.replace("-", " ")
        if c.status in ("failed", "error") or c.blocking:
            status = f"**{status}**"
        reason = "; ".join(c.reasons)
        lines.append(f"| {c.check} | {cell(titles.get(c.check, ''))} | {status} | {cell(reason)} |")
    return "\n".join(lines)


def _failure(record: CheckRecord) -> str:
    head = f"#### {record.label}\n\n{cell(record.reason or 'failed')}"
    if record.predicted is None and record.observed is None:
        return head
    rows = field_rows(record.predicted, record.observed)
    if rows is not None:
        table = ["| field | predicted | observed |", "|---|---|---|"]
        for r in rows:
            mark = " ⟵ differs" if r.differs else ""
            table.append(f"| {cell(r.field)}{mark} | {code(r.predicted)} | {code(r.observed)} |")
        return head + "\n\n" + "\n".join(table)
    return (
        f"{head}\n\nPredicted:\n\n```json\n{pretty_json(record.predicted)}\n```\n\n"
        f"Observed:\n\n```json\n{pretty_json(record.observed)}\n```"
    )


def cell(text: str) -> str:
    """Plain text safe inside a table cell: one line, pipes escaped, no raw HTML (Markdown
    passes HTML through, and reasons carry whatever the kubelet or a pod printed)."""
    return html.escape(_one_line(text), quote=False).replace("|", "\\|")


def code(text: str) -> str:
    """An inline code span (HTML is literal there) that survives backticks in the text."""
    text = _one_line(text).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
