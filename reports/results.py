"""Read results.json (written by numacert's pytest plugin) into plain dataclasses.

Unknown keys are ignored, so the plugin can add fields without breaking older reports. A file
that is not results.json at all (bad JSON, a missing or mistyped required field) is an
InputError naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numacert.errors import InputError

STATUSES = ("passed", "failed", "skipped", "error")


@dataclass(frozen=True)
class CheckRecord:
    """One check result: one pytest test (one node, one policy, one case)."""

    check: str
    node: str
    policy: str
    status: str
    case: str | None = None
    reason: str | None = None
    skip_reason: str | None = None
    predicted: Any = None
    observed: Any = None
    nodeid: str = ""
    duration: float = 0.0

    @property
    def label(self) -> str:
        """CHECK-ID or CHECK-ID[case]: how reports and JUnit name the record."""
        return f"{self.check}[{self.case}]" if self.case else self.check


@dataclass(frozen=True)
class NodeInfo:
    """What discovery found about one node under test."""

    name: str
    kubelet_version: str | None = None
    topology_fingerprint: str | None = None
    topology: dict[str, Any] | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    policy_source: str | None = None
    capacity: dict[str, Any] = field(default_factory=dict)
    allocatable: dict[str, Any] = field(default_factory=dict)
    node_access: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Results:
    """One numacert run."""

    nodes: dict[str, NodeInfo]
    checks: list[CheckRecord]
    numacert_version: str | None = None
    started: str | None = None
    finished: str | None = None
    interrupted: bool = False
    target: dict[str, Any] = field(default_factory=dict)
    require: dict[str, Any] | None = None
    assume: dict[str, Any] | None = None


def read_json(path: Path) -> Any:
    """The decoded JSON of a report file (results.json, matrix.json). A file that cannot be read
    or is not JSON is an InputError: one line naming the file."""
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", str(path)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"not valid JSON: {e}", str(path)) from None


def load_results(path: Path) -> Results:
    """Read and parse a results.json file."""
    return parse_results(read_json(path), str(path))


def parse_results(data: Any, where: str = "results.json") -> Results:
    """Build Results from the decoded JSON; `where` names the file in errors."""
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", where)
    nodes = _get(data, "nodes", dict, where, default={})
    checks = _get(data, "checks", list, where, default=[])
    return Results(
        nodes={str(k): _node(str(k), n, f"{where}: nodes.{k}") for k, n in nodes.items()},
        checks=[_record(r, f"{where}: checks[{i}]") for i, r in enumerate(checks)],
        numacert_version=_get(data, "numacert_version", str, where),
        started=_get(data, "started", str, where),
        finished=_get(data, "finished", str, where),
        interrupted=bool(_get(data, "interrupted", bool, where, default=False)),
        target=_get(data, "target", dict, where, default={}),
        require=_get(data, "require", dict, where),
        assume=_get(data, "assume", dict, where),
    )


def _node(name: str, data: Any, where: str) -> NodeInfo:
    if not isinstance(data, dict):
        raise InputError("a node must be an object", where)
    return NodeInfo(
        name=name,
        kubelet_version=_get(data, "kubelet_version", str, where),
        topology_fingerprint=_get(data, "topology_fingerprint", str, where),
        topology=_get(data, "topology", dict, where),
        policy=_get(data, "policy", dict, where, default={}),
        policy_source=_get(data, "policy_source", str, where),
        capacity=_get(data, "capacity", dict, where, default={}),
        allocatable=_get(data, "allocatable", dict, where, default={}),
        node_access=bool(_get(data, "node_access", bool, where, default=False)),
        error=_get(data, "error", str, where),
    )


def _record(data: Any, where: str) -> CheckRecord:
    if not isinstance(data, dict):
        raise InputError("a check record must be an object", where)
    for key in ("check", "node", "status"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise InputError(f"`{key}` must be a non-empty string", where)
    if data["status"] not in STATUSES:
        raise InputError(
            f"`status` must be one of {', '.join(STATUSES)}, got {data['status']!r}", where
        )
    duration = _get(data, "duration", (int, float), where, default=0.0)
    return CheckRecord(
        check=data["check"],
        node=data["node"],
        policy=_get(data, "policy", str, where, default=""),
        status=data["status"],
        case=_optional_text(data.get("case")),
        reason=_get(data, "reason", str, where),
        skip_reason=_get(data, "skip_reason", str, where),
        predicted=data.get("predicted"),
        observed=data.get("observed"),
        nodeid=_get(data, "nodeid", str, where, default=""),
        duration=float(duration),
    )


def _optional_text(value: Any) -> str | None:
    # A case id is a pytest parametrize id; the plugin may write a number as a number.
    return None if value is None or value == "" else str(value)


def _get(data: dict, key: str, kind: type | tuple[type, ...], where: str, default: Any = None):
    """data[key] when present and of `kind`; `default` when absent or null."""
    value = data.get(key)
    if value is None:
        return default
    # bool is an int in Python: a JSON true is no duration.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        wanted, got = _json_name(kind), _json_name(type(value))
        raise InputError(f"`{key}` must be {wanted}, got {got}", where)
    return value


_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "true or false"}


def _json_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple) or kind in (int, float):
        return "a number"
    return _JSON_NAMES.get(kind, kind.__name__)
