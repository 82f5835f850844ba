"""`numacert run --provider kind` against real kind clusters, as a user runs it.

Docker, kind and numacert's offline node image are real (the image is built from the lab's
Kubernetes binaries: nothing is pulled). Each test proves nothing of the project is left
running afterwards: no cluster, no container.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from numacert.errors import InputError
from numacert.fixtures.cli import Run, numacert
from numacert.kind import config as kind_config
from numacert.kind.cluster import (
    KindClusters,
    cgroup_v1,
    delete_cluster,
    existing_clusters,
    image_kubernetes_version,
    own_clusters,
)
from numacert.lab.binaries import parse_version
from numacert.lab.footprint import host_footprint
from numacert.proc import run
from numacert.wait import wait_until

pytestmark = [pytest.mark.kind, pytest.mark.slow]

# kind nodes see this host: one NUMA node, so these skip with that reason (never pass).
NEEDS_TWO_NUMA = ("TM-ALIGN", "TM-REJECT", "MEM-PIN", "MEM-REJECT", "MEM-LOCAL", "HP-NUMA")


def run_kind(out: Path, *args: str) -> Run:
    proc = numacert("run", "--output-dir", str(out), *args, timeout=1500)
    return Run(proc.returncode, proc.stdout, proc.stderr, out)


def host_spec(image: str, worker: dict) -> kind_config.KindClusterSpec:
    """The spec of a one-worker cluster on this Docker host, as the provider makes it."""
    minor = parse_version(image_kubernetes_version(image))[1]
    return kind_config.KindClusterSpec(image=image, k8s_minor=minor, workers=(worker,),
                                       cgroup_v1=cgroup_v1())


def kind_args(kind_bin: Path, image: str) -> list[str]:
    return ["--provider", "kind", "--kind-bin", str(kind_bin), "--kind-image", image]


def test_policy_run_certifies_the_worker(tmp_path, kind_bin, kind_node_image, no_kind_leftovers):
    """static CPU Manager + single-numa-node + Memory Manager Static on a kind worker: the
    Guaranteed pod's CPUs and memory nodes and the state files checked as on the lab; the
    checks that need two NUMA nodes skip with that reason."""
    r = run_kind(tmp_path / "run", *kind_args(kind_bin, kind_node_image))
    assert r.rc == 0, r.describe()
    (verdict,) = r.json("verdict.json")
    assert verdict["verdict"] == "CERTIFIED", verdict
    assert verdict["policy_settings"]["cpu_manager"] == "static"
    assert verdict["policy_settings"]["topology_manager"] == "single-numa-node"
    assert verdict["policy_settings"]["memory_manager"] == "Static"
    records = r.records()
    for check in ("CPU-SHARED", "CPU-EXCLUSIVE", "CPU-RECONCILE", "CFG-STATE", "CFG-APPLIED",
                  "CFG-POLICY", "NODE-RESTART"):
        assert records[check]["status"] == "passed", records[check]
    excl = records["CPU-EXCLUSIVE"]
    observed = excl["observed"]["excl"]["containers"]["c"]
    assert observed == excl["predicted"]["excl"]["containers"]["c"]
    assert "0" not in observed["cpus"].split(","), observed  # CPU 0 is reserved
    assert observed["mems"] == "0"
    assert records["CFG-STATE"]["observed"] == {"cpu policyName": "static",
                                                "memory policyName": "Static"}
    for check in NEEDS_TWO_NUMA:
        assert records[check]["status"] == "skipped", records[check]
        assert records[check]["skip_reason"] == "needs-numa-nodes:2", records[check]


@pytest.mark.parametrize("way", ["in-place", "cluster"])
def test_matrix_both_ways(tmp_path, kind_bin, kind_node_image, no_kind_leftovers, way):
    """The kind matrix (3 combinations; the third unsupported on one NUMA node, run anyway)
    through one cluster reconfigured in place, and through a cluster per combination."""
    r = run_kind(tmp_path / way, *kind_args(kind_bin, kind_node_image), "--matrix", "kind",
                 "--run-unsupported", "--kind-way", way)
    assert r.rc == 0, r.describe()
    assert "RUN ANYWAY recommended" in r.out
    record = r.json("matrix.json")
    runs = {c["id"]: c for c in record["combinations"]}
    assert set(runs) == {"none.none.none", "static.none.none", "recommended"}
    for combination in runs.values():
        assert combination["status"] == "run", combination
        assert combination["timings"]["certify"] > 0
    verdict = r.json("matrix-verdict.json")
    assert verdict["verdict"] == "CERTIFIED", verdict


def test_a_cluster_of_another_config_is_never_reused(tmp_path, kind_bin, kind_node_image,
                                                     no_kind_leftovers):
    """A cluster already named as numacert would name its cluster, but made otherwise, is
    refused (exit 2 in a run) and left as it is; while it runs, the lab's footprint sees
    none of its processes and links (it is Docker's, not the lab's)."""
    spec = host_spec(kind_node_image, {})
    name = kind_config.cluster_name(spec)
    # Someone else's cluster of that name: one node, no numacert labels (only what this
    # host needs to start a kubelet at all: failCgroupV1 on cgroup v1, no default CNI image).
    foreign = {"kind": "Cluster", "apiVersion": kind_config.KIND_API_VERSION,
               "networking": {"disableDefaultCNI": True, "kubeProxyMode": "none"},
               "kubeadmConfigPatches": [yaml.safe_dump({
                   "apiVersion": kind_config.KUBELET_API_VERSION,
                   "kind": "KubeletConfiguration", **kind_config.cluster_kubelet_patch(spec)})],
               "nodes": [{"role": "control-plane", "image": kind_node_image}]}
    (tmp_path / "foreign.yaml").write_text(yaml.safe_dump(foreign))
    run([kind_bin, "create", "cluster", "--name", name, "--config", str(tmp_path / "foreign.yaml"),
         "--kubeconfig", str(tmp_path / "foreign.kubeconfig")],
        "kind create cluster (foreign)", 600)
    try:
        footprint = host_footprint()
        assert not any(p.split()[1].startswith(("kube-", "etcd")) for p in
                       footprint["processes"]), footprint["processes"]
        assert footprint["links"] == set(), footprint["links"]
        with KindClusters(kind_bin) as clusters, pytest.raises(InputError) as refused:
            clusters.create(spec)
        assert f"a kind cluster named {name} exists but was not made from this" in str(
            refused.value)
        assert name in existing_clusters(kind_bin)  # untouched
    finally:
        delete_cluster(kind_bin, name)
    assert name not in own_clusters(kind_bin)


def test_a_worker_configured_otherwise_is_not_certified(tmp_path, kind_bin, kind_node_image,
                                                        no_kind_leftovers):
    """Mutation proof on kind: a worker made with the static CPU Manager, held to the none
    policy by --require, is NOT CERTIFIED by CFG-POLICY (reached over docker://)."""
    spec = host_spec(kind_node_image, {"cpuManagerPolicy": "static"})
    require = tmp_path / "require.yaml"
    require.write_text(yaml.safe_dump({"cpuManagerPolicy": "none"}))
    with KindClusters(kind_bin) as clusters:
        cluster = clusters.create(spec)
        clusters.load_image(cluster, "numacert.local/busybox:1")
        r = run_kind(tmp_path / "run", "--kubeconfig", str(cluster.kubeconfig), "--nodes",
                     cluster.workers[0], "--node-access", "docker://{node}", "--image",
                     "numacert.local/busybox:1", "--require", str(require),
                     "--checks", "configuration")
    assert r.rc == 1, r.describe()
    (verdict,) = r.json("verdict.json")
    assert verdict["verdict"] == "NOT CERTIFIED", verdict
    policy = r.records()["CFG-POLICY"]
    assert policy["status"] == "failed", policy
    assert "cpuManagerPolicy" in json.dumps(policy), policy


def test_sigterm_deletes_the_cluster(tmp_path, kind_bin, kind_node_image, no_kind_leftovers):
    """A cancelled CI job (SIGTERM) in the middle of a run: the cluster is deleted."""
    before = set(own_clusters(kind_bin))
    proc = subprocess.Popen(
        [sys.executable, "-m", "numacert.cli.main", "run", "--output-dir", str(tmp_path / "r"),
         *kind_args(kind_bin, kind_node_image)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: set(own_clusters(kind_bin)) - before or proc.poll() is not None,
                   300, "a cluster of the run", 2)
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(20)  # into the creation or the certification
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, out
    assert set(own_clusters(kind_bin)) == before, out
