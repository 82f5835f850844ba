"""Read a KubeletConfiguration (kubelet.config.k8s.io/v1beta1) into a KubeletConfig.

Three sources: a YAML/JSON file (a partial file is fine: only the fields it sets count), a dict
(e.g. the `kubelet:` section of a scenario file), and the kubelet's configz JSON
(`{"kubeletconfig": {...}}` from /api/v1/nodes/NAME/proxy/configz).

Types are checked the way the kubelet's decoder would see them: it decodes YAML via JSON into Go
types, so a bare `true` or `16` where the Go type is a string (option maps, kubeReserved,
reservedSystemCPUs) makes the kubelet refuse the whole file. We refuse it too, naming the file
and the field. numacert is stricter in one place: a reservedMemory entry without numaNode or
limits is refused (Go would silently use NUMA node 0).

Unknown fields are kept verbatim in `extra`.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml

from numacert.errors import InputError
from numacert.kubelet.config import KubeletConfig, ReservedMemory
from numacert.quantity import QuantityError, to_bytes

API_VERSION = "kubelet.config.k8s.io/v1beta1"
KIND = "KubeletConfiguration"

# (camelCase key, attribute, kind of value). The order is the order render writes them in.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("cpuManagerPolicy", "cpu_manager_policy", "str"),
    ("cpuManagerPolicyOptions", "cpu_manager_policy_options", "strmap"),
    ("reservedSystemCPUs", "reserved_system_cpus", "str"),
    ("kubeReserved", "kube_reserved", "quantitymap"),
    ("systemReserved", "system_reserved", "quantitymap"),
    ("evictionHard", "eviction_hard", "thresholdmap"),
    ("topologyManagerPolicy", "topology_manager_policy", "str"),
    ("topologyManagerScope", "topology_manager_scope", "str"),
    ("topologyManagerPolicyOptions", "topology_manager_policy_options", "strmap"),
    ("memoryManagerPolicy", "memory_manager_policy", "str"),
    ("reservedMemory", "reserved_memory", "reservedmemory"),
    ("featureGates", "feature_gates", "boolmap"),
    ("failCgroupV1", "fail_cgroup_v1", "bool"),
)
FIELD_BY_KEY = {k: (attr, kind) for k, attr, kind in FIELDS}

_PERCENT = re.compile(r"^\s*\d+(\.\d+)?%\s*$")


def _where(source: str | None, path: str) -> str:
    return f"{source}: {path}" if source else path


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return type(value).__name__


def _quote_hint(value: Any) -> str:
    # The commonest mistake: `full-pcpus-only: true` instead of "true".
    if isinstance(value, bool | int | float):
        return f' (quote it: "{json.dumps(value)}"; the kubelet only decodes a string here)'
    return ""


class _Reader:
    def __init__(self, source: str | None, prefix: str) -> None:
        self.source = source
        self.prefix = prefix

    def fail(self, path: str, what: str) -> InputError:
        return InputError(what, _where(self.source, self.prefix + path))

    def string(self, path: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"must be a string, got {_type_name(value)}{_quote_hint(value)}")
        return value

    def mapping(self, path: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a map, got {_type_name(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.fail(path, f"key {k!r} must be a string")
        return value

    def strmap(self, path: str, value: Any) -> dict[str, str]:
        m = self.mapping(path, value)
        return {k: self.string(f"{path}.{k}", v) for k, v in m.items()}

    def quantitymap(self, path: str, value: Any) -> dict[str, str]:
        out = self.strmap(path, value)
        for k, v in out.items():
            self.quantity(f"{path}.{k}", v)
        return out

    def thresholdmap(self, path: str, value: Any) -> dict[str, str]:
        out = self.strmap(path, value)
        for k, v in out.items():
            if not _PERCENT.match(v):
                self.quantity(f"{path}.{k}", v)
        return out

    def boolmap(self, path: str, value: Any) -> dict[str, bool]:
        m = self.mapping(path, value)
        for k, v in m.items():
            if not isinstance(v, bool):
                raise self.fail(f"{path}.{k}", f"must be true or false, got {_type_name(v)}")
        return dict(m)

    def boolean(self, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"must be true or false, got {_type_name(value)}")
        return value

    def quantity(self, path: str, value: Any) -> int:
        try:
            return to_bytes(value)
        except QuantityError:
            raise self.fail(path, f"not a valid quantity: {value!r}") from None

    def reserved_memory(self, path: str, value: Any) -> list[ReservedMemory]:
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, got {_type_name(value)}")
        out = []
        for i, entry in enumerate(value):
            p = f"{path}[{i}]"
            entry = self.mapping(p, entry)
            for k in entry:
                if k not in ("numaNode", "limits"):
                    raise self.fail(f"{p}.{k}", "unknown field (expected numaNode and limits)")
            if "numaNode" not in entry or entry["numaNode"] is None:
                raise self.fail(p, "numaNode is required (the kubelet would silently use 0)")
            node = entry["numaNode"]
            if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node < 2**31:
                raise self.fail(f"{p}.numaNode", f"must be a NUMA node id, got {node!r}")
            if "limits" not in entry or entry["limits"] is None:
                raise self.fail(p, "limits is required, e.g. {memory: 1100Mi}")
            limits = self.mapping(f"{p}.limits", entry["limits"])
            parsed: dict[str, str] = {}
            for res, q in limits.items():
                # ResourceList values are Quantities: strings and plain numbers both decode.
                if isinstance(q, bool) or not isinstance(q, str | int | float):
                    raise self.fail(f"{p}.limits.{res}", f"must be a quantity, got {_type_name(q)}")
                self.quantity(f"{p}.limits.{res}", q)
                parsed[res] = str(q)
            out.append(ReservedMemory(numa_node=node, limits=parsed))
        return out


def from_dict(data: Any, source: str | None = None, prefix: str = "") -> KubeletConfig:
    """A KubeletConfig from a (possibly partial) KubeletConfiguration mapping.

    `source` names the file in errors, `prefix` the path of the mapping inside it
    (e.g. "kubelet." for a scenario file's section).
    """
    r = _Reader(source, prefix)
    if not isinstance(data, dict):
        raise InputError(
            f"a KubeletConfiguration must be a map, got {_type_name(data)}",
            _where(source, prefix.rstrip(".") or "(top level)"),
        )
    for k in data:
        if not isinstance(k, str):
            raise r.fail(str(k), "field names must be strings")
    api = data.get("apiVersion")
    if api is not None and api != API_VERSION:
        raise r.fail("apiVersion", f"{api!r} is not {API_VERSION}")
    kind = data.get("kind")
    if kind is not None and kind != KIND:
        raise r.fail("kind", f"{kind!r} is not {KIND}")

    cfg = KubeletConfig()
    for key, value in data.items():
        if key in ("apiVersion", "kind"):
            continue
        if key not in FIELD_BY_KEY:
            cfg.extra[key] = copy.deepcopy(value)
            continue
        if value is None:  # `field:` with no value decodes to the Go zero value: not set
            continue
        attr, kind_ = FIELD_BY_KEY[key]
        if kind_ == "str":
            parsed: Any = r.string(key, value)
        elif kind_ == "strmap":
            parsed = r.strmap(key, value)
        elif kind_ == "quantitymap":
            parsed = r.quantitymap(key, value)
        elif kind_ == "thresholdmap":
            parsed = r.thresholdmap(key, value)
        elif kind_ == "boolmap":
            parsed = r.boolmap(key, value)
        elif kind_ == "bool":
            parsed = r.boolean(key, value)
        else:
            parsed = r.reserved_memory(key, value)
        setattr(cfg, attr, parsed)
        cfg.explicit.add(key)
    return cfg


def from_configz(data: Any, source: str | None = "configz") -> KubeletConfig:
    """The kubelet's /configz answer: JSON text or the decoded `{"kubeletconfig": {...}}`."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError as e:
            raise InputError(f"not valid JSON: {e}", source) from None
    if not isinstance(data, dict) or not isinstance(data.get("kubeletconfig"), dict):
        raise InputError('expected {"kubeletconfig": {...}} as served by /configz', source)
    return from_dict(data["kubeletconfig"], source, "kubeletconfig.")


def load_document(path: str | Path) -> dict:
    """The KubeletConfiguration mapping in a file (YAML or JSON), a configz dump, or a
    multi-document kubeadm file holding one KubeletConfiguration document; {} for an empty
    file. Fields are not checked here (from_dict does that)."""
    name = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", name) from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise InputError(f"not valid YAML{at}: {getattr(e, 'problem', e)}", name) from None
    if not docs:
        return {}
    if len(docs) > 1:
        docs = [d for d in docs if isinstance(d, dict) and d.get("kind") == KIND]
        if len(docs) != 1:
            raise InputError(f"expected exactly one {KIND} document, found {len(docs)}", name)
    doc = docs[0]
    if not isinstance(doc, dict):
        raise InputError(f"a {KIND} must be a map, got {_type_name(doc)}", name)
    if set(doc) == {"kubeletconfig"}:
        doc = doc["kubeletconfig"]
        if not isinstance(doc, dict):
            raise InputError(f"kubeletconfig must be a map, got {_type_name(doc)}", name)
    return doc


def load_fragment(path: str | Path, where: str | None = None) -> dict:
    """A (partial) KubeletConfiguration file as a mapping, every field checked as the kubelet
    would read it (`--require`, `--assume`); InputError names the file and the field."""
    data = load_document(path)
    from_dict(copy.deepcopy(data), where or str(path))
    return data


def load(path: str | Path) -> KubeletConfig:
    """Read and check a KubeletConfiguration file (see load_document for the forms)."""
    return from_dict(load_document(path), str(path))


def _deep_merge(base: dict, override: dict) -> dict:
    """JSON-merge-patch semantics (as the kubelet merges --config-dir drop-ins): maps merge key
    by key, lists and scalars are replaced, null removes."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _strip_nulls(d: dict) -> dict:
    return {k: _strip_nulls(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def merge(base: KubeletConfig, override: Any, source: str | None = None) -> KubeletConfig:
    """`base` with a partial KubeletConfiguration applied on top (lab reconfigure --kubelet).

    Fields the override sets win; maps (featureGates, option maps, kubeReserved, evictionHard,
    unknown map fields) merge key by key; reservedMemory is replaced as a whole; a null value
    removes the field or map key.
    """
    from numacert.kubelet.render import to_dict  # local: render imports this module

    if not isinstance(override, dict):
        raise InputError(
            f"a KubeletConfiguration must be a map, got {_type_name(override)}", source
        )
    # Type-check the override alone first, so errors name the override's own fields.
    from_dict(_strip_nulls(override), source)
    return from_dict(_deep_merge(to_dict(base), override), source)
