"""`numacert catalogue`: the check catalogue (suites/catalogue.yaml) for people and for docs.

    numacert catalogue                       # a table on the terminal
    numacert catalogue --format markdown     # what docs/checks.md embeds
    numacert catalogue --format yaml         # the catalogue as data, with the derived fields
    numacert catalogue --format markdown --update docs/checks.md

Everything about a check comes from the catalogue (numacert.reports.catalogue), and the class
of each skip reason from numacert.reports.skips, the module the verdict uses. Two things the
catalogue does not hold are kept here, next to the code that renders them: the pod plan
(numacert/certify/plan.py) and which of its pods each check reads, and the skip reasons a check
can produce while the plan runs (numacert/certify/checks.py, suites/node/test_node.py). Unit
tests compare both with the plan and the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import yaml

from numacert.errors import InputError
from numacert.reports.catalogue import CheckSpec, load_catalogue
from numacert.reports.skips import SkipClass, skip_class

FORMATS = ("table", "markdown", "yaml")
BEGIN = "<!-- catalogue:begin -->"
END = "<!-- catalogue:end -->"
REGENERATE = "numacert catalogue --format markdown --update docs/checks.md"


# ---- the pod plan (numacert/certify/plan.py) -------------------------------------------------


@dataclass(frozen=True)
class PlanPod:
    name: str
    phase: str
    resources: str
    purpose: str


# One row per pod of build_plan(), in plan order. `big-<n>` stands for one pod per NUMA node.
PLAN: tuple[PlanPod, ...] = (
    PlanPod("shared-0", "A", "BestEffort", "the shared pool before any exclusive allocation"),
    PlanPod(
        "excl",
        "A",
        "Guaranteed, one whole core's worth of CPUs (1, or the threads per core under "
        "full-pcpus-only), 64Mi; 4Mi of 2Mi hugepages when the node has them; faults its "
        "hugepages and touches 16Mi of memory",
        "exclusive CPUs, alignment, memory pinning, where hugepages and touched memory land",
    ),
    PlanPod(
        "pair",
        "A",
        "Guaranteed, containers a and b with k CPUs each (about half the smallest NUMA node, "
        "whole cores), 64Mi each",
        "two exclusive containers in one pod: pod against container scope",
    ),
    PlanPod("frac", "A", "Guaranteed, 500m CPU, 64Mi", "a fractional Guaranteed container"),
    PlanPod("burst", "A", "Burstable, requests 100m CPU and 32Mi", "a Burstable container"),
    PlanPod("shared-1", "A", "BestEffort", "the shared pool while the exclusive CPUs are taken"),
    PlanPod(
        "init",
        "A or B",
        "Guaranteed: an init container, a sidecar (restartable init container) and an app "
        "container, one core's worth of CPUs each",
        "init container CPUs reused, sidecar CPUs not",
    ),
    PlanPod(
        "toobig",
        "C",
        "Guaranteed, one CPU more than the largest NUMA node has (whole cores); only on 2+ "
        "NUMA nodes",
        "more CPUs than one NUMA node has: rejected or spread, as the policy says",
    ),
    PlanPod(
        "smt-odd",
        "C",
        "Guaranteed, 1 CPU; only under full-pcpus-only on an SMT node",
        "a request that is not whole cores: SMTAlignmentError",
    ),
    PlanPod(
        "big-<n>",
        "C or D",
        "Guaranteed, 100m CPU, NUMA node n's free memory but 256Mi; one per NUMA node, only "
        "under Memory Manager Static on 2+ NUMA nodes",
        "fills every NUMA node's memory",
    ),
    PlanPod("nomem", "C or D", "Guaranteed, 100m CPU, 384Mi", "memory that fits no NUMA node set"),
    PlanPod("shared-final", "E", "BestEffort", "the shared pool after every pod is gone (release)"),
)

# Skips a check can produce while the plan runs, beyond its preconditions: a pod the plan left
# out (plan.py `left_out`), a check with nothing to read (checks.py `not_exercised`, which the
# fixture turns into `not-exercised`), or the two skips in suites/node/test_node.py.
RUN_SKIPS: dict[str, tuple[tuple[str, str], ...]] = {
    "CPU-EXCLUSIVE": (("not-exercised", "no pod with exclusive CPUs ran"),),
    "CPU-INIT": (("needs-free-cpus:<n>", "too few free CPUs left for the init pod"),),
    "TM-ALIGN": (("not-exercised", "no pod with aligned resources ran"),),
    "TM-REJECT": (("needs-free-cpus:<n>", "too few free CPUs for toobig"),),
    "TM-BESTEFFORT": (("needs-free-cpus:<n>", "too few free CPUs for toobig"),),
    "TM-CLOSEST": (("needs-free-cpus:<n>", "too few free CPUs for toobig"),),
    "MEM-REJECT": (("needs-memory:<numa>", "a NUMA node has too little free memory to fill"),),
    "HP-NUMA": (("not-exercised", "excl did not run its hugepage probe"),),
    "MEM-LOCAL": (("not-exercised", "excl did not run its memory probe"),),
    "NODE-RESTART": (("not-run:kubelet-restart-disabled", "--no-kubelet-restart was given"),),
    "NODE-METRICS": (("needs-metrics", "the kubelet's /metrics could not be read"),),
}

SKIP_CLASS_TEXT = {
    SkipClass.NOT_REQUIRED: "not required",
    SkipClass.HARDWARE: "not exercised",
    SkipClass.BLOCKING: "blocks: INCOMPLETE",
}

_POLICY_NAMES = {
    "cpu_manager": "CPU Manager",
    "topology_manager": "Topology Manager",
    "topology_scope": "Topology Manager scope",
    "memory_manager": "Memory Manager",
}
_OPTION_NAMES = {"cpu_options": "CPU Manager option", "tm_options": "Topology Manager option"}


# ---- derived fields ------------------------------------------------------------------------


def applies_text(spec: CheckSpec) -> str:
    """When the check applies, for people: `CPU Manager static; CPU Manager option X`."""
    parts = []
    for key, values in spec.applies.items():
        values = values if isinstance(values, list) else [values]
        name = _POLICY_NAMES.get(key) or _OPTION_NAMES.get(key) or key
        joiner = " or " if key in _POLICY_NAMES else " and "
        parts.append(f"{name} {joiner.join(str(v) for v in values)}")
    return "; ".join(parts) or "every policy"


def needs_text(spec: CheckSpec) -> str:
    """What the node and the run must have, for people."""
    needs = spec.needs
    parts = []
    if needs.get("numa_nodes"):
        parts.append(f"{needs['numa_nodes']}+ NUMA nodes")
    if needs.get("smt"):
        parts.append("SMT (2+ threads per core)")
    if needs.get("hugepages"):
        parts.append(f"{needs['hugepages']} hugepages (2 allocatable pages)")
    if needs.get("free_cpus"):
        parts.append(f"{needs['free_cpus']}+ allocatable CPUs")
    if needs.get("node_access"):
        parts.append("node access (--node-access)")
    if needs.get("require"):
        parts.append("a --require file")
    known = {"numa_nodes", "smt", "hugepages", "free_cpus", "node_access", "require"}
    parts += [f"{key}: {value}" for key, value in needs.items() if key not in known]
    return ", ".join(parts) or "nothing beyond the node"


def precondition_skips(spec: CheckSpec) -> list[str]:
    """The skip reasons numacert.certify.applicability gives this check's preconditions."""
    reasons = []
    for key, values in spec.applies.items():
        if key in _POLICY_NAMES:
            reasons.append(f"not-applicable:{key}=<value>")
        elif key in _OPTION_NAMES:
            values = values if isinstance(values, list) else [values]
            reasons += [f"not-applicable:{option}=off" for option in values]
    needs = spec.needs
    if needs.get("numa_nodes"):
        reasons.append(f"needs-numa-nodes:{needs['numa_nodes']}")
    if needs.get("smt"):
        reasons.append("needs-smt")
    if needs.get("hugepages"):
        reasons.append(f"needs-hugepages:{needs['hugepages']}")
    if needs.get("free_cpus"):
        reasons.append(f"needs-free-cpus:{needs['free_cpus']}")
    if needs.get("node_access"):
        reasons.append("needs-node-access")
    if needs.get("require"):
        reasons.append("needs-require")
    return reasons


def skip_rows(spec: CheckSpec) -> list[dict]:
    """Every skip reason the check can produce: reason, class, and when it is decided."""
    rows = [
        {"reason": r, "class": SKIP_CLASS_TEXT[skip_class(r)], "when": "before the run"}
        for r in precondition_skips(spec)
    ]
    rows += [
        {"reason": r, "class": SKIP_CLASS_TEXT[skip_class(r)], "when": f"during the run: {why}"}
        for r, why in RUN_SKIPS.get(spec.id, ())
    ]
    return rows


def reads_text(spec: CheckSpec, code: bool = False) -> str:
    """The pods a check reads (catalogue `reads`) and how; names as code spans with `code`."""
    pods = ", ".join(f"`{p}`" if code else p for p in spec.reads if p != "all")
    if pods and spec.reads_how:
        return f"{pods}: {spec.reads_how}"
    return pods or spec.reads_how


# ---- renderers -------------------------------------------------------------------------------


def render_markdown(specs: list[CheckSpec]) -> str:
    lines = [
        "## The pod plan",
        "",
        "One plan of probe pods per node serves every check (numacert/certify/plan.py). Sizes",
        "come from the node's topology and policy; a pod the node cannot host is left out with",
        "a machine-readable reason, and the checks that read it skip with that reason.",
        "",
        "| pod | phase | resources | what it is for |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{p.name}` | {p.phase} | {p.resources} | {p.purpose} |" for p in PLAN]
    lines += [
        "",
        "Phase A ends with a checkpoint: every running container is read again after",
        "cpuManagerReconcilePeriod, then, with node access, the kubelet's state files are read",
        "and the kubelet is restarted; then phase A's pods are deleted. `init` joins phase A",
        "when the node has room for it there, else it runs alone in phase B. Each later phase",
        "starts once the pods of the one before are gone.",
        "",
        "## The checks",
        "",
        "| check | kind | area | applies when | needs |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| [{s.id}](#{s.id.lower()}) | {s.kind} | {s.area} | {applies_text(s)} | {needs_text(s)} |"
        for s in specs
    ]
    for spec in specs:
        lines += ["", f"### {spec.id}", "", f"**{spec.title}.** {spec.proves}", ""]
        lines += [
            f"- kind: {spec.kind}; area: {spec.area}",
            f"- applies when: {applies_text(spec)}",
            f"- needs: {needs_text(spec)}",
            f"- reads: {reads_text(spec, code=True)}",
            "- failure modes: " + (", ".join(spec.failure_modes) or "none listed"),
        ]
        rows = skip_rows(spec)
        if rows:
            lines.append("- skip reasons:")
            lines += [f"  - `{r['reason']}` ({r['class']}; {r['when']})" for r in rows]
        else:
            lines.append("- skip reasons: none (the check always runs)")
    return "\n".join(lines) + "\n"


def render_yaml(specs: list[CheckSpec]) -> str:
    data = {
        "plan": [
            {"pod": p.name, "phase": p.phase, "resources": p.resources, "purpose": p.purpose}
            for p in PLAN
        ],
        "checks": [
            {
                "id": s.id,
                "area": s.area,
                "kind": s.kind,
                "title": s.title,
                "proves": s.proves,
                "applies": s.applies,
                "needs": s.needs,
                "failure_modes": list(s.failure_modes),
                "reads": list(s.reads),
                "skip_reasons": skip_rows(s),
            }
            for s in specs
        ],
    }
    return yaml.safe_dump(data, sort_keys=False, width=100)


def print_table(specs: list[CheckSpec]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("CHECK", no_wrap=True)
    for column in ("KIND", "WHAT IT PROVES", "APPLIES WHEN", "NEEDS"):
        table.add_column(column, overflow="fold")
    for s in specs:
        table.add_row(s.id, s.kind, s.title, applies_text(s), needs_text(s))
    console = Console()
    if not console.is_terminal:  # piped: no terminal width to respect
        console = Console(width=140)
    console.print(table)


def update_file(path: str, markdown: str) -> bool:
    """Put `markdown` between the markers of `path`; True when the file changed."""
    file = Path(path)
    try:
        text = file.read_text("utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise InputError(f"no {BEGIN} ... {END} block to update", path)
    new = text[: start + len(BEGIN)] + "\n" + markdown + text[end:]
    if new == text:
        return False
    file.write_text(new, encoding="utf-8")
    return True


def embedded_block(text: str) -> str | None:
    """The text between the markers (None without them)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start + len(BEGIN) : end]


@click.command()
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table for people, markdown for docs/checks.md, yaml for programs",
)
@click.option(
    "--update",
    metavar="FILE",
    help=f"with --format markdown: rewrite the block between {BEGIN} and {END} in FILE",
)
def catalogue(fmt: str, update: str | None) -> None:
    """Show the check catalogue: what each check proves, when it applies, what it needs."""
    specs = load_catalogue()
    if update and fmt != "markdown":
        raise InputError("--update works with --format markdown only", "--update")
    if fmt == "markdown":
        markdown = render_markdown(specs)
        if update:
            changed = update_file(update, markdown)
            click.echo(f"{update}: {'updated' if changed else 'already up to date'}")
        else:
            click.echo(markdown, nl=False)
    elif fmt == "yaml":
        click.echo(render_yaml(specs), nl=False)
    else:
        print_table(specs)
