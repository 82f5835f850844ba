"""The reports of a policy matrix run (`numacert run --matrix FILE`).

A matrix run applies several kubelet policy combinations to nodes in turn and certifies each.
Its output folder holds matrix.json (what ran, see `parse_matrix`) and, per combination that
ran, the normal outputs of one run in `<dir>/`. `write_matrix_reports` reads them and writes,
next to matrix.json:

- matrix-verdict.json: the overall verdict and one entry per combination;
- junit_<context>.xml and junit_<context>-strict.xml: every combination's JUnit in one file
  (matrix_junit.py);
- matrix.md and matrix.html: combinations x checks (matrix_render.py).

The verdict of one combination that ran is the single-run verdict of its results.json
(verdict.py, recomputed, not re-implemented): NOT CERTIFIED if any of its node verdicts is,
else INCOMPLETE if any is (or results.json cannot be read, or holds no node), else CERTIFIED.
A combination whose policy the node cannot run is UNSUPPORTED: listed, never counted as passed
and never failing. A combination whose apply or restore failed (`error`) or that the run never
reached (`not-run`) is INCOMPLETE.

The matrix verdict:

- NOT CERTIFIED: a combination that ran is NOT CERTIFIED;
- INCOMPLETE: else, a combination that ran is INCOMPLETE, one is `error` or `not-run`, or the
  matrix run was interrupted;
- CERTIFIED: else, when at least one combination ran (certified for those that ran);
- nothing to certify: no combination ran (all unsupported, or none at all); exit code 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from numacert.certify.applicability import SEPARATOR  # `code | sentence` in reasons
from numacert.errors import InputError
from numacert.reports.catalogue import CheckSpec, load_catalogue
from numacert.reports.junit import junit_filename
from numacert.reports.results import Results, _get, load_results, read_json
from numacert.reports.verdict import COUNTED, NodeVerdict, Verdict, exit_code, verdict

MATRIX_JSON = "matrix.json"
MATRIX_VERDICT_JSON = "matrix-verdict.json"
MATRIX_MD = "matrix.md"
MATRIX_HTML = "matrix.html"
DEFAULT_CONTEXT = "numacert"

RUN, UNSUPPORTED_STATUS, ERROR, NOT_RUN = "run", "unsupported", "error", "not-run"
COMBINATION_STATUSES = (RUN, UNSUPPORTED_STATUS, ERROR, NOT_RUN)
UNSUPPORTED = "UNSUPPORTED"  # the verdict of an unsupported combination
NOTHING = "NOTHING TO CERTIFY"  # the matrix verdict when no combination ran


@dataclass(frozen=True)
class Combination:
    """One entry of matrix.json's `combinations`."""

    id: str
    status: str  # run | unsupported | error | not-run
    labels: dict[str, str] = field(default_factory=dict)
    kubelet: dict[str, Any] = field(default_factory=dict)  # the KubeletConfiguration fragment
    reason: str | None = None
    node: str | None = None
    dir: str | None = None  # relative to the output folder
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def reason_code(self) -> str | None:
        """`needs-smt` of an unsupported reason `needs-smt | needs SMT ...`; else None."""
        code, sep, _ = (self.reason or "").partition(SEPARATOR)
        return (code.strip() or None) if sep else None

    @property
    def reason_text(self) -> str | None:
        """The sentence of the reason (the part after ` | `, or all of it)."""
        if not self.reason:
            return None
        _, sep, text = self.reason.partition(SEPARATOR)
        return text.strip() if sep else self.reason


@dataclass(frozen=True)
class Matrix:
    """matrix.json."""

    name: str
    combinations: tuple[Combination, ...]
    source: str | None = None
    started: str | None = None
    finished: str | None = None
    interrupted: bool = False


@dataclass(frozen=True)
class CombinationVerdict:
    """One combination: its matrix.json entry, its verdict and the node verdicts it came from."""

    combination: Combination
    verdict: str  # CERTIFIED | NOT CERTIFIED | INCOMPLETE | UNSUPPORTED
    reason: str | None  # matrix.json's reason, or why the run's results could not be read
    causes: tuple[str, ...]  # one line per reason it is not CERTIFIED (node verdicts' causes)
    nodes: tuple[NodeVerdict, ...] = ()

    @property
    def id(self) -> str:
        return self.combination.id

    @property
    def status(self) -> str:
        return self.combination.status

    @property
    def css(self) -> str:
        """certified | not-certified | incomplete | unsupported (HTML class names)."""
        return self.verdict.lower().replace(" ", "-")

    def counts(self) -> dict[str, int]:
        """Checks per aggregated status, summed over the combination's node verdicts."""
        return {s: sum(v.counts()[s] for v in self.nodes) for s in COUNTED}

    @property
    def failing_checks(self) -> tuple[str, ...]:
        """Check ids that failed on any node, in catalogue order."""
        # Every node verdict lists the catalogue's checks first, in order, then unknown ones.
        order = dict.fromkeys(c.check for v in self.nodes for c in v.checks)
        failed = {c.check for v in self.nodes for c in v.checks if c.status == "failed"}
        return tuple(c for c in order if c in failed)

    def to_dict(self) -> dict[str, Any]:
        c = self.combination
        return {
            "id": c.id,
            "labels": dict(c.labels),
            "node": c.node,
            "status": c.status,
            "verdict": self.verdict,
            "reason": self.reason,
            "causes": list(self.causes),
            "counts": self.counts(),
            "failing_checks": list(self.failing_checks),
            "nodes": [
                {"node": v.node, "policy": v.policy, "verdict": v.status.value} for v in self.nodes
            ],
            "dir": c.dir,
            "timings": dict(c.timings),
        }


@dataclass(frozen=True)
class MatrixPaths:
    """What write_matrix_reports wrote."""

    verdict_json: Path
    markdown: Path
    html: Path
    junit: Path
    junit_strict: Path


@dataclass(frozen=True)
class MatrixVerdict:
    matrix: Matrix
    status: Verdict | None  # None: nothing to certify (no combination ran)
    causes: tuple[str, ...]  # one line per reason the matrix is not CERTIFIED
    combinations: tuple[CombinationVerdict, ...]
    checks: tuple[str, ...]  # the columns: catalogue order, then ids the catalogue lacks
    paths: MatrixPaths | None = None  # set by write_matrix_reports

    @property
    def overall(self) -> str:
        """CERTIFIED | NOT CERTIFIED | INCOMPLETE | NOTHING TO CERTIFY."""
        return self.status.value if self.status is not None else NOTHING

    @property
    def exit_code(self) -> int:
        return matrix_exit_code(self)

    @property
    def unsupported(self) -> tuple[CombinationVerdict, ...]:
        return tuple(c for c in self.combinations if c.verdict == UNSUPPORTED)

    def tally(self) -> dict[str, int]:
        """Combinations per verdict."""
        names = [v.value for v in Verdict] + [UNSUPPORTED]
        return {n: sum(1 for c in self.combinations if c.verdict == n) for n in names}

    def to_dict(self) -> dict[str, Any]:
        m = self.matrix
        return {
            "matrix": m.name,
            "source": m.source,
            "started": m.started,
            "finished": m.finished,
            "interrupted": m.interrupted,
            "verdict": self.overall,
            "exit_code": self.exit_code,
            "causes": list(self.causes),
            "counts": self.tally(),
            "combinations": [c.to_dict() for c in self.combinations],
        }


def matrix_exit_code(mv: MatrixVerdict) -> int:
    """Like the single run's exit_code: 0 CERTIFIED, 1 NOT CERTIFIED, 3 INCOMPLETE, 2 nothing
    to certify."""
    return {Verdict.CERTIFIED: 0, Verdict.NOT_CERTIFIED: 1, Verdict.INCOMPLETE: 3}.get(mv.status, 2)


# ---- reading ------------------------------------------------------------------------------


def load_matrix(path: Path) -> Matrix:
    """Read matrix.json; InputError names the file (and the field) when it is not one."""
    return parse_matrix(read_json(path), str(path))


def parse_matrix(data: Any, where: str = MATRIX_JSON) -> Matrix:
    """Build Matrix from the decoded JSON. Unknown keys are ignored."""
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", where)
    name = data.get("matrix")
    if not isinstance(name, str) or not name.strip():
        raise InputError("`matrix` must be a non-empty string", where)
    entries = data.get("combinations")
    if not isinstance(entries, list):
        raise InputError("`combinations` must be an array", where)
    combinations = tuple(
        _combination(e, f"{where}: combinations[{i}]") for i, e in enumerate(entries)
    )
    seen: set[str] = set()
    for c in combinations:
        if c.id in seen:
            raise InputError(f"combination id {c.id} appears twice", where)
        seen.add(c.id)
    return Matrix(
        name=name,
        combinations=combinations,
        source=_get(data, "source", str, where),
        started=_get(data, "started", str, where),
        finished=_get(data, "finished", str, where),
        interrupted=bool(_get(data, "interrupted", bool, where, default=False)),
    )


def _combination(data: Any, where: str) -> Combination:
    if not isinstance(data, dict):
        raise InputError("a combination must be an object", where)
    if not isinstance(data.get("id"), str) or not data["id"].strip():
        raise InputError("`id` must be a non-empty string", where)
    status = data.get("status")
    if status not in COMBINATION_STATUSES:
        raise InputError(
            f"`status` must be one of {', '.join(COMBINATION_STATUSES)}, got {status!r}", where
        )
    folder = _get(data, "dir", str, where)
    if folder is not None:
        parts = PurePosixPath(folder.replace("\\", "/")).parts
        if not parts or folder.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise InputError(
                f"`dir` must be a folder inside the output folder, got {folder!r}", where
            )
    timings = _get(data, "timings", dict, where, default={})
    for key, value in timings.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"`timings.{key}` must be a number", where)
    return Combination(
        id=data["id"],
        status=status,
        labels={str(k): str(v) for k, v in _get(data, "labels", dict, where, default={}).items()},
        kubelet=dict(_get(data, "kubelet", dict, where, default={})),
        reason=_get(data, "reason", str, where),
        node=_get(data, "node", str, where),
        dir=folder,
        timings={str(k): float(v) for k, v in timings.items()},
    )


def load_run(out_dir: Path, combination: Combination) -> Results | str:
    """The results of a combination that ran, or a line saying why they cannot be read."""
    if combination.dir is None:
        return "no output folder: matrix.json gives no `dir` for a combination that ran"
    try:
        return load_results(Path(out_dir) / combination.dir / "results.json")
    except InputError as e:
        return f"no usable results: {e}"


# ---- the verdict (pure) -----------------------------------------------------------------------


def matrix_verdict(
    matrix: Matrix, runs: dict[str, Results | str], catalogue: list[CheckSpec]
) -> MatrixVerdict:
    """The verdict of every combination and of the matrix. `runs` maps the id of each
    combination that ran to its Results, or to why they could not be read (a missing id reads
    as missing results)."""
    combos = tuple(
        _combination_verdict(
            c, runs.get(c.id, "no results were read for this combination"), catalogue
        )
        for c in matrix.combinations
    )
    ran = [c for c in combos if c.status == RUN]
    causes = [
        f"{c.id}: NOT CERTIFIED{_failing(c)}" for c in ran if c.verdict == Verdict.NOT_CERTIFIED
    ]
    causes += [f"{c.id}: INCOMPLETE{_first(c)}" for c in ran if c.verdict == Verdict.INCOMPLETE]
    causes += [
        f"{c.id}: {c.status}" + (f": {c.reason}" if c.reason else "")
        for c in combos
        if c.status in (ERROR, NOT_RUN)
    ]
    if matrix.interrupted:
        causes.append("the matrix run was interrupted")
    if any(c.verdict == Verdict.NOT_CERTIFIED for c in ran):
        status: Verdict | None = Verdict.NOT_CERTIFIED
    elif causes:  # a run INCOMPLETE, an error or not-run combination, or the interrupt
        status = Verdict.INCOMPLETE
    elif ran:
        status = Verdict.CERTIFIED
    else:
        status = None
    return MatrixVerdict(
        matrix=matrix,
        status=status,
        causes=tuple(causes),
        combinations=combos,
        checks=_columns(combos, catalogue),
    )


def _combination_verdict(
    c: Combination, run: Results | str, catalogue: list[CheckSpec]
) -> CombinationVerdict:
    if c.status == UNSUPPORTED_STATUS:
        return CombinationVerdict(c, UNSUPPORTED, c.reason, ())
    if c.status == ERROR:
        text = c.reason or "the combination could not be applied (no message)"
        return CombinationVerdict(c, Verdict.INCOMPLETE.value, c.reason, (f"error: {text}",))
    if c.status == NOT_RUN:
        text = c.reason or "the matrix run stopped before this combination"
        return CombinationVerdict(c, Verdict.INCOMPLETE.value, c.reason, (f"not run: {text}",))
    if isinstance(run, str):
        return CombinationVerdict(c, Verdict.INCOMPLETE.value, run, (run,))
    nodes = verdict(run, catalogue)
    code = exit_code(nodes)
    causes = [
        f"{v.node}: {cause}" if len(nodes) > 1 else cause for v in nodes for cause in v.causes
    ]
    if code == 2:
        causes.append("results.json holds no node and no check")
    status = {0: Verdict.CERTIFIED, 1: Verdict.NOT_CERTIFIED}.get(code, Verdict.INCOMPLETE)
    return CombinationVerdict(c, status.value, c.reason, tuple(causes), tuple(nodes))


def _failing(c: CombinationVerdict) -> str:
    return f" ({', '.join(c.failing_checks)} failed)" if c.failing_checks else ""


def _first(c: CombinationVerdict) -> str:
    if not c.causes:
        return ""
    more = f"; {len(c.causes) - 1} more" if len(c.causes) > 1 else ""
    return f" ({c.causes[0]}{more})"


def _columns(combos: tuple[CombinationVerdict, ...], catalogue: list[CheckSpec]) -> tuple[str, ...]:
    ids = [spec.id for spec in catalogue]
    for c in combos:
        for v in c.nodes:
            ids += [cv.check for cv in v.checks if cv.check not in ids]
    return tuple(ids)


# ---- writing ------------------------------------------------------------------------------


def write_matrix_reports(
    out_dir: Path,
    junit_context: str | None = None,
    catalogue: list[CheckSpec] | None = None,
) -> MatrixVerdict:
    """Read OUT/matrix.json and each run's results.json; write matrix-verdict.json,
    junit_<context>.xml, junit_<context>-strict.xml, matrix.md and matrix.html into OUT.
    `junit_context` defaults to `numacert`, the name each combination's JUnit files carry too;
    `catalogue` defaults to the shipped one. A missing or malformed matrix.json is an
    InputError naming it; a combination's missing results make that combination INCOMPLETE."""
    # Imported here: both import this module's types.
    from numacert.reports.matrix_junit import merge_junit
    from numacert.reports.matrix_render import render_matrix_html, render_matrix_markdown

    out = Path(out_dir)
    matrix = load_matrix(out / MATRIX_JSON)
    specs = load_catalogue() if catalogue is None else catalogue
    runs = {c.id: load_run(out, c) for c in matrix.combinations if c.status == RUN}
    mv = matrix_verdict(matrix, runs, specs)
    links = {
        c.id: quote(f"{c.dir}/report.html", safe="/+=")
        for c in matrix.combinations
        if c.status == RUN and c.dir and (out / c.dir / "report.html").is_file()
    }
    context = junit_context or DEFAULT_CONTEXT
    paths = MatrixPaths(
        verdict_json=out / MATRIX_VERDICT_JSON,
        markdown=out / MATRIX_MD,
        html=out / MATRIX_HTML,
        junit=out / junit_filename(context),
        junit_strict=out / junit_filename(f"{context}-strict"),
    )
    mv = replace(mv, paths=paths)
    paths.verdict_json.write_text(json.dumps(mv.to_dict(), indent=2) + "\n", encoding="utf-8")
    titles = {spec.id: spec.title for spec in specs}
    paths.markdown.write_text(render_matrix_markdown(mv, links), encoding="utf-8")
    paths.html.write_text(render_matrix_html(mv, links, titles), encoding="utf-8")
    merge_junit(mv, out, context, paths.junit, paths.junit_strict)
    return mv


def matrix_summary_table(mv: MatrixVerdict) -> str:
    """A plain-text table for the CLI, one row per combination."""
    head = ("COMBINATION", "NODE", "STATUS", "VERDICT", "PASSED", "FAILED", "ERROR", "SKIPPED")
    rows = [list(head)]
    for c in mv.combinations:
        counts = c.counts()
        rows.append(
            [c.id, c.combination.node or "-", c.status, c.verdict]
            + [str(counts[s]) for s in ("passed", "failed", "error", "skipped")]
        )
    if len(rows) == 1:
        return "no combination in the matrix"
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
