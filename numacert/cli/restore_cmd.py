"""`numacert restore`: put back every node a run changed, from the journal.

Runs on its own after a crash (a killed runner, a lost terminal); a normal run restores its
nodes itself. Exit 0 when every node is back, 3 when one could not be restored (its journal
stays, so the command can be run again).
"""

from __future__ import annotations

import click


@click.command()
@click.option("--node", "nodes", multiple=True, help="restore only this node (repeatable)")
@click.option(
    "--from-node",
    is_flag=True,
    help="read the journal from the node itself (the runner's copy is lost); needs --node",
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="with --from-node")
@click.option("--context", help="with --from-node")
@click.option("--node-access", help="with --from-node: testinfra host spec with {node}")
def restore(nodes, from_node, kubeconfig, context, node_access) -> None:
    """Put back every node a numacert run changed (from the runner's journal)."""
    from numacert.errors import InputError
    from numacert.providers.journal import Journal, NodeClaims
    from numacert.providers.restore import entry_from_node, restore_entry, restore_nodes
    from numacert.target import TargetOptions, resolve

    journal = Journal()
    claims = NodeClaims()
    for node in list(nodes) or journal.nodes():
        claims.refuse_if_held(node, flag="--node")
    if from_node:
        if not nodes:
            raise InputError("--from-node needs --node NAME", "--from-node")
        target = resolve(TargetOptions(kubeconfig=kubeconfig, context=context,
                                       nodes=",".join(nodes), node_access=node_access))
        outcomes = [restore_entry(entry_from_node(target, n), journal, click.echo, target)
                    for n in nodes]
    else:
        outcomes = restore_nodes(list(nodes) or None, journal, click.echo)
    if not outcomes:
        click.echo(f"nothing to restore: no journal in {journal.root}")
    for outcome in outcomes:
        click.echo(f"{outcome.node}: {outcome.message}", err=not outcome.ok)
    raise click.exceptions.Exit(0 if all(o.ok for o in outcomes) else 3)
