"""The check catalogue (suites/catalogue.yaml, shipped as numacert.suites/catalogue.yaml).

The catalogue is data: id, area, kind, title, what the check proves, the policies it applies to
and what it needs. Reports and docs render it and the suites read their preconditions from it;
nothing else repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from numacert.errors import InputError

KINDS = ("behaviour", "configuration")
_WHERE = "numacert.suites/catalogue.yaml"


@dataclass(frozen=True)
class CheckSpec:
    """One catalogue entry. `applies` and `needs` stay plain mappings: their keys are read by
    the suites and rendered by the reports, and new keys must not need a change here."""

    id: str
    area: str
    kind: str
    title: str
    proves: str
    applies: dict[str, Any] = field(default_factory=dict)
    needs: dict[str, Any] = field(default_factory=dict)
    failure_modes: tuple[str, ...] = ()
    # The plan's pods the check reads ("all" = every pod; empty = none), and how, for docs.
    reads: tuple[str, ...] = ()
    reads_how: str = ""

    def reads_pod(self, pod: str) -> bool:
        """Whether the check reads plan pod `pod` (`big-<n>` stands for big-0, big-1, ...)."""
        for name in self.reads:
            if name == "all" or name == pod:
                return True
            if (
                name.endswith("<n>")
                and pod.startswith(name[:-3])
                and pod[len(name) - 3 :].isdigit()
            ):
                return True
        return False


def load_catalogue() -> list[CheckSpec]:
    """The shipped catalogue, in file order."""
    text = resources.files("numacert.suites").joinpath("catalogue.yaml").read_text("utf-8")
    return parse_catalogue(text, _WHERE)


def parse_catalogue(text: str, where: str = _WHERE) -> list[CheckSpec]:
    """Parse catalogue YAML text; InputError names `where` and the entry at fault."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML: {getattr(e, 'problem', e)}", where) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        raise InputError("expected a map with a list under `checks`", where)
    specs = [_spec(entry, f"{where}: checks[{i}]") for i, entry in enumerate(doc["checks"])]
    _check_unique(specs, where)
    return specs


def _spec(entry: Any, where: str) -> CheckSpec:
    if not isinstance(entry, dict):
        raise InputError("a check must be a map", where)
    for key in ("id", "area", "kind", "title", "proves"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise InputError(f"`{key}` must be a non-empty string", where)
    if entry["kind"] not in KINDS:
        raise InputError(f"`kind` must be one of {', '.join(KINDS)}, got {entry['kind']!r}", where)
    for key in ("applies", "needs"):
        if not isinstance(entry.get(key) or {}, dict):
            raise InputError(f"`{key}` must be a map", where)
    return CheckSpec(
        id=entry["id"],
        area=entry["area"],
        kind=entry["kind"],
        title=entry["title"],
        proves=" ".join(entry["proves"].split()),
        applies=dict(entry.get("applies") or {}),
        needs=dict(entry.get("needs") or {}),
        failure_modes=tuple(entry.get("failure_modes") or ()),
        reads=tuple(entry.get("reads") or ()),
        reads_how=" ".join(str(entry.get("reads_how") or "").split()),
    )


def _check_unique(specs: list[CheckSpec], where: str) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.id in seen:
            raise InputError(f"check id {spec.id} appears twice", where)
        seen.add(spec.id)
