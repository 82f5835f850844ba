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
import time
import urllib.request
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
from numacert.lab.qemu import GuestOptions
from numacert.lab.qemu import Ports as GuestPorts
from numacert.lab.vm import VM, free_port
from numacert.proc import run
from numacert.progress import Progress
from numacert.state import state_root
from numacert.wait import wait_until

# The node registers under this name: a hostname override that is an IP becomes the node's
# InternalIP, which the apiserver dials; qemu forwards host 127.0.0.2:10250 into the guest.
# (The kubelet refuses a loopback --node-ip, but not this.)
NODE_NAME = "127.0.0.2"
MAX_NODES = 4  # 127.0.0.2 .. 127.0.0.5; each guest takes its profile's memory and CPUs


def node_names(count: int) -> list[str]:
    """The lab's node names: 127.0.0.2, 127.0.0.3, ... (one host loopback address each)."""
    return [f"127.0.0.{2 + i}" for i in range(count)]
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
    node_name: str = NODE_NAME  # the first node (kept for lab.json written before `nodes`)
    nodes: list[str] | None = None  # every node, in order; None = [node_name]

    @property
    def node_names(self) -> list[str]:
        return list(self.nodes or [self.node_name])

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
        return self.guest_dir(NODE_NAME)

    def guest_dir(self, node: str) -> Path:
        """The first node's guest lives in vm/, the others in vm-<n>/ (n = 2, 3, ...)."""
        index = node_names(MAX_NODES).index(node) + 1
        return self.dir / ("vm" if index == 1 else f"vm-{index}")

    @property
    def nodes(self) -> list[str]:
        """The nodes of the lab as recorded (the first node only when none is)."""
        record = self.record
        return record.node_names if record is not None else [NODE_NAME]

    @property
    def cp_dir(self) -> Path:
        return self.dir / "controlplane"

    def binaries(self) -> lab_binaries.Binaries:
        if self._binaries is None:
            self._binaries = lab_binaries.resolve(
                self.k8s_version,
                source=self.binaries_source,
                directory=self.binaries_dir,
                progress=self.progress,
            )
        return self._binaries

    def control_plane(self) -> ControlPlane:
        return ControlPlane(self.cp_dir, self.binaries())

    def vm(self, node: str = NODE_NAME) -> VM:
        """The guest of `node` (InfrastructureError when there is none)."""
        return VM.attach(self.guest_dir(node))

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
        nodes: int = 1,
    ) -> LabRecord:
        """Bring the lab up for `profile_name` with `nodes` guests (each the profile's machine,
        all joined to the one control plane); harmless when it is already up as asked."""
        if not 1 <= nodes <= MAX_NODES:
            raise InputError(f"a lab has 1 to {MAX_NODES} nodes, not {nodes}", "--nodes")
        profile, config = self.plan(profile_name, kubelet_override, override_source)
        existing = self.record
        if existing is not None and self._is_up():
            if existing.profile != profile.name:
                raise InputError(
                    f"the lab is up with profile {existing.profile!r}; run "
                    f"`numacert lab down` first",
                    "--profile",
                )
            if len(existing.node_names) != nodes:
                raise InputError(
                    f"the lab is up with {len(existing.node_names)} node(s); run "
                    "`numacert lab down` first",
                    "--nodes",
                )
            if kubelet_override is not None and existing.kubelet_config != to_yaml(config):
                raise InputError(
                    "the lab is up with another kubelet configuration; use "
                    "`numacert lab reconfigure --kubelet FILE`",
                    "--kubelet",
                )
            self.progress.note("lab already up")
            return existing
        if existing is not None:
            # A lab that is half up (crash, reboot): clear it before starting again.
            self.down()

        with self.progress.step(f"Kubernetes {self.k8s_version} binaries"):
            binaries = self.binaries()
        with self.progress.step("node image (kernel, rootfs, offline images)"):
            image = build_image(progress=self.progress)
        names = node_names(nodes)
        record = LabRecord(profile.name, binaries.version, to_yaml(config), override_source,
                           nodes=names)
        record.write(self.record_path)  # journal first: `down` finds what follows
        cp = self.control_plane()
        with self.progress.step("control plane on 127.0.0.1 (etcd, apiserver, controllers)"):
            cp.start(timeout=300)
        guests = {}
        for name in names:
            with self.progress.step(f"seed disk of {name} (kubelet, certificates, configuration)"):
                seed = self._seed_disk(cp, binaries, config, name)
            guests[name] = VM(
                self.guest_dir(name),
                image,
                profile.topology,
                profile.memory_per_numa,
                ports=GuestPorts(ssh=free_port(), kubelet_addr=name, kubelet_port=KUBELET_PORT),
                hugepages_2m_per_node=profile.hugepages_2m(),
                hugepages_1g_per_node=profile.hugepages_1g(),
                extra=["-drive", f"file={seed},if=virtio,format=raw,readonly=on"],
                options=GuestOptions(hostname=_hostname(name), name=_hostname(name)),
                **({"cpu_model": profile.cpu_model} if profile.cpu_model else {}),
            )
        what = f"{len(names)} guest(s)" if len(names) > 1 else "guest"
        with self.progress.step(f"{what} boot ({profile.topology!r}, TCG)"):
            for vm in guests.values():  # all boot at once: the waits overlap
                vm.start()
            for vm in guests.values():
                vm.wait_ssh(timeout=600)
                vm.wait_ready(timeout=600)
        with self.progress.step("kubelet installed from the seed disk"):
            for vm in guests.values():
                # The seed is the guest's second virtio disk: /dev/vdb.
                vm.ssh(
                    "mkdir -p /mnt/seed && mount -o ro,noload /dev/vdb /mnt/seed && "
                    "sh /mnt/seed/install.sh; rc=$?; umount /mnt/seed; exit $rc",
                    timeout=300,
                    check=True,
                )
        with self.progress.step(f"kubelet start, node(s) {', '.join(names)} Ready"):
            started = time.time()
            for vm in guests.values():
                vm.ssh("systemctl start kubelet", timeout=120, check=True)
            for name in names:
                self.wait_node_ready(since=started, timeout=timeout, node=name)
                self.label_node(name)
        return record

    def label_node(self, node: str = NODE_NAME) -> None:
        """The lab's nodes opt in to reconfiguration: they are numacert's own."""
        from numacert.providers.safety import OPT_IN_LABEL

        key, value = OPT_IN_LABEL.split("=")
        self.core_api().patch_node(node, {"metadata": {"labels": {key: value}}})

    def _seed_disk(
        self, cp: ControlPlane, binaries: lab_binaries.Binaries, config: KubeletConfig, node: str
    ) -> Path:
        """An ext4 image with everything the guest's kubelet needs and the script installing
        it, attached to the guest as a read-only disk: copying an 80 MB kubelet in over ssh
        takes most of a minute under TCG, reading it from a disk a few seconds."""
        serving = cp.kubelet_serving_cert(node, ips=[node])
        stage = self.dir / f"seed-{node}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        shutil.copy2(binaries.kubelet, stage / "kubelet")
        shutil.copy2(cp.ca_cert, stage / "ca.crt")
        shutil.copy2(serving.cert, stage / "kubelet.crt")
        shutil.copy2(serving.key, stage / "kubelet.key")
        shutil.copy2(cp.node_kubeconfig(node), stage / "kubelet.kubeconfig")
        (stage / "config.yaml").write_text(to_yaml(config))
        # No --v: kubeadm sets none, and at --v=2 journald spends a core-minute an hour under TCG.
        flags = [f"--hostname-override={node}", f"--node-labels={LAB_LABEL}=true"]
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
        self.guest_dir(node).mkdir(parents=True, exist_ok=True)
        image = self.guest_dir(node) / "seed.img"
        image.unlink(missing_ok=True)
        try:
            run(
                ["mke2fs", "-q", "-t", "ext4", "-L", "numacert-seed", "-d", str(stage),
                 str(image), f"{size_mib}M"],
                "mke2fs of the seed disk",
                120,
            )
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return image

    # ---- checks ----------------------------------------------------------------------------
    def running(self) -> bool:
        """Every process of the recorded lab runs (control plane and each guest), whether or
        not its nodes are Ready: a node being reconfigured is still the lab's."""
        if self.record is None or not self.control_plane().is_running():
            return False
        for name in self.nodes:
            try:
                if not self.vm(name).is_running():
                    return False
            except InfrastructureError:
                return False
        return True

    def _is_up(self) -> bool:
        if not self.control_plane().is_running():
            return False
        for name in self.nodes:
            try:
                vm = self.vm(name)
            except InfrastructureError:
                return False
            if not vm.is_running() or not self.node_ready(node=name):
                return False
        return True

    def node(self, name: str = NODE_NAME):
        return self.core_api().read_node(name)

    def node_ready(self, since: float | None = None, node: str = NODE_NAME) -> bool:
        try:
            node = self.node(node)
        except Exception:  # noqa: BLE001 - any API failure means "not Ready yet"
            return False
        for cond in node.status.conditions or []:
            if cond.type == "Ready":
                fresh = since is None or cond.last_heartbeat_time.timestamp() >= since
                return cond.status == "True" and fresh
        return False

    def wait_node_ready(
        self, since: float | None = None, timeout: float = 900.0, node: str = NODE_NAME
    ) -> float:
        """Wait for `node` Ready with a heartbeat after `since`; report the kubelet's last log
        lines (or the guest's console if it died) on timeout."""
        start = time.monotonic()
        vm = self.vm(node)

        def ready() -> bool:
            if not vm.is_running():
                raise InfrastructureError(
                    f"the lab guest of {node} died; last console lines:\n{vm.console_tail()}"
                )
            return self.node_ready(since, node)

        def kubelet_log() -> str:
            _, log, _ = vm.ssh("journalctl -u kubelet -n 30 --no-pager", timeout=30)
            return f"kubelet log:\n{log}"

        wait_until(ready, timeout, f"node {node} to be Ready", 2.0, kubelet_log)
        return time.monotonic() - start

    def kubelet_get(self, path: str, node: str = NODE_NAME) -> str:
        """GET a kubelet endpoint (configz, metrics, healthz) directly with the apiserver's
        kubelet-client certificate: the apiserver refuses nodes/proxy for a loopback node
        address."""
        cp = self.control_plane()
        client_cert = cp.pki.apiserver_kubelet_client()
        ctx = ssl.create_default_context(cafile=str(cp.ca_cert))
        ctx.check_hostname = False
        ctx.load_cert_chain(str(client_cert.cert), str(client_cert.key))
        url = f"https://{node}:{KUBELET_PORT}/{path.lstrip('/')}"
        with urllib.request.urlopen(url, context=ctx, timeout=30) as resp:  # noqa: S310
            return resp.read().decode()

    def running_config(self) -> KubeletConfig:
        """The kubelet configuration the lab guest runs, as numacert parses it."""
        from numacert.kubelet.parse import from_dict

        return from_dict(yaml.safe_load(self.record.kubelet_config), "lab kubelet configuration")

    def kubelet_configz(self, node: str = NODE_NAME) -> dict:
        """The running kubelet's own view of its configuration (/configz)."""
        return json.loads(self.kubelet_get("configz", node))["kubeletconfig"]

    # ---- reconfigure -----------------------------------------------------------------------
    def access_spec(self, node: str = NODE_NAME) -> str:
        """The testinfra spec of a guest: real SSH (paramiko) with the lab's key; TCG makes
        sshd slow to answer under load, hence the generous connect timeout."""
        return self.vm(node).testinfra_spec("paramiko") + "&timeout=60"

    def node_handle(self, node: str = NODE_NAME):
        """A lab node as numacert.providers reach any node: API, SSH, /configz."""
        from numacert.probes.access import NodeAccess
        from numacert.providers.procedure import NodeHandle

        return NodeHandle(node, self.core_api(), NodeAccess.connect(self.access_spec(node)),
                          lambda: self.kubelet_configz(node), {"kind": "lab"})

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
        new = LabRecord(record.profile, record.k8s_version, to_yaml(config), override_source,
                        nodes=record.node_names)
        new.write(self.record_path)  # journal first: what the nodes are being changed to
        written = new.kubelet_config.encode()
        for name in record.node_names:
            handle = self.node_handle(name)
            with self.progress.step(f"{name}: kubelet reconfigured (pods evicted, state files "
                                    "cleared)"):
                switch_kubelet(handle, "/var/lib/kubelet", {layout.CONFIG_FILE: written},
                               "after reconfigure")
                check_policy(handle, written, "the lab reconfiguration")
                set_unschedulable(handle.core, name, False)
        return new

    # ---- status / down ---------------------------------------------------------------------
    def status(self) -> dict:
        record = self.record
        out: dict = {"state_dir": str(self.dir), "up": False, "profile": None}
        if record is None:
            return out
        out["profile"] = record.profile
        out["kubernetes"] = record.k8s_version
        guests = {}
        for name in record.node_names:
            try:
                vm = self.vm(name)
                guests[name] = {
                    "running": vm.is_running(),
                    "pid": vm.pid(),
                    "ssh": f"{vm.ports.ssh_addr}:{vm.ports.ssh}",
                }
            except InfrastructureError:
                guests[name] = {"running": False}
        out["guests"] = guests
        out["guest"] = guests[record.node_names[0]]
        cp_status = self.control_plane().status()
        out["control_plane"] = {
            "running": cp_status.get("running"),
            "ready": cp_status.get("ready"),
        }
        out["nodes"] = {name: self.node_ready(node=name) for name in record.node_names}
        out["node"] = {"name": record.node_names[0], "ready": out["nodes"][record.node_names[0]]}
        out["kubeconfig"] = str(self.kubeconfig)
        out["up"] = bool(
            all(g["running"] for g in guests.values())
            and out["control_plane"]["running"]
            and all(out["nodes"].values())
        )
        return out

    def down(self) -> None:
        """Stop every guest and the control plane; remove the guests' disk overlays.

        Works from whatever is on disk, so a half-started or crashed lab is cleaned too.
        """
        for run_dir in sorted(self.dir.glob("vm*")):
            if (run_dir / "vm.json").exists():
                with self.progress.step(f"guest power-off ({run_dir.name})"):
                    VM.attach(run_dir).destroy()
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

    def ssh_argv(self, command: str | None = None, node: str = NODE_NAME) -> list[str]:
        return self.vm(node).ssh_argv(command)

    def guest_shell(self, command: str, timeout: float = 120.0) -> str:
        """Run a shell command in the guest and return its stdout (raises on failure)."""
        _, out, _ = self.vm().ssh(command, timeout=timeout, check=True)
        return out

    def guest_file(self, path: str) -> str:
        return self.guest_shell(f"cat {shlex.quote(path)}")


def _hostname(node: str) -> str:
    """numacert-lab for the first node, numacert-lab-<n> for the others."""
    index = node_names(MAX_NODES).index(node) + 1
    return "numacert-lab" if index == 1 else f"numacert-lab-{index}"


def _minor(version: str) -> int:
    parts = version.lstrip("v").split(".")
    return int(parts[1])
