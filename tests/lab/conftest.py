"""Lab test helpers: skip where the lab cannot run, boot guests, always stop them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.parse import from_dict
from numacert.lab import hostdeps
from numacert.lab.image import NodeImage, build_image
from numacert.lab.lab import NODE_NAME, Lab
from numacert.lab.qemu import Ports
from numacert.lab.vm import VM, free_port
from numacert.oracle.pod import pod_from_manifest
from numacert.oracle.predict import predict
from numacert.probes.kube import temporary_namespace, wait_pod
from numacert.scenario import AddStep
from numacert.topology.model import Topology
from numacert.topology.sysfs import collector_script, parse_snapshot


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab image build needs root (mmdebstrap, umoci, mke2fs -d)"
    absent = hostdeps.missing()
    if absent and os.environ.get(hostdeps.ENV_ALLOW_INSTALL) not in ("1", "true", "yes"):
        return f"missing Debian packages: {hostdeps.install_command(absent)}"
    return None


def require_lab(request: pytest.FixtureRequest) -> None:
    """Skip or fail a lab test per --numacert-lab when the lab cannot run here."""
    mode = request.config.getoption("--numacert-lab")
    if mode == "skip":
        pytest.skip("lab tests disabled (--numacert-lab=skip)")
    reason = lab_unavailable()
    if reason:
        if mode == "require":
            pytest.fail(f"the lab cannot run here: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def lab_image(request: pytest.FixtureRequest) -> NodeImage:
    require_lab(request)
    return build_image(progress=False)


@contextmanager
def booted(
    image: NodeImage, run_dir: Path, topology: Topology, memory_per_node: int, **kwargs: object
) -> Iterator[VM]:
    """Start a guest, wait for ssh and containerd, and stop it whatever happens.

    Ports are free ones, so a test guest never collides with a running `numacert lab`
    (which holds 127.0.0.2:10250).
    """
    kwargs.setdefault(
        "ports",
        Ports(ssh=free_port(), kubelet_addr="127.0.0.2", kubelet_port=free_port("127.0.0.2")),
    )
    vm = VM(run_dir, image, topology, memory_per_node, **kwargs)  # type: ignore[arg-type]
    try:
        vm.start()
        vm.wait_ssh(timeout=600)
        vm.wait_ready(timeout=600)
        yield vm
    finally:
        vm.stop()


# ---- the lab (control plane + guest + kubelet), shared by every lab test module -----------

LAB_PROFILE = "default"


def _host_footprint() -> dict[str, set[str]]:
    """Processes, mounts and network devices a lab could leave behind on the host."""
    procs = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                comm = open(f"/proc/{pid}/comm").read().strip()
            except OSError:
                continue
            if comm.startswith(("qemu-system", "etcd", "kube-")):
                procs.add(f"{pid} {comm}")
    mounts = {line.split()[1] for line in open("/proc/self/mounts")}
    links = set(os.listdir("/sys/class/net"))
    return {"processes": procs, "mounts": mounts, "links": links}


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    require_lab(request)
    lab = Lab(progress=False)
    status = lab.status()
    original = lab.record if status["up"] else None
    if original is not None and original.profile != LAB_PROFILE:
        pytest.skip(
            f"a lab with profile {original.profile!r} is up; these tests need "
            f"{LAB_PROFILE!r} (numacert lab down first)"
        )
    if original is None:
        lab.footprint_before = _host_footprint()
        lab.started_by_tests = True
        lab.up(LAB_PROFILE)
    try:
        yield lab
    finally:
        if original is None:
            lab.down()  # harmless when test_lab_down_leaves_nothing already did it
        elif lab.record is not None and lab.record.kubelet_config != original.kubelet_config:
            lab.reconfigure(yaml.safe_load(original.kubelet_config), original.kubelet_source)


@pytest.fixture(scope="session")
def api(lab: Lab):
    return lab.core_api()


@pytest.fixture
def namespace(api) -> Iterator[str]:
    with temporary_namespace(api) as ns:
        yield ns


@pytest.fixture(scope="session")
def guest_topology(lab: Lab) -> Topology:
    """The topology the guest's kernel reports, read by numacert's own collector."""
    rc, out, err = lab.vm().ssh("sh -s", input=collector_script(), timeout=300)
    assert rc == 0, err
    return parse_snapshot(out, "lab guest sysfs")


@contextmanager
def kubelet_policy(lab: Lab, override: dict, source: str = "test override") -> Iterator[None]:
    """Run the lab kubelet with `override` inside the block, and as before it afterwards."""
    before = lab.record.kubelet_config
    lab.reconfigure(override, source)
    try:
        yield
    finally:
        lab.reconfigure(yaml.safe_load(before), None)


# ---- helpers of the lab test modules ------------------------------------------------------


def running_config(lab: Lab) -> KubeletConfig:
    return from_dict(yaml.safe_load(lab.record.kubelet_config), "lab kubelet configuration")


def run_pod(api, namespace: str, manifest: dict, timeout: float = 600.0):
    manifest = dict(manifest, spec=dict(manifest["spec"], nodeName=NODE_NAME))
    api.create_namespaced_pod(namespace, manifest)
    return wait_pod(api, namespace, manifest["metadata"]["name"], timeout)


def oracle(topology: Topology, config: KubeletConfig, manifests: list[dict]) -> list[dict]:
    steps = [AddStep(pod_from_manifest(m)) for m in manifests]
    return predict(topology, config, steps)["steps"]


def numa_nodes_of(topology: Topology, cpus) -> set[int]:
    return {topology.cpu_by_id[c].numa for c in cpus}
