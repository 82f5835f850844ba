"""One lab guest: start qemu, reach it over SSH, copy files in, stop it.

Every file of a guest lives in its run directory:
  vm.json        what the guest was started with (VM.attach() reads it back)
  disk.qcow2     copy-on-write overlay over the cached rootfs.img (the cache stays pristine;
                 unlike snapshot=on the guest's writes survive a guest reboot and can be
                 inspected after a crash, and they disappear with the run directory)
  console.log    the serial console (kernel, systemd, lab-setup and lab-images messages)
  qemu.log       qemu's own output until it daemonized (TCG feature warnings, start errors)
  qemu.pid       the pid qemu writes itself (-pidfile)
  qemu.process.json  qemu's process record (pid + start time, numacert.proc.ProcessRecord):
                 what is stopped and checked, so a reused pid is never taken for the guest
  monitor.sock, ssh_config
A guest that dies is reported with the last console lines.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from numacert.errors import InfrastructureError
from numacert.lab.image import NodeImage
from numacert.lab.qemu import (
    DEFAULT_CPU_MODEL,
    Forward,
    GuestOptions,
    Paths,
    Ports,
    qemu_args,
)
from numacert.proc import CommandTimedOut, ProcessRecord, run, tail_file
from numacert.topology.model import Topology
from numacert.wait import wait_until

SSH_OPTIONS = (
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "LogLevel=ERROR",
    "-o", "ServerAliveInterval=15",
)


def free_port(addr: str = "127.0.0.1") -> int:
    """A TCP port that is free on `addr` right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


class VM:
    """A qemu guest booted from a NodeImage with `topology`'s CPU/NUMA layout."""

    def __init__(
        self,
        run_dir: Path,
        image: NodeImage,
        topology: Topology,
        memory_per_node_bytes: int | dict[int, int],
        ports: Ports | None = None,
        cpu_model: str = DEFAULT_CPU_MODEL,
        hugepages_2m_per_node: int | dict[int, int] | None = None,
        hugepages_1g_per_node: int | dict[int, int] | None = None,
        extra: list[str] | None = None,
        options: GuestOptions | None = None,
    ) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.image = image
        self.topology = topology
        self.memory_per_node_bytes = memory_per_node_bytes
        self.ports = ports or Ports(ssh=free_port())
        self.cpu_model = cpu_model
        self.hugepages_2m_per_node = hugepages_2m_per_node
        self.hugepages_1g_per_node = hugepages_1g_per_node
        self.extra = list(extra or [])
        self.options = options or GuestOptions()

    # ---- files ---------------------------------------------------------------------------
    @property
    def paths(self) -> Paths:
        d = self.run_dir
        return Paths(kernel=self.image.kernel, initrd=self.image.initrd, disk=d / "disk.qcow2",
                     console=d / "console.log", monitor=d / "monitor.sock",
                     pidfile=d / "qemu.pid")

    @property
    def state_file(self) -> Path:
        return self.run_dir / "vm.json"

    @property
    def process_file(self) -> Path:
        return self.run_dir / "qemu.process.json"

    def argv(self) -> list[str]:
        return qemu_args(self.topology, self.memory_per_node_bytes, self.ports, self.paths,
                         cpu_model=self.cpu_model,
                         hugepages_2m_per_node=self.hugepages_2m_per_node,
                         hugepages_1g_per_node=self.hugepages_1g_per_node,
                         extra=self.extra, options=self.options)

    def _save(self) -> None:
        def per_node(v: int | dict[int, int] | None) -> object:
            return {str(k): x for k, x in v.items()} if isinstance(v, dict) else v

        state = {
            "image": {"key": self.image.key, "dir": str(self.image.dir),
                      "kernel": str(self.image.kernel), "initrd": str(self.image.initrd),
                      "rootfs": str(self.image.rootfs), "ssh_key": str(self.image.ssh_key)},
            "topology": self.topology.to_dict(),
            "memory_per_node_bytes": per_node(self.memory_per_node_bytes),
            "ports": {"ssh": self.ports.ssh, "ssh_addr": self.ports.ssh_addr,
                      "kubelet_addr": self.ports.kubelet_addr,
                      "kubelet_port": self.ports.kubelet_port,
                      "extra": [[f.host_addr, f.host_port, f.guest_port]
                                for f in self.ports.extra]},
            "cpu_model": self.cpu_model,
            "hugepages_2m_per_node": per_node(self.hugepages_2m_per_node),
            "hugepages_1g_per_node": per_node(self.hugepages_1g_per_node),
            "extra": self.extra,
            "options": {"hostname": self.options.hostname, "name": self.options.name,
                        "restrict_network": self.options.restrict_network,
                        "kernel_args": list(self.options.kernel_args),
                        "tb_size_mib": self.options.tb_size_mib},
            "argv": self.argv(),
        }
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def attach(cls, run_dir: Path) -> VM:
        """The VM described by `run_dir/vm.json` (written by start()), running or not."""
        state_file = Path(run_dir) / "vm.json"
        try:
            state = json.loads(state_file.read_text())
        except FileNotFoundError:
            raise InfrastructureError(f"no lab guest in {run_dir} ({state_file} missing)") from None

        def per_node(v: object) -> int | dict[int, int] | None:
            return {int(k): x for k, x in v.items()} if isinstance(v, dict) else v  # type: ignore[return-value]

        im = state["image"]
        image = NodeImage(key=im["key"], dir=Path(im["dir"]), kernel=Path(im["kernel"]),
                          initrd=Path(im["initrd"]), rootfs=Path(im["rootfs"]),
                          ssh_key=Path(im["ssh_key"]))
        p = state["ports"]
        ports = Ports(ssh=p["ssh"], ssh_addr=p["ssh_addr"], kubelet_addr=p["kubelet_addr"],
                      kubelet_port=p["kubelet_port"],
                      extra=tuple(Forward(a, hp, gp) for a, hp, gp in p["extra"]))
        o = state["options"]
        options = GuestOptions(hostname=o["hostname"], name=o["name"],
                               restrict_network=o["restrict_network"],
                               kernel_args=tuple(o["kernel_args"]),
                               tb_size_mib=o.get("tb_size_mib"))
        return cls(Path(run_dir), image, Topology.from_dict(state["topology"]),
                   per_node(state["memory_per_node_bytes"]),  # type: ignore[arg-type]
                   ports=ports, cpu_model=state["cpu_model"],
                   hugepages_2m_per_node=per_node(state["hugepages_2m_per_node"]),
                   hugepages_1g_per_node=per_node(state["hugepages_1g_per_node"]),
                   extra=state["extra"], options=options)

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 60.0, fresh_disk: bool = True) -> None:
        """Start qemu (daemonized). Returns once qemu runs; the guest boots on its own after.

        `fresh_disk` recreates the overlay (a clean guest); False reuses it (a restart).
        """
        if self.is_running():
            raise InfrastructureError(f"the lab guest in {self.run_dir} is already running "
                                      f"(pid {self.pid()})")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        paths = self.paths
        for stale in (paths.pidfile, paths.monitor, paths.console, self.process_file):
            stale.unlink(missing_ok=True)
        if fresh_disk or not paths.disk.exists():
            paths.disk.unlink(missing_ok=True)
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                 str(self.image.rootfs), str(paths.disk)], "qemu-img create (disk overlay)", 60)
        argv = self.argv()  # validates the shape before anything starts
        self._save()
        log = self.run_dir / "qemu.log"
        # -daemonize: the foreground process exits once the guest is set up.
        try:
            proc = run(argv, "qemu to daemonize", timeout, check=False)
        except CommandTimedOut as exc:
            log.write_text(exc.output)
            raise InfrastructureError(f"timed out after {timeout:.0f}s waiting for qemu to "
                                      f"daemonize (log: {log})") from None
        log.write_text(proc.output)
        if proc.returncode != 0:
            raise InfrastructureError(f"qemu failed to start (exit {proc.returncode}): "
                                      f"{self._qemu_log_tail()}")
        record = wait_until(self._qemu_from_pidfile, 10, "qemu's pidfile", 0.5,
                            self._wait_details)
        record.write(self.process_file)

    def _wait_details(self) -> str:
        return f"lab guest {self.run_dir}; last console lines:\n{self.console_tail()}"

    def _qemu_from_pidfile(self) -> ProcessRecord | None:
        """The record of the process qemu's pidfile names if that is this guest's qemu (its
        command line names our pidfile), else None."""
        try:
            pid = int(self.paths.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        if b"qemu-system" not in cmdline or str(self.paths.pidfile).encode() not in cmdline:
            return None
        return ProcessRecord.of(pid, "qemu")

    def process(self) -> ProcessRecord | None:
        """qemu's process record if that process still runs, else None.

        A guest started before qemu.process.json existed has only qemu's own pidfile: its
        record is then read from there (the same check by command line as at start)."""
        record = ProcessRecord.read(self.process_file) or self._qemu_from_pidfile()
        return record if record is not None and record.alive() else None

    def pid(self) -> int | None:
        """qemu's pid if this run's qemu still runs, else None."""
        record = self.process()
        return record.pid if record is not None else None

    def is_running(self) -> bool:
        return self.process() is not None

    def _check_alive(self, waiting_for: str) -> None:
        if not self.is_running():
            raise InfrastructureError(
                f"the lab guest died while waiting for {waiting_for} ({self.run_dir}); "
                f"qemu: {self._qemu_log_tail()}; last console lines:\n{self.console_tail()}")
        tail = self.console_tail(60)
        if "lab-setup: FAILED" in tail or "lab-images: FAILED" in tail:
            raise InfrastructureError(f"the guest's boot setup failed while waiting for "
                                      f"{waiting_for}; last console lines:\n{tail}")
        if "Kernel panic" in tail:
            raise InfrastructureError(f"the lab guest's kernel panicked while waiting for "
                                      f"{waiting_for}; last console lines:\n{tail}")

    def wait_ssh(self, timeout: float = 300.0) -> float:
        """Wait until `ssh true` works; returns the seconds waited."""
        start = time.monotonic()
        where = f"ssh on {self.ports.ssh_addr}:{self.ports.ssh}"

        def answers() -> bool:
            self._check_alive(where)
            rc, _, _ = self.ssh("true", timeout=30, connect_timeout=5, check=False)
            return rc == 0

        wait_until(answers, timeout, where, 1.0, self._wait_details)
        return time.monotonic() - start

    def wait_ready(self, timeout: float = 300.0) -> float:
        """Wait until lab-images reports containerd up and the images imported (/run/lab/ready).

        Raises with the failure message lab-setup or lab-images wrote to /run/lab/failed.
        """
        start = time.monotonic()

        def ready() -> bool:
            self._check_alive("containerd and the image import")
            rc, out, _ = self.ssh(
                "if [ -e /run/lab/failed ]; then echo FAILED; cat /run/lab/failed; "
                "elif [ -e /run/lab/ready ]; then echo READY; fi", timeout=30, check=False)
            if rc == 0 and out.startswith("FAILED"):
                _, log, _ = self.ssh(
                    "cat /run/lab/boot.log; journalctl -u containerd -n 20 --no-pager",
                    timeout=30, check=False)
                raise InfrastructureError(f"the guest's boot setup failed: {out[7:].strip()}\n"
                                          f"{log}")
            return rc == 0 and out.startswith("READY")

        def boot_log() -> str:
            _, log, _ = self.ssh("cat /run/lab/boot.log", timeout=30, check=False)
            return f"boot log:\n{log}"

        wait_until(ready, timeout, "containerd and the image import in the lab guest "
                   "(/run/lab/ready)", 1.0, boot_log)
        return time.monotonic() - start

    def stop(self, timeout: float = 60.0) -> None:
        """Power the guest off: `poweroff -f` over ssh, then the monitor's quit, then signals.

        Removes the monitor socket, the pidfile and the process record; keeps the disk,
        console and logs.
        """
        qemu = self.process()
        if qemu is not None:
            deadline = time.monotonic() + timeout

            def left(cap: float) -> float:
                return min(cap, max(1.0, deadline - time.monotonic()))

            # Graceful: flush the guest's page cache, then power off without init's help.
            self.ssh("sync; (sleep 0.5; busybox poweroff -f) >/dev/null 2>&1 </dev/null &",
                     timeout=min(20, timeout), connect_timeout=5, check=False)
            if not qemu.wait_gone(left(20)):
                self.monitor("quit")
                if not qemu.wait_gone(left(10)):
                    qemu.stop(grace=5, kill_wait=10,
                              what=f"qemu of the lab guest {self.run_dir}")
            # A daemonized qemu is init's child: give it the moment to reap it.
            qemu.wait_reaped()
        for f in (self.paths.monitor, self.paths.pidfile, self.process_file):
            f.unlink(missing_ok=True)

    def destroy(self, timeout: float = 60.0) -> None:
        """stop() and remove the run directory (disk overlay included)."""
        import shutil

        self.stop(timeout)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def monitor(self, command: str, timeout: float = 5.0) -> str:
        """Send one HMP command to the qemu monitor; returns what it printed ('' if no monitor)."""
        path = str(self.paths.monitor)
        if not os.path.exists(path):
            return ""
        out = b""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(path)
                s.sendall(command.encode() + b"\n")
                end = time.monotonic() + timeout
                while time.monotonic() < end:
                    try:
                        chunk = s.recv(65536)
                    except TimeoutError:
                        break
                    if not chunk:
                        break
                    out += chunk
                    if out.rstrip().endswith(b"(qemu)") and out.count(b"(qemu)") >= 2:
                        break
        except OSError:
            pass
        return out.decode(errors="replace")

    # ---- access --------------------------------------------------------------------------
    def _ssh_base(self, connect_timeout: int) -> list[str]:
        return ["ssh", "-i", str(self.image.ssh_key), "-p", str(self.ports.ssh), *SSH_OPTIONS,
                "-o", f"ConnectTimeout={connect_timeout}", f"root@{self.ports.ssh_addr}"]

    def ssh_argv(self, command: str | None = None, connect_timeout: int = 10) -> list[str]:
        """The ssh command line that runs `command` in the guest as root, or (None) opens an
        interactive shell there (with a terminal)."""
        argv = self._ssh_base(connect_timeout)
        if command:
            argv.append(command)
        else:
            argv.insert(1, "-t")
        return argv

    def ssh(self, command: str, timeout: float = 120.0, input: bytes | str | None = None,
            check: bool = False, connect_timeout: int = 10) -> tuple[int, str, str]:
        """Run `command` (a shell string) as root in the guest; returns (rc, stdout, stderr).

        rc 255 is ssh's own failure. With check=True a non-zero rc raises.
        """
        try:
            proc = run([*self._ssh_base(connect_timeout), command],
                       f"`{command}` in the lab guest", timeout, check=check, input=input)
        except CommandTimedOut:
            if check:
                raise
            return 124, "", f"timed out after {timeout:.0f}s"
        return proc.returncode, proc.stdout, proc.stderr

    def put_file(self, local: Path | str, remote: str, mode: int | None = None,
                 timeout: float = 600.0) -> None:
        """Copy a host file into the guest (atomically: temp file + rename)."""
        tmp = f"{remote}.lab-tmp"
        chmod = f" && chmod {mode:o} {shlex.quote(tmp)}" if mode is not None else ""
        cmd = (f"mkdir -p {shlex.quote(os.path.dirname(remote) or '/')} && "
               f"cat > {shlex.quote(tmp)}{chmod} && mv {shlex.quote(tmp)} {shlex.quote(remote)}")
        with open(local, "rb") as f:
            run([*self._ssh_base(10), cmd], f"the copy of {local} to the lab guest's {remote}",
                timeout, stdin=f)

    def put_text(self, text: str, remote: str, mode: int | None = None) -> None:
        """Write `text` to a file in the guest."""
        tmp = f"{remote}.lab-tmp"
        chmod = f" && chmod {mode:o} {shlex.quote(tmp)}" if mode is not None else ""
        self.ssh(f"mkdir -p {shlex.quote(os.path.dirname(remote) or '/')} && "
                 f"cat > {shlex.quote(tmp)}{chmod} && mv {shlex.quote(tmp)} {shlex.quote(remote)}",
                 input=text, check=True)

    def get_file(self, remote: str, local: Path | str, timeout: float = 600.0) -> None:
        """Copy a guest file to the host."""
        with open(local, "wb") as f:
            run([*self._ssh_base(10), f"cat {shlex.quote(remote)}"],
                f"the copy of the lab guest's {remote} to {local}", timeout, stdout=f)

    def console_tail(self, n: int = 40) -> str:
        """The last `n` lines of the serial console ('' before the guest wrote anything)."""
        return tail_file(self.paths.console, n) or ""

    def _qemu_log_tail(self, n: int = 10) -> str:
        try:
            lines = (self.run_dir / "qemu.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no qemu.log)"
        # TCG prints one "doesn't support requested feature" warning per masked feature.
        lines = [ln for ln in lines if "doesn't support requested feature" not in ln]
        return "\n".join(lines[-n:]) or "(qemu.log empty)"

    # ---- testinfra -------------------------------------------------------------------------
    def ssh_config(self) -> Path:
        """Write (and return) an OpenSSH client config with a `numacert-lab` host entry."""
        path = self.run_dir / "ssh_config"
        path.write_text(
            f"Host {self.options.name}\n"
            f"  HostName {self.ports.ssh_addr}\n"
            f"  Port {self.ports.ssh}\n"
            "  User root\n"
            f"  IdentityFile {self.image.ssh_key}\n"
            "  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n"
            "  BatchMode yes\n"
            "  LogLevel ERROR\n"
        )
        return path

    def testinfra_spec(self, backend: str = "paramiko") -> str:
        """A pytest-testinfra host spec for the guest: `testinfra.get_host(spec)`.

        Both backends read the written ssh_config: "paramiko" (one persistent connection,
        fastest) and "ssh" (one ssh process per command).
        """
        if backend not in ("paramiko", "ssh"):
            raise ValueError(f"unsupported testinfra backend {backend!r}")
        return f"{backend}://{self.options.name}?ssh_config={self.ssh_config()}"


@contextmanager
def booted_vm(
    image, run_dir: Path, topology, memory_per_node: int, **kwargs: object
) -> Iterator[VM]:
    """Start a guest on free ports, wait for ssh and containerd, and stop it whatever
    happens (a test guest never collides with a running lab, which holds 127.0.0.2:10250)."""
    from numacert.lab.qemu import Ports

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
