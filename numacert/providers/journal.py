"""The journal of node changes: written before a node is touched, removed once it is restored.

One JSON file per node, on the runner (`<state root>/journal/<node>.json`) and a copy on the
node itself (`/var/lib/numacert/journal.json`). It holds what a restore needs even if the
process that made the change was killed: how to reach the node and its cluster, the original
bytes of every file the change writes (with their SHA-256 and mode), whether the node was
cordoned before, and the kubelet's original /configz to compare with after the restore.
While a journal exists, the node counts as changed: no other run may touch it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from numacert.errors import InfrastructureError, InputError
from numacert.proc import ProcessRecord
from numacert.state import state_root

NODE_JOURNAL = "/var/lib/numacert/journal.json"


@dataclass(frozen=True)
class SavedFile:
    path: str
    content: bytes
    mode: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "mode": f"{self.mode:o}",
            "content_base64": base64.b64encode(self.content).decode(),
        }

    @classmethod
    def from_json(cls, data: dict, where: str) -> SavedFile:
        saved = cls(data["path"], base64.b64decode(data["content_base64"]), int(data["mode"], 8))
        if saved.sha256 != data["sha256"]:
            raise InfrastructureError(f"{where}: the saved copy of {saved.path} is corrupt")
        return saved


@dataclass
class JournalEntry:
    """One changed node. `target` says how to reach it again: {"kind": "lab"} or
    {"kind": "cluster", "kubeconfig": ..., "context": ..., "node_access": spec}."""

    node: str
    provider: str
    target: dict
    config_file: str
    flags_files: list[str]
    root_dir: str
    files: list[SavedFile]
    configz: dict  # the kubelet's /configz "kubeletconfig" before any change
    was_unschedulable: bool
    applied: str | None = None  # what the node runs now (a combination id), for people
    boot_id: str = ""  # /proc/sys/kernel/random/boot_id: tells a replaced lab guest apart
    runner: dict = field(default_factory=dict)
    created: str = ""

    def to_json(self) -> dict:
        data = asdict(self)
        data["files"] = [f.to_json() for f in self.files]
        return data

    @classmethod
    def from_json(cls, data: dict, where: str) -> JournalEntry:
        try:
            files = [SavedFile.from_json(f, where) for f in data.pop("files")]
            return cls(files=files, **data)
        except (KeyError, TypeError, ValueError) as exc:
            raise InfrastructureError(f"{where}: not a numacert journal ({exc})") from None

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"


def journal_dir() -> Path:
    return state_root() / "journal"


def new_entry(**fields) -> JournalEntry:
    return JournalEntry(
        runner={"host": socket.gethostname(), "pid": os.getpid()},
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **fields,
    )


def _file_name(node: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in node)


class Journal:
    """The runner's side: one file per node, written atomically (temp file + rename + fsync)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or journal_dir()

    def path(self, node: str) -> Path:
        return self.root / f"{_file_name(node)}.json"

    def write(self, entry: JournalEntry) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(entry.node)
        tmp = final.with_suffix(".tmp")
        with tmp.open("w") as f:
            f.write(entry.dumps())
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(final)

    def read(self, node: str) -> JournalEntry | None:
        path = self.path(node)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as exc:
            raise InfrastructureError(f"{path}: not JSON ({exc})") from None
        return JournalEntry.from_json(data, str(path))

    def remove(self, node: str) -> None:
        self.path(node).unlink(missing_ok=True)

    def nodes(self) -> list[str]:
        """The nodes the journal says are changed."""
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.glob("*.json")):
            try:
                out.append(json.loads(path.read_text())["node"])
            except (json.JSONDecodeError, KeyError, OSError):
                out.append(path.stem)  # unreadable: still counts as changed
        return out


class NodeClaims:
    """Which running numacert process has a node for a matrix run, from before its checks to
    its end: `<state root>/journal/<node>.claim`, the runner's process record (pid and start
    time, so a reused pid is not mistaken for it).

    The journal alone cannot keep two runs apart: it is written at the first change, after
    a preparation of many seconds, and two runs started within that time would both find no
    journal. A claim is taken first, exclusively (a hard link fails when one exists); a claim
    whose process is gone is stale and taken over."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or journal_dir()

    def path(self, node: str) -> Path:
        return self.root / f"{_file_name(node)}.claim"

    def holder(self, node: str) -> ProcessRecord | None:
        """The live process holding `node`, if any."""
        record = ProcessRecord.read(self.path(node))
        return record if record is not None and record.alive() else None

    def refuse_if_held(self, node: str, allowed_pid: int | None = None,
                       flag: str = "--nodes") -> None:
        """InputError when a live process other than `allowed_pid` holds `node`."""
        holder = self.holder(node)
        if holder is not None and holder.pid != allowed_pid:
            raise InputError(
                f"node {node} is being reconfigured by another numacert run (pid {holder.pid}, "
                f"claim {self.path(node)}): interrupt it (Ctrl-C restores its nodes) or let it "
                "finish",
                flag,
            )

    def take(self, node: str) -> None:
        """Claim `node` for this process; InputError when another live process has it."""
        me = ProcessRecord.of(os.getpid())
        assert me is not None  # this process runs
        path = self.path(node)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        me.write(tmp)
        try:
            for _ in range(2):
                try:
                    os.link(tmp, path)
                    return
                except FileExistsError:
                    self.refuse_if_held(node, me.pid)
                    path.unlink(missing_ok=True)  # stale (its process is gone) or ours
            raise InfrastructureError(f"{path}: could not claim node {node}")
        finally:
            tmp.unlink(missing_ok=True)

    def release(self, node: str) -> None:
        """Drop this process's claim on `node` (another process's is left alone)."""
        record = ProcessRecord.read(self.path(node))
        if record is not None and record.pid == os.getpid():
            self.path(node).unlink(missing_ok=True)

    @contextmanager
    def held(self, nodes: list[str]) -> Iterator[None]:
        """Claim every node of `nodes` for the block; all or none (a refusal releases the
        ones already taken)."""
        taken: list[str] = []
        try:
            for node in nodes:
                self.take(node)
                taken.append(node)
            yield
        finally:
            for node in taken:
                self.release(node)
