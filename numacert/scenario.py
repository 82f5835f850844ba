"""The scenario file of `numacert predict` (design.md, "Scenario file"): load and check it.

A scenario names a topology, a kubelet configuration, an optional starting state in the
kubelet's state-file shapes, an optional node section (the node's allocatable), and a list of
steps (add a pod, delete a pod). Every problem is an InputError naming the file and the field,
so the CLI can print one line and exit 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from numacert.errors import InputError
from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.parse import from_dict as kubelet_from_dict
from numacert.kubelet.validate import validate
from numacert.oracle.pod import Pod, pod_from_manifest
from numacert.quantity import (
    QuantityError,
    hugepage_resource_name,
    hugepage_size_from_resource,
    to_bytes,
    to_millis,
)
from numacert.topology.model import Topology
from numacert.topology.spec import topology_from_spec

TOP_LEVEL_KEYS = {"topology", "kubelet", "node", "state", "steps", "kubernetesVersion"}
# The newest minor whose option maturity numacert knows; the scenario may pin another.
DEFAULT_K8S_MINOR = 37


@dataclass(frozen=True)
class AddStep:
    pod: Pod


@dataclass(frozen=True)
class DeleteStep:
    name: str


Step = AddStep | DeleteStep


@dataclass
class Scenario:
    path: str
    topology: Topology
    kubelet: KubeletConfig
    k8s_minor: int
    cpu_state: dict | None = None
    memory_state: dict | None = None
    steps: list[Step] = field(default_factory=list)
    # node.allocatable as integers (cpu in milli-CPU, pods a count, the rest in bytes/units):
    # overrides, resource by resource, what the oracle derives from topology and kubelet
    allocatable: dict[str, int] | None = None


def load_scenario(path: str | Path) -> Scenario:
    """Read, parse and check a scenario file."""
    where = str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise InputError("no such file", where) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", where) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"not valid YAML{line}", where) from None
    return scenario_from_dict(data, where)


def scenario_from_dict(data: object, where: str = "scenario") -> Scenario:
    if not isinstance(data, dict):
        raise InputError("a scenario must be a mapping with topology, kubelet and steps", where)
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise InputError(f"unknown key {unknown[0]!r}", f"{where}: {unknown[0]}")
    if "topology" not in data:
        raise InputError("topology is required", f"{where}: topology")
    topology = topology_from_spec(data["topology"], f"{where}: topology")

    k8s_minor = _minor(data.get("kubernetesVersion"), f"{where}: kubernetesVersion")
    kubelet_raw = data.get("kubelet") or {}
    if not isinstance(kubelet_raw, dict):
        raise InputError(
            "kubelet must be a mapping of KubeletConfiguration fields", f"{where}: kubelet"
        )
    kubelet = kubelet_from_dict(kubelet_raw, source=where, prefix="kubelet.")
    validate(kubelet, topology, k8s_minor, raise_first=True, source=where, prefix="kubelet.")

    cpu_state = memory_state = None
    state = data.get("state")
    if state is not None:
        if not isinstance(state, dict):
            raise InputError("state must be a mapping with cpu and/or memory", f"{where}: state")
        extra = sorted(set(state) - {"cpu", "memory"})
        if extra:
            raise InputError(f"unknown key {extra[0]!r}", f"{where}: state.{extra[0]}")
        cpu_state = _mapping_or_none(state.get("cpu"), f"{where}: state.cpu")
        memory_state = _mapping_or_none(state.get("memory"), f"{where}: state.memory")

    allocatable = _node(data.get("node"), f"{where}: node")

    steps_raw = data.get("steps") or []
    if not isinstance(steps_raw, list):
        raise InputError("steps must be a list", f"{where}: steps")
    steps = [_step(raw, f"{where}: steps[{i}]") for i, raw in enumerate(steps_raw)]
    return Scenario(
        where,
        topology,
        kubelet,
        k8s_minor,
        cpu_state,
        memory_state,
        steps,
        allocatable=allocatable,
    )


def _node(value: object, where: str) -> dict[str, int] | None:
    """The optional `node` section: {allocatable: {resource: quantity}}."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError("node must be a mapping with allocatable", where)
    extra = sorted(set(value) - {"allocatable"})
    if extra:
        raise InputError(f"unknown key {extra[0]!r}", f"{where}.{extra[0]}")
    raw = value.get("allocatable")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InputError("allocatable must be a mapping of resource name to quantity", where)
    out: dict[str, int] = {}
    for name, qty in raw.items():
        field_where = f"{where}.allocatable.{name}"
        out[_allocatable_name(str(name), field_where)] = _allocatable_amount(
            str(name), qty, field_where
        )
    return out


def _allocatable_name(name: str, where: str) -> str:
    if name in ("cpu", "memory", "pods", "ephemeral-storage"):
        return name
    if name.startswith("hugepages-"):
        try:
            # canonical form, as the kubelet names it: hugepages-2048Ki -> hugepages-2Mi
            return hugepage_resource_name(hugepage_size_from_resource(name))
        except QuantityError:
            raise InputError(f"not a hugepage size: {name!r}", where) from None
    if "/" in name:
        return name  # an extended resource (example.com/gpu)
    raise InputError(
        f"unknown resource {name!r} (cpu, memory, pods, ephemeral-storage, hugepages-<size> "
        "or a domain-qualified extended resource)",
        where,
    )


def _allocatable_amount(name: str, qty: object, where: str) -> int:
    if qty is None or isinstance(qty, bool | list | dict):
        raise InputError(f"not a quantity: {qty!r}", where)
    try:
        amount = to_millis(qty) if name == "cpu" else to_bytes(qty)
    except QuantityError as exc:
        raise InputError(str(exc), where) from None
    if amount < 0:
        raise InputError(f"must not be negative: {qty!r}", where)
    return amount


def _step(raw: object, where: str) -> Step:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise InputError("a step is a mapping with exactly one key: add or delete", where)
    ((action, value),) = raw.items()
    if action == "add":
        return AddStep(pod_from_manifest(value, f"{where}.add"))
    if action == "delete":
        if not isinstance(value, str) or not value:
            raise InputError("delete takes a pod name", f"{where}.delete")
        return DeleteStep(value)
    raise InputError(f"unknown action {action!r} (add or delete)", where)


def _mapping_or_none(value: object, where: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError("must be a mapping in the kubelet's state-file shape", where)
    return value


def _minor(value: object, where: str) -> int:
    """'1.36', 'v1.36.2' or 36 -> 36; unset -> DEFAULT_K8S_MINOR."""
    if value is None:
        return DEFAULT_K8S_MINOR
    text = str(value).lstrip("v")
    parts = text.split(".")
    try:
        if len(parts) == 1:
            return int(parts[0])
        if parts[0] != "1":
            raise ValueError
        return int(parts[1])
    except ValueError:
        raise InputError(f"not a Kubernetes version: {value!r}", where) from None
