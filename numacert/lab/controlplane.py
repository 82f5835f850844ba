"""The lab's control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler on
this host's loopback, run as detached processes so that they outlive the CLI that started them.

Everything lives in `run_dir`:
    pki/                 CA, certificates, service-account keys (see pki.py)
    kubeconfig/          admin, controller-manager, scheduler (server https://127.0.0.1:<port>),
                         node-<name> (server https://10.0.2.2:<port>, for the guest's kubelet)
    etcd-data/           etcd's data dir
    logs/<component>.log stdout+stderr of each process
    pids/<component>.pid the process record (numacert.proc.ProcessRecord: JSON {pid, starttime,
                         exe}); the start time guards against a reused pid
    scheduler-config.yaml

The lab node is named after an IP (127.0.0.2, via the kubelet's --hostname-override): the
kubelet then reports that IP as its InternalIP, and the apiserver dials it on :10250, which the
qemu hostfwd maps into the guest. Caveat: the apiserver's nodes/proxy subresource refuses
non-global-unicast node addresses ("address not allowed"), so /configz and /pods of that node
cannot be read through the apiserver; pod logs and exec are unaffected.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from numacert.errors import InfrastructureError, InputError
from numacert.lab.binaries import Binaries
from numacert.lab.pki import (
    ADMIN_USER,
    CONTROLLER_MANAGER_USER,
    DEFAULT_SERVICE_CIDR,
    FRONT_PROXY_USER,
    KUBELET_CLIENT_USER,
    PKI,
    SCHEDULER_USER,
    CertPair,
    write_kubeconfig,
)
from numacert.proc import ProcessRecord, run, spawn_detached, tail_file
from numacert.wait import wait_until

LOOPBACK = "127.0.0.1"
# How a qemu user-mode guest reaches the host's loopback.
GUEST_HOST_ADDRESS = "10.0.2.2"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")

# Controllers that do nothing useful for a single lab node without storage, autoscaling or
# cloud; dropping them saves CPU on a 2-core host. Filtered against what the binary knows,
# since the list changes between minors.
DISABLED_CONTROLLERS = (
    "persistentvolume-attach-detach-controller", "persistentvolume-binder-controller",
    "persistentvolume-expander-controller", "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller", "ephemeral-volume-controller",
    "volumeattributesclass-protection-controller", "horizontal-pod-autoscaler-controller",
    "cronjob-controller", "statefulset-controller", "disruption-controller",
    "resourcequota-controller", "endpointslice-mirroring-controller", "node-ipam-controller",
    "storage-version-migrator-controller", "storageversion-garbage-collector-controller",
    "resourceclaim-controller", "device-taint-eviction-controller",
    "resourcepoolstatusrequest-controller", "podgroup-protection-controller",
    "validatingadmissionpolicy-status-controller",
    "kube-apiserver-serving-clustertrustbundle-publisher-controller",
)
KUBELET_API_ADMIN_BINDING = "numacert:kube-apiserver-kubelet-api-admin"


@dataclass(frozen=True)
class Ports:
    """Loopback ports of the control plane; every one is checked free before start."""

    apiserver: int = 6443
    etcd_client: int = 2379
    etcd_peer: int = 2380
    controller_manager: int = 10257
    scheduler: int = 10259

    def by_component(self) -> dict[str, list[int]]:
        return {
            "etcd": [self.etcd_client, self.etcd_peer],
            "kube-apiserver": [self.apiserver],
            "kube-controller-manager": [self.controller_manager],
            "kube-scheduler": [self.scheduler],
        }


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    running: bool
    ports: list[int]
    log: str


# --------------------------------------------------------------------------------------------
# small process and port helpers


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True if something listens on host:port (or on the wildcard address). SO_REUSEADDR so
    that TIME_WAIT leftovers of a previous run do not count: Go servers bind through them."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _tail(path: Path, lines: int = 20) -> str:
    return tail_file(path, lines) or "(no log)"


# --------------------------------------------------------------------------------------------


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler for the lab."""

    def __init__(self, run_dir: Path | str, binaries: Binaries, *, ports: Ports | None = None,
                 service_cidr: str = DEFAULT_SERVICE_CIDR,
                 advertise_address: str = GUEST_HOST_ADDRESS,
                 verify_kubelet_tls: bool = True,
                 kubelet_preferred_address_types: str = "InternalIP,Hostname",
                 etcd_unsafe_no_fsync: bool = True) -> None:
        self.run_dir = Path(run_dir).absolute()
        self.binaries = binaries
        self.ports = ports or Ports()
        self.service_cidr = service_cidr
        # Published in the `kubernetes` Endpoints; loopback is refused there by validation,
        # and 10.0.2.2 is where the guest really reaches the apiserver.
        self.advertise_address = advertise_address
        self.verify_kubelet_tls = verify_kubelet_tls
        self.kubelet_preferred_address_types = kubelet_preferred_address_types
        self.etcd_unsafe_no_fsync = etcd_unsafe_no_fsync
        self.pki = PKI(self.run_dir / "pki", service_cidr)

    # ---- paths

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.ports.apiserver}"

    @property
    def guest_server(self) -> str:
        return f"https://{GUEST_HOST_ADDRESS}:{self.ports.apiserver}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig" / "admin.kubeconfig"

    @property
    def ca_cert(self) -> Path:
        return self.pki.ca.cert

    def _log(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / "pids" / f"{name}.pid"

    # ---- configuration

    def prepare(self) -> None:
        """Certificates, kubeconfigs and config files (idempotent; existing ones are kept)."""
        for d in ("kubeconfig", "logs", "pids", "etcd-data", "apiserver-certdir"):
            (self.run_dir / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir / "etcd-data", 0o700)  # etcd refuses a group/world-readable dir
        self.pki.ensure_control_plane()
        ca = self.pki.ca.cert
        kc = self.run_dir / "kubeconfig"
        write_kubeconfig(self.admin_kubeconfig, self.server, ca, self.pki.admin(), ADMIN_USER)
        write_kubeconfig(kc / "controller-manager.kubeconfig", self.server, ca,
                         self.pki.controller_manager(), CONTROLLER_MANAGER_USER)
        write_kubeconfig(kc / "scheduler.kubeconfig", self.server, ca, self.pki.scheduler(),
                         SCHEDULER_USER)
        sched = {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(kc / "scheduler.kubeconfig")},
            "leaderElection": {"leaderElect": False},
        }
        (self.run_dir / "scheduler-config.yaml").write_text(yaml.safe_dump(sched))

    def node_kubeconfig(self, node_name: str, server: str | None = None) -> Path:
        """A kubeconfig for the kubelet of `node_name` (identity system:node:<name>), by
        default pointing at the apiserver as the qemu guest sees it."""
        path = self.run_dir / "kubeconfig" / f"node-{node_name}.kubeconfig"
        return write_kubeconfig(path, server or self.guest_server, self.pki.ensure_ca().cert,
                                self.pki.node_client(node_name), f"system:node:{node_name}")

    def kubelet_serving_cert(self, node_name: str, ips: Sequence[str] = (),
                             hostnames: Sequence[str] = ()) -> CertPair:
        self.pki.ensure_ca()
        return self.pki.kubelet_serving(node_name, ips, hostnames)

    def _controllers_flag(self) -> str:
        known = _known_controllers(self.binaries.kube_controller_manager,
                                   self.run_dir / "controllers.json")
        drop = [c for c in DISABLED_CONTROLLERS if not known or c in known]
        return ",".join(["*", *(f"-{c}" for c in drop)])

    def _argv(self, name: str) -> list[str]:
        p, pki, rd = self.ports, self.pki, self.run_dir
        if name == "etcd":
            peer = f"http://{LOOPBACK}:{p.etcd_peer}"
            client = f"http://{LOOPBACK}:{p.etcd_client}"
            argv = [str(self.binaries.etcd), "--name=numacert-lab",
                    f"--data-dir={rd / 'etcd-data'}",
                    f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
                    f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=numacert-lab={peer}",
                    "--initial-cluster-state=new", "--log-level=warn"]
            if self.etcd_unsafe_no_fsync:
                # Throwaway lab data; fsync on a shared CI disk makes the apiserver crawl.
                argv.append("--unsafe-no-fsync")
            return argv
        if name == "kube-apiserver":
            sa_key, sa_pub = pki.service_account_keys()
            apiserver, kubelet_client = pki.apiserver(), pki.apiserver_kubelet_client()
            front_proxy = pki.front_proxy_client()
            argv = [str(self.binaries.kube_apiserver),
                    f"--etcd-servers=http://{LOOPBACK}:{p.etcd_client}",
                    f"--bind-address={LOOPBACK}", f"--secure-port={p.apiserver}",
                    f"--advertise-address={self.advertise_address}",
                    f"--cert-dir={rd / 'apiserver-certdir'}",
                    f"--tls-cert-file={apiserver.cert}", f"--tls-private-key-file={apiserver.key}",
                    f"--client-ca-file={pki.ca.cert}",
                    "--authorization-mode=Node,RBAC",
                    "--enable-admission-plugins=NodeRestriction",
                    f"--service-cluster-ip-range={self.service_cidr}",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={sa_pub}",
                    f"--service-account-signing-key-file={sa_key}",
                    f"--kubelet-client-certificate={kubelet_client.cert}",
                    f"--kubelet-client-key={kubelet_client.key}",
                    f"--kubelet-preferred-address-types={self.kubelet_preferred_address_types}",
                    f"--requestheader-client-ca-file={pki.ca.cert}",
                    f"--requestheader-allowed-names={FRONT_PROXY_USER}",
                    "--requestheader-username-headers=X-Remote-User",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    f"--proxy-client-cert-file={front_proxy.cert}",
                    f"--proxy-client-key-file={front_proxy.key}",
                    # probe pods read host sysfs and cgroups
                    "--allow-privileged=true",
                    "--profiling=false"]
            if self.verify_kubelet_tls:
                argv.append(f"--kubelet-certificate-authority={pki.ca.cert}")
            return argv
        kc = rd / "kubeconfig"
        if name == "kube-controller-manager":
            sa_key, _ = pki.service_account_keys()
            k = kc / "controller-manager.kubeconfig"
            return [str(self.binaries.kube_controller_manager),
                    f"--kubeconfig={k}", f"--authentication-kubeconfig={k}",
                    f"--authorization-kubeconfig={k}",
                    f"--bind-address={LOOPBACK}", f"--secure-port={p.controller_manager}",
                    f"--controllers={self._controllers_flag()}",
                    "--leader-elect=false", "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={sa_key}",
                    f"--root-ca-file={pki.ca.cert}",
                    f"--cluster-signing-cert-file={pki.ca.cert}",
                    f"--cluster-signing-key-file={pki.ca.key}",
                    f"--service-cluster-ip-range={self.service_cidr}",
                    # A kubelet under TCG is ~15x slower; don't mark it NotReady on a hiccup.
                    "--node-monitor-grace-period=120s",
                    "--profiling=false"]
        if name == "kube-scheduler":
            k = kc / "scheduler.kubeconfig"
            return [str(self.binaries.kube_scheduler),
                    f"--config={rd / 'scheduler-config.yaml'}",
                    f"--authentication-kubeconfig={k}", f"--authorization-kubeconfig={k}",
                    f"--bind-address={LOOPBACK}", f"--secure-port={p.scheduler}",
                    "--profiling=false"]
        raise ValueError(name)

    # ---- process records

    def _record(self, name: str) -> ProcessRecord | None:
        return ProcessRecord.read(self._pidfile(name))

    def _pid_if_alive(self, name: str) -> int | None:
        rec = self._record(name)
        return rec.pid if rec is not None and rec.alive() else None

    def _spawn(self, name: str) -> int:
        record = spawn_detached(self._argv(name), self._log(name))
        record.write(self._pidfile(name))
        return record.pid

    # ---- lifecycle

    def is_running(self) -> bool:
        """All four processes alive (not necessarily ready)."""
        return all(self._pid_if_alive(c) is not None for c in COMPONENTS)

    def check_ports_free(self, components: Sequence[str] = COMPONENTS) -> None:
        by = self.ports.by_component()
        for c in components:
            for port in by[c]:
                if port_in_use(port):
                    raise InputError(
                        f"port {port} (for {c}) on {LOOPBACK} is already in use; stop what "
                        "listens there or choose other lab ports", "control plane ports")

    def start(self, timeout: float = 300.0) -> None:
        """Start whatever is not running, then wait until everything is ready. If the whole
        control plane is already running and ready, do nothing. If starting fails, the
        processes this call started are stopped again (their logs stay) and the error names
        the component and its log."""
        if self.is_running() and self._ready_problems() == []:
            return
        self.prepare()
        for c in COMPONENTS:  # records of processes that died since: they would read as crashes
            if self._pid_if_alive(c) is None:
                self._pidfile(c).unlink(missing_ok=True)
        to_start = [c for c in COMPONENTS if self._pid_if_alive(c) is None]
        self.check_ports_free(to_start)  # all of them before anything is started
        started: list[str] = []
        try:
            for c in to_start:
                self._spawn(c)
                started.append(c)
                if c == "etcd":
                    # The apiserver waits for an unreachable etcd for a long time; wait here
                    # so that an etcd failure is reported as one.
                    self._wait(self._etcd_healthy, "etcd /health", min(timeout, 120.0))
                if c == "kube-apiserver":
                    self._wait(lambda: self._https_ok(self.ports.apiserver, "/readyz"),
                               "kube-apiserver /readyz", timeout)
                    self._ensure_rbac()
            self.wait_ready(timeout)
        except BaseException:
            self._stop_components(started)
            raise

    def _wait(self, ok: Callable[[], bool], what: str, timeout: float) -> None:
        def check() -> bool:
            dead = [c for c in COMPONENTS
                    if self._record(c) is not None and self._pid_if_alive(c) is None]
            if dead:
                c = dead[0]
                raise InfrastructureError(
                    f"{c} exited while waiting for {what}; last lines of {self._log(c)}:\n"
                    + _tail(self._log(c)))
            return ok()

        wait_until(check, timeout, what, 0.5, lambda: f"logs: {self.run_dir / 'logs'}")

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Wait until etcd, the apiserver's /readyz and the controller-manager's and
        scheduler's /healthz all answer OK; the error names what was not ready."""
        problems: list[str] = []

        def ready() -> bool:
            not_running = [c for c in COMPONENTS if self._pid_if_alive(c) is None]
            if not_running:
                c = not_running[0]
                raise InfrastructureError(
                    f"{c} is not running; last lines of {self._log(c)}:\n{_tail(self._log(c))}")
            problems[:] = self._ready_problems()
            return not problems

        wait_until(ready, timeout, "the control plane to be ready", 0.5,
                   lambda: f"not ready: {'; '.join(problems)} (logs: {self.run_dir / 'logs'})")

    def _ready_problems(self) -> list[str]:
        problems = []
        if not self._etcd_healthy():
            problems.append("etcd /health")
        if not self._https_ok(self.ports.apiserver, "/readyz"):
            problems.append("kube-apiserver /readyz")
        if not self._https_ok(self.ports.controller_manager, "/healthz", verify=False):
            problems.append("kube-controller-manager /healthz")
        if not self._https_ok(self.ports.scheduler, "/healthz", verify=False):
            problems.append("kube-scheduler /healthz")
        return problems

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM every component (reverse start order), SIGKILL what is left after `grace`
        seconds, and make sure no process and no listening port remains."""
        stopped = self._stop_components(COMPONENTS, grace)
        by = self.ports.by_component()
        # Only the ports of what we stopped: another program on 6443 is not ours to judge.
        mine = [p for c in stopped for p in by[c]]
        wait_until(lambda: not any(port_in_use(p) for p in mine), 10,
                   "the control plane's ports to close", 0.2,
                   lambda: f"still in use: {[p for p in mine if port_in_use(p)]}")

    def _stop_components(self, components: Sequence[str], grace: float = 20.0) -> list[str]:
        """Stop those of `components` that have a process record; return their names."""
        stopped: list[str] = []
        for c in reversed(COMPONENTS):
            if c not in components:
                continue
            rec = self._record(c)
            if rec is None:
                continue
            stopped.append(c)
            # Each component leads its own session and process group (spawn_detached), so the
            # group is exactly it and anything it spawned.
            rec.stop(grace, group=True, what=c)
            self._pidfile(c).unlink(missing_ok=True)
        return stopped

    def status(self) -> dict[str, Any]:
        """A summary: per component pid/running/ports/log, readiness, kubeconfig, server."""
        comps = []
        for c in COMPONENTS:
            pid = self._pid_if_alive(c)
            comps.append(asdict(ComponentStatus(
                name=c, pid=pid, running=pid is not None, ports=self.ports.by_component()[c],
                log=str(self._log(c)))))
        running = all(x["running"] for x in comps)
        problems = self._ready_problems() if running else ["not running"]
        return {
            "run_dir": str(self.run_dir),
            "server": self.server,
            "guest_server": self.guest_server,
            "admin_kubeconfig": str(self.admin_kubeconfig),
            "version": self.binaries.version,
            "etcd_version": self.binaries.etcd_version,
            "running": running,
            "ready": running and not problems,
            "not_ready": problems,
            "components": comps,
        }

    # ---- probes and API calls over loopback

    def _etcd_healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection(LOOPBACK, self.ports.etcd_client, timeout=3)
            conn.request("GET", "/health")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            return resp.status == 200 and b'"health":"true"' in body.replace(b" ", b"")
        except (OSError, http.client.HTTPException):
            return False

    def _admin_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        admin = self.pki.admin()
        ctx.load_cert_chain(str(admin.cert), str(admin.key))
        return ctx

    def _https_ok(self, port: int, path: str, verify: bool = True) -> bool:
        try:
            status, _ = self._https(port, "GET", path, verify=verify)
            return status == 200
        except (OSError, http.client.HTTPException, ssl.SSLError):
            return False

    def _https(self, port: int, method: str, path: str, body: dict[str, Any] | None = None,
               verify: bool = True) -> tuple[int, bytes]:
        if verify:
            ctx = self._admin_ssl()
        else:
            # controller-manager/scheduler serve /healthz with a self-signed loopback cert.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(LOOPBACK, port, context=ctx, timeout=10)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def _ensure_rbac(self) -> None:
        """Let the apiserver's kubelet-client identity use the kubelet API (logs, exec) even
        without system:masters. The Node authorizer for system:node:* is built in."""
        crb = {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": KUBELET_API_ADMIN_BINDING},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:kubelet-api-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": KUBELET_CLIENT_USER}],
        }
        status, body = self._https(self.ports.apiserver, "POST",
                                   "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", crb)
        if status not in (200, 201, 409):
            raise InfrastructureError(
                f"creating clusterrolebinding {KUBELET_API_ADMIN_BINDING} failed: HTTP {status} "
                f"{body[:300]!r}")


_CTRL_RE = re.compile(r"All controllers:\s*(.+?)\n\s*Disabled-by-default", re.S)


def _known_controllers(binary: Path, cache_file: Path) -> set[str]:
    """Controller names this kube-controller-manager knows (from its --help), cached per
    binary so that a restart does not pay for it again."""
    key = f"{binary}:{binary.stat().st_mtime_ns}"
    with contextlib.suppress(OSError, json.JSONDecodeError, KeyError):
        data = json.loads(cache_file.read_text())
        if data["key"] == key:
            return set(data["controllers"])
    try:
        out = run([binary, "--help"], f"`{binary} --help`", 60, check=False).stdout
    except InfrastructureError:
        return set()
    m = _CTRL_RE.search(out)
    names = {n.strip() for n in re.split(r"[,\s]+", m.group(1)) if n.strip()} if m else set()
    with contextlib.suppress(OSError):
        cache_file.write_text(json.dumps({"key": key, "controllers": sorted(names)}))
    return names
