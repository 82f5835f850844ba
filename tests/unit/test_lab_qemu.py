"""qemu argv generation for the lab guest (no qemu needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from numacert.errors import InputError
from numacert.lab.qemu import (
    Forward,
    GiB,
    GuestOptions,
    MiB,
    Paths,
    Ports,
    qemu_args,
    qemu_shape,
)
from numacert.topology.model import NUMANode, Topology, make_cpus

HP2M = 2 * MiB


def grid(sockets: int, numa_per_socket: int, cores_per_numa: int, threads: int,
         distances: list[list[int]] | None = None, hugepages_2m: int = 0,
         memory_only: int = 0) -> Topology:
    """CPU ids in qemu's order: socket, NUMA node (die), core, thread."""
    rows = []
    cpu = 0
    for s in range(sockets):
        for d in range(numa_per_socket):
            node = s * numa_per_socket + d
            for c in range(cores_per_numa):
                for _ in range(threads):
                    rows.append({"id": cpu, "socket": s, "numa": node, "core": d * 100 + c})
                    cpu += 1
    n_nodes = sockets * numa_per_socket + memory_only
    nodes = [
        NUMANode(id=n, memory=2 * GiB, hugepages={HP2M: hugepages_2m} if hugepages_2m else {},
                 distances=tuple(distances[n]) if distances else None)
        for n in range(n_nodes)
    ]
    return Topology(make_cpus(rows), nodes)


PATHS = Paths(kernel=Path("/c/vmlinuz"), initrd=Path("/c/initrd.img"), disk=Path("/r/disk.qcow2"),
              console=Path("/r/console.log"), monitor=Path("/r/monitor.sock"),
              pidfile=Path("/r/qemu.pid"))
PORTS = Ports(ssh=2222)


def values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def append_of(argv: list[str]) -> list[str]:
    (append,) = values(argv, "-append")
    return append.split()


def test_default_shape_two_sockets_smt():
    topo = grid(2, 1, 2, 2, distances=[[10, 21], [21, 10]], hugepages_2m=64)
    argv = qemu_args(topo, 2 * GiB, PORTS, PATHS)
    assert argv[0] == "qemu-system-x86_64"
    assert values(argv, "-smp") == ["cpus=8,sockets=2,dies=1,cores=2,threads=2"]
    assert values(argv, "-m") == ["4096M"]
    assert values(argv, "-cpu") == ["Skylake-Server-v4,-pdpe1gb"]  # no 1Gi size in the topology
    assert values(argv, "-accel") == ["tcg,thread=multi"]
    assert values(argv, "-machine") == ["q35"]
    assert values(argv, "-object") == ["memory-backend-ram,id=mem0,size=2048M",
                                       "memory-backend-ram,id=mem1,size=2048M"]
    assert values(argv, "-numa") == [
        "node,nodeid=0,memdev=mem0", "node,nodeid=1,memdev=mem1",
        "cpu,node-id=0,socket-id=0", "cpu,node-id=1,socket-id=1",
        "dist,src=0,dst=1,val=21", "dist,src=1,dst=0,val=21",
    ]
    append = append_of(argv)
    for word in ("console=ttyS0", "root=/dev/vda", "lab.hugepages_2m=64,64"):
        assert word in append
    assert not any(w.startswith("hugepagesz=") for w in append)
    assert values(argv, "-kernel") == ["/c/vmlinuz"]
    assert values(argv, "-initrd") == ["/c/initrd.img"]
    assert values(argv, "-drive") == ["file=/r/disk.qcow2,if=virtio,format=qcow2,cache=unsafe"]
    (netdev,) = values(argv, "-netdev")
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in netdev
    assert "hostfwd=tcp:127.0.0.2:10250-:10250" in netdev
    assert "restrict=on" not in netdev
    assert values(argv, "-serial") == ["file:/r/console.log"]
    assert values(argv, "-monitor") == ["unix:/r/monitor.sock,server=on,wait=off"]
    assert values(argv, "-pidfile") == ["/r/qemu.pid"]
    assert "-daemonize" in argv and "-nodefaults" in argv
    assert values(argv, "-display") == ["none"]


def test_single_numa():
    topo = grid(1, 1, 4, 2)
    argv = qemu_args(topo, 1 * GiB, PORTS, PATHS)
    assert values(argv, "-smp") == ["cpus=8,sockets=1,dies=1,cores=4,threads=2"]
    assert values(argv, "-numa") == ["node,nodeid=0,memdev=mem0", "cpu,node-id=0,socket-id=0"]
    assert not any(w.startswith("lab.hugepages_2m") for w in append_of(argv))


def test_four_numa_unequal_distances_all_pairs():
    dist = [[10, 12, 20, 22], [12, 10, 22, 20], [20, 22, 10, 12], [22, 20, 12, 10]]
    topo = grid(4, 1, 1, 2, distances=dist)
    argv = qemu_args(topo, 512 * MiB, PORTS, PATHS)
    numa = values(argv, "-numa")
    dists = [a for a in numa if a.startswith("dist,")]
    assert len(dists) == 12  # every ordered pair, so asymmetric rows survive too
    assert "dist,src=2,dst=1,val=22" in dists and "dist,src=3,dst=2,val=12" in dists
    assert [a for a in numa if a.startswith("cpu,")] == [
        f"cpu,node-id={n},socket-id={n}" for n in range(4)]


def test_several_numa_per_socket_use_dies():
    topo = grid(3, 3, 1, 2)  # 9 NUMA nodes
    shape = qemu_shape(topo)
    assert (shape.sockets, shape.dies, shape.cores, shape.threads) == (3, 3, 1, 2)
    argv = qemu_args(topo, 256 * MiB, PORTS, PATHS)
    assert values(argv, "-smp") == ["cpus=18,sockets=3,dies=3,cores=1,threads=2"]
    cpu_binds = [a for a in values(argv, "-numa") if a.startswith("cpu,")]
    assert cpu_binds[0] == "cpu,node-id=0,socket-id=0,die-id=0"
    assert cpu_binds[5] == "cpu,node-id=5,socket-id=1,die-id=2"
    assert len(cpu_binds) == 9
    assert values(argv, "-m") == [f"{9 * 256}M"]


def test_nine_sockets_one_numa_each():
    topo = grid(9, 1, 1, 2)
    assert values(qemu_args(topo, 256 * MiB, PORTS, PATHS), "-smp") == [
        "cpus=18,sockets=9,dies=1,cores=1,threads=2"]


def test_numa_spanning_two_sockets():
    rows = [{"id": i, "socket": i // 2, "numa": 0, "core": i} for i in range(4)]
    topo = Topology(make_cpus(rows), [NUMANode(id=0, memory=GiB)])
    argv = qemu_args(topo, GiB, PORTS, PATHS)
    assert values(argv, "-smp") == ["cpus=4,sockets=2,dies=1,cores=2,threads=1"]
    assert [a for a in values(argv, "-numa") if a.startswith("cpu,")] == [
        "cpu,node-id=0,socket-id=0", "cpu,node-id=0,socket-id=1"]


def test_memory_only_node():
    topo = grid(2, 1, 1, 2, memory_only=1)
    shape = qemu_shape(topo)
    assert shape.memory_only_nodes == (2,)
    numa = values(qemu_args(topo, {0: GiB, 1: GiB, 2: 512 * MiB}, PORTS, PATHS), "-numa")
    assert "node,nodeid=2,memdev=mem2" in numa
    assert not any("node-id=2" in a for a in numa)


def test_per_node_memory_and_hugepages_override_topology():
    topo = grid(2, 1, 2, 2, hugepages_2m=64)
    argv = qemu_args(topo, {0: 2 * GiB, 1: 1 * GiB}, PORTS, PATHS,
                     hugepages_2m_per_node={0: 10, 1: 20})
    assert values(argv, "-m") == ["3072M"]
    assert "lab.hugepages_2m=10,20" in append_of(argv)


def test_1g_hugepages_on_kernel_command_line():
    topo = grid(2, 1, 1, 2)
    argv = qemu_args(topo, 4 * GiB, PORTS, PATHS, hugepages_1g_per_node=1)
    append = append_of(argv)
    assert "hugepagesz=1G" in append and "hugepages=0:1,1:1" in append
    assert values(argv, "-cpu") == ["Skylake-Server-v4"]


def test_1g_page_size_kept_when_topology_lists_it():
    rows = [{"id": i, "socket": 0, "numa": 0, "core": i // 2} for i in range(2)]
    topo = Topology(make_cpus(rows), [NUMANode(id=0, memory=GiB, hugepages={GiB: 0})])
    assert values(qemu_args(topo, GiB, PORTS, PATHS), "-cpu") == ["Skylake-Server-v4"]


def test_1g_hugepages_need_big_nodes():
    with pytest.raises(InputError, match="need at least 4 GiB"):
        qemu_args(grid(2, 1, 1, 2), 2 * GiB, PORTS, PATHS, hugepages_1g_per_node=1)


def test_too_many_hugepages():
    with pytest.raises(InputError, match="3/4"):
        qemu_args(grid(1, 1, 1, 2), 256 * MiB, PORTS, PATHS, hugepages_2m_per_node=100)


def test_ports_paths_and_options():
    ports = Ports(ssh=30022, kubelet_addr="127.0.0.5", kubelet_port=11250,
                  extra=(Forward("127.0.0.1", 18080, 8080),))
    paths = Paths(kernel=PATHS.kernel, initrd=PATHS.initrd, disk=Path("/c/rootfs.img"),
                  console=PATHS.console, monitor=PATHS.monitor, pidfile=PATHS.pidfile,
                  disk_format="raw", snapshot=True)
    argv = qemu_args(grid(1, 1, 1, 2), GiB, ports, paths, cpu_model="Cascadelake-Server",
                     extra=["-d", "guest_errors"],
                     options=GuestOptions(hostname="n1", daemonize=False, kernel_args=("quiet",)))
    (netdev,) = values(argv, "-netdev")
    assert netdev == ("user,id=net0,hostfwd=tcp:127.0.0.1:30022-:22,"
                      "hostfwd=tcp:127.0.0.5:11250-:11250,hostfwd=tcp:127.0.0.1:18080-:8080")
    assert values(argv, "-drive") == ["file=/c/rootfs.img,if=virtio,format=raw,cache=unsafe,"
                                      "snapshot=on"]
    assert values(argv, "-cpu") == ["Cascadelake-Server,-pdpe1gb"]
    assert "-daemonize" not in argv
    assert argv[-2:] == ["-d", "guest_errors"]
    append = append_of(argv)
    assert "lab.hostname=n1" in append and append[-1] == "quiet"


def test_rejects_non_qemu_cpu_numbering():
    # Siblings 4 apart (a common BIOS numbering) cannot be reproduced by qemu.
    rows = [{"id": i, "socket": 0, "numa": 0, "core": i % 4} for i in range(8)]
    topo = Topology(make_cpus(rows), [NUMANode(id=0, memory=GiB)])
    with pytest.raises(InputError, match="would be CPU 1 in the guest"):
        qemu_shape(topo)


def test_rejects_irregular_shapes():
    rows = [{"id": 0, "socket": 0, "numa": 0, "core": 0}, {"id": 1, "socket": 0, "numa": 0,
            "core": 1}, {"id": 2, "socket": 1, "numa": 1, "core": 0}]
    topo = Topology(make_cpus(rows), [NUMANode(id=0, memory=GiB), NUMANode(id=1, memory=GiB)])
    with pytest.raises(InputError, match="same number of cores"):
        qemu_shape(topo)


def test_rejects_bad_distances_and_memory():
    topo = grid(2, 1, 1, 2, distances=[[10, 5], [5, 10]])
    with pytest.raises(InputError, match="11-255"):
        qemu_args(topo, GiB, PORTS, PATHS)
    with pytest.raises(InputError, match="multiple of 2 MiB"):
        qemu_args(grid(1, 1, 1, 2), GiB + 1, PORTS, PATHS)


def test_shape_cpu_index_matches_guest_order():
    shape = qemu_shape(grid(2, 2, 2, 2))
    assert shape.cpus == 16
    assert shape.cpu_index(1, 0, 1, 1) == 11
    assert shape.node_of_die == {(0, 0): 0, (0, 1): 1, (1, 0): 2, (1, 1): 3}
