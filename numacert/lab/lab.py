"""The lab as one thing: control plane on the host + a qemu guest whose real kubelet joins it.

`Lab.up()` brings up (or finds up) the control plane and the guest for a lab profile, copies
the kubelet, its certificates and its configuration into the guest, starts it and waits for the
node to be Ready with the capacity the profile says. `reconfigure()` changes the kubelet policy
the way an operator must (pods off the node, kubelet stopped, state files cleared, new
configuration, kubelet started, configuration checked). `down()` stops everything.

Everything the lab runs is recorded in its state directory before it is started (lab.json,
the control plane's pid files, the guest's vm.json), so `down()` cleans up after a crash too.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from numacert.errors import InfrastructureError, InputError
from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.render import to_yaml
from numacert.lab import binaries as lab_binaries
from numacert.lab import kubelet_config as layout
from numacert.lab.controlplane import ControlPlane
from numacert.lab.image import build_image
from numacert.lab.kubelet_config import KUBELET_PORT, lab_kubelet_config
from numacert.lab.profile import DEFAULT_PROFILE, LabProfile, load_lab_profile
from numacert.lab.qemu import Ports as GuestPorts
from numacert.lab.vm import VM, free_port
from numacert.state import state_root
from numacert.wait import wait_until

# The node registers under this name: a hostname override that is an IP becomes the node's
# InternalIP, which the apiserver dials; qemu forwards host 127.0.0.2:10250 into the guest.
# (The kubelet refuses a loopback --node-ip, but not this.)
NODE_NAME = "127.0.0.2"
LAB_LABEL = "numacert.io/lab"
ENV_STATE = "NUMACERT_LAB_DIR"


def default_state_dir() -> Path:
    root = os.environ.get(ENV_STATE)
    if root:
        return Path(root).expanduser().absolute()
    return state_root() / "lab"


@dataclass
class LabRecord:
    """What lab.json records: enough to find, check and tear down a lab."""

    profile: str
    k8s_version: str
    kubelet_config: str  # the rendered KubeletConfiguration the guest runs
    kubelet_source: str | None  # the user's --kubelet file, if any
    node_name: str = NODE_NAME

    @classmethod
    def read(cls, path: Path) -> LabRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2) + "\n")
        tmp.replace(path)


class Progress:
    """One line per step with its duration; quiet when progress is off."""

    def __init__(self, show: bool = True, echo: Callable[[str], None] | None = None) -> None:
        self.show = show
        self.echo = echo or (lambda s: print(s, flush=True))

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        start = time.monotonic()
        if self.show:
            self.echo(f"… {what}")
        yield
        if self.show:
            self.echo(f"✓ {what} ({time.monotonic() - start:.1f}s)")


class Lab:
    def __init__(
        self,
        state_dir: Path | None = None,
        progress: bool = True,
        k8s_version: str = lab_binaries.DEFAULT_K8S_VERSION,
        binaries_source: str = "auto",
        binaries_dir: Path | None = None,
    ) -> None:
        self.dir = Path(state_dir) if state_dir else default_state_dir()
        self.progress = Progress(progress)
        self.k8s_version = k8s_version
        self.binaries_source = binaries_source
        self.binaries_dir = binaries_dir
        self._binaries: lab_binaries.Binaries | None = None

    # ---- paths and parts -------------------------------------------------------------------
    @property
    def record_path(self) -> Path:
        return self.dir / "lab.json"

    @property
    def record(self) -> LabRecord | None:
        return LabRecord.read(self.record_path)

    @property
    def vm_dir(self) -> Path:
        return self.dir / "vm"

    @property
    def cp_dir(self) -> Path:
        return self.dir / "controlplane"

    def binaries(self) -> lab_binaries.Binaries:
        if self._binaries is None:
            self._binaries = lab_binaries.resolve(
                self.k8s_version,
                source=self.binaries_source,
                directory=self.binaries_dir,
                progress=self.progress.show,
            )
        return self._binaries

    def control_plane(self) -> ControlPlane:
        return ControlPlane(self.cp_dir, self.binaries())

    def vm(self) -> VM:
        """The guest of this lab (InfrastructureError when there is none)."""
        return VM.attach(self.vm_dir)

    @property
    def kubeconfig(self) -> Path:
        return self.cp_dir / "kubeconfig" / "admin.kubeconfig"

    def core_api(self):
        """A CoreV1Api of the real Kubernetes client, logged in as the lab admin."""
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        return client.CoreV1Api(api_client)

    # ---- up --------------------------------------------------------------------------------
    def plan(
        self, profile_name: str, kubelet_override: dict | None, override_source: str | None
    ) -> tuple[LabProfile, KubeletConfig]:
        """Resolve the profile and the kubelet configuration; touches nothing."""
        profile = load_lab_profile(profile_name)
        config = lab_kubelet_config(
            profile.topology,
            profile.kubelet,
            kubelet_override,
            override_source,
            _minor(self.k8s_version),
        )
        return profile, config

    def up(
        self,
        profile_name: str = DEFAULT_PROFILE,
        kubelet_override: dict | None = None,
        override_source: str | None = None,
        timeout: float = 900.0,
    ) -> LabRecord:
        """Bring the lab up for `profile_name`; harmless when it is already up as asked."""
        profile, config = self.plan(profile_name, kubelet_override, override_source)
        existing = self.record
        if existing is not None and self._is_up():
            if existing.profile != profile.name:
                raise InputError(
                    f"the lab is up with profile {existing.profile!r}; run "
                    f"`numacert lab down` first",
                    "--profile",
                )
            if kubelet_override is not None and existing.kubelet_config != to_yaml(config):
                raise InputError(
                    "the lab is up with another kubelet configuration; use "
                    "`numacert lab reconfigure --kubelet FILE`",
                    "--kubelet",
                )
            self.progress.echo("lab already up") if self.progress.show else None
            return existing
        if existing is not None:
            # A lab that is half up (crash, reboot): clear it before starting again.
            self.down()

        with self.progress.step(f"Kubernetes {self.k8s_version} binaries"):
            binaries = self.binaries()
        with self.progress.step("node image (kernel, rootfs, offline images)"):
            image = build_image(progress=self.progress.show)
        record = LabRecord(profile.name, binaries.version, to_yaml(config), override_source)
        record.write(self.record_path)  # journal first: `down` finds what follows
        cp = self.control_plane()
        with self.progress.step("control plane on 127.0.0.1 (etcd, apiserver, controllers)"):
            cp.start(timeout=300)
        with self.progress.step("seed disk (kubelet, certificates, configuration)"):
            seed = self._seed_disk(cp, binaries, config)
        ports = GuestPorts(ssh=free_port(), kubelet_addr=NODE_NAME, kubelet_port=KUBELET_PORT)
        vm = VM(
            self.vm_dir,
            image,
            profile.topology,
            profile.memory_per_numa,
            ports=ports,
            hugepages_2m_per_node=profile.hugepages_2m(),
            hugepages_1g_per_node=profile.hugepages_1g(),
            extra=["-drive", f"file={seed},if=virtio,format=raw,readonly=on"],
            **({"cpu_model": profile.cpu_model} if profile.cpu_model else {}),
        )
        with self.progress.step(f"guest boot ({profile.topology!r}, TCG)"):
            vm.start()
            vm.wait_ssh(timeout=600)
            vm.wait_ready(timeout=600)
        with self.progress.step("kubelet installed from the seed disk"):
            # The seed is the guest's second virtio disk: /dev/vdb.
            vm.ssh(
                "mkdir -p /mnt/seed && mount -o ro,noload /dev/vdb /mnt/seed && "
                "sh /mnt/seed/install.sh; rc=$?; umount /mnt/seed; exit $rc",
                timeout=300,
                check=True,
            )
        with self.progress.step(f"kubelet start, node {NODE_NAME} Ready"):
            started = time.time()
            vm.ssh("systemctl start kubelet", timeout=120, check=True)
            self.wait_node_ready(since=started, timeout=timeout)
            self.label_node()
        return record

    def label_node(self) -> None:
        """The lab's node opts in to reconfiguration: it is numacert's own."""
        from numacert.providers.safety import OPT_IN_LABEL

        key, value = OPT_IN_LABEL.split("=")
        self.core_api().patch_node(NODE_NAME, {"metadata": {"labels": {key: value}}})

    def _seed_disk(
        self, cp: ControlPlane, binaries: lab_binaries.Binaries, config: KubeletConfig
    ) -> Path:
        """An ext4 image with everything the guest's kubelet needs and the script installing
        it, attached to the guest as a read-only disk: copying an 80 MB kubelet in over ssh
        takes most of a minute under TCG, reading it from a disk a few seconds."""
        serving = cp.kubelet_serving_cert(NODE_NAME, ips=[NODE_NAME])
        stage = self.dir / "seed"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        shutil.copy2(binaries.kubelet, stage / "kubelet")
        shutil.copy2(cp.ca_cert, stage / "ca.crt")
        shutil.copy2(serving.cert, stage / "kubelet.crt")
        shutil.copy2(serving.key, stage / "kubelet.key")
        shutil.copy2(cp.node_kubeconfig(NODE_NAME), stage / "kubelet.kubeconfig")
        (stage / "config.yaml").write_text(to_yaml(config))
        flags = [f"--hostname-override={NODE_NAME}", f"--node-labels={LAB_LABEL}=true", "--v=2"]
        (stage / "kubeadm-flags.env").write_text(f'KUBELET_KUBEADM_ARGS="{" ".join(flags)}"\n')
        (stage / "install.sh").write_text(
            "set -e\n"
            "cd /mnt/seed\n"
            "install -m 0755 kubelet /usr/bin/kubelet\n"
            "install -d -m 0755 /etc/kubernetes/pki /var/lib/kubelet/pki\n"
            f"install -m 0644 ca.crt {layout.CA_CERT}\n"
            f"install -m 0644 kubelet.crt {layout.SERVING_CERT}\n"
            f"install -m 0600 kubelet.key {layout.SERVING_KEY}\n"
            f"install -m 0600 kubelet.kubeconfig {layout.KUBECONFIG}\n"
            f"install -m 0644 config.yaml {layout.CONFIG_FILE}\n"
            f"install -m 0644 kubeadm-flags.env {layout.FLAGS_FILE}\n"
            "systemctl daemon-reload\n"
            "systemctl enable kubelet.service\n"
        )
        size_mib = sum(f.stat().st_size for f in stage.iterdir()) // 2**20 + 32
        self.vm_dir.mkdir(parents=True, exist_ok=True)
        image = self.vm_dir / "seed.img"
        image.unlink(missing_ok=True)
        proc = subprocess.run(
            [
                "mke2fs",
                "-q",
                "-t",
                "ext4",
                "-L",
                "numacert-seed",
                "-d",
                str(stage),
                str(image),
                f"{size_mib}M",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        shutil.rmtree(stage, ignore_errors=True)
        if proc.returncode != 0:
            raise InfrastructureError(f"mke2fs of the seed disk failed: {proc.stderr.strip()}")
        return image

    # ---- checks ----------------------------------------------------------------------------
    def _is_up(self) -> bool:
        try:
            vm = self.vm()
        except InfrastructureError:
            return False
        if not vm.is_running() or not self.control_plane().is_running():
            return False
        return self.node_ready()

    def node(self):
        return self.core_api().read_node(NODE_NAME)

    def node_ready(self, since: float | None = None) -> bool:
        try:
            node = self.node()
        except Exception:  # noqa: BLE001 - any API failure means "not Ready yet"
            return False
        for cond in node.status.conditions or []:
            if cond.type == "Ready":
                fresh = since is None or cond.last_heartbeat_time.timestamp() >= since
                return cond.status == "True" and fresh
        return False

    def wait_node_ready(self, since: float | None = None, timeout: float = 900.0) -> float:
        """Wait for node Ready with a heartbeat after `since`; report the kubelet's last log
        lines (or the guest's console if it died) on timeout."""
        start = time.monotonic()
        vm = self.vm()

        def ready() -> bool:
            if not vm.is_running():
                raise InfrastructureError(
                    f"the lab guest died; last console lines:\n{vm.console_tail()}"
                )
            return self.node_ready(since)

        def kubelet_log() -> str:
            _, log, _ = vm.ssh("journalctl -u kubelet -n 30 --no-pager", timeout=30)
            return f"kubelet log:\n{log}"

        wait_until(ready, timeout, f"node {NODE_NAME} to be Ready", 2.0, kubelet_log)
        return time.monotonic() - start

    def kubelet_get(self, path: str) -> str:
        """GET a kubelet endpoint (configz, metrics, healthz) directly with the apiserver's
        kubelet-client certificate: the apiserver refuses nodes/proxy for a loopback node
        address."""
        cp = self.control_plane()
        client_cert = cp.pki.apiserver_kubelet_client()
        ctx = ssl.create_default_context(cafile=str(cp.ca_cert))
        ctx.check_hostname = False
        ctx.load_cert_chain(str(client_cert.cert), str(client_cert.key))
        url = f"https://{NODE_NAME}:{KUBELET_PORT}/{path.lstrip('/')}"
        with urllib.request.urlopen(url, context=ctx, timeout=30) as resp:  # noqa: S310
            return resp.read().decode()

    def running_config(self) -> KubeletConfig:
        """The kubelet configuration the lab guest runs, as numacert parses it."""
        from numacert.kubelet.parse import from_dict

        return from_dict(yaml.safe_load(self.record.kubelet_config), "lab kubelet configuration")

    def kubelet_configz(self) -> dict:
        """The running kubelet's own view of its configuration (/configz)."""
        return json.loads(self.kubelet_get("configz"))["kubeletconfig"]

    # ---- reconfigure -----------------------------------------------------------------------
    def access_spec(self) -> str:
        """The testinfra spec of the guest: real SSH (paramiko) with the lab's key; TCG makes
        sshd slow to answer under load, hence the generous connect timeout."""
        return self.vm().testinfra_spec("paramiko") + "&timeout=60"

    def node_handle(self):
        """The lab node as numacert.providers reach any node: API, SSH, /configz."""
        from numacert.probes.access import NodeAccess
        from numacert.providers.procedure import NodeHandle

        return NodeHandle(NODE_NAME, self.core_api(), NodeAccess.connect(self.access_spec()),
                          self.kubelet_configz, {"kind": "lab"})

    def reconfigure(
        self, kubelet_override: dict, override_source: str | None = None, timeout: float = 900.0
    ) -> LabRecord:
        """Run the kubelet with the lab profile's base + `kubelet_override`, through the
        providers' procedure (numacert.providers.procedure.switch_kubelet: cordon, evict,
        stop, state files removed, configuration written, start, Ready, /configz checked).

        The new configuration is computed and validated before anything is touched. This is
        the lab's own configuration (recorded in lab.json), not a journaled change: nothing
        restores it but another reconfigure.
        """
        from numacert.probes.kube import set_unschedulable
        from numacert.providers.procedure import check_policy, switch_kubelet

        record = self.record
        if record is None or not self._is_up():
            raise InputError("the lab is not up; run `numacert lab up` first", "lab")
        _, config = self.plan(record.profile, kubelet_override, override_source)
        new = LabRecord(record.profile, record.k8s_version, to_yaml(config), override_source)
        handle = self.node_handle()
        with self.progress.step("kubelet reconfigured (pods evicted, state files cleared)"):
            new.write(self.record_path)  # journal first: what the node is being changed to
            written = new.kubelet_config.encode()
            switch_kubelet(handle, "/var/lib/kubelet", {layout.CONFIG_FILE: written},
                           "after reconfigure")
            check_policy(handle, written, "the lab reconfiguration")
            set_unschedulable(handle.core, NODE_NAME, False)
        return new

    # ---- status / down ---------------------------------------------------------------------
    def status(self) -> dict:
        record = self.record
        out: dict = {"state_dir": str(self.dir), "up": False, "profile": None}
        if record is None:
            return out
        out["profile"] = record.profile
        out["kubernetes"] = record.k8s_version
        try:
            vm = self.vm()
            out["guest"] = {
                "running": vm.is_running(),
                "pid": vm.pid(),
                "ssh": f"{vm.ports.ssh_addr}:{vm.ports.ssh}",
            }
        except InfrastructureError:
            out["guest"] = {"running": False}
        cp_status = self.control_plane().status()
        out["control_plane"] = {
            "running": cp_status.get("running"),
            "ready": cp_status.get("ready"),
        }
        out["node"] = {"name": NODE_NAME, "ready": self.node_ready()}
        out["kubeconfig"] = str(self.kubeconfig)
        out["up"] = bool(
            out["guest"]["running"] and out["control_plane"]["running"] and out["node"]["ready"]
        )
        return out

    def down(self) -> None:
        """Stop the guest and the control plane; remove the guest's disk overlay.

        Works from whatever is recorded, so a half-started or crashed lab is cleaned too.
        """
        if (self.vm_dir / "vm.json").exists():
            with self.progress.step("guest power-off"):
                self.vm().destroy()
        if self.cp_dir.exists():
            with self.progress.step("control plane stop"):
                ControlPlane(self.cp_dir, self._binaries_for_stop()).stop()
            # The next lab starts with an empty cluster: no node, pod or namespace of this
            # one may be handed to a new kubelet. Logs and certificates stay.
            shutil.rmtree(self.cp_dir / "etcd-data", ignore_errors=True)
        self.record_path.unlink(missing_ok=True)

    def _binaries_for_stop(self) -> lab_binaries.Binaries:
        # Stopping needs no binary; do not build anything to tear down.
        cached = lab_binaries.find_cached(self.k8s_version)
        if cached is not None:
            return cached
        return lab_binaries.Binaries(self.k8s_version, "", "none", {})

    def ssh_argv(self, command: str | None = None) -> list[str]:
        vm = self.vm()
        argv = vm._ssh_base(10)
        if command:
            argv.append(command)
        else:
            argv.insert(1, "-t")
        return argv

    def guest_shell(self, command: str, timeout: float = 120.0) -> str:
        """Run a shell command in the guest and return its stdout (raises on failure)."""
        _, out, _ = self.vm().ssh(command, timeout=timeout, check=True)
        return out

    def guest_file(self, path: str) -> str:
        return self.guest_shell(f"cat {shlex.quote(path)}")


def _minor(version: str) -> int:
    parts = version.lstrip("v").split(".")
    return int(parts[1])
