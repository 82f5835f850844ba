"""The lab kubelet's configuration: the lab's own needs, then the policy under test on top.

Layers, each overriding the one before field by field (numacert.kubelet.parse.merge):
  1. LAB_BASE: what the lab itself needs (runtime socket, cgroup driver, certificates, image
     GC off because images cannot be pulled again, generous timeouts for TCG);
  2. the lab profile's `kubelet:` section;
  3. the user's --kubelet file (complete or partial).
Where Memory Manager Static is asked for without reservedMemory, a valid one is derived from
the reservations; the result is validated like the kubelet validates it at startup before
anything on the node is touched.
"""

from __future__ import annotations

import copy
from pathlib import Path

from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.parse import from_dict, load_document, merge
from numacert.kubelet.validate import derive_reserved_memory, validate
from numacert.topology.model import Topology

# Where kubeadm lays a node out: the cluster CA, the kubelet's serving certificate, its
# kubeconfig, its configuration file and its flags file.
CA_CERT = "/etc/kubernetes/pki/ca.crt"
SERVING_CERT = "/var/lib/kubelet/pki/kubelet.crt"
SERVING_KEY = "/var/lib/kubelet/pki/kubelet.key"
KUBECONFIG = "/etc/kubernetes/kubelet.conf"
CONFIG_FILE = "/var/lib/kubelet/config.yaml"
FLAGS_FILE = "/var/lib/kubelet/kubeadm-flags.env"
KUBELET_PORT = 10250

LAB_BASE: dict = {
    "apiVersion": "kubelet.config.k8s.io/v1beta1",
    "kind": "KubeletConfiguration",
    "cgroupDriver": "systemd",
    "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
    "failSwapOn": False,
    "address": "0.0.0.0",
    "port": KUBELET_PORT,
    "readOnlyPort": 0,
    "authentication": {
        "anonymous": {"enabled": False},
        "webhook": {"enabled": False},
        "x509": {"clientCAFile": CA_CERT},
    },
    "authorization": {"mode": "AlwaysAllow"},
    "tlsCertFile": SERVING_CERT,
    "tlsPrivateKeyFile": SERVING_KEY,
    "rotateCertificates": False,
    "registerNode": True,
    "resolvConf": "/etc/resolv.conf",
    # Nothing can be pulled in the lab: never garbage-collect the imported images.
    "imageGCHighThresholdPercent": 100,
    "imageGCLowThresholdPercent": 99,
    # The guest disk is small; only memory pressure should ever evict.
    "evictionHard": {
        "memory.available": "100Mi",
        "nodefs.available": "1%",
        "nodefs.inodesFree": "1%",
        "imagefs.available": "1%",
    },
    # Shared-pool cpusets follow exclusive allocations within seconds.
    "cpuManagerReconcilePeriod": "2s",
    # Everything is 5 to 20 times slower under TCG.
    "runtimeRequestTimeout": "10m",
    "nodeStatusUpdateFrequency": "10s",
    "serializeImagePulls": False,
}


def read_override(path: str | Path) -> dict:
    """A user's (partial) KubeletConfiguration file as a mapping; errors name the file."""
    return load_document(path)


def lab_kubelet_config(
    topology: Topology,
    profile_kubelet: dict,
    override: dict | None = None,
    override_source: str | None = None,
    k8s_minor: int = 37,
) -> KubeletConfig:
    """The kubelet configuration the lab guest runs: base + profile + override, with
    reservedMemory derived where Memory Manager Static needs it, validated for `topology`.

    Raises InputError naming the override file's field (or the profile's) on any problem.
    """
    config = from_dict(copy.deepcopy(LAB_BASE), "lab base configuration")
    config = merge(config, copy.deepcopy(profile_kubelet), "lab profile")
    if override:
        config = merge(config, copy.deepcopy(override), override_source)
    if config.memory_manager_policy == "Static" and not config.reserved_memory:
        config.reserved_memory = derive_reserved_memory(config, topology)
        config.explicit.add("reservedMemory")
    validate(
        config,
        topology,
        k8s_minor,
        raise_first=True,
        source=override_source or "lab kubelet configuration",
    )
    return config
