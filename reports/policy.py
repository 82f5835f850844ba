"""The policy tuple of a node, as a token (JUnit classnames, record keys) and as a readable line.

The policy dict is the one results.json carries per node: cpu_manager, cpu_manager_options,
topology_manager, topology_scope, topology_manager_options, memory_manager, reserved_cpus.
"""

from __future__ import annotations

import re
from typing import Any

UNKNOWN = "unknown"
# Everything else becomes '-': dots would split a JUnit classname into packages, and '_'
# separates the three managers inside the token.
_UNSAFE = re.compile(r"[^A-Za-z0-9+=-]+")


def policy_token(policy: dict[str, Any] | None) -> str:
    """One readable token for a policy tuple, without dots, spaces or stray underscores.

    Form: ``<cpu>_<topology>_<memory>`` where

    - ``<cpu>`` is the CPU Manager policy followed by each option that is on, as ``+option``
      (sorted); an option with a value other than true/false is written ``+option=value``;
    - ``<topology>`` is ``<topology manager policy>-<scope>`` followed by its options the same
      way;
    - ``<memory>`` is the Memory Manager policy as the kubelet spells it (``Static``, ``None``).

    Example: ``static+full-pcpus-only_single-numa-node-pod_Static``. A field the dict lacks is
    ``unknown`` (never the kubelet default: a missing field means discovery did not see it), and
    an empty or missing dict is just ``unknown``. Characters outside ``[A-Za-z0-9+=-]`` (dots,
    spaces, underscores) become ``-``.
    """
    if not policy:
        return UNKNOWN
    cpu = _field(policy, "cpu_manager") + _options(policy.get("cpu_manager_options"))
    topology = f"{_field(policy, 'topology_manager')}-{_field(policy, 'topology_scope')}"
    topology += _options(policy.get("topology_manager_options"))
    return "_".join((cpu, topology, _field(policy, "memory_manager")))


def policy_line(policy: dict[str, Any] | None) -> str:
    """The policy tuple for people: `CPU static (full-pcpus-only) · TM single-numa-node/pod ·
    MM Static · reserved CPUs 0`."""
    if not policy:
        return "unknown policy"
    tm = f"{policy.get('topology_manager') or UNKNOWN}/{policy.get('topology_scope') or UNKNOWN}"
    parts = [
        "CPU " + _readable(policy.get("cpu_manager"), policy.get("cpu_manager_options")),
        "TM " + _readable(tm, policy.get("topology_manager_options")),
        "MM " + _readable(policy.get("memory_manager"), None),
    ]
    if policy.get("reserved_cpus"):
        parts.append(f"reserved CPUs {policy['reserved_cpus']}")
    return " · ".join(parts)


def _field(policy: dict[str, Any], key: str) -> str:
    value = policy.get(key)
    return _safe(str(value)) if value not in (None, "") else UNKNOWN


def _options(options: Any) -> str:
    return "".join("+" + _safe(item) for item in _option_items(options))


def _option_items(options: Any) -> list[str]:
    """Options that are on, sorted: `name` for true, `name=value` for any other value."""
    if not isinstance(options, dict):
        return []
    items = []
    for name, value in sorted(options.items()):
        text = str(value).strip()
        if text.lower() == "true":
            items.append(str(name))
        elif text.lower() not in ("false", ""):
            items.append(f"{name}={text}")
    return items


def _readable(value: Any, options: Any) -> str:
    text = str(value) if value not in (None, "") else UNKNOWN
    items = _option_items(options)
    return f"{text} ({', '.join(items)})" if items else text


def _safe(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-") or UNKNOWN
