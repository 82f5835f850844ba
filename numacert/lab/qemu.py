"""qemu command lines for the lab guest, derived from a Topology. Pure: no I/O, no qemu needed.

qemu enumerates vCPUs socket -> die -> core -> thread, and the guest kernel numbers its
logical CPUs in that order. A topology is therefore reproducible exactly when its CPU ids
follow that order (SMT siblings adjacent) and its shape is regular; `qemu_shape()` checks
that and says what is wrong otherwise.

NUMA placement (always bound to sockets, never left to qemu's default CPU->node split):
  * one NUMA node per socket: `-numa cpu,node-id=N,socket-id=S`;
  * several NUMA nodes per socket: one die per node (`-smp dies=D`,
    `-numa cpu,node-id=N,socket-id=S,die-id=D`); qemu 7.2 has no x86 clusters;
  * one NUMA node spanning several sockets: every socket of it bound to that node;
  * memory-only NUMA nodes (no CPUs) are allowed.
With Skylake-Server the L3 is per die, so the guest's L3 id (the kubelet's uncore cache)
equals the NUMA node in all of these shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from numacert.errors import InputError
from numacert.topology.model import Topology

MiB = 1024 * 1024
GiB = 1024 * MiB
HUGE_2M = 2 * MiB
HUGE_1G = GiB

DEFAULT_CPU_MODEL = "Skylake-Server-v4"  # Intel: SMT siblings show up under TCG (AMD's do not)


@dataclass(frozen=True)
class QemuShape:
    """The -smp shape and NUMA binding that reproduce a topology."""

    sockets: int
    dies: int  # dies per socket (= NUMA nodes per socket when > 1)
    cores: int  # cores per die
    threads: int  # threads per core
    node_of_die: dict[tuple[int, int], int]  # (socket, die) -> NUMA node id
    memory_only_nodes: tuple[int, ...] = ()
    numa_nodes: tuple[int, ...] = ()

    @property
    def cpus(self) -> int:
        return self.sockets * self.dies * self.cores * self.threads

    def cpu_index(self, socket: int, die: int, core: int, thread: int) -> int:
        """The logical CPU id the guest gives this thread."""
        return ((socket * self.dies + die) * self.cores + core) * self.threads + thread


@dataclass(frozen=True)
class Forward:
    """A TCP port forward from the host (addr:port) to the guest (guest_port)."""

    host_addr: str
    host_port: int
    guest_port: int


@dataclass(frozen=True)
class Ports:
    """Host-side ports. The kubelet forward lets the apiserver reach the guest's kubelet at
    kubelet_addr:kubelet_port on host loopback (the node registers with
    --hostname-override=kubelet_addr)."""

    ssh: int
    ssh_addr: str = "127.0.0.1"
    kubelet_addr: str = "127.0.0.2"
    kubelet_port: int = 10250
    extra: tuple[Forward, ...] = ()

    def forwards(self) -> list[Forward]:
        return [Forward(self.ssh_addr, self.ssh, 22),
                Forward(self.kubelet_addr, self.kubelet_port, self.kubelet_port),
                *self.extra]


@dataclass(frozen=True)
class Paths:
    """Files qemu reads or writes. `disk` is a per-lab qcow2 overlay over the cached image
    (disk_format="qcow2"), or the cached raw image itself with snapshot=True."""

    kernel: Path
    initrd: Path
    disk: Path
    console: Path
    monitor: Path
    pidfile: Path
    disk_format: str = "qcow2"
    snapshot: bool = False


@dataclass(frozen=True)
class GuestOptions:
    """Rarely changed knobs; defaults are what the lab uses."""

    hostname: str = "numacert-lab"
    name: str = "numacert-lab"
    daemonize: bool = True
    restrict_network: bool = False  # True cuts the guest off from the host too (not usable)
    kernel_args: tuple[str, ...] = field(default_factory=tuple)
    tb_size_mib: int | None = None  # TCG translation cache; qemu's default is 1 GiB


# ---- shape -------------------------------------------------------------------------------


def qemu_shape(topology: Topology) -> QemuShape:
    """The qemu shape for `topology`, or InputError naming why qemu cannot reproduce it."""
    where = "topology"
    numa_ids = list(topology.numa_ids)
    if numa_ids != list(range(len(numa_ids))):
        raise InputError(f"qemu needs NUMA node ids 0..{len(numa_ids) - 1}, got {numa_ids}", where)
    sockets = list(topology.socket_ids)
    if sockets != list(range(len(sockets))):
        raise InputError(f"qemu needs socket ids 0..{len(sockets) - 1}, got {sockets}", where)

    nodes_per_socket: dict[int, list[int]] = {}
    for s in sockets:
        nodes = {c.numa for c in topology.cpus if c.socket == s}
        # Order a socket's nodes (its dies) by their lowest CPU id.
        nodes_per_socket[s] = sorted(nodes, key=lambda n, s=s: min(
            c.id for c in topology.cpus if c.socket == s and c.numa == n))
    counts = {len(v) for v in nodes_per_socket.values()}
    if len(counts) != 1:
        raise InputError("every socket needs the same number of NUMA nodes for qemu, got "
                         + ", ".join(f"socket {s}: {len(v)}" for s, v in nodes_per_socket.items()),
                         where)
    dies = counts.pop()
    if dies > 1:
        for n in topology.cpu_numa_ids:
            owners = {c.socket for c in topology.cpus if c.numa == n}
            if len(owners) > 1:
                raise InputError(f"NUMA node {n} spans sockets {sorted(owners)} while sockets "
                                 "hold several NUMA nodes; qemu cannot express that", where)

    threads_per_core = {len(t) for t in topology.cores.values()}
    if len(threads_per_core) != 1:
        raise InputError(f"cores have different thread counts {sorted(threads_per_core)}", where)
    threads = threads_per_core.pop()

    # Cores of each (socket, die), ordered by their lowest CPU id.
    cores_of_die: dict[tuple[int, int], list[list[int]]] = {}
    for s in sockets:
        for d, n in enumerate(nodes_per_socket[s]):
            cores = sorted(
                sorted(t) for t in (
                    [c.id for c in topology.cpus if c.core == core]
                    for core in {c.core for c in topology.cpus if c.socket == s and c.numa == n}
                )
            )
            cores_of_die[(s, d)] = cores
    core_counts = {len(v) for v in cores_of_die.values()}
    if len(core_counts) != 1:
        raise InputError("every NUMA node (die) of every socket needs the same number of cores "
                         f"for qemu, got {sorted(core_counts)}", where)
    cores = core_counts.pop()

    shape = QemuShape(
        sockets=len(sockets), dies=dies, cores=cores, threads=threads,
        node_of_die={(s, d): n for s in sockets for d, n in enumerate(nodes_per_socket[s])},
        memory_only_nodes=tuple(n for n in numa_ids if n not in topology.cpu_numa_ids),
        numa_nodes=tuple(numa_ids),
    )
    # The guest numbers CPUs socket -> die -> core -> thread; the topology must agree.
    for (s, d), core_list in sorted(cores_of_die.items()):
        for ci, thread_ids in enumerate(core_list):
            for t, cpu_id in enumerate(thread_ids):
                expected = shape.cpu_index(s, d, ci, t)
                if cpu_id != expected:
                    raise InputError(
                        f"CPU {cpu_id} (socket {s}, NUMA node {shape.node_of_die[(s, d)]}) would "
                        f"be CPU {expected} in the guest: qemu numbers CPUs socket, then die, then "
                        "core, then thread (SMT siblings adjacent); renumber the topology", where)
    return shape


# ---- argv --------------------------------------------------------------------------------


def _per_node(value: int | Mapping[int, int] | None, nodes: Sequence[int], what: str
              ) -> dict[int, int] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        unknown = set(value) - set(nodes)
        if unknown:
            raise InputError(f"{what} names unknown NUMA nodes {sorted(unknown)}", what)
        return {n: int(value.get(n, 0)) for n in nodes}
    return {n: int(value) for n in nodes}


def _hugepages_from_topology(topology: Topology, size: int) -> dict[int, int]:
    return {n.id: n.hugepages.get(size, 0) for n in topology.numa_nodes}


def _check_distances(topology: Topology) -> list[tuple[int, int, int]]:
    out = []
    for node in topology.numa_nodes:
        if node.distances is None:
            continue
        for dst, val in enumerate(node.distances):
            if dst == node.id:
                if val != 10:
                    raise InputError(f"NUMA node {node.id}: distance to itself must be 10 for "
                                     f"qemu, got {val}", f"topology.numa[{node.id}].distances")
                continue
            if not 10 < val <= 255:
                raise InputError(f"NUMA distance {node.id}->{dst} = {val}; qemu accepts 11-255",
                                 f"topology.numa[{node.id}].distances")
            out.append((node.id, dst, val))
    return out


def qemu_args(
    topology: Topology,
    memory_per_node_bytes: int | Mapping[int, int],
    ports: Ports,
    paths: Paths,
    cpu_model: str = DEFAULT_CPU_MODEL,
    hugepages_2m_per_node: int | Mapping[int, int] | None = None,
    hugepages_1g_per_node: int | Mapping[int, int] | None = None,
    extra: Sequence[str] = (),
    options: GuestOptions | None = None,
    qemu_binary: str = "qemu-system-x86_64",
) -> list[str]:
    """The qemu argv that boots the lab guest with exactly `topology`'s CPU/NUMA layout.

    Hugepage counts default to the topology's per-node 2Mi/1Gi counts. 2Mi pages are set by
    lab-setup at boot (lab.hugepages_2m=...); 1Gi pages need the kernel command line
    (hugepagesz=1G hugepages=N:C,...) and at least (pages + 3) GiB on the node, because the
    kernel and firmware reservations fragment smaller nodes (measured: 2-3 GiB nodes fail).
    """
    opts = options or GuestOptions()
    shape = qemu_shape(topology)
    nodes = list(shape.numa_nodes)
    memory = _per_node(memory_per_node_bytes, nodes, "memory_per_node_bytes")
    assert memory is not None
    for n, size in memory.items():
        if size <= 0 or size % (2 * MiB):
            raise InputError(f"NUMA node {n}: memory {size} bytes must be a positive multiple of "
                             "2 MiB", "memory_per_node_bytes")
    hp2 = _per_node(hugepages_2m_per_node, nodes, "hugepages_2m_per_node") \
        or _hugepages_from_topology(topology, HUGE_2M)
    hp1 = _per_node(hugepages_1g_per_node, nodes, "hugepages_1g_per_node") \
        or _hugepages_from_topology(topology, HUGE_1G)
    for n in nodes:
        if hp1[n] and memory[n] < (hp1[n] + 3) * GiB:
            raise InputError(f"NUMA node {n}: {hp1[n]} 1Gi hugepages need at least "
                             f"{hp1[n] + 3} GiB on the node, it has {memory[n] // MiB} MiB",
                             "hugepages_1g_per_node")
        if hp2[n] * HUGE_2M + hp1[n] * HUGE_1G > memory[n] * 3 // 4:
            raise InputError(f"NUMA node {n}: hugepages would take more than 3/4 of its "
                             f"{memory[n] // MiB} MiB", "hugepages")
    distances = _check_distances(topology)
    # Under an Intel model the kernel offers 1Gi pages (pdpe1gb) even when none are wanted, and
    # the kubelet then reports a hugepages-1Gi resource the topology does not have. Mask the
    # flag unless the topology lists 1Gi pages (even 0 of them) or some are requested.
    wants_1g = HUGE_1G in topology.hugepage_sizes or any(hp1.values())
    cpu = cpu_model if wants_1g or "pdpe1gb" in cpu_model else f"{cpu_model},-pdpe1gb"

    argv: list[str] = [
        qemu_binary,
        "-name", f"guest={opts.name}",
        "-machine", "q35",
        "-accel", "tcg,thread=multi" + (f",tb-size={opts.tb_size_mib}" if opts.tb_size_mib else ""),
        "-cpu", cpu,
        "-nodefaults", "-vga", "none", "-display", "none", "-no-reboot",
        "-m", f"{sum(memory.values()) // MiB}M",
        "-smp", (f"cpus={shape.cpus},sockets={shape.sockets},dies={shape.dies},"
                 f"cores={shape.cores},threads={shape.threads}"),
    ]
    for n in nodes:
        argv += ["-object", f"memory-backend-ram,id=mem{n},size={memory[n] // MiB}M",
                 "-numa", f"node,nodeid={n},memdev=mem{n}"]
    for (s, d), n in sorted(shape.node_of_die.items()):
        die = f",die-id={d}" if shape.dies > 1 else ""
        argv += ["-numa", f"cpu,node-id={n},socket-id={s}{die}"]
    for src, dst, val in distances:
        argv += ["-numa", f"dist,src={src},dst={dst},val={val}"]

    append = ["console=ttyS0", "root=/dev/vda", "rw", "panic=1",
              "apparmor=0", "net.ifnames=0", f"lab.hostname={opts.hostname}"]
    if any(hp2.values()):
        append.append("lab.hugepages_2m=" + ",".join(str(hp2[n]) for n in nodes))
    if any(hp1.values()):
        append += ["hugepagesz=1G",
                   "hugepages=" + ",".join(f"{n}:{hp1[n]}" for n in nodes if hp1[n])]
    append += list(opts.kernel_args)
    argv += ["-kernel", str(paths.kernel), "-initrd", str(paths.initrd),
             "-append", " ".join(append)]

    drive = f"file={paths.disk},if=virtio,format={paths.disk_format},cache=unsafe"
    if paths.snapshot:
        drive += ",snapshot=on"
    argv += ["-drive", drive]

    netdev = "user,id=net0" + (",restrict=on" if opts.restrict_network else "")
    for fwd in ports.forwards():
        netdev += f",hostfwd=tcp:{fwd.host_addr}:{fwd.host_port}-:{fwd.guest_port}"
    argv += ["-netdev", netdev, "-device", "virtio-net-pci,netdev=net0"]

    argv += [
        "-serial", f"file:{paths.console}",
        "-monitor", f"unix:{paths.monitor},server=on,wait=off",
        "-pidfile", str(paths.pidfile),
    ]
    if opts.daemonize:
        argv.append("-daemonize")
    argv += list(extra)
    return argv
