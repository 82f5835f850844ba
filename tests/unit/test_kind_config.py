"""numacert.kind.config: the kind cluster config numacert renders (pure: no docker, no kind)."""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re
from pathlib import Path

import pytest
import yaml

from numacert.errors import InputError
from numacert.kind.config import (
    CONFLIST_CONTAINER_PATH,
    KUBELET_PATCH_FILE,
    LABEL_CERTIFY,
    LABEL_CONFIG,
    PATCHES_CONTAINER_DIR,
    RENDER_VERSION,
    WORKER_BASE_KUBELET,
    KindClusterSpec,
    cluster_name,
    config_hash,
    expected_kubelet,
    node_names,
    render,
    write,
)
from numacert.kubelet.parse import from_dict
from numacert.providers.safety import OPT_IN_LABEL

IMAGE = "numacert/kind-node:v1.37.2"
SNN_STATIC = {
    "cpuManagerPolicy": "static",
    "topologyManagerPolicy": "single-numa-node",
    "memoryManagerPolicy": "Static",
    "reservedMemory": [{"numaNode": 0, "limits": {"memory": "356Mi"}}],
}
BEST_EFFORT = {"cpuManagerPolicy": "static", "topologyManagerPolicy": "best-effort"}

# kind v0.33.0's generated KubeletConfiguration (minus the host-dependent cgroupDriver).
KIND_TEMPLATE = {
    "cgroupRoot": "/kubelet",
    "failSwapOn": False,
    "imageGCHighThresholdPercent": 100,
    "evictionHard": {
        "nodefs.available": "0%",
        "nodefs.inodesFree": "0%",
        "imagefs.available": "0%",
    },
}


def spec(**overrides) -> KindClusterSpec:
    fields = {
        "image": IMAGE,
        "k8s_minor": 37,
        "workers": (SNN_STATIC, BEST_EFFORT),
        "cgroup_v1": False,
    }
    fields.update(overrides)
    return KindClusterSpec(**fields)


def merge_patch(target, patch):
    """RFC 7386, written independently of the module under test."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def parsed(s: KindClusterSpec, workdir: Path):
    r = render(s, workdir)
    return r, yaml.safe_load(r.text)


def worker_patch(r, node_doc) -> dict:
    [mount] = [m for m in node_doc["extraMounts"] if m["containerPath"] == PATCHES_CONTAINER_DIR]
    return yaml.safe_load(r.files[Path(mount["hostPath"]) / KUBELET_PATCH_FILE])


def node_conflist(r, node_doc) -> dict:
    [mount] = [m for m in node_doc["extraMounts"] if m["containerPath"] == CONFLIST_CONTAINER_PATH]
    return json.loads(r.files[Path(mount["hostPath"])])


# --- the rendered config --------------------------------------------------------------------


def test_cluster_structure(tmp_path):
    s = spec()
    r, doc = parsed(s, tmp_path)
    assert doc["kind"] == "Cluster"
    assert doc["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert doc["name"] == r.name == cluster_name(s)
    assert r.hash == config_hash(s)
    assert doc["networking"] == {
        "disableDefaultCNI": True,
        "kubeProxyMode": "none",
        "podSubnet": "10.244.0.0/16",
    }
    assert [n["role"] for n in doc["nodes"]] == ["control-plane", "worker", "worker"]
    assert all(n["image"] == IMAGE for n in doc["nodes"])
    assert r.path == tmp_path / r.name / "kind-config.yaml"
    # Nothing to patch cluster-wide on cgroup v2: no kubeadmConfigPatches at all.
    assert "kubeadmConfigPatches" not in doc


def test_every_node_gets_its_own_slash24_in_order(tmp_path):
    s = spec(workers=(SNN_STATIC, BEST_EFFORT, {}), pod_subnet="10.50.0.0/22")
    r, doc = parsed(s, tmp_path)
    pod_net = ipaddress.ip_network("10.50.0.0/22")
    subnets = []
    for node in doc["nodes"]:
        conf = node_conflist(r, node)
        assert conf["cniVersion"] == "1.0.0" and conf["name"] == "numacert"
        bridge, portmap = conf["plugins"]
        assert bridge["type"] == "bridge" and bridge["bridge"] == "cni0"
        assert bridge["isGateway"] and bridge["ipMasq"] and bridge["hairpinMode"]
        assert bridge["ipam"]["type"] == "host-local"
        assert bridge["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
        [[rng]] = bridge["ipam"]["ranges"]
        subnets.append(ipaddress.ip_network(rng["subnet"]))
        assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}
    assert [str(n) for n in subnets] == [
        "10.50.0.0/24",
        "10.50.1.0/24",
        "10.50.2.0/24",
        "10.50.3.0/24",
    ]
    assert all(n.prefixlen == 24 and n.subnet_of(pod_net) for n in subnets)


def test_conflist_is_indented_json(tmp_path):
    r, doc = parsed(spec(), tmp_path)
    text = next(t for p, t in r.files.items() if p.name == "10-numacert.conflist")
    assert text.startswith('{\n  "cniVersion": "1.0.0",')
    assert text.endswith("}\n")


def test_mounts_point_at_rendered_files_under_the_cluster_dir(tmp_path):
    r, doc = parsed(spec(), tmp_path)
    root = tmp_path / r.name
    mounted: set[Path] = set()
    for node in doc["nodes"]:
        for m in node["extraMounts"]:
            assert m["readOnly"] is True
            host = Path(m["hostPath"])
            assert host.is_absolute() and root in host.parents
            if m["containerPath"] == CONFLIST_CONTAINER_PATH:
                assert host in r.files
                mounted.add(host)
            else:
                assert m["containerPath"] == PATCHES_CONTAINER_DIR
                assert host / KUBELET_PATCH_FILE in r.files
                mounted.add(host / KUBELET_PATCH_FILE)
    # Every file rendered is mounted somewhere, and every node has its own directory.
    assert mounted == set(r.files)
    cp, workers = node_names(r.name, 2)
    assert {p.relative_to(root).parts[0] for p in r.files} == {cp, *workers}


@pytest.mark.parametrize(
    ("minor", "api"),
    [
        (35, "kubeadm.k8s.io/v1beta3"),
        (36, "kubeadm.k8s.io/v1beta4"),
        (37, "kubeadm.k8s.io/v1beta4"),
    ],
)
def test_join_configuration_api_version_follows_kind(tmp_path, minor, api):
    _, doc = parsed(spec(k8s_minor=minor), tmp_path)
    for node in doc["nodes"][1:]:
        [patch] = node["kubeadmConfigPatches"]
        assert yaml.safe_load(patch) == {
            "apiVersion": api,
            "kind": "JoinConfiguration",
            "patches": {"directory": PATCHES_CONTAINER_DIR},
        }


def test_worker_patch_files_carry_base_and_own_fields(tmp_path):
    r, doc = parsed(spec(), tmp_path)
    first, second = (worker_patch(r, n) for n in doc["nodes"][1:])
    assert first == {**WORKER_BASE_KUBELET, **SNN_STATIC}
    assert second == {**WORKER_BASE_KUBELET, **BEST_EFFORT}
    assert first["reservedMemory"] == [{"numaNode": 0, "limits": {"memory": "356Mi"}}]
    assert "memoryManagerPolicy" not in second and "reservedMemory" not in second


def test_patch_file_applied_to_joined_config_is_expected_kubelet(tmp_path):
    workers = (
        SNN_STATIC,
        {"reservedSystemCPUs": None, "cpuManagerPolicy": None},
        {"evictionHard": {"nodefs.available": None, "memory.available": "200Mi"}},
        {"failSwapOn": None, "cgroupRoot": None, "systemReserved": {"memory": "512Mi"}},
    )
    for cgroup_v1 in (False, True):
        s = spec(workers=workers, cgroup_v1=cgroup_v1)
        r, doc = parsed(s, tmp_path)
        joined = {**KIND_TEMPLATE, **({"failCgroupV1": False} if cgroup_v1 else {})}
        for i, node in enumerate(doc["nodes"][1:]):
            assert merge_patch(joined, worker_patch(r, node)) == expected_kubelet(s, i)


def test_patch_file_none_omitted_or_null(tmp_path):
    s = spec(workers=({"cpuManagerPolicy": None, "reservedSystemCPUs": None, "failSwapOn": None},))
    r, doc = parsed(s, tmp_path)
    patch = worker_patch(r, doc["nodes"][1])
    # Not set below the patch: simply left out.
    assert "cpuManagerPolicy" not in patch and "reservedSystemCPUs" not in patch
    # Set by kind's template: null, so the merge patch really removes it.
    assert "failSwapOn" in patch and patch["failSwapOn"] is None


def test_worker_labels_and_control_plane_keeps_defaults(tmp_path):
    r, doc = parsed(spec(cgroup_v1=True), tmp_path)
    cp, *workers = doc["nodes"]
    assert cp["labels"] == {LABEL_CONFIG: r.hash[:12]}
    assert "kubeadmConfigPatches" not in cp
    assert [m["containerPath"] for m in cp["extraMounts"]] == [CONFLIST_CONTAINER_PATH]
    for w in workers:
        assert w["labels"] == {LABEL_CERTIFY: "true", LABEL_CONFIG: r.hash[:12]}
    # The worker label is exactly the opt-in label the providers look for.
    assert f"{LABEL_CERTIFY}=true" == OPT_IN_LABEL


def test_fail_cgroup_v1_only_on_cgroup_v1(tmp_path):
    _, v2 = parsed(spec(cgroup_v1=False), tmp_path)
    assert "kubeadmConfigPatches" not in v2
    assert "failCgroupV1" not in json.dumps(v2)

    _, v1 = parsed(spec(cgroup_v1=True), tmp_path)
    [patch] = v1["kubeadmConfigPatches"]
    assert yaml.safe_load(patch) == {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
    }
    assert expected_kubelet(spec(cgroup_v1=True), 0)["failCgroupV1"] is False
    assert "failCgroupV1" not in expected_kubelet(spec(cgroup_v1=False), 0)


def test_render_is_deterministic_and_hash_ignores_workdir(tmp_path):
    a = render(spec(), tmp_path / "one")
    b = render(spec(), tmp_path / "one")
    assert a == b
    c = render(spec(), tmp_path / "two")
    assert (c.name, c.hash) == (a.name, a.hash)
    assert str(tmp_path / "two") in c.text and str(tmp_path / "one") not in c.text


def test_write_creates_everything(tmp_path):
    r = render(spec(), tmp_path / "work")
    write(r)
    write(r)  # idempotent
    assert r.path.read_text() == r.text
    for path, text in r.files.items():
        assert path.read_text() == text
    on_disk = {p for p in (tmp_path / "work").rglob("*") if p.is_file()}
    assert on_disk == {r.path, *r.files}  # no temporary files left behind


def test_workdir_with_colon_is_refused(tmp_path):
    with pytest.raises(InputError, match="':'"):
        render(spec(), tmp_path / "a:b")


# --- names ----------------------------------------------------------------------------------


def test_same_spec_same_name():
    reordered = dict(reversed(list(SNN_STATIC.items())))
    assert cluster_name(spec()) == cluster_name(spec(workers=[reordered, dict(BEST_EFFORT)]))


def test_config_hash_is_sha256_of_canonical_json():
    s = spec(workers=({"cpuManagerPolicy": "static"},))
    canonical = json.dumps(
        {
            "cgroup_v1": False,
            "image": IMAGE,
            "k8s_minor": 37,
            "pod_subnet": "10.244.0.0/16",
            "render": RENDER_VERSION,
            "workers": [{"cpuManagerPolicy": "static"}],
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    assert config_hash(s) == hashlib.sha256(canonical.encode()).hexdigest()
    assert cluster_name(s) == "numacert-" + config_hash(s)[:12]


@pytest.mark.parametrize(
    "change",
    [
        {"image": "numacert/kind-node:v1.36.3"},
        {"k8s_minor": 36},
        {"workers": (SNN_STATIC, {**BEST_EFFORT, "topologyManagerPolicy": "restricted"})},
        {"workers": (SNN_STATIC, {**BEST_EFFORT, "topologyManagerScope": None})},
        {"workers": (BEST_EFFORT, SNN_STATIC)},
        {"workers": (SNN_STATIC,)},
        {"cgroup_v1": True},
        {"pod_subnet": "10.245.0.0/16"},
    ],
)
def test_any_change_gives_another_name(change):
    assert cluster_name(spec(**change)) != cluster_name(spec())


def test_name_is_valid_for_kind():
    for s in (spec(), spec(cgroup_v1=True), spec(workers=({},) * 8)):
        name = cluster_name(s)
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name)
        assert len(name + "-control-plane") <= 63


def test_node_names_as_kind_names_them():
    assert node_names("c", 3) == ("c-control-plane", ["c-worker", "c-worker2", "c-worker3"])
    assert node_names("c", 1) == ("c-control-plane", ["c-worker"])
    assert node_names("c", 0) == ("c-control-plane", [])


def test_spec_keeps_its_own_copy_of_worker_fields():
    fields = copy.deepcopy(SNN_STATIC)
    s = spec(workers=[fields])
    name = cluster_name(s)
    fields["cpuManagerPolicy"] = "none"
    fields["reservedMemory"][0]["limits"]["memory"] = "1Gi"
    assert cluster_name(s) == name
    assert s.workers[0]["cpuManagerPolicy"] == "static"
    assert isinstance(s.workers, tuple)


# --- expected_kubelet -----------------------------------------------------------------------


def test_expected_kubelet_base_worker():
    got = expected_kubelet(spec(workers=({},)), 0)
    assert got == {
        **KIND_TEMPLATE,
        "evictionHard": {**KIND_TEMPLATE["evictionHard"], "memory.available": "100Mi"},
        "reservedSystemCPUs": "0",
        "systemReserved": {"memory": "256Mi"},
    }


def test_expected_kubelet_merge_order():
    worker = {
        "cpuManagerPolicy": "static",
        "reservedSystemCPUs": "0,1",  # worker beats WORKER_BASE_KUBELET
        "evictionHard": {"memory.available": "200Mi", "imagefs.available": None},  # maps merge
        "imageGCHighThresholdPercent": 85,  # worker beats kind's template
        "failCgroupV1": True,  # worker beats the cluster-wide patch
        "reservedMemory": [{"numaNode": 1, "limits": {"memory": "456Mi"}}],
    }
    got = expected_kubelet(spec(workers=(worker,), cgroup_v1=True), 0)
    assert got["cpuManagerPolicy"] == "static"
    assert got["reservedSystemCPUs"] == "0,1"
    assert got["evictionHard"] == {
        "nodefs.available": "0%",
        "nodefs.inodesFree": "0%",
        "memory.available": "200Mi",
    }
    assert got["imageGCHighThresholdPercent"] == 85
    assert got["failCgroupV1"] is True
    assert got["systemReserved"] == {"memory": "256Mi"}
    assert got["cgroupRoot"] == "/kubelet"


def test_expected_kubelet_none_drops_the_key():
    worker = {"reservedSystemCPUs": None, "cgroupRoot": None, "cpuManagerPolicy": None}
    got = expected_kubelet(spec(workers=(worker,)), 0)
    assert "reservedSystemCPUs" not in got  # set by WORKER_BASE_KUBELET
    assert "cgroupRoot" not in got  # set by kind's template
    assert "cpuManagerPolicy" not in got  # set by nobody
    assert got["systemReserved"] == {"memory": "256Mi"}


def test_expected_kubelet_lists_replace_and_workers_differ():
    s = spec()
    first, second = expected_kubelet(s, 0), expected_kubelet(s, 1)
    assert first["reservedMemory"] == SNN_STATIC["reservedMemory"]
    assert first["topologyManagerPolicy"] == "single-numa-node"
    assert second["topologyManagerPolicy"] == "best-effort"
    assert "reservedMemory" not in second
    with pytest.raises(IndexError):
        expected_kubelet(s, 2)


def test_expected_kubelet_reads_as_a_kubelet_config():
    config = from_dict(expected_kubelet(spec(), 0), "kind worker")
    assert config.cpu_manager_policy == "static"
    assert config.memory_manager_policy == "Static"
    assert config.reserved_system_cpus == "0"
    assert config.eviction_hard is not None and config.eviction_hard["memory.available"] == "100Mi"


def test_expected_kubelet_does_not_share_state():
    s = spec()
    got = expected_kubelet(s, 0)
    got["evictionHard"]["memory.available"] = "1Gi"
    got["reservedMemory"].append({"numaNode": 1})
    assert expected_kubelet(s, 0)["evictionHard"]["memory.available"] == "100Mi"
    assert WORKER_BASE_KUBELET["evictionHard"]["memory.available"] == "100Mi"
    assert len(s.workers[0]["reservedMemory"]) == 1


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ({"workers": ()}, "workers", "at least one worker"),
        ({"workers": ({},) * 9}, "workers", "at most 8"),
        ({"workers": {"cpuManagerPolicy": "static"}}, "workers", "list"),
        ({"workers": ("static",)}, "workers[0]", "map"),
        ({"workers": ({"kind": "KubeletConfiguration"},)}, "workers[0].kind", "not a kubelet"),
        ({"workers": ({1: "x"},)}, "workers[0]", "strings"),
        ({"workers": ({"x": object()},)}, "workers[0].x", "not a YAML"),
        ({"workers": ({"systemReserved": "256Mi"},)}, "workers[0].systemReserved", "a map"),
        ({"workers": ({"reservedSystemCPUs": {"a": 1}},)}, "reservedSystemCPUs", "single value"),
        ({"k8s_minor": 22}, "k8s_minor", "too old"),
        ({"k8s_minor": 24}, "k8s_minor", "too old"),
        ({"k8s_minor": "37"}, "k8s_minor", "integer"),
        ({"image": ""}, "image", "image"),
        ({"image": "a b"}, "image", "image"),
        ({"cgroup_v1": "yes"}, "cgroup_v1", "true or false"),
        ({"pod_subnet": "10.244.0.0/23"}, "pod_subnet", "2 /24 networks, 3 nodes"),
        ({"pod_subnet": "10.244.0.0/25"}, "pod_subnet", "0 /24 networks"),
        ({"pod_subnet": "10.244.0.1/16"}, "pod_subnet", "not a network"),
        ({"pod_subnet": "pods"}, "pod_subnet", "not a network"),
        ({"pod_subnet": "fd00::/48"}, "pod_subnet", "IPv4"),
    ],
)
def test_invalid_specs_are_input_errors(change, where, message):
    with pytest.raises(InputError) as err:
        spec(**change)
    assert where in err.value.where
    assert err.value.where.startswith("kind cluster spec")
    assert message in err.value.what


def test_smallest_subnets_that_fit():
    with pytest.raises(InputError):  # control plane + 1 worker need two /24s
        spec(pod_subnet="10.244.0.0/24", workers=({},))
    spec(pod_subnet="10.244.0.0/23", workers=({},))
    spec(pod_subnet="10.244.0.0/20", workers=({},) * 8)
    spec(k8s_minor=25)
