"""report.html: one self-contained page (inline CSS, no script, no external resource).

The template (report.html.j2, next to this module) only lays out; this module turns the results
and verdicts into plain values for it. Jinja2 autoescapes every value, so node names, reasons
and observed JSON cannot inject markup.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import jinja2

from numacert.reports.catalogue import CheckSpec
from numacert.reports.comparison import field_rows, pretty_json
from numacert.reports.results import CheckRecord, NodeInfo, Results
from numacert.reports.topology_view import numa_rows, topology_line
from numacert.reports.verdict import CheckVerdict, NodeVerdict, overall

TEMPLATE = "report.html.j2"

_POLICY_FIELDS = (
    ("CPU Manager", "cpu_manager"),
    ("CPU Manager options", "cpu_manager_options"),
    ("Topology Manager", "topology_manager"),
    ("Topology Manager scope", "topology_scope"),
    ("Topology Manager options", "topology_manager_options"),
    ("Memory Manager", "memory_manager"),
    ("reserved CPUs", "reserved_cpus"),
)


def render_html(results: Results, verdicts: list[NodeVerdict], catalogue: list[CheckSpec]) -> str:
    titles = {spec.id: spec.title for spec in catalogue}
    return load_template(TEMPLATE).render(
        overall=overall(verdicts),
        run=_run(results),
        nodes=[_node(v, results.nodes.get(v.node), titles) for v in verdicts],
    )


@cache
def load_template(name: str) -> jinja2.Template:
    """A Jinja2 template shipped in numacert.reports (report.html.j2, matrix.html.j2): every
    value autoescaped, an undefined name an error, block tags leave no blank line or indent."""
    source = resources.files("numacert.reports").joinpath(name).read_text("utf-8")
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    return env.from_string(source)


def _run(results: Results) -> dict[str, Any]:
    kind = results.target.get("kind") or "?"
    context = results.target.get("context")
    return {
        "version": results.numacert_version or "?",
        "target": f"{kind} ({context})" if context else kind,
        "started": results.started or "?",
        "finished": results.finished or "?",
        "interrupted": results.interrupted,
    }


def _node(v: NodeVerdict, info: NodeInfo | None, titles: dict[str, str]) -> dict[str, Any]:
    topology = info.topology if info else None
    return {
        "node": v.node,
        "policy": v.policy,
        "status": v.status.value,
        "css": v.status.css,
        "causes": list(v.causes),
        "facts": _facts(v, info),
        "numa": numa_rows(topology),
        "checks": [_check(c, titles) for c in v.checks],
        "not_exercised": list(v.not_exercised),
        "failures": [_failure(r) for r in v.failures],
    }


def _facts(v: NodeVerdict, info: NodeInfo | None) -> list[tuple[str, str]]:
    # The token is what the JUnit classname carries; the rows below spell the tuple out.
    rows = [("policy token", v.policy)]
    rows += [
        (label, _setting(v.policy_settings[key]))
        for label, key in _POLICY_FIELDS
        if key in v.policy_settings
    ]
    rows += [
        ("policy source", (info.policy_source if info else None) or "?"),
        ("kubelet", v.kubelet_version or "?"),
        ("topology fingerprint", v.topology_fingerprint or "?"),
        ("topology", topology_line(info.topology if info else None)),
    ]
    return rows


def _setting(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "(none)"
    return "(unset)" if value in (None, "") else str(value)


def _check(c: CheckVerdict, titles: dict[str, str]) -> dict[str, Any]:
    return {
        "check": c.check,
        "title": titles.get(c.check, "(not in the catalogue)"),
        "status": c.status,
        "status_text": c.status.replace("-", " "),
        "blocking": c.blocking,
        "reasons": list(c.reasons),
    }


def _failure(r: CheckRecord) -> dict[str, Any]:
    return {
        "label": r.label,
        "reason": r.reason or "failed",
        "rows": field_rows(r.predicted, r.observed),
        "has_values": r.predicted is not None or r.observed is not None,
        "predicted": pretty_json(r.predicted),
        "observed": pretty_json(r.observed),
    }
