"""Reconfigure a node's kubelet the way an operator must, and put it back.

The procedure (upstream's documented one for changing CPU/Memory Manager policies):
  journal → cordon → evict the node's pods (not DaemonSets', not static pods) → stop the
  kubelet → remove cpu_manager_state and memory_manager_state → write the configuration file
  → start the kubelet → node Ready with a fresh heartbeat → /configz shows the policy.
The node stays cordoned while it runs numacert's configurations (numacert's probe pods are
bound by nodeName and tolerate it); the restore uncordons it unless it was cordoned before.
A restore is the same procedure writing back the journaled files byte for byte, then the
journal is removed. Everything goes through a testinfra host (NodeAccess) and the
Kubernetes API; nothing here knows whether the node is a lab guest or a real machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes.client.rest import ApiException

from numacert.errors import InfrastructureError, InputError
from numacert.kubelet.config import POLICY_DEFAULTS
from numacert.probes.access import NodeAccess
from numacert.probes.kube import (
    evict_node_pods,
    mark_ready_unknown,
    ready_heartbeat,
    set_unschedulable,
    wait_ready_after,
)
from numacert.providers import layout as kubelet_layout
from numacert.providers.journal import (
    NODE_JOURNAL,
    Journal,
    JournalEntry,
    NodeClaims,
    SavedFile,
    new_entry,
)

READY_TIMEOUT = 600.0
EVICT_TIMEOUT = 300.0

# The /configz fields a reconfiguration must show before the node counts as reconfigured.
POLICY_FIELDS = tuple(POLICY_DEFAULTS)


@dataclass
class NodeHandle:
    """What touching one node takes: its name, the API, a shell on it, its /configz."""

    name: str
    core: Any  # kubernetes.client.CoreV1Api
    access: NodeAccess
    configz: Callable[[], dict]  # the kubelet's current "kubeletconfig" object
    target: dict  # how to reach it again, for the journal (see JournalEntry.target)


@dataclass(frozen=True)
class Original:
    """A node as found before any change (read-only preflight)."""

    layout: kubelet_layout.KubeletLayout
    config_bytes: bytes
    configz: dict


def policy_view(configz: dict) -> dict[str, Any]:
    """The policy fields of a /configz object, with the kubelet's defaults filled in."""
    return {k: configz.get(k) or POLICY_DEFAULTS[k] for k in POLICY_FIELDS}


def render_config_file(original: bytes, fields: dict[str, Any], source: str) -> bytes:
    """The node's configuration file with `fields` set (a None value removes the field);
    every other field of the original is kept as it was."""
    try:
        data = yaml.safe_load(original.decode()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"not YAML: {exc}", source) from None
    if not isinstance(data, dict):
        raise InputError("not a KubeletConfiguration mapping", source)
    for key, value in fields.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).encode()


class Reconfigurer:
    """Applies configurations to nodes and restores them, journaling first."""

    def __init__(
        self,
        provider: str,
        journal: Journal | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.provider = provider
        self.journal = journal or Journal()
        self.echo = echo or (lambda s: None)

    # ---- read-only -------------------------------------------------------------------------
    def refuse_if_changed(self, handle: NodeHandle) -> None:
        """InputError when a journal (the runner's or the node's) says the node is changed, or
        another live numacert run holds it (`plan` lists this; a run has refused already)."""
        NodeClaims(self.journal.root).refuse_if_held(handle.name, os.getpid())
        if self.journal.read(handle.name) is not None:
            raise InputError(
                f"node {handle.name} is still changed by an earlier run (journal "
                f"{self.journal.path(handle.name)}); run `numacert restore --node {handle.name}`",
                "--nodes",
            )
        if handle.access.exists(NODE_JOURNAL):
            raise InputError(
                f"node {handle.name} has a numacert journal ({NODE_JOURNAL}) from another "
                "runner: it is being changed or was not restored; restore it from that runner "
                f"or with `numacert restore --node {handle.name} --from-node`",
                "--nodes",
            )

    def preflight(self, handle: NodeHandle) -> Original:
        """Find the kubelet's files and read them; changes nothing."""
        found = kubelet_layout.discover(handle.access)
        return Original(found, handle.access.read_bytes(found.config_file), handle.configz())

    # ---- changes ---------------------------------------------------------------------------
    def apply(
        self, handle: NodeHandle, original: Original, fields: dict[str, Any], label: str
    ) -> float:
        with api_errors(handle.name, f"applying {label}"):
            return self._apply(handle, original, fields, label)

    def restore(self, handle: NodeHandle, entry: JournalEntry) -> float:
        with api_errors(handle.name, "restoring it"):
            return self._restore(handle, entry)

    def _apply(
        self, handle: NodeHandle, original: Original, fields: dict[str, Any], label: str
    ) -> float:
        """Run `fields` (KubeletConfiguration keys; None removes one) on the node. Journals
        the original files first (once per node). Returns the seconds it took."""
        start = time.monotonic()
        entry = self.journal.read(handle.name)
        if entry is None:
            entry = self._journal(handle, original)
        new = render_config_file(
            original.config_bytes, fields, f"{handle.name}:{original.layout.config_file}"
        )
        entry.applied = label
        self._write_journal(handle, entry)
        switch_kubelet(handle, entry.root_dir, {original.layout.config_file: new},
                       f"for {label}", echo=self.echo)
        check_policy(handle, new, label)
        # The node stays cordoned until the restore: the probe pods tolerate it (nodeName,
        # tolerations), other workloads do not land on a node whose kubelet keeps changing.
        return time.monotonic() - start

    def _restore(self, handle: NodeHandle, entry: JournalEntry) -> float:
        """Put the journaled files back byte for byte and the kubelet as it was; then the
        journal goes (node copy first, runner copy last)."""
        start = time.monotonic()
        files = {f.path: f.content for f in entry.files}
        modes = {f.path: f.mode for f in entry.files}
        switch_kubelet(handle, entry.root_dir, files, "after the restore", modes, self.echo)
        live = policy_view(handle.configz())
        if live != policy_view(entry.configz):
            raise InfrastructureError(
                f"node {handle.name}: after the restore /configz shows {live}, not the "
                f"original {policy_view(entry.configz)}; the journal is kept"
            )
        set_unschedulable(handle.core, handle.name, entry.was_unschedulable)
        handle.access.remove(NODE_JOURNAL)
        self.journal.remove(handle.name)
        return time.monotonic() - start

    def _journal(self, handle: NodeHandle, original: Original) -> JournalEntry:
        found = original.layout
        saved = [SavedFile(found.config_file, original.config_bytes,
                           handle.access.file_mode(found.config_file))]
        for path in found.flags_files:
            saved.append(SavedFile(path, handle.access.read_bytes(path),
                                   handle.access.file_mode(path)))
        was = bool(handle.core.read_node(handle.name).spec.unschedulable)
        return new_entry(
            node=handle.name,
            provider=self.provider,
            target=handle.target,
            config_file=found.config_file,
            flags_files=list(found.flags_files),
            root_dir=found.root_dir,
            files=saved,
            configz=original.configz,
            was_unschedulable=was,
            boot_id=boot_id(handle.access),
        )

    def _write_journal(self, handle: NodeHandle, entry: JournalEntry) -> None:
        # Runner first: a runner killed right after still knows to restore this node.
        self.journal.write(entry)
        handle.access.write_bytes(NODE_JOURNAL, entry.dumps().encode(), 0o600)


@contextmanager
def api_errors(node: str, doing: str) -> Iterator[None]:
    """An API server refusal (403 without the numacert-matrix role, 404 ...) is an
    infrastructure problem of this node's reconfiguration, said in one line."""
    try:
        yield
    except ApiException as exc:
        raise InfrastructureError(
            f"node {node}: the API server refused a request while {doing}: {exc.status} "
            f"{exc.reason} (see clusters/rbac/numacert-matrix.yaml)"
        ) from None


def boot_id(access: NodeAccess) -> str:
    return access.run("cat /proc/sys/kernel/random/boot_id").strip()


def check_policy(handle: NodeHandle, written: bytes, label: str) -> None:
    """InfrastructureError unless the kubelet's /configz shows the policy of the file written."""
    want = policy_view(yaml.safe_load(written))
    live = policy_view(handle.configz())
    wrong = {k: live[k] for k in POLICY_FIELDS if live[k] != want[k]}
    if wrong:
        raise InfrastructureError(
            f"node {handle.name}: the kubelet runs {wrong} after applying {label}, not the "
            "configuration written (was the file overridden by a flag?)"
        )


def switch_kubelet(
    handle: NodeHandle,
    root_dir: str,
    files: dict[str, bytes],
    why: str,
    modes: dict[str, int] | None = None,
    echo: Callable[[str], None] = lambda s: None,
) -> None:
    """The procedure itself: cordon, evict, stop the kubelet, remove its state files, write
    `files`, start it, wait for Ready with a heartbeat newer than the last one before. Leaves
    the node cordoned: the caller decides (it knows whether it was cordoned before)."""
    node, access, core = handle.name, handle.access, handle.core
    echo(f"{node}: cordon, evict pods")
    set_unschedulable(core, node, True)
    evict_node_pods(core, node, EVICT_TIMEOUT)
    echo(f"{node}: kubelet stop, state files removed, configuration written")
    access.run("systemctl stop kubelet")
    access.remove(*(f"{root_dir}/{n}" for n in kubelet_layout.STATE_FILES))
    for path, data in files.items():
        mode = (modes or {}).get(path) or access.file_mode(path)
        access.write_bytes(path, data, mode)
    last = ready_heartbeat(core, node)
    try:
        mark_ready_unknown(core, node, "numacert stopped the kubelet to reconfigure it")
    except ApiException as exc:  # an older numacert-matrix role: Ready only comes later
        echo(f"{node}: Ready not marked Unknown ({exc.status} {exc.reason}); slower, same result")
    echo(f"{node}: kubelet start, waiting for Ready")
    access.run("systemctl start kubelet")

    def kubelet_log() -> str:
        return "kubelet journal:\n" + access.run(
            "journalctl -u kubelet -n 20 --no-pager 2>&1 || true", check=False
        )

    wait_ready_after(core, node, last, READY_TIMEOUT, why, kubelet_log)
