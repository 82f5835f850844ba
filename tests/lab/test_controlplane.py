"""The real lab control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)
on loopback, from cached binaries: ready, a namespace round trip, then nothing left behind.

--numacert-lab=auto skips when no built/downloaded binaries are cached (building takes ~10
minutes on 2 cores); =require builds them (offline, from the Go module proxy) if needed.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from numacert.lab import binaries
from numacert.lab.controlplane import COMPONENTS, ControlPlane, Ports, port_in_use

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _free_ports(n: int) -> list[int]:
    # Not the defaults: a `numacert lab up` on this machine may hold 6443/2379 right now.
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _mode(config: pytest.Config) -> str:
    try:
        return str(config.getoption("--numacert-lab"))
    except ValueError:  # plugin not loaded
        return "auto"


@pytest.fixture(scope="module")
def lab_binaries(request: pytest.FixtureRequest) -> binaries.Binaries:
    mode = _mode(request.config)
    if mode == "skip":
        pytest.skip("lab tests disabled (--numacert-lab=skip)")
    found = binaries.find_cached()
    if found is not None:
        return found
    if mode == "require":
        return binaries.resolve(offline=True, progress=False)
    pytest.skip(
        f"no cached Kubernetes {binaries.DEFAULT_K8S_VERSION} binaries (build them with "
        "--numacert-lab=require or numacert.lab.binaries.resolve())"
    )


@pytest.fixture
def control_plane(tmp_path: Path, lab_binaries: binaries.Binaries) -> Iterator[ControlPlane]:
    a, e1, e2, cm, sc = _free_ports(5)
    cp = ControlPlane(
        tmp_path / "run",
        lab_binaries,
        ports=Ports(apiserver=a, etcd_client=e1, etcd_peer=e2, controller_manager=cm, scheduler=sc),
    )
    try:
        yield cp
    finally:
        cp.stop()


def _pids_of(run_dir: Path) -> list[int]:
    import json

    pids = []
    for f in (run_dir / "pids").glob("*.pid"):
        pids.append(json.loads(f.read_text())["pid"])
    return pids


def test_control_plane_round_trip(control_plane: ControlPlane) -> None:
    from kubernetes import client, config

    cp = control_plane
    cp.start(timeout=300)
    assert cp.is_running()
    st = cp.status()
    assert st["ready"], st["not_ready"]
    pids = _pids_of(cp.run_dir)
    assert len(pids) == len(COMPONENTS)

    # /readyz through kubectl when there is one (any version can do get --raw).
    kubectl = cp.binaries.kubectl
    if kubectl is not None:
        out = subprocess.run(
            [str(kubectl), "--kubeconfig", str(cp.admin_kubeconfig), "get", "--raw", "/readyz"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr

    api = client.CoreV1Api(config.new_client_from_config(str(cp.admin_kubeconfig)))
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="numacert-rt")))
    assert api.read_namespace("numacert-rt").status.phase == "Active"
    rbac = client.RbacAuthorizationV1Api(config.new_client_from_config(str(cp.admin_kubeconfig)))
    crb = rbac.read_cluster_role_binding("numacert:kube-apiserver-kubelet-api-admin")
    assert crb.role_ref.name == "system:kubelet-api-admin"

    # The node identity the guest's kubelet will use is accepted by the Node authorizer.
    node_kc = cp.node_kubeconfig("127.0.0.2", server=cp.server)
    node_api = client.CoreV1Api(config.new_client_from_config(str(node_kc)))
    node_api.create_node(client.V1Node(metadata=client.V1ObjectMeta(name="127.0.0.2")))
    assert api.read_node("127.0.0.2").metadata.name == "127.0.0.2"

    # Idempotent: a second start keeps the same processes.
    cp.start(timeout=60)
    assert sorted(_pids_of(cp.run_dir)) == sorted(pids)

    cp.stop()
    assert not cp.is_running()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} still exists after stop()"
    for ports in cp.ports.by_component().values():
        for port in ports:
            assert not port_in_use(port), f"port {port} still listening after stop()"


def test_busy_port_is_named(tmp_path: Path, lab_binaries: binaries.Binaries) -> None:
    (port,) = _free_ports(1)
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen(1)
    try:
        cp = ControlPlane(tmp_path / "run", lab_binaries, ports=Ports(etcd_client=port))
        with pytest.raises(Exception, match=rf"port {port} \(for etcd\)"):
            cp.start(timeout=30)
        assert not cp.is_running()
    finally:
        holder.close()


def test_failed_start_leaves_nothing(tmp_path: Path, lab_binaries: binaries.Binaries) -> None:
    # An etcd that exits at once: start() must say so, name its log, and stop what it started.
    broken = tmp_path / "etcd"
    broken.write_text("#!/bin/sh\necho 'etcd: cannot start (test)' >&2\nexit 1\n")
    broken.chmod(0o755)
    bins = dataclasses.replace(lab_binaries, paths={**lab_binaries.paths, "etcd": broken})
    a, e1, e2, cm, sc = _free_ports(5)
    cp = ControlPlane(
        tmp_path / "run",
        bins,
        ports=Ports(apiserver=a, etcd_client=e1, etcd_peer=e2, controller_manager=cm, scheduler=sc),
    )
    with pytest.raises(Exception, match=r"etcd exited while waiting for etcd /health") as exc:
        cp.start(timeout=30)
    assert "cannot start (test)" in str(exc.value)
    assert not cp.is_running()
    assert not list((cp.run_dir / "pids").glob("*.pid"))
