"""Put every journaled node back: after a run (normal exit, failure, Ctrl-C, SIGTERM) and from
`numacert restore` after a crash. A node whose restore fails keeps its journal, so the next
`numacert restore` tries again and no later run touches it meanwhile."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from numacert.errors import InputError
from numacert.providers import node_handle, reopen
from numacert.providers.journal import NODE_JOURNAL, Journal, JournalEntry
from numacert.providers.procedure import Reconfigurer, boot_id


@dataclass(frozen=True)
class RestoreOutcome:
    node: str
    ok: bool
    message: str


def restore_nodes(
    nodes: list[str] | None = None,
    journal: Journal | None = None,
    echo: Callable[[str], None] = print,
) -> list[RestoreOutcome]:
    """Restore `nodes` (default: every node the runner's journal lists)."""
    journal = journal or Journal()
    wanted = nodes if nodes is not None else journal.nodes()
    outcomes = []
    for node in wanted:
        entry = journal.read(node)
        if entry is None:
            raise InputError(f"no journal for node {node} in {journal.root}", "--node")
        outcomes.append(restore_entry(entry, journal, echo))
    return outcomes


def restore_entry(entry: JournalEntry, journal: Journal, echo: Callable[[str], None],
                  target=None) -> RestoreOutcome:
    node = entry.node
    try:
        target = target or reopen(entry.target, node)
        if target is None:
            journal.remove(node)
            return RestoreOutcome(node, True, "the lab node is gone (lab down, or a lab without "
                                  "it): its guest and every change made to it went with it; "
                                  "journal removed")
        handle = node_handle(target, node)
        if entry.provider == "lab" and entry.boot_id and boot_id(handle.access) != entry.boot_id:
            # `lab down` destroys a guest's disk: a guest of that name now is a new one.
            journal.remove(node)
            return RestoreOutcome(node, True, "the lab guest was replaced since (lab down/up): "
                                  "the changes went with the old one; journal removed")
        took = Reconfigurer(entry.provider, journal, echo).restore(handle, entry)
    except Exception as exc:  # noqa: BLE001 - any failure: keep the journal, go on to the next
        return RestoreOutcome(node, False, f"restore failed, journal kept: {_one_line(exc)}")
    files = ", ".join(f"{f.path} (sha256 {f.sha256[:12]})" for f in entry.files)
    return RestoreOutcome(node, True, f"restored in {took:.0f}s: {files}")


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:400]


def entry_from_node(target, node: str) -> JournalEntry:
    """The node's own copy of its journal (when the runner's copy is lost)."""
    handle = node_handle(target, node)
    if not handle.access.exists(NODE_JOURNAL):
        raise InputError(f"node {node} has no numacert journal ({NODE_JOURNAL})", "--node")
    data = json.loads(handle.access.read_bytes(NODE_JOURNAL))
    return JournalEntry.from_json(data, f"{node}:{NODE_JOURNAL}")
