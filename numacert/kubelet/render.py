"""Write a KubeletConfig back as a KubeletConfiguration (kubelet.config.k8s.io/v1beta1).

A field is written when the source set it (KubeletConfig.explicit) or when it differs from
the kubelet default; unset fields stay out so the kubelet's own defaults apply. Unknown fields
(`extra`) are written back verbatim after the known ones.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.parse import API_VERSION, FIELDS, KIND

_DEFAULTS = KubeletConfig()


def _value(config: KubeletConfig, attr: str) -> Any:
    value = getattr(config, attr)
    if attr == "reserved_memory":
        return [{"numaNode": r.numa_node, "limits": dict(r.limits)} for r in value]
    return copy.deepcopy(value)


def to_dict(config: KubeletConfig) -> dict[str, Any]:
    """The configuration as a KubeletConfiguration mapping (camelCase keys, apiVersion, kind)."""
    out: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND}
    for key, attr, _ in FIELDS:
        value = getattr(config, attr)
        if value is None:  # evictionHard / failCgroupV1 unset: leave the kubelet default
            continue
        if key in config.explicit or value != getattr(_DEFAULTS, attr):
            out[key] = _value(config, attr)
    for key, value in config.extra.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
    return out


def to_yaml(config: KubeletConfig) -> str:
    """YAML text the kubelet reads with --config. Strings stay strings ("true", "0")."""
    return yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=False)
