"""Parsing, rendering and merging KubeletConfiguration files (numacert.kubelet.parse/render)."""

from __future__ import annotations

import json

import pytest
import yaml

from numacert.errors import InputError
from numacert.kubelet.config import KubeletConfig, ReservedMemory
from numacert.kubelet.parse import from_configz, from_dict, load, merge
from numacert.kubelet.render import to_dict, to_yaml

FULL = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
cpuManagerPolicy: static
cpuManagerPolicyOptions:
  full-pcpus-only: "true"
reservedSystemCPUs: "0,32"
kubeReserved: {cpu: 500m, memory: 512Mi}
systemReserved: {memory: 512Mi}
evictionHard: {memory.available: 100Mi, nodefs.available: 10%}
topologyManagerPolicy: single-numa-node
topologyManagerScope: pod
memoryManagerPolicy: Static
reservedMemory:
  - numaNode: 0
    limits: {memory: 1124Mi}
featureGates: {CPUManagerPolicyAlphaOptions: true}
failCgroupV1: false
shutdownGracePeriod: 30s
"""


def _write(tmp_path, text, name="kubelet.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_parse_full_file(tmp_path):
    cfg = load(_write(tmp_path, FULL))
    assert cfg.cpu_manager_policy == "static"
    assert cfg.cpu_manager_policy_options == {"full-pcpus-only": "true"}
    assert cfg.cpu_option("full-pcpus-only")
    assert cfg.reserved_system_cpus == "0,32"
    assert cfg.kube_reserved == {"cpu": "500m", "memory": "512Mi"}
    assert cfg.eviction_hard == {"memory.available": "100Mi", "nodefs.available": "10%"}
    assert cfg.topology_manager_policy == "single-numa-node"
    assert cfg.topology_manager_scope == "pod"
    assert cfg.memory_manager_policy == "Static"
    assert cfg.reserved_memory == [ReservedMemory(0, {"memory": "1124Mi"})]
    assert cfg.feature_gates == {"CPUManagerPolicyAlphaOptions": True}
    assert cfg.fail_cgroup_v1 is False
    assert cfg.extra == {"cgroupDriver": "systemd", "shutdownGracePeriod": "30s"}


def test_partial_file_keeps_defaults(tmp_path):
    cfg = load(_write(tmp_path, "cpuManagerPolicy: static\n"))
    assert cfg.cpu_manager_policy == "static"
    assert cfg.topology_manager_policy == "none"
    assert cfg.eviction_hard is None  # unset: the kubelet default applies
    assert cfg.explicit == {"cpuManagerPolicy"}


def test_empty_file_is_default(tmp_path):
    assert load(_write(tmp_path, "")) == KubeletConfig()


def test_json_file(tmp_path):
    cfg = load(_write(tmp_path, json.dumps({"topologyManagerPolicy": "restricted"}), "k.json"))
    assert cfg.topology_manager_policy == "restricted"


def test_kubeadm_multi_document(tmp_path):
    text = (
        "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n---\n"
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "cpuManagerPolicy: static\n"
    )
    assert load(_write(tmp_path, text)).cpu_manager_policy == "static"


def test_configz():
    body = {
        "kubeletconfig": {
            "cpuManagerPolicy": "static",
            "cpuManagerPolicyOptions": {"full-pcpus-only": "true"},
            "topologyManagerPolicy": "single-numa-node",
            "memoryManagerPolicy": "Static",
            "reservedMemory": [{"numaNode": 0, "limits": {"memory": "1124Mi"}}],
            "evictionHard": {"memory.available": "100Mi"},
            "featureGates": {"KubeletPodResourcesGet": True},
            "enableServer": True,
        }
    }
    for data in (body, json.dumps(body), json.dumps(body).encode()):
        cfg = from_configz(data)
        assert cfg.cpu_manager_policy == "static"
        assert cfg.reserved_memory[0].limits == {"memory": "1124Mi"}
        assert cfg.extra == {"enableServer": True}


def test_configz_file(tmp_path):
    p = _write(tmp_path, json.dumps({"kubeletconfig": {"cpuManagerPolicy": "static"}}), "cz")
    assert load(p).cpu_manager_policy == "static"


def test_configz_errors():
    with pytest.raises(InputError) as e:
        from_configz("{not json")
    assert e.value.where == "configz"
    with pytest.raises(InputError, match="kubeletconfig"):
        from_configz({"other": {}})
    with pytest.raises(InputError) as e:
        from_configz({"kubeletconfig": {"kubeReserved": "cpu=1"}}, source="node-a")
    assert e.value.where == "node-a: kubeletconfig.kubeReserved"


# ---- bad input names the file and the field ------------------------------------------------
@pytest.mark.parametrize(
    "text,field,what",
    [
        ("kubeReserved: cpu=1,memory=1Gi\n", "kubeReserved", "must be a map"),
        ("cpuManagerPolicy: [static]\n", "cpuManagerPolicy", "must be a string"),
        (
            "cpuManagerPolicyOptions:\n  full-pcpus-only: true\n",
            "cpuManagerPolicyOptions.full-pcpus-only",
            'quote it: "true"',
        ),
        (
            "topologyManagerPolicyOptions:\n  max-allowable-numa-nodes: 16\n",
            "topologyManagerPolicyOptions.max-allowable-numa-nodes",
            'quote it: "16"',
        ),
        ("reservedSystemCPUs: 0\n", "reservedSystemCPUs", "must be a string"),
        (
            "reservedMemory:\n  - limits: {memory: 1Gi}\n",
            "reservedMemory[0]",
            "numaNode is required",
        ),
        ("reservedMemory:\n  - numaNode: 0\n", "reservedMemory[0]", "limits is required"),
        (
            "reservedMemory:\n  - numaNode: x\n    limits: {memory: 1Gi}\n",
            "reservedMemory[0].numaNode",
            "NUMA node id",
        ),
        (
            "reservedMemory:\n  - numaNode: 0\n    limits: {memory: 1Gx}\n",
            "reservedMemory[0].limits.memory",
            "not a valid quantity",
        ),
        (
            "reservedMemory:\n  - numaNode: 0\n    limits: {memory: 1Gi}\n    numa: 1\n",
            "reservedMemory[0].numa",
            "unknown field",
        ),
        ("reservedMemory: {numaNode: 0}\n", "reservedMemory", "must be a list"),
        ("kubeReserved: {memory: lots}\n", "kubeReserved.memory", "not a valid quantity"),
        (
            "evictionHard: {memory.available: 10 percent}\n",
            "evictionHard.memory.available",
            "not a valid quantity",
        ),
        ('featureGates: {MemoryManager: "false"}\n', "featureGates.MemoryManager", "true or false"),
        ('failCgroupV1: "false"\n', "failCgroupV1", "true or false"),
        ("apiVersion: kubelet.config.k8s.io/v1alpha1\n", "apiVersion", "is not"),
        ("kind: KubeProxyConfiguration\n", "kind", "is not"),
    ],
)
def test_bad_input_names_file_and_field(tmp_path, text, field, what):
    p = _write(tmp_path, text)
    with pytest.raises(InputError) as e:
        load(p)
    assert e.value.where == f"{p}: {field}"
    assert what in e.value.what


def test_bad_yaml_and_missing_file(tmp_path):
    p = _write(tmp_path, "cpuManagerPolicy: [static\n")
    with pytest.raises(InputError, match="not valid YAML") as e:
        load(p)
    assert e.value.where == str(p)
    with pytest.raises(InputError, match="cannot read"):
        load(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="must be a map"):
        load(_write(tmp_path, "- a\n- b\n"))


def test_prefix_for_scenario_sections():
    with pytest.raises(InputError) as e:
        from_dict({"reservedMemory": [{"limits": {}}]}, "scenario.yaml", "kubelet.")
    assert e.value.where == "scenario.yaml: kubelet.reservedMemory[0]"


def test_numeric_reserved_memory_limits_are_quantities():
    cfg = from_dict({"reservedMemory": [{"numaNode": 1, "limits": {"memory": 1073741824}}]})
    assert cfg.reserved_memory == [ReservedMemory(1, {"memory": "1073741824"})]


# ---- render ---------------------------------------------------------------------------------
def test_render_round_trip(tmp_path):
    cfg = load(_write(tmp_path, FULL))
    text = to_yaml(cfg)
    again = load(_write(tmp_path, text, "again.yaml"))
    assert again == cfg
    assert to_dict(again) == to_dict(cfg)
    d = yaml.safe_load(text)
    assert d["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
    assert d["kind"] == "KubeletConfiguration"
    assert d["cpuManagerPolicyOptions"] == {"full-pcpus-only": "true"}  # still a string
    assert d["reservedSystemCPUs"] == "0,32"
    assert d["shutdownGracePeriod"] == "30s"  # extra preserved
    assert d == {**yaml.safe_load(FULL)}


def test_render_writes_only_what_is_set():
    assert to_dict(KubeletConfig()) == {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
    }
    d = to_dict(KubeletConfig(cpu_manager_policy="static", eviction_hard={}))
    assert d["cpuManagerPolicy"] == "static"
    assert d["evictionHard"] == {}  # set-but-empty is not the same as unset
    assert "topologyManagerPolicy" not in d


def test_render_keeps_explicit_defaults():
    cfg = from_dict({"topologyManagerPolicy": "none", "cpuManagerPolicy": "none"})
    d = to_dict(cfg)
    assert d["topologyManagerPolicy"] == "none"
    assert d["cpuManagerPolicy"] == "none"


def test_round_trip_configz():
    body = {"kubeletconfig": {"cpuManagerPolicy": "static", "evictionHard": {"x": "1"}}}
    cfg = from_configz(body)
    assert from_dict(to_dict(cfg)) == cfg


# ---- merge ----------------------------------------------------------------------------------
def test_merge_override_wins_and_maps_merge(tmp_path):
    base = load(_write(tmp_path, FULL))
    merged = merge(
        base,
        {
            "topologyManagerPolicy": "restricted",
            "featureGates": {"TopologyManagerPolicyAlphaOptions": True},
            "cpuManagerPolicyOptions": {"strict-cpu-reservation": "true"},
            "kubeReserved": {"memory": "1Gi"},
            "reservedMemory": [{"numaNode": 1, "limits": {"memory": "1636Mi"}}],
        },
    )
    assert merged.topology_manager_policy == "restricted"
    assert merged.topology_manager_scope == "pod"  # untouched fields stay
    assert merged.feature_gates == {
        "CPUManagerPolicyAlphaOptions": True,
        "TopologyManagerPolicyAlphaOptions": True,
    }
    assert merged.cpu_manager_policy_options == {
        "full-pcpus-only": "true",
        "strict-cpu-reservation": "true",
    }
    assert merged.kube_reserved == {"cpu": "500m", "memory": "1Gi"}
    assert merged.reserved_memory == [ReservedMemory(1, {"memory": "1636Mi"})]  # replaced
    assert merged.extra == base.extra
    assert base.topology_manager_policy == "single-numa-node"  # base not modified


def test_merge_null_removes():
    base = from_dict({"cpuManagerPolicyOptions": {"a": "1", "b": "2"}, "evictionHard": {}})
    merged = merge(base, {"cpuManagerPolicyOptions": {"a": None}, "evictionHard": None})
    assert merged.cpu_manager_policy_options == {"b": "2"}
    assert merged.eviction_hard is None


def test_merge_bad_override_names_its_field():
    with pytest.raises(InputError) as e:
        merge(KubeletConfig(), {"kubeReserved": "cpu=1"}, "partial.yaml")
    assert e.value.where == "partial.yaml: kubeReserved"
    with pytest.raises(InputError):
        merge(KubeletConfig(), ["not", "a", "map"], "partial.yaml")
