"""`numacert run`: certify nodes as they are configured, and write the reports.

Everything the user named is checked before anything is created (exit 2 on bad input); then
the suites run as pytest (`pytest --pyargs numacert.suites` with numacert's options), and the
reports are written from what they recorded: JUnit (default and strict), results.json,
verdict.json, report.md, report.html. The exit status is the verdict's: 0 certified, 1 not
certified, 3 incomplete (infrastructure errors, an interrupted run).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import click

from numacert.errors import InputError

KINDS = ("all", "behaviour", "configuration")
PYTEST_INI = """\
[pytest]
junit_family = xunit2
junit_logging = system-out
junit_suite_name = numacert
"""


def _check_fragment(path: str | None, where: str) -> None:
    """A --require/--assume file must be a readable KubeletConfiguration fragment."""
    if path is None:
        return
    from numacert.kubelet.parse import load_fragment

    load_fragment(path, where)


def _check_ids(ids) -> None:
    from numacert.reports.catalogue import load_catalogue

    known = {spec.id for spec in load_catalogue()}
    unknown = sorted(set(ids) - known)
    if unknown:
        raise InputError(
            f"no such check: {', '.join(unknown)} (see `numacert catalogue`)", "--check"
        )


def _check_target(kubeconfig, context, nodes, namespace=None) -> None:
    """Unknown nodes, an unreadable kubeconfig or an unreachable API server: InputError, and
    nothing created. A node a journal says is still changed is refused too: certifying it
    would certify a configuration numacert put there, not the node's own. So is a
    --namespace that does not exist, or still holds numacert's pods."""
    from numacert.matrix.runner import ENV_RUNNER
    from numacert.providers.journal import Journal, NodeClaims
    from numacert.target import TargetOptions, node_names

    journal, claims = Journal(), NodeClaims()
    parent = os.environ.get(ENV_RUNNER)
    for node in node_names(TargetOptions(kubeconfig=kubeconfig, context=context, nodes=nodes)):
        entry = journal.read(node)
        if entry is not None and str(entry.runner.get("pid")) != parent:
            raise InputError(
                f"node {node} is still changed by an earlier run (journal {journal.path(node)});"
                f" run `numacert restore --node {node}`",
                "--nodes",
            )
        claims.refuse_if_held(node, int(parent) if parent else None)
    if namespace:
        _check_namespace(TargetOptions(kubeconfig=kubeconfig, context=context), namespace)


def _check_namespace(options, namespace: str) -> None:
    from kubernetes.client.rest import ApiException

    from numacert.probes.kube import MANAGED_SELECTOR
    from numacert.target import cluster_api, lab_api_if_up

    api = lab_api_if_up() if options.wants_lab else cluster_api(options.kubeconfig,
                                                                 options.context)
    if api is None:
        raise InputError(f"no namespace {namespace}: the lab is not up", "--namespace")
    try:
        api.read_namespace(namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise InputError(f"no namespace {namespace} in the cluster", "--namespace") from None
        raise
    left = api.list_namespaced_pod(namespace, label_selector=MANAGED_SELECTOR).items
    if left:
        names = ", ".join(p.metadata.name for p in left)
        raise InputError(
            f"namespace {namespace} still holds numacert's pods ({names}); delete them first",
            "--namespace",
        )


def _default_output_dir() -> Path:
    return Path("reports") / datetime.now().strftime("%Y%m%d-%H%M%S")


def pytest_args(out: Path, options: dict) -> list[str]:
    """The pytest command line of a run (the same suites run as plain pytest too)."""
    args = [
        "--pyargs",
        "numacert.suites",
        "-c",
        str(out / "pytest.ini"),
        "--rootdir",
        str(out),
        "-p",
        "no:cacheprovider",
        "-v",
        "--tb=line",
        "-W",
        "ignore::pytest.PytestWarning",
        "--junitxml",
        str(out / "pytest-junit.xml"),
        "--numacert-results",
        str(out / "results.json"),
    ]
    for flag in ("kubeconfig", "context", "nodes", "image", "node_access", "require", "assume"):
        if options.get(flag):
            args += [f"--{flag.replace('_', '-')}", str(options[flag])]
    if options.get("keep_lab"):
        args.append("--keep-lab")
    if options.get("no_kubelet_restart"):
        args.append("--no-kubelet-restart")
    if options.get("topology_snapshot"):
        args += ["--numacert-topology", str(options["topology_snapshot"])]
    if options.get("namespace"):
        args += ["--numacert-namespace", options["namespace"]]
    if options.get("checks", "all") != "all":
        args += ["--numacert-kind", options["checks"]]
    for check in options.get("check") or ():
        args += ["--numacert-check", check]
    return args


@click.command()
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="cluster under test")
@click.option("--context", help="kubeconfig context")
@click.option("--nodes", help="nodes to certify: names a,b or a label selector key=value")
@click.option(
    "--require",
    "require",
    type=click.Path(dir_okay=False),
    help="KubeletConfiguration fragment the nodes must run (image qualification)",
)
@click.option(
    "--assume",
    "assume",
    type=click.Path(dir_okay=False),
    help="diagnostic: behaviour checks hold the node to this policy instead of its own",
)
@click.option(
    "--checks",
    type=click.Choice(KINDS),
    default="all",
    show_default=True,
    help="which kinds of checks run (a kind left out leaves the verdict INCOMPLETE)",
)
@click.option(
    "--check",
    "check",
    multiple=True,
    metavar="ID",
    help="run only this catalogue check (repeatable); the verdict is then INCOMPLETE at best",
)
@click.option("--output-dir", type=click.Path(file_okay=False), help="default: reports/<time>")
@click.option("--image", help="probe image (default: the lab's busybox, or busybox:1.37)")
@click.option(
    "--namespace",
    help="run the probe pods in this existing namespace: numacert then creates and deletes "
    "no namespace, only its own pods (for an account that may not create namespaces)",
)
@click.option("--node-access", help="testinfra host spec with {node}, e.g. ssh://root@{node}")
@click.option("--keep-lab", is_flag=True, help="leave a lab this run starts running")
@click.option("--no-kubelet-restart", is_flag=True, help="skip the kubelet restart (NODE-RESTART)")
@click.option("--junit-context", default="numacert", show_default=True, help="junit_<context>.xml")
@click.option(
    "--matrix",
    help="apply each combination of this policy matrix (a file or a shipped name) to the "
    "nodes in turn, certify each, and restore the nodes (see docs/matrix.md)",
)
@click.option(
    "--provider",
    type=click.Choice(["lab", "ssh", "kind"]),
    help="kind: create kind clusters for the policy (or each matrix combination), certify "
    "their workers, delete them. lab/ssh, with --matrix: how nodes are reconfigured (default: "
    "lab without --kubeconfig, else ssh, which needs --node-access)",
)
@click.option(
    "--run-unsupported",
    is_flag=True,
    help="with --matrix: run the combinations this hardware cannot exercise too (the kubelet "
    "accepts them; their checks that need the hardware skip with the reason)",
)
@click.option("--kind-bin", type=click.Path(dir_okay=False),
              help="with --provider kind: the kind binary (default: kind on PATH)")
@click.option("--kind-image",
              help="with --provider kind: node image (default: kindest/node:<version>; see "
              "`numacert kind node-image` for machines without a registry)")
@click.option("--keep-cluster", is_flag=True,
              help="with --provider kind: leave the clusters running at the end")
@click.option("--kind-way", type=click.Choice(["in-place", "cluster"]),
              help="with --provider kind --matrix: reconfigure one cluster's worker in place "
              "(default) or create a cluster per combination")
@click.option(
    "--topology-snapshot",
    type=click.Path(dir_okay=False, exists=True),
    hidden=True,  # internal: how a matrix run hands each combination's run the topology
)
@click.option(
    "--ignore-opt-in-label",
    is_flag=True,
    help="with --matrix: reconfigure named nodes even without the label "
    "numacert.io/certify=true (only for nodes you own outright)",
)
def run(**options) -> None:
    """Certify nodes as they are configured: every check that applies, JUnit and a verdict.

    With no --kubeconfig/--context, certifies the local lab node (brought up if needed).
    Never changes a node's configuration, except with --matrix: then each combination is
    applied in turn to the named, opted-in nodes, certified, and the nodes are put back.
    """
    if options["provider"] == "kind":
        from numacert.kind.provider import run_kind

        raise click.exceptions.Exit(run_kind(options))
    for flag in ("kind_bin", "kind_image", "keep_cluster", "kind_way"):
        if options[flag]:
            raise InputError("only with --provider kind", f"--{flag.replace('_', '-')}")
    if options["matrix"]:
        from numacert.cli.matrix_cmd import run_matrix

        for flag in ("require", "assume"):
            if options[flag]:
                raise InputError("a matrix run requires each combination itself", f"--{flag}")
        raise click.exceptions.Exit(run_matrix(options))
    for flag in ("provider", "ignore_opt_in_label", "run_unsupported"):
        if options[flag]:
            raise InputError("only with --matrix", f"--{flag.replace('_', '-')}")

    raise click.exceptions.Exit(certify(options))


def certify(options: dict) -> int:
    """A plain run (no matrix): check what the user named, run the suites, write the reports;
    returns the exit status. The kind provider calls it too, on the cluster it made."""
    import pytest

    from numacert.reports.verdict import exit_code
    from numacert.reports.write import summary_table, write_reports

    _check_ids(options["check"])
    _check_fragment(options["require"], "--require")
    _check_fragment(options["assume"], "--assume")
    _check_target(options["kubeconfig"], options["context"], options["nodes"],
                  options.get("namespace"))
    out = Path(options["output_dir"]) if options["output_dir"] else _default_output_dir()
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "pytest.ini").write_text(PYTEST_INI)
    except OSError as exc:
        raise InputError(f"cannot write reports there: {exc}", "--output-dir") from None
    status = pytest.main(pytest_args(out, options))
    if status == pytest.ExitCode.USAGE_ERROR:
        raise InputError("the suites refused the options (see above)")
    results = out / "results.json"
    if not results.is_file():
        return 3
    paths = write_reports(results, out, out / "pytest-junit.xml", options["junit_context"])
    click.echo("")
    click.echo(summary_table(paths.verdicts))
    click.echo("")
    for label, path in (
        ("report", paths.html),
        ("markdown", paths.markdown),
        ("verdict", paths.verdict_json),
        ("junit", paths.junit),
        ("junit (strict)", paths.junit_strict),
    ):
        if path is not None:
            click.echo(f"{label:>15}: {path}")
    code = exit_code(paths.verdicts)
    if status == pytest.ExitCode.INTERRUPTED:
        click.echo("numacert: interrupted; the report is partial (INCOMPLETE)", err=True)
        code = 1 if code == 1 else 3  # a failure seen before the interrupt still stands
    return code
