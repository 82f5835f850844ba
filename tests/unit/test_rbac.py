"""clusters/rbac/: the ClusterRole grants exactly what numacert's code asks the API server for,
and the code asks for nothing the list below does not name."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from kubernetes import client

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "clusters" / "rbac"
NAMESPACE = "numacert-system"

# Each Kubernetes API call numacert makes against a cluster under test, and the permission it
# needs, as (apiGroup, resource, verb). One line per call, naming the code that makes it.
REQUIRED = {
    # target.select_nodes (--nodes by name) and pytest_plugin._node_names
    "list_node": ("", "nodes", "list"),
    # probes.discovery.discover (version, capacity, allocatable), certify.execute (Ready after
    # the kubelet restart)
    "read_node": ("", "nodes", "get"),
    # target.Target.kubelet_get: the kubelet's /configz and /metrics via the API server
    "connect_get_node_proxy_with_path": ("", "nodes/proxy", "get"),
    # probes.kube.create_namespace: one namespace per run
    "create_namespace": ("", "namespaces", "create"),
    # probes.kube._namespace_exists: waiting for the namespace to go
    "read_namespace": ("", "namespaces", "get"),
    # probes.kube.delete_namespace
    "delete_namespace": ("", "namespaces", "delete"),
    # probes.kube.create_pod: the topology collector and every pod of the plan
    "create_namespaced_pod": ("", "pods", "create"),
    # probes.kube.wait_pod / wait_pod_done / _exists, certify.execute (phase after restart)
    "read_namespaced_pod": ("", "pods", "get"),
    # probes.kube.delete_pods: every pod of the namespace before it is deleted
    "list_namespaced_pod": ("", "pods", "list"),
    # probes.kube.request_delete
    "delete_namespaced_pod": ("", "pods", "delete"),
    # probes.kube._log / pod_log: what each probe container printed
    "read_namespaced_pod_log": ("", "pods/log", "get"),
    # probes.kube.pod_events: the Warning event of a rejected pod
    "list_namespaced_event": ("", "events", "list"),
}

# Calls only a matrix run makes (numacert.providers reconfigure nodes): the ClusterRole
# numacert-matrix, bound on its own (clusters/rbac/numacert-matrix.yaml).
MATRIX_REQUIRED = {
    # probes.kube.set_unschedulable: cordon/uncordon around a reconfiguration (lab.Lab labels
    # its own node with it too)
    "patch_node": ("", "nodes", "patch"),
    # probes.kube.mark_ready_unknown: Ready Unknown while the kubelet is stopped
    "patch_node_status": ("", "nodes/status", "patch"),
    # probes.kube.evict_node_pods: the pods bound to the node, in any namespace
    "list_pod_for_all_namespaces": ("", "pods", "list"),
    # probes.kube.evict_node_pods: the Eviction API
    "create_namespaced_pod_eviction": ("", "pods/eviction", "create"),
}


# Where numacert's code talks to a cluster under test (numacert/lab/ is the lab's own).
SOURCES = [ROOT / "numacert", ROOT / "fixtures", ROOT / "suites", ROOT / "reports"]
EXCLUDED = [ROOT / "numacert" / "lab"]
_CALL = re.compile(r"\.([a-z][a-z0-9_]*)\(")
# The API methods of the Kubernetes client (its helpers, such as close(), are not requests).
_VERB_PREFIXES = ("read_", "list_", "create_", "delete_", "patch_", "replace_", "connect_")


def _documents() -> list[dict]:
    docs = []
    for path in sorted(RBAC.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d]
    return docs


def _one(kind: str, name: str) -> dict:
    found = [d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name} in {RBAC}, found {len(found)}"
    return found[0]


def _granted(role: dict) -> set[tuple[str, str, str]]:
    out = set()
    for rule in role["rules"]:
        for key in ("resourceNames", "nonResourceURLs"):
            assert key not in rule, f"unexpected {key} in {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


def test_cluster_role_grants_exactly_what_the_code_needs():
    granted = _granted(_one("ClusterRole", "numacert"))
    assert not any("*" in part for triple in granted for part in triple), "no wildcards"
    needed = set(REQUIRED.values())
    assert granted - needed == set(), "granted but not needed"
    assert needed - granted == set(), "needed but not granted"


def test_every_api_call_in_the_code_is_in_the_required_list():
    api_methods = {name for name in dir(client.CoreV1Api) if name.startswith(_VERB_PREFIXES)}
    calls: dict[str, list[str]] = {}
    for folder in SOURCES:
        for path in folder.rglob("*.py"):
            if any(path.is_relative_to(ex) for ex in EXCLUDED):
                continue
            for name in _CALL.findall(path.read_text("utf-8")):
                if name in api_methods or name.removesuffix("_with_http_info") in api_methods:
                    calls.setdefault(name, []).append(str(path.relative_to(ROOT)))
    known = REQUIRED | MATRIX_REQUIRED
    unknown = {name: files for name, files in calls.items() if name not in known}
    assert not unknown, f"API calls without an RBAC entry in this test: {unknown}"
    unused = set(known) - set(calls)
    assert not unused, f"REQUIRED names calls the code no longer makes: {unused}"


def test_service_account_and_binding():
    namespace = _one("Namespace", NAMESPACE)
    assert namespace["apiVersion"] == "v1"
    account = _one("ServiceAccount", "numacert")
    assert account["metadata"]["namespace"] == NAMESPACE
    binding = _one("ClusterRoleBinding", "numacert")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "numacert",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "numacert", "namespace": NAMESPACE}
    ]


def test_matrix_role_grants_exactly_what_reconfiguring_needs():
    granted = _granted(_one("ClusterRole", "numacert-matrix"))
    assert granted == set(MATRIX_REQUIRED.values())
    binding = _one("ClusterRoleBinding", "numacert-matrix")
    assert binding["roleRef"]["name"] == "numacert-matrix"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "numacert", "namespace": NAMESPACE}
    ]


def test_nothing_else_in_the_folder():
    kinds = sorted(d["kind"] for d in _documents())
    assert kinds == ["ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding",
                     "Namespace", "ServiceAccount"]
