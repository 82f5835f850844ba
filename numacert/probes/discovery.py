"""What a node is and how it is configured, read from the outside.

Per node: the kubelet version, capacity and allocatable (hugepages included) from the Node
object; the effective kubelet configuration from the kubelet's own /configz; the topology
from a short-lived BestEffort pod that runs numacert's sysfs collector on that node (sysfs is
world-readable, no privilege needed). Plain data out; the caller decides what it means.
"""

from __future__ import annotations

from dataclasses import dataclass

from numacert.errors import InfrastructureError, InputError
from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.parse import from_configz
from numacert.probes.kube import create_pod, delete_pod, pod_log, wait_pod_done
from numacert.quantity import to_bytes, to_millis
from numacert.topology.model import Topology
from numacert.topology.sysfs import collector_script, parse_snapshot


@dataclass
class NodeFacts:
    name: str
    kubelet_version: str
    capacity: dict[str, str]
    allocatable: dict[str, str]
    configz: dict  # the kubeletconfig object as served
    config: KubeletConfig  # parsed configz
    topology: Topology

    def allocatable_amounts(self) -> dict[str, int]:
        """allocatable as integers: cpu in milli-CPU, memory and hugepages in bytes, pods."""
        out: dict[str, int] = {}
        for key, value in self.allocatable.items():
            if key == "cpu":
                out[key] = to_millis(value)
            elif key == "memory" or key.startswith("hugepages-"):
                out[key] = to_bytes(value)
            elif key == "pods":
                out[key] = int(value)
        return out

    @property
    def k8s_minor(self) -> int | None:
        """The kubelet's minor version (v1.37.2 -> 37), None when unreadable."""
        parts = self.kubelet_version.lstrip("v").split(".")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def collector_pod(name: str, node: str, image: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "numacert"}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "collect",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", collector_script()],
                }
            ],
        },
    }


def node_topology(core, namespace: str, node: str, image: str, timeout: float = 300) -> Topology:
    """The node's topology as its kernel reports it, read by a pod on that node."""
    name = "topology"
    create_pod(core, namespace, collector_pod(name, node, image))
    try:
        pod = wait_pod_done(core, namespace, name, timeout)
        text = pod_log(core, namespace, name, "collect")
        if pod.status.phase != "Succeeded":
            raise InfrastructureError(
                f"the topology collector pod on {node} ended {pod.status.phase}: {text[-300:]!r}"
            )
    finally:
        delete_pod(core, namespace, name)
    try:
        return parse_snapshot(text, f"sysfs of node {node}")
    except InputError as exc:
        raise InfrastructureError(f"the topology of {node} could not be read: {exc}") from None


def discover(target, namespace: str, node: str, topology: Topology | None = None) -> NodeFacts:
    """Everything about `node` the suites need before any probe pod runs. `topology`, when
    given, is a snapshot numacert itself read from this node moments before (a matrix run
    reads it once per node): the collector pod is then not run again."""
    obj = target.core.read_node(node)
    status = obj.status
    raw = target.configz(node)
    config = from_configz(raw, f"/configz of node {node}")
    if topology is None:
        topology = node_topology(target.core, namespace, node, target.image)
    return NodeFacts(
        name=node,
        kubelet_version=status.node_info.kubelet_version,
        capacity=dict(status.capacity or {}),
        allocatable=dict(status.allocatable or {}),
        configz=raw["kubeletconfig"],
        config=config,
        topology=topology,
    )
