"""`numacert catalogue` and docs/checks.md: the page cannot drift from the catalogue, and what
the command adds to the catalogue (the pod plan, what each check reads, its skip reasons) is
held against the planner and the applicability rules it describes."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

from numacert.certify.applicability import SEPARATOR, RunMeans, skip_reason
from numacert.certify.plan import build_plan
from numacert.cli import catalogue_cmd
from numacert.cli.main import main
from numacert.kubelet.parse import from_dict
from numacert.kubelet.validate import derive_reserved_memory
from numacert.reports.catalogue import load_catalogue
from numacert.reports.skips import skip_kind
from numacert.topology.generate import generate
from numacert.topology.profiles import load_profile

ROOT = Path(__file__).resolve().parents[2]
CHECKS_MD = ROOT / "docs" / "checks.md"
SPECS = load_catalogue()
IDS = [s.id for s in SPECS]
MiB = 1 << 20


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


# ---- docs/checks.md --------------------------------------------------------------------------


def test_checks_md_embeds_what_the_command_prints(capsys):
    code, out, err = run(["catalogue", "--format", "markdown"], capsys)
    assert code == 0, err
    block = catalogue_cmd.embedded_block(CHECKS_MD.read_text("utf-8"))
    assert block is not None, (
        f"{CHECKS_MD} lacks the {catalogue_cmd.BEGIN} / {catalogue_cmd.END} markers"
    )
    assert block.strip() == out.strip(), (
        "docs/checks.md is out of date with suites/catalogue.yaml; regenerate it with: "
        + catalogue_cmd.REGENERATE
    )


def test_every_check_is_documented_once():
    block = catalogue_cmd.embedded_block(CHECKS_MD.read_text("utf-8")) or ""
    for check in IDS:
        assert block.count(f"\n### {check}\n") == 1, check


# ---- the command -----------------------------------------------------------------------------


def test_table_lists_every_check(capsys):
    code, out, err = run(["catalogue"], capsys)
    assert code == 0, err
    for check in IDS:
        assert check in out


def test_yaml_is_the_catalogue_plus_derived_fields(capsys):
    code, out, err = run(["catalogue", "--format", "yaml"], capsys)
    assert code == 0, err
    data = yaml.safe_load(out)
    assert [c["id"] for c in data["checks"]] == IDS
    assert [p["pod"] for p in data["plan"]] == [p.name for p in catalogue_cmd.PLAN]
    by_id = {c["id"]: c for c in data["checks"]}
    for spec in SPECS:
        entry = by_id[spec.id]
        assert (entry["proves"], entry["applies"], entry["needs"]) == (
            spec.proves,
            spec.applies,
            spec.needs,
        )
        assert entry["failure_modes"] == list(spec.failure_modes)
    assert {"reason": "needs-node-access", "class": "blocks: INCOMPLETE"}.items() <= next(
        r for r in by_id["CFG-STATE"]["skip_reasons"] if r["reason"] == "needs-node-access"
    ).items()


def test_update_rewrites_only_the_block(tmp_path, capsys):
    page = tmp_path / "checks.md"
    page.write_text(f"intro\n\n{catalogue_cmd.BEGIN}\nSTALE TEXT\n{catalogue_cmd.END}\ntail\n")
    code, out, err = run(["catalogue", "-f", "markdown", "--update", str(page)], capsys)
    assert code == 0, err
    text = page.read_text()
    assert text.startswith(f"intro\n\n{catalogue_cmd.BEGIN}\n## The pod plan\n")
    assert text.endswith(f"{catalogue_cmd.END}\ntail\n")
    assert "STALE TEXT" not in text
    code, out, err = run(["catalogue", "-f", "markdown", "--update", str(page)], capsys)
    assert code == 0 and "already up to date" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--update", "x.md"], "--update works with --format markdown only"),
        (["-f", "markdown", "--update", "{missing}"], "cannot read"),
        (["-f", "markdown", "--update", "{nomarkers}"], "no <!-- catalogue:begin -->"),
    ],
)
def test_update_errors_are_one_line_exit_2(tmp_path, capsys, args, message):
    nomarkers = tmp_path / "plain.md"
    nomarkers.write_text("no markers here\n")
    args = [
        a.format(missing=tmp_path / "absent.md", nomarkers=nomarkers) for a in ["catalogue", *args]
    ]
    code, out, err = run(args, capsys)
    assert code == 2
    assert message in err and "Traceback" not in err


# ---- the pod plan and what each check reads ----------------------------------------------------

# Topologies and policies that between them make the planner emit every pod and every reason
# it has for leaving one out.
TOPOLOGIES = {
    "single-numa": lambda: load_profile("single-numa"),
    "two-socket-smt": lambda: load_profile("two-socket-smt"),
    "four-numa-unequal": lambda: load_profile("four-numa-unequal"),
    "two-numa-no-smt": lambda: generate(2, 1, 4, 1, "4Gi", {"2Mi": 64}),
}
POLICIES = {
    "none": {},
    "static": {"cpuManagerPolicy": "static", "reservedSystemCPUs": "0"},
    "full": {
        "cpuManagerPolicy": "static",
        "reservedSystemCPUs": "0,1",
        "cpuManagerPolicyOptions": {"full-pcpus-only": "true"},
        "topologyManagerPolicy": "single-numa-node",
        "memoryManagerPolicy": "Static",
        "systemReserved": {"memory": "512Mi"},
    },
    "best-effort": {
        "cpuManagerPolicy": "static",
        "reservedSystemCPUs": "0",
        "topologyManagerPolicy": "best-effort",
        "topologyManagerPolicyOptions": {"prefer-closest-numa-nodes": "true"},
    },
    "restricted": {
        "cpuManagerPolicy": "static",
        "reservedSystemCPUs": "0",
        "topologyManagerPolicy": "restricted",
        "topologyManagerScope": "pod",
    },
}


def _config(policy: str, topology):
    config = from_dict(dict(POLICIES[policy]), "test")
    if config.memory_manager_policy == "Static":
        config.reserved_memory = derive_reserved_memory(config, topology)
    return config


def _plans():
    for (tname, make), policy in itertools.product(TOPOLOGIES.items(), POLICIES):
        topology = make()
        memory = sum(n.memory for n in topology.numa_nodes)
        for cpus, mem in ((topology.num_cpus, memory - 1024 * MiB), (3, 900 * MiB)):
            allocatable = {"cpu": cpus * 1000, "memory": mem, "hugepages-2Mi": 64 << 20}
            yield (
                f"{tname}/{policy}/{cpus}",
                build_plan(topology, _config(policy, topology), allocatable, 37),
            )


PLANS = dict(_plans())


def _row(pod: str) -> str:
    return re.sub(r"^big-\d+$", "big-<n>", pod)


def test_plan_table_names_every_pod_the_planner_makes_in_its_order():
    """The table's rows are in the order the planner makes the pods; init's row ("A or B")
    comes after shared-1, where phase B puts it; in phase A the planner makes it right after
    the other exclusive pods, before frac, burst and shared-1."""
    rows = [p.name for p in catalogue_cmd.PLAN]
    made = set()
    init_phases = set()
    for label, plan in PLANS.items():
        names = [_row(p) for p in plan.pods()]
        made |= set(names)
        ordered = [r for r in rows if r in names]
        phase_a = [p.name for p in plan.phases[0].adds]
        if "init" in phase_a:
            ordered.remove("init")
            first_shared = next(r for r in ordered if r in ("frac", "burst", "shared-1"))
            ordered.insert(ordered.index(first_shared), "init")
        init_phases |= {ph.name for ph in plan.phases if "init" in [p.name for p in ph.adds]}
        assert list(dict.fromkeys(names)) == ordered, label
    assert made == set(rows)
    assert init_phases == {"A", "B"}


def test_plan_phases_match_the_table():
    phase_of = {p.name: p.phase for p in catalogue_cmd.PLAN}
    for label, plan in PLANS.items():
        for phase in plan.phases:
            for pod in phase.adds:
                assert phase.name in phase_of[_row(pod.name)].split(" or "), (label, pod.name)


def test_every_check_says_what_it_reads():
    rows = {p.name for p in catalogue_cmd.PLAN} | {"all"}
    for spec in SPECS:
        assert set(spec.reads) <= rows, spec.id
        assert spec.reads or spec.reads_how, spec.id
    assert set(catalogue_cmd.RUN_SKIPS) <= set(IDS)


def test_every_reason_the_planner_leaves_a_pod_out_for_is_documented():
    documented = {
        skip_kind(row["reason"]) for spec in SPECS for row in catalogue_cmd.skip_rows(spec)
    }
    left_out = {skip_kind(r) for plan in PLANS.values() for r in plan.left_out.values()}
    assert left_out, "the plans above should leave some pods out"
    assert left_out <= documented


# ---- precondition skips against numacert.certify.applicability --------------------------------


def _normalise(reason: str) -> str:
    """`not-applicable:cpu_manager=none` -> `not-applicable:cpu_manager=<value>`, as rendered."""
    kind, _, detail = reason.partition(":")
    key, eq, _value = detail.partition("=")
    if kind == "not-applicable" and eq and key in catalogue_cmd._POLICY_NAMES:
        return f"{kind}:{key}=<value>"
    return reason


def test_precondition_skips_are_exactly_those_applicability_gives():
    produced: dict[str, set[str]] = {s.id: set() for s in SPECS}
    means_list = [
        RunMeans(node_access=a, require=r, allocatable_cpus=c, hugepages_2m_bytes=h)
        for a, r, c, h in itertools.product((False, True), (False, True), (0, 1, 64), (0, 64 << 20))
    ]
    for (_, make), policy in itertools.product(TOPOLOGIES.items(), POLICIES):
        topology = make()
        config = _config(policy, topology)
        for spec, means in itertools.product(SPECS, means_list):
            reason = skip_reason(spec.applies, spec.needs, config, topology, means)
            if reason:
                produced[spec.id].add(_normalise(reason.split(SEPARATOR)[0]))
    for spec in SPECS:
        documented = set(catalogue_cmd.precondition_skips(spec))
        assert produced[spec.id] <= documented, spec.id
        # every documented reason is one the rules really give (none is made up)
        assert documented <= produced[spec.id], spec.id
