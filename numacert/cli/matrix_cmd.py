"""`numacert run --matrix FILE` and `numacert plan --matrix FILE`.

plan: what would be applied to which node in what order, which combinations are UNSUPPORTED
and why, and per combination the oracle's prediction for each check (the pods the plan would
run and what a correct kubelet does with them); it changes nothing.
run: the same preparation, then numacert.matrix.runner applies, certifies and restores; the
matrix reports (numacert.reports.matrix) are written and the exit status is the matrix
verdict's: 0 certified, 1 not certified, 3 incomplete or a node that could not be restored.
"""

from __future__ import annotations

from pathlib import Path

import click

from numacert.errors import InputError


def _target(options: dict):
    from numacert.target import TargetOptions, node_names, resolve

    provider = options.get("provider")
    wants_lab = not options.get("kubeconfig") and not options.get("context")
    if provider == "lab" and not wants_lab:
        raise InputError("the lab provider takes no --kubeconfig/--context", "--provider")
    if provider == "ssh" and wants_lab:
        raise InputError("the ssh provider needs --kubeconfig or --context (the cluster of the "
                         "nodes)", "--provider")
    if provider == "ssh" and not options.get("node_access"):
        raise InputError("the ssh provider needs --node-access, e.g. 'ssh://root@{node}'",
                         "--node-access")
    target_options = TargetOptions(
        kubeconfig=options.get("kubeconfig"), context=options.get("context"),
        nodes=options.get("nodes"), image=options.get("image"),
        node_access=options.get("node_access"),
    )
    node_names(target_options)  # bad names, kubeconfig, API server: exit 2, nothing started
    return resolve(target_options)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in (header, *rows)]
    return "\n".join(lines)


def show_unsupported(resolved) -> None:
    from numacert.matrix.resolve import Status

    for r in resolved:
        if r.status == Status.UNSUPPORTED:
            click.echo(f"UNSUPPORTED {r.id}: {r.reason} ({r.code})")
        elif r.run_anyway:
            click.echo(f"RUN ANYWAY {r.id}: unsupported here ({r.run_anyway}), run as asked "
                       "(--run-unsupported)")


def run_matrix(options: dict) -> int:
    from numacert.matrix.runner import (
        MatrixExecution,
        RunSettings,
        child_args,
        make_reconfigurer,
        prepare,
    )
    from numacert.matrix.spec import load_matrix
    from numacert.providers.journal import NodeClaims
    from numacert.reports.matrix import write_matrix_reports

    matrix = load_matrix(options["matrix"])
    target = _target(options)
    try:
        # Claimed before any check, held until every node is restored: a second run started
        # meanwhile is refused even before the first one's journal exists.
        with NodeClaims().held(target.nodes):
            reconfigurer = make_reconfigurer(target, click.echo)
            prepared = prepare(matrix, target, reconfigurer, options["ignore_opt_in_label"],
                               click.echo, strict=True,
                               run_unsupported=options.get("run_unsupported", False))
            show_unsupported(prepared.resolved)
            if not prepared.runnable:
                raise InputError(f"no combination of {matrix.source} can run on these nodes",
                                 "--matrix")
            out = Path(options["output_dir"]) if options.get("output_dir") else _default_out()
            out.mkdir(parents=True, exist_ok=True)
            settings = RunSettings(child_args(options), options["junit_context"])
            execution = MatrixExecution(prepared, reconfigurer, out, settings, click.echo)
            interrupted, restores = execution.run()
            verdict = write_matrix_reports(out, options["junit_context"])
    finally:
        target.close(options.get("keep_lab", False))
    return report_outcome(verdict, interrupted, restores)


def report_outcome(verdict, interrupted: bool, restores) -> int:
    """Print the matrix summary and where the reports are; the exit status."""
    from numacert.reports.matrix import matrix_summary_table

    click.echo("")
    click.echo(matrix_summary_table(verdict))
    click.echo("")
    if verdict.paths is not None:
        for label in ("html", "markdown", "verdict_json", "junit", "junit_strict"):
            click.echo(f"{label:>15}: {getattr(verdict.paths, label)}")
    code = verdict.exit_code
    if interrupted:
        click.echo("numacert: interrupted; the matrix report is partial (INCOMPLETE)", err=True)
        code = 1 if code == 1 else 3
    failed = [r for r in restores if not r.ok]
    for r in failed:
        click.echo(f"numacert: NODE NOT RESTORED: {r.node}: {r.message}; "
                   "run `numacert restore`", err=True)
    if failed:
        code = 3
    return code


def _default_out() -> Path:
    from numacert.cli.run_cmd import _default_output_dir

    return _default_output_dir()


@click.command()
@click.option("--matrix", "matrix", required=True, help="matrix file, or a shipped name")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="cluster of the nodes")
@click.option("--context", help="kubeconfig context")
@click.option("--nodes", help="nodes to run the matrix on: names a,b or a label selector")
@click.option("--provider", type=click.Choice(["lab", "ssh"]),
              help="default: lab without --kubeconfig, else ssh")
@click.option("--node-access", help="testinfra host spec with {node}, e.g. ssh://root@{node}")
@click.option("--image", help="probe image")
@click.option("--ignore-opt-in-label", is_flag=True, help="see `numacert run --help`")
@click.option("--run-unsupported", is_flag=True, help="see `numacert run --help`")
@click.option("--keep-lab", is_flag=True, help="leave a lab this command starts running")
def plan(**options) -> None:
    """Show what `numacert run --matrix` would do, changing nothing: the order of the
    combinations on the nodes, the UNSUPPORTED ones, and the oracle's prediction per check."""
    from numacert.matrix.runner import make_reconfigurer, prepare
    from numacert.matrix.schedule import PLAN_COLUMNS, plan_rows
    from numacert.matrix.spec import load_matrix

    matrix = load_matrix(options["matrix"])
    target = _target(options)
    try:
        reconfigurer = make_reconfigurer(target, lambda s: None)
        prepared = prepare(matrix, target, reconfigurer, options["ignore_opt_in_label"],
                           lambda s: None, strict=False,
                           run_unsupported=options.get("run_unsupported", False))
    finally:
        target.close(options.get("keep_lab", False))
    click.echo(f"matrix {matrix.name} ({matrix.source}): {len(prepared.runnable)} of "
               f"{len(prepared.resolved)} combinations run on {', '.join(prepared.nodes)}")
    for refusal in prepared.refusals:
        click.echo(f"a run would refuse to start: {refusal}")
    show_unsupported(prepared.resolved)
    click.echo("")
    click.echo(_table(PLAN_COLUMNS, plan_rows(prepared.rounds)))
    from numacert.matrix.preview import preview_lines

    for line in preview_lines(prepared):
        click.echo(line)
