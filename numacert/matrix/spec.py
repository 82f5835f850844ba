"""Read and check a policy matrix file (clusters/matrix/*.yaml or a user's file).

A matrix names the kubelet policy combinations to certify: the cross product of up to four
axes (cpu, topology, memory, hugepages), minus `exclude` patterns, plus `include` entries
spelled out in full. docs/matrix.md describes the format for users; in short:

    name: reduced
    description: ...
    axes:                      # every axis is optional; each value: label -> fragment
      cpu:      {static: {cpuManagerPolicy: static}}
      topology: {restricted-pod: {topologyManagerPolicy: restricted, topologyManagerScope: pod}}
      memory:   {none: {memoryManagerPolicy: None}, static: {memoryManagerPolicy: Static}}
      hugepages: {none: [], 2Mi: [2Mi]}     # page sizes the node must offer (no kubelet field)
    exclude:                   # patterns: axis -> label or list of labels; all must match
      - {topology: restricted-pod, memory: none}
    include:                   # extra combinations, spelled out
      - {id: recommended-low-latency, description: ..., kubelet: {...}, hugepages: [2Mi]}

A cross-product combination's id is its labels joined with "." in axis order
(`static.restricted-pod.static.2Mi`); ids are file- and JUnit-safe and unique (ignoring case,
for case-insensitive file systems). The fragments of one combination are merged in axis order;
two axes setting one field to different values is an error. Every fragment is read with the
kubelet configuration parser, so a mistyped value or a misspelt field name is refused here,
naming the file and the path inside it. Every error is an InputError.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from numacert.errors import InputError
from numacert.kubelet import options as opt
from numacert.kubelet.parse import _type_name, from_dict
from numacert.kubelet.validate import validate
from numacert.quantity import QuantityError, format_bytes, to_bytes

AXES = ("cpu", "topology", "memory", "hugepages")  # also the order of labels in an id
KUBELET_AXES = ("cpu", "topology", "memory")
# Labels and ids end up in file names and JUnit names: letters, digits and "-" only (an id is
# dot-separated labels). Upper case is allowed for page sizes ("2Mi").
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$"
ID_PATTERN = r"^(?=.{1,200}$)[A-Za-z0-9][A-Za-z0-9-]*(\.[A-Za-z0-9][A-Za-z0-9-]*)*$"
SHIPPED_DIR = "matrix"  # under numacert.clusters (clusters/matrix in a checkout)

_LABELS = {"type": "string", "pattern": LABEL_PATTERN}
_SIZES = {"type": "array", "items": {"type": "string", "minLength": 1}}
_FRAGMENT = {"type": "object"}  # its fields are checked by numacert.kubelet.parse.from_dict
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": _LABELS,
        "description": {"type": "string"},
        "axes": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **{
                    axis: {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": _LABELS,
                        "additionalProperties": _FRAGMENT,
                    }
                    for axis in KUBELET_AXES
                },
                "hugepages": {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": _LABELS,
                    "additionalProperties": _SIZES,
                },
            },
        },
        "exclude": {
            "type": "array",
            "items": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {
                    axis: {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "minItems": 1, "items": {"type": "string"}},
                        ]
                    }
                    for axis in AXES
                },
            },
        },
        "include": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "kubelet"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": ID_PATTERN},
                    "description": {"type": "string"},
                    "kubelet": _FRAGMENT,
                    "hugepages": _SIZES,
                },
            },
        },
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA)


@dataclass(frozen=True)
class Combination:
    """One kubelet policy combination of a matrix.

    kubelet    the partial KubeletConfiguration the combination sets (its fragments merged);
               resolve() applies it to the node's configuration
    hugepages  page sizes the node must offer, canonical and ascending ("2Mi", "1Gi")
    labels     axis -> label for a cross-product combination, {} for an include entry
    where      where the combination is defined in the file: "axes" or "include[N]"
    origins    KubeletConfiguration key (and "map.key" for map entries) -> the path in the
               file that set it; see locate()
    """

    id: str
    kubelet: dict
    hugepages: tuple[str, ...]
    labels: dict[str, str]
    description: str = ""
    where: str = ""
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def locate(self, kubelet_field: str) -> str | None:
        """The path in the matrix file behind a KubeletConfiguration field path
        ("cpuManagerPolicyOptions.full-pcpus-only", "reservedMemory[0].numaNode"), or None
        when the matrix does not set it (the node's own configuration, a derived value)."""
        if kubelet_field in self.origins:
            return self.origins[kubelet_field]
        for key in sorted(self.origins, key=len, reverse=True):
            rest = kubelet_field[len(key) :]
            if kubelet_field.startswith(key) and rest[:1] in (".", "["):
                return self.origins[key] + rest
        return None


@dataclass(frozen=True)
class Matrix:
    """A checked matrix file: `source` names it in messages (the path, or
    clusters/matrix/NAME.yaml for a shipped one); combinations keep the file's order (cross
    product first, in axis order, then the include entries)."""

    name: str
    description: str
    source: str
    combinations: tuple[Combination, ...]

    def ids(self) -> list[str]:
        return [c.id for c in self.combinations]


# ---- loading -------------------------------------------------------------------------------
def _shipped_dir():
    return resources.files("numacert.clusters").joinpath(SHIPPED_DIR)


def shipped_matrices() -> list[str]:
    """Names of the matrices shipped with numacert (clusters/matrix/NAME.yaml), sorted."""
    return sorted(
        e.name[: -len(".yaml")]
        for e in _shipped_dir().iterdir()
        if e.is_file() and e.name.endswith(".yaml")
    )


def load_matrix(name_or_path: str | Path) -> Matrix:
    """A shipped matrix by name ("reduced", "default") or a matrix file by path.

    A string with a "/" or a .yaml/.yml/.json suffix, or a Path, is a path; any other string
    is a shipped name, or a path when no shipped matrix has that name and the file exists.
    """
    text = str(name_or_path)
    is_path = (
        isinstance(name_or_path, Path) or "/" in text or text.endswith((".yaml", ".yml", ".json"))
    )
    if not is_path and text in shipped_matrices():
        source = f"clusters/{SHIPPED_DIR}/{text}.yaml"
        return matrix_from_text(_shipped_dir().joinpath(f"{text}.yaml").read_text(), source)
    path = Path(name_or_path)
    if not is_path and not path.is_file():
        raise InputError(
            f"unknown matrix {text!r}: not a file, and the shipped matrices are "
            f"{', '.join(shipped_matrices())}",
            "--matrix",
        )
    try:
        content = path.read_text()
    except FileNotFoundError:
        raise InputError("no such file", text) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", text) from None
    return matrix_from_text(content, text)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping: PyYAML would keep the last one
    silently, and a repeated label would make a combination vanish."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def matrix_from_text(text: str, source: str) -> Matrix:
    """A matrix from YAML (or JSON) text; `source` names it in errors."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise InputError(f"not valid YAML{at}: {getattr(e, 'problem', e)}", source) from None
    return matrix_from_dict(data, source)


# ---- checking ------------------------------------------------------------------------------
def _where(source: str, path: str) -> str:
    return f"{source}: {path}" if path else source


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_WANTED = {"object": "a map", "array": "a list", "string": "a string"}


def _schema_error(error: ValidationError, source: str) -> InputError:
    parts = list(error.absolute_path)
    validator = error.validator
    if "propertyNames" in error.schema_path:
        # error.instance is the offending key; the path points at its mapping
        key = error.instance
        what = "an axis label" if len(parts) == 2 and parts[0] == "axes" else "a key"
        if not isinstance(key, str):
            return InputError(
                f"{what} must be a string, got {_type_name(key)} {key!r} (quote it in YAML)",
                _where(source, _path(parts)),
            )
        return InputError(
            f"{key!r} is not a valid label: letters, digits and '-', at most 63, starting with "
            "a letter or digit",
            _where(source, _path([*parts, key])),
        )
    if validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extra = sorted((k for k in error.instance if k not in known), key=str)
        kind = "axis" if parts == ["axes"] or parts[:1] == ["exclude"] else "key"
        return InputError(
            f"unknown {kind} {extra[0]!r} (expected {', '.join(known)})",
            _where(source, _path([*parts, extra[0]])),
        )
    if validator == "type":
        wanted = _WANTED.get(error.validator_value, error.validator_value)
        return InputError(
            f"must be {wanted}, got {_type_name(error.instance)}", _where(source, _path(parts))
        )
    if validator == "required":
        missing = error.validator_value[0] if error.validator_value else "?"
        for key in error.validator_value:
            if key not in error.instance:
                missing = key
                break
        return InputError(f"{missing} is required", _where(source, _path(parts)))
    if validator == "pattern":
        if parts and parts[-1] == "id":
            what = "an id: dot-separated labels of letters, digits and '-', at most 200"
        else:
            what = "a label: letters, digits and '-', at most 63, starting with a letter or digit"
        return InputError(f"{error.instance!r} is not {what}", _where(source, _path(parts)))
    if validator == "minProperties":
        return InputError("must not be empty", _where(source, _path(parts)))
    if validator == "minLength":
        return InputError("must not be an empty string", _where(source, _path(parts)))
    if validator == "oneOf":
        return InputError(
            f"must be a label or a list of labels, got {_type_name(error.instance)}",
            _where(source, _path(parts)),
        )
    return InputError(error.message, _where(source, _path(parts)))


def _check_fragment(fragment: dict, source: str, path: str) -> None:
    """A partial KubeletConfiguration, read as the kubelet reads it; a field name the kubelet
    would ignore because it looks like a misspelt NUMA field is refused too (the combination
    would silently not be what the matrix says)."""
    config = from_dict(copy.deepcopy(fragment), source, f"{path}.")
    for problem in validate(config, None, opt.MAX_MINOR):
        if problem.code == "config.unknown-field":
            raise InputError(problem.message, _where(source, f"{path}.{problem.field}"))


def _sizes(values: list[str], source: str, path: str) -> tuple[str, ...]:
    """Hugepage sizes, canonical ("2048Ki" -> "2Mi") and ascending."""
    by_size: dict[int, str] = {}
    for i, raw in enumerate(values):
        where = _where(source, f"{path}[{i}]")
        try:
            size = to_bytes(raw)
        except QuantityError:
            raise InputError(f"not a hugepage size such as 2Mi or 1Gi: {raw!r}", where) from None
        if size <= 0:
            raise InputError(f"a hugepage size must be positive: {raw!r}", where)
        if size in by_size:
            raise InputError(f"{raw!r} repeats {by_size[size]!r}", where)
        by_size[size] = raw
    return tuple(format_bytes(s) for s in sorted(by_size))


def _combine(
    parts: list[tuple[str, dict]], source: str, combination: str
) -> tuple[dict, dict[str, str]]:
    """The fragments of one combination merged in order (maps key by key), and where each key
    came from. Two fragments giving one field different values is an error."""
    merged: dict = {}
    origins: dict[str, str] = {}

    def conflict(key: str, here: str) -> InputError:
        return InputError(
            f"combination {combination!r}: {key} is also set, differently, at {origins[key]}",
            _where(source, here),
        )

    for path, fragment in parts:
        for key, value in fragment.items():
            if key in ("apiVersion", "kind"):
                continue
            here = f"{path}.{key}"
            if key not in merged:
                merged[key] = copy.deepcopy(value)
                origins[key] = here
                if isinstance(value, dict):
                    for sub in value:
                        origins[f"{key}.{sub}"] = f"{here}.{sub}"
            elif isinstance(value, dict) and isinstance(merged[key], dict):
                for sub, v in value.items():
                    if sub in merged[key] and merged[key][sub] != v:
                        raise conflict(f"{key}.{sub}", f"{here}.{sub}")
                    merged[key][sub] = copy.deepcopy(v)
                    origins.setdefault(f"{key}.{sub}", f"{here}.{sub}")
            elif merged[key] != value:
                raise conflict(key, here)
    return merged, origins


@dataclass(frozen=True)
class _AxisValue:
    axis: str
    label: str
    path: str
    kubelet: dict | None
    hugepages: tuple[str, ...]


def _as_labels(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def matrix_from_dict(data: Any, source: str) -> Matrix:
    """A checked Matrix from the decoded file; `source` names the file in errors."""
    if not isinstance(data, dict):
        raise InputError(
            f"a matrix must be a map with name, description, axes, exclude and include, got "
            f"{_type_name(data)}",
            source,
        )
    error = best_match(_VALIDATOR.iter_errors(data))
    if error is not None:
        raise _schema_error(error, source)

    axes: dict[str, list[_AxisValue]] = {}
    for axis in AXES:
        if axis not in (data.get("axes") or {}):
            continue
        values: list[_AxisValue] = []
        for label, value in data["axes"][axis].items():
            path = f"axes.{axis}.{label}"
            twin = next((v.label for v in values if v.label.lower() == label.lower()), None)
            if twin is not None:  # ids must stay distinct on case-insensitive file systems
                raise InputError(
                    f"label {label!r} differs from {twin!r} only in case", _where(source, path)
                )
            if axis == "hugepages":
                values.append(_AxisValue(axis, label, path, None, _sizes(value, source, path)))
            else:
                _check_fragment(value, source, path)
                values.append(_AxisValue(axis, label, path, value, ()))
        axes[axis] = values

    patterns: list[dict[str, set[str]]] = []
    for i, raw in enumerate(data.get("exclude") or []):
        pattern: dict[str, set[str]] = {}
        for axis, value in raw.items():
            where = _where(source, f"exclude[{i}].{axis}")
            if axis not in axes:
                raise InputError(f"the matrix has no {axis} axis", where)
            known = [v.label for v in axes[axis]]
            for label in _as_labels(value):
                if label not in known:
                    raise InputError(
                        f"{label!r} is not a label of the {axis} axis ({', '.join(known)})", where
                    )
            pattern[axis] = set(_as_labels(value))
        patterns.append(pattern)

    combinations: list[Combination] = []
    if axes:
        for values in itertools.product(*axes.values()):
            labels = {v.axis: v.label for v in values}
            if any(all(labels[a] in ls for a, ls in p.items()) for p in patterns):
                continue
            cid = ".".join(labels[a] for a in AXES if a in labels)
            kubelet, origins = _combine(
                [(v.path, v.kubelet) for v in values if v.kubelet is not None], source, cid
            )
            hugepages = next((v.hugepages for v in values if v.axis == "hugepages"), ())
            combinations.append(Combination(cid, kubelet, hugepages, labels, "", "axes", origins))
    for i, entry in enumerate(data.get("include") or []):
        path = f"include[{i}]"
        _check_fragment(entry["kubelet"], source, f"{path}.kubelet")
        kubelet, origins = _combine([(f"{path}.kubelet", entry["kubelet"])], source, entry["id"])
        hugepages = _sizes(entry.get("hugepages") or [], source, f"{path}.hugepages")
        combinations.append(
            Combination(
                entry["id"],
                kubelet,
                hugepages,
                {},
                str(entry.get("description", "")).strip(),
                path,
                origins,
            )
        )

    # Cross-product ids are distinct by construction; an include entry may repeat one.
    seen: dict[str, Combination] = {}
    for c in combinations:
        other = seen.get(c.id.lower())
        if other is not None:
            also = (
                "also a combination of the axes"
                if other.where == "axes"
                else (f"also at {other.where}")
            )
            if other.id != c.id:
                also = f"{other.id!r} at {other.where}: ids must differ in more than case"
            raise InputError(
                f"duplicate combination id {c.id!r} ({also})", _where(source, f"{c.where}.id")
            )
        seen[c.id.lower()] = c
    if not combinations:
        raise InputError(
            "the matrix has no combinations (no axes and no include, or all excluded)", source
        )
    return Matrix(
        name=data["name"],
        description=str(data.get("description", "")).strip(),
        source=source,
        combinations=tuple(combinations),
    )
