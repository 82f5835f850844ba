"""The kind cluster config numacert generates, and the host files it mounts.

A cluster is described by a KindClusterSpec (node image, Kubernetes minor, one kubelet field set
per worker, the host's cgroup version, the pod subnet). `render` turns it into a kind config
(kind.x-k8s.io/v1alpha4) plus the files that config mounts into the nodes; `write` puts them on
disk. Everything here is pure: no docker, no kind, no network.

Why the config looks the way it does:
- kubeadm takes the KubeletConfiguration of the first node for every node (kind's docs say so),
  so per-worker kubelet fields cannot go into a KubeletConfiguration patch. They go into a
  kubeadm patch directory ("kubeletconfiguration+merge.yaml") mounted into each worker and named
  in that worker's JoinConfiguration (`patches.directory`); kubeadm join applies it to the
  kubelet config it downloads from the cluster before writing it to disk.
- The offline node image has no kindnetd and no kube-proxy images: the default CNI and
  kube-proxy are off, and each node gets a static bridge + host-local conflist with its own /24.
- The cluster name is derived from a hash of the spec, so a cluster made from another spec is
  never reused by mistake; the hash is also put on every node as a label.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import itertools
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from numacert.errors import InputError

KIND_API_VERSION = "kind.x-k8s.io/v1alpha4"
KUBELET_API_VERSION = "kubelet.config.k8s.io/v1beta1"

# kind uses kubeadm v1beta3 for 1.23-1.35 and v1beta4 from 1.36. kind matches patches on apiVersion
# and kind, so a JoinConfiguration patch with the other apiVersion would silently match nothing.
KUBEADM_V1BETA4_FROM_MINOR = 36

# kubeadm's "kubeletconfiguration" patch target exists from 1.25 (kubernetes#110405); older
# kubeadm ignores the file with a warning, and every worker would silently run with kind's
# kubelet defaults. kind itself supports 1.23+, numacert's per-worker kubelet fields need 1.25+.
MIN_K8S_MINOR = 25
MAX_WORKERS = 8

LABEL_CERTIFY = "numacert.io/certify"
LABEL_CONFIG = "numacert.io/kind-config"

CONFLIST_CONTAINER_PATH = "/etc/cni/net.d/10-numacert.conflist"
PATCHES_CONTAINER_DIR = "/numacert/kubeadm-patches"
# target "kubeletconfiguration", patch type "merge" (RFC 7386: maps merge, lists replace, null
# deletes), extension "yaml".
KUBELET_PATCH_FILE = "kubeletconfiguration+merge.yaml"
CONFIG_FILE = "kind-config.yaml"

# The KubeletConfiguration fields kind's kubeadm template writes (kind v0.33.0,
# pkg/cluster/internal/kubeadm/config.go), except cgroupDriver, which depends on the host.
KIND_TEMPLATE_KUBELET: dict[str, Any] = {
    "cgroupRoot": "/kubelet",
    "failSwapOn": False,
    "imageGCHighThresholdPercent": 100,
    # kind turns disk-pressure eviction off: the node sees the host's disk.
    "evictionHard": {
        "nodefs.available": "0%",
        "nodefs.inodesFree": "0%",
        "imagefs.available": "0%",
    },
}

# numacert's base settings for every kind worker, so that a static CPU Manager and a Static
# Memory Manager can run there at all:
# - the kubelet's static CPU policy refuses to start with no CPU reservation, so CPU 0 is
#   reserved for system daemons;
# - Memory Manager Static needs reservedMemory (per NUMA node, summed) equal to kubeReserved +
#   systemReserved + the evictionHard memory threshold. kind's evictionHard replaces the
#   kubelet's default map, and with mergeDefaultEvictionSettings unset the signals it leaves out
#   become 0, so memory.available is set explicitly here: a worker then reserves exactly
#   256Mi + 100Mi = 356Mi, whatever the kubelet version.
WORKER_BASE_KUBELET: dict[str, Any] = {
    "reservedSystemCPUs": "0",
    "systemReserved": {"memory": "256Mi"},
    "evictionHard": {**KIND_TEMPLATE_KUBELET["evictionHard"], "memory.available": "100Mi"},
}

# Keys a worker's field set may not carry: they are the document's type, not kubelet fields.
_RESERVED_KEYS = ("apiVersion", "kind", "metadata")


@dataclass(frozen=True)
class KindClusterSpec:
    """What a numacert kind cluster is made of; equal specs give the same cluster name.

    `workers[i]` holds the KubeletConfiguration fields numacert sets on worker i (camelCase, as
    in a config file); a value None means "leave the field out": the kubelet default applies.
    """

    image: str
    k8s_minor: int
    workers: tuple[Mapping[str, Any], ...]
    cgroup_v1: bool
    pod_subnet: str = "10.244.0.0/16"

    def __post_init__(self) -> None:
        # Own copies as plain dicts: a caller mutating its dicts later must not change a spec
        # whose name (hash) was already taken.
        workers = self.workers
        if isinstance(workers, Mapping) or not isinstance(workers, list | tuple):
            raise InputError(
                f"must be a list of kubelet field maps, got {type(workers).__name__}",
                _where("workers"),
            )
        for i, worker in enumerate(workers):
            if not isinstance(worker, Mapping):
                raise InputError(
                    f"must be a map of kubelet fields, got {type(worker).__name__}",
                    _where(f"workers[{i}]"),
                )
        object.__setattr__(
            self,
            "workers",
            tuple(_plain(w, _where(f"workers[{i}]")) for i, w in enumerate(workers)),
        )
        validate(self)


def _where(name: str) -> str:
    return f"kind cluster spec: {name}"


def validate(spec: KindClusterSpec) -> None:
    """Raise InputError naming the field if `spec` cannot make a working cluster."""
    if not isinstance(spec.image, str) or not spec.image or any(c.isspace() for c in spec.image):
        raise InputError(f"must be a node image reference, got {spec.image!r}", _where("image"))
    if not isinstance(spec.k8s_minor, int) or isinstance(spec.k8s_minor, bool):
        raise InputError(f"must be an integer, got {spec.k8s_minor!r}", _where("k8s_minor"))
    if spec.k8s_minor < MIN_K8S_MINOR:
        raise InputError(
            f"Kubernetes 1.{spec.k8s_minor} is too old: per-worker kubelet settings need kubeadm's"
            f" kubeletconfiguration patches, Kubernetes 1.{MIN_K8S_MINOR} or newer",
            _where("k8s_minor"),
        )
    if not isinstance(spec.cgroup_v1, bool):
        raise InputError(f"must be true or false, got {spec.cgroup_v1!r}", _where("cgroup_v1"))
    if not spec.workers:
        raise InputError(
            "at least one worker is needed (numacert certifies workers)", _where("workers")
        )
    if len(spec.workers) > MAX_WORKERS:
        raise InputError(
            f"{len(spec.workers)} workers, at most {MAX_WORKERS} are supported", _where("workers")
        )
    for i, worker in enumerate(spec.workers):
        _validate_worker(worker, i)
    _pod_network(spec)  # raises on a bad or too small subnet


def _validate_worker(worker: Mapping[str, Any], index: int) -> None:
    for key, value in worker.items():
        where = _where(f"workers[{index}].{key}")
        if key in _RESERVED_KEYS:
            raise InputError("is not a kubelet field; give only KubeletConfiguration fields", where)
        base = WORKER_BASE_KUBELET.get(key)
        # A merge patch cannot turn a map back into a scalar's place and vice versa without
        # losing what the base had; such a value is a kubelet type error anyway.
        if (
            value is not None
            and base is not None
            and isinstance(base, dict) != isinstance(value, dict)
        ):
            raise InputError(
                f"must be {'a map' if isinstance(base, dict) else 'a single value'},"
                f" got {type(value).__name__}",
                where,
            )


def _plain(value: Any, where: str) -> Any:
    """`value` as plain JSON data (dict/list/str/int/float/bool/None), deep-copied."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputError(f"field names must be strings, got {k!r}", where)
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise InputError(f"{type(value).__name__} is not a YAML/JSON value", where)


def _pod_network(spec: KindClusterSpec) -> ipaddress.IPv4Network:
    where = _where("pod_subnet")
    try:
        net = ipaddress.ip_network(spec.pod_subnet, strict=True)
    except (TypeError, ValueError) as e:
        raise InputError(f"{spec.pod_subnet!r} is not a network address: {e}", where) from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InputError(f"{spec.pod_subnet} is not IPv4 (the node conflists are IPv4)", where)
    nodes = 1 + len(spec.workers)
    available = 2 ** (24 - net.prefixlen) if net.prefixlen <= 24 else 0
    if available < nodes:
        raise InputError(
            f"{spec.pod_subnet} holds {available} /24 networks, {nodes} nodes need one each", where
        )
    return net


def kubeadm_api_version(k8s_minor: int) -> str:
    """The kubeadm config API kind generates for this Kubernetes minor."""
    return (
        "kubeadm.k8s.io/v1beta4"
        if k8s_minor >= KUBEADM_V1BETA4_FROM_MINOR
        else "kubeadm.k8s.io/v1beta3"
    )


def cluster_kubelet_patch(spec: KindClusterSpec) -> dict[str, Any]:
    """KubeletConfiguration fields every node gets (through the first node's config).

    Only what must hold cluster-wide: policy fields stay per worker.
    """
    patch: dict[str, Any] = {}
    if spec.cgroup_v1:
        # kubelet >= 1.35 refuses to start on cgroup v1 unless told not to.
        patch["failCgroupV1"] = False
    return patch


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge recursively, None deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def _compose(first: dict[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """One patch doing `first` then `second`, None values kept (they still delete)."""
    out = copy.deepcopy(first)
    for key, value in second.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _compose(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _prune_nulls(patch: dict[str, Any], target: Any) -> dict[str, Any]:
    """`patch` without the None entries that would delete nothing in `target`.

    A None on a field kind's template (or the cluster patch) sets stays as `null`, so the
    kubelet really gets its own default for it, as expected_kubelet says.
    """
    target = target if isinstance(target, dict) else {}
    out: dict[str, Any] = {}
    for key, value in patch.items():
        if value is None:
            if key in target:
                out[key] = None
        elif isinstance(value, dict):
            out[key] = _prune_nulls(value, target.get(key))
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_worker_index(spec: KindClusterSpec, worker_index: int) -> None:
    if not 0 <= worker_index < len(spec.workers):
        raise IndexError(f"worker {worker_index} of {len(spec.workers)}")


def _joined_kubelet(spec: KindClusterSpec) -> dict[str, Any]:
    # What kubeadm join downloads: the first node's KubeletConfiguration from the kubelet-config
    # ConfigMap, i.e. kind's template with the cluster-wide patch applied.
    return _merge_patch(KIND_TEMPLATE_KUBELET, cluster_kubelet_patch(spec))


def worker_kubelet_patch(spec: KindClusterSpec, worker_index: int) -> dict[str, Any]:
    """The merge patch in worker `worker_index`'s kubeadm patch directory.

    WORKER_BASE_KUBELET with the worker's own fields merged over it. None keys are left out,
    except where the config kubeadm join starts from sets the field: there they stay `null`
    (the merge patch deletes the field), so the kubelet falls back to its default.
    """
    _check_worker_index(spec, worker_index)
    composed = _compose(WORKER_BASE_KUBELET, spec.workers[worker_index])
    return _prune_nulls(composed, _joined_kubelet(spec))


def expected_kubelet(spec: KindClusterSpec, worker_index: int) -> dict[str, Any]:
    """The KubeletConfiguration fields worker `worker_index` ends up with.

    kind's template < cluster-wide patch < WORKER_BASE_KUBELET < the worker's own fields, each
    applied as a JSON merge patch (maps merge, lists replace, None drops the key). This is what
    the kubelet loads minus cgroupDriver (host-dependent) and the defaults kubeadm adds on its
    own (clusterDNS, authentication, staticPodPath, ...), none of which are policy fields.
    No apiVersion/kind: the result is a field map, ready for numacert.kubelet.parse.from_dict.
    """
    _check_worker_index(spec, worker_index)
    config = _joined_kubelet(spec)
    config = _merge_patch(config, WORKER_BASE_KUBELET)
    return _merge_patch(config, dict(spec.workers[worker_index]))


# Bump when render() lays a cluster out differently for the same spec: the name (and the label
# numacert checks before reusing a cluster) then changes too, so a cluster kept by an older
# numacert is never taken for one of this layout.
RENDER_VERSION = 1


def _canonical_json(spec: KindClusterSpec) -> str:
    data = {
        "render": RENDER_VERSION,
        "image": spec.image,
        "k8s_minor": spec.k8s_minor,
        "workers": [dict(w) for w in spec.workers],
        "cgroup_v1": spec.cgroup_v1,
        "pod_subnet": spec.pod_subnet,
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def config_hash(spec: KindClusterSpec) -> str:
    """sha256 (hex) of the spec's canonical JSON (sorted keys, no whitespace)."""
    return hashlib.sha256(_canonical_json(spec).encode("utf-8")).hexdigest()


def cluster_name(spec: KindClusterSpec) -> str:
    """The kind cluster name: lowercase, short, and different for every different spec.

    kind names node containers `<name>-control-plane`, `<name>-worker`, ...; these become
    hostnames and node names, so the name stays well under 63 characters.
    """
    return "numacert-" + config_hash(spec)[:12]


def node_names(name: str, workers: int) -> tuple[str, list[str]]:
    """(control-plane node, worker nodes) as kind names them for one control-plane node.

    kind numbers the second and later nodes of a role: worker, worker2, worker3, ...
    """
    return f"{name}-control-plane", [
        f"{name}-worker" + ("" if i == 0 else str(i + 1)) for i in range(workers)
    ]


def node_subnets(spec: KindClusterSpec) -> list[str]:
    """One /24 per node out of pod_subnet: the control plane first, then the workers in order."""
    net = _pod_network(spec)
    count = 1 + len(spec.workers)
    return [str(s) for s in itertools.islice(net.subnets(new_prefix=24), count)]


def conflist(subnet: str) -> str:
    """The static CNI config of one node: a bridge with host-local addresses from `subnet`."""
    doc = {
        "cniVersion": "1.0.0",
        "name": "numacert",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


@dataclass(frozen=True)
class RenderedConfig:
    """A rendered cluster: its name and hash, the kind config and every host file it mounts."""

    name: str
    hash: str
    path: Path
    text: str
    files: dict[Path, str] = field(default_factory=dict)


class _Dumper(yaml.SafeDumper):
    """Safe dumper writing multi-line strings (the embedded patches) as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def _dump(doc: Any, sort_keys: bool = False) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=sort_keys, default_flow_style=False)


def render(spec: KindClusterSpec, workdir: Path) -> RenderedConfig:
    """The kind config for `spec` and its host files, all under `workdir / name`.

    Host paths are absolute (`workdir` made absolute against the current directory): docker
    binds need absolute paths, and kind would resolve relative ones against its own cwd.
    """
    name = cluster_name(spec)
    digest = config_hash(spec)
    short = digest[:12]
    root = Path(workdir).absolute() / name
    # docker's bind syntax is "host:container[:options]": a ':' or ',' in the path breaks it.
    if any(c in str(root) for c in ":,"):
        raise InputError(
            f"{root} contains ':' or ',', which docker bind mounts cannot take", "workdir"
        )

    control_plane, workers = node_names(name, len(spec.workers))
    subnets = node_subnets(spec)
    files: dict[Path, str] = {}

    def conflist_mount(node: str, subnet: str) -> dict[str, Any]:
        host = root / node / "10-numacert.conflist"
        files[host] = conflist(subnet)
        return {"hostPath": str(host), "containerPath": CONFLIST_CONTAINER_PATH, "readOnly": True}

    nodes: list[dict[str, Any]] = [
        {
            "role": "control-plane",
            "image": spec.image,
            # The control plane keeps kind's kubelet defaults: it runs the control plane, not
            # the pods under test. The label still marks it as this config's node.
            "labels": {LABEL_CONFIG: short},
            "extraMounts": [conflist_mount(control_plane, subnets[0])],
        }
    ]
    join_patch = _dump(
        {
            "apiVersion": kubeadm_api_version(spec.k8s_minor),
            "kind": "JoinConfiguration",
            "patches": {"directory": PATCHES_CONTAINER_DIR},
        }
    )
    for i, (node, subnet) in enumerate(zip(workers, subnets[1:], strict=True)):
        patches_dir = root / node / "kubeadm-patches"
        files[patches_dir / KUBELET_PATCH_FILE] = _dump(
            worker_kubelet_patch(spec, i), sort_keys=True
        )
        nodes.append(
            {
                "role": "worker",
                "image": spec.image,
                # The config label lets numacert tell its own cluster from another one that
                # happens to carry the same name.
                "labels": {LABEL_CERTIFY: "true", LABEL_CONFIG: short},
                "extraMounts": [
                    conflist_mount(node, subnet),
                    {
                        "hostPath": str(patches_dir),
                        "containerPath": PATCHES_CONTAINER_DIR,
                        "readOnly": True,
                    },
                ],
                "kubeadmConfigPatches": [join_patch],
            }
        )

    config: dict[str, Any] = {
        "kind": "Cluster",
        "apiVersion": KIND_API_VERSION,
        "name": name,
        "networking": {
            # The offline node image has neither kindnetd nor kube-proxy: pod networking comes
            # from the static per-node conflists mounted below.
            "disableDefaultCNI": True,
            "kubeProxyMode": "none",
            "podSubnet": spec.pod_subnet,
        },
    }
    cluster_patch = cluster_kubelet_patch(spec)
    if cluster_patch:
        config["kubeadmConfigPatches"] = [
            _dump(
                {"apiVersion": KUBELET_API_VERSION, "kind": "KubeletConfiguration", **cluster_patch}
            )
        ]
    config["nodes"] = nodes
    return RenderedConfig(
        name=name, hash=digest, path=root / CONFIG_FILE, text=_dump(config), files=files
    )


def write(rendered: RenderedConfig) -> None:
    """Write the config and every mounted file, each atomically (temp file + rename)."""
    for path, text in [(rendered.path, rendered.text), *rendered.files.items()]:
        _write_atomic(path, text)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # mkstemp makes the file 0600; the node reads it as root anyway, but keep it readable
        # like any other config file.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
