"""Boot the lab guest (default shape) and check what its kernel and containerd report.

Slow (TCG): builds the node image once (cached under NUMACERT_CACHE), then boots it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from numacert.lab.image import PAUSE_IMAGE, TEST_IMAGE, NodeImage
from numacert.lab.qemu import GiB
from numacert.lab.vm import VM, booted_vm
from numacert.topology.model import Topology
from numacert.topology.profiles import load_profile
from numacert.topology.sysfs import collector_script, parse_snapshot

pytestmark = pytest.mark.lab

HP2M = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def profile() -> Topology:
    # 2 sockets x 1 NUMA x 2 cores x 2 threads, 64 2Mi hugepages per node, qemu numbering.
    return load_profile("two-socket-smt")


@pytest.fixture(scope="module")
def guest(
    lab_image: NodeImage, profile: Topology, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VM]:
    run_dir = Path(tmp_path_factory.mktemp("lab-default"))
    with booted_vm(lab_image, run_dir, profile, 2 * GiB) as vm:
        yield vm


def sh(vm: VM, command: str) -> str:
    rc, out, err = vm.ssh(command, check=False)
    assert rc == 0, f"`{command}` failed in the guest (rc {rc}): {err}"
    return out.strip()


def test_guest_topology_is_the_profile(guest: VM, profile: Topology):
    rc, out, err = guest.ssh("sh -s", input=collector_script())
    assert rc == 0, err
    seen = parse_snapshot(out, "lab guest sysfs")
    assert seen.fingerprint() == profile.fingerprint(), (seen.to_dict(), profile.to_dict())
    for node in profile.numa_nodes:
        assert seen.numa_by_id[node.id].hugepages.get(HP2M) == node.hugepages.get(HP2M)


def test_sysfs_layout_directly(guest: VM):
    assert sh(guest, "cat /sys/devices/system/node/online") == "0-1"
    assert sh(guest, "cat /sys/devices/system/node/node0/cpulist") == "0-3"
    assert sh(guest, "cat /sys/devices/system/node/node1/cpulist") == "4-7"
    assert sh(guest, "cat /sys/devices/system/node/node0/distance") == "10 21"
    siblings = sh(guest, "cat /sys/devices/system/cpu/cpu[0-7]/topology/thread_siblings_list")
    assert siblings.split() == ["0-1", "0-1", "2-3", "2-3", "4-5", "4-5", "6-7", "6-7"]
    assert sh(guest, "cat /sys/devices/system/cpu/cpu5/topology/physical_package_id") == "1"
    pages = sh(guest, "cat /sys/devices/system/node/node*/hugepages/hugepages-2048kB/nr_hugepages")
    assert pages.split() == ["64", "64"]


def test_cgroup2_controllers_available(guest: VM):
    """cgroup v2 only, with every controller the kubelet needs offered at the root. systemd
    (PID 1) enables them in subtree_control on demand: the kubelet's systemd cgroup driver
    asks for them when it creates kubepods.slice (a guest without a kubelet has fewer)."""
    assert sh(guest, "stat -f -c %T /sys/fs/cgroup") == "cgroup2fs"
    available = set(sh(guest, "cat /sys/fs/cgroup/cgroup.controllers").split())
    assert {"cpuset", "cpu", "memory", "hugetlb", "pids", "io"} <= available


def test_offline_images_imported(guest: VM):
    images = sh(guest, "ctr -n k8s.io images ls -q")
    assert PAUSE_IMAGE in images.split()
    assert TEST_IMAGE in images.split()


def test_container_runs(guest: VM):
    out = sh(
        guest,
        f"ctr -n k8s.io run --rm {TEST_IMAGE} t-boot "
        "sh -c 'echo hello-from-lab; grep -c processor /proc/cpuinfo'",
    )
    assert out.splitlines() == ["hello-from-lab", "8"]


def test_init_reaps_orphans(guest: VM):
    sh(guest, "setsid sh -c 'sleep 1 &' </dev/null >/dev/null 2>&1")
    sh(guest, "sleep 3")
    zombies = sh(guest, "ps -eo stat= | grep -c '^Z' || true")
    assert zombies == "0"


def test_node_laid_out_like_kubeadm(guest: VM):
    """systemd is PID 1 and the kubelet unit is kubeadm's: a drop-in giving --config and the
    flags file. The kubelet binary is not in the image (lab up installs it), so it is inactive."""
    assert sh(guest, "cat /proc/1/comm") == "systemd"
    unit = sh(guest, "systemctl cat kubelet.service")
    assert "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf" in unit
    assert "--config=/var/lib/kubelet/config.yaml" in unit
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env" in unit
    rc, out, _ = guest.ssh("systemctl is-active kubelet")
    assert rc != 0 and out.strip() == "inactive"
    assert sh(guest, "systemctl is-active containerd ssh lab-setup lab-images").split() == [
        "active"
    ] * 4


def test_testinfra_backends(guest: VM):
    testinfra = pytest.importorskip("testinfra")
    for backend in ("paramiko", "ssh"):
        host = testinfra.get_host(guest.testinfra_spec(backend))
        assert host.file("/sys/devices/system/node/node1/cpulist").content_string.strip() == "4-7"
        assert host.run("hostname").stdout.strip() == "numacert-lab"
