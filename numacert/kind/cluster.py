"""kind clusters numacert creates, uses and deletes: one job, the cluster's lifetime.

- The kind binary comes from --kind-bin or PATH; nothing is downloaded (pytest-kind would
  fetch kind and kubectl from the internet: NumacertKindCluster turns that off).
- A cluster is made from a KindClusterSpec (numacert.kind.config); its name is a hash of that
  spec. pytest-kind reuses any cluster of the same name whatever its config, so numacert checks
  first: a cluster of that name is reused only when every node carries the spec's hash label
  (a cluster numacert made from this spec and kept with --keep-cluster); any other is refused,
  and left alone.
- `KindClusters` is a context manager: every cluster it creates is deleted when it exits,
  on failure, Ctrl-C and SIGTERM too, unless `keep`.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_kind.cluster import KindCluster

from numacert.errors import InfrastructureError, InputError
from numacert.kind import config as kind_config
from numacert.kind.docker import docker, ensure_image, require_daemon
from numacert.proc import run
from numacert.state import state_root

CREATE_TIMEOUT_S = 600.0
DELETE_TIMEOUT_S = 180.0
# kind creates clusters with this prefix only when numacert asks it to.
NAME_PREFIX = "numacert-"
OFFLINE_IMAGE_REPO = "numacert.local/kind-node"


def find_kind(kind_bin: str | None) -> Path:
    """The kind binary: --kind-bin when given, else `kind` on PATH."""
    if kind_bin:
        path = Path(kind_bin).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise InputError(f"not an executable file: {kind_bin}", "--kind-bin")
        return path.absolute()
    found = shutil.which("kind")
    if not found:
        raise InputError("no kind binary: put `kind` on PATH or give --kind-bin (numacert "
                         "downloads nothing; `go install sigs.k8s.io/kind@v0.33.0` builds it)",
                         "--kind-bin")
    return Path(found)


def workdir() -> Path:
    """Where generated configs, mounted files and kubeconfigs live: the state root, not the
    user's current directory (pytest-kind would write ./.pytest-kind)."""
    return state_root() / "kind"


class NumacertKindCluster(KindCluster):
    """pytest-kind's cluster object (its image loading and kubectl helper), without its
    downloads and without its ./.pytest-kind directory. Creation and deletion stay numacert's:
    pytest-kind's create reuses any cluster of the name, and deleting must also drop journals."""

    def __init__(self, name: str, kubeconfig: Path, kind_path: Path,
                 kubectl_path: Path | None = None) -> None:
        # KindCluster.__init__ would mkdir ./.pytest-kind/<name>: set the same fields instead.
        self.name = name
        self.image = None
        self.path = kubeconfig.parent
        self.kubeconfig_path = kubeconfig
        self.kind_path = kind_path
        self.kubectl_path = kubectl_path or Path(shutil.which("kubectl") or "kubectl")
        self.platform = platform.system().lower()

    def ensure_kind(self) -> None:
        if not self.kind_path.exists():
            raise InputError(f"no kind binary at {self.kind_path}", "--kind-bin")

    def ensure_kubectl(self) -> None:
        if not self.kubectl_path.exists():
            raise InfrastructureError("no kubectl on PATH (numacert downloads nothing)")


@dataclass
class Cluster:
    name: str
    spec: kind_config.KindClusterSpec
    rendered: kind_config.RenderedConfig
    kind: NumacertKindCluster
    control_plane: str
    workers: list[str]
    created_s: float
    reused: bool

    @property
    def kubeconfig(self) -> Path:
        return self.kind.kubeconfig_path


def cgroup_v1() -> bool:
    """True when the Docker host runs cgroup v1 (kind nodes then need failCgroupV1: false)."""
    return str(require_daemon().get("CgroupVersion", "2")) == "1"


def image_kubernetes_version(image: str) -> str:
    """The Kubernetes version a kind node image carries (/kind/version, as kind reads it);
    pulls the image first if Docker lacks it, as kind itself would."""
    ensure_image(image)
    proc = docker("run", "--rm", "--entrypoint", "cat", image, "/kind/version",
                  what=f"reading /kind/version of {image}", timeout=120, check=False)
    version = proc.stdout.strip()
    if proc.returncode != 0 or not version.startswith("v"):
        raise InputError(f"{image} is not a kind node image (no /kind/version)", "--kind-image")
    return version


def existing_clusters(kind_path: Path) -> list[str]:
    out = run([kind_path, "get", "clusters"], "kind get clusters", 60).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def _node_labels(kind_path: Path, name: str, kubeconfig: Path) -> dict[str, dict[str, str]]:
    """{node: labels} of an existing cluster, through its API server; its kubeconfig is
    written to `kubeconfig` on the way (a reused cluster is then reached through it)."""
    from kubernetes import client, config

    kubeconfig.parent.mkdir(parents=True, exist_ok=True)
    with kubeconfig.open("wb") as out:
        run([kind_path, "get", "kubeconfig", "--name", name], f"kind get kubeconfig {name}", 60,
            stdout=out)
    api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    nodes = api.list_node(_request_timeout=30).items
    return {n.metadata.name: dict(n.metadata.labels or {}) for n in nodes}


class KindClusters:
    """Creates clusters on demand and deletes them all at exit (unless `keep`)."""

    def __init__(self, kind_path: Path, keep: bool = False,
                 echo: Callable[[str], None] = print) -> None:
        self.kind_path = kind_path
        self.keep = keep
        self.echo = echo
        self.created: list[Cluster] = []

    def __enter__(self) -> KindClusters:
        require_daemon()
        return self

    def __exit__(self, *exc) -> None:
        self.delete_all()

    def delete_all(self) -> None:
        # SIGTERM must not cut a deletion short; Ctrl-C during it is ignored the same way.
        with _signals_held():
            for cluster in reversed(self.created):
                if self.keep:
                    self.echo(f"kind: keeping cluster {cluster.name} (--keep-cluster); "
                              f"kubeconfig {cluster.kubeconfig}")
                else:
                    self.delete(cluster)
            self.created = []

    def delete(self, cluster: Cluster) -> None:
        delete_cluster(self.kind_path, cluster.name)
        if cluster in self.created:
            self.created.remove(cluster)
        self.echo(f"kind: deleted cluster {cluster.name}")

    def create(self, spec: kind_config.KindClusterSpec, log: Path | None = None) -> Cluster:
        """Create the cluster for `spec` (or reuse the one numacert kept for it)."""
        rendered = kind_config.render(spec, workdir())
        name = rendered.name
        control_plane, workers = kind_config.node_names(name, len(spec.workers))
        handle = NumacertKindCluster(name, workdir() / name / "kubeconfig", self.kind_path)
        cluster = Cluster(name, spec, rendered, handle, control_plane, workers, 0.0, False)
        started = time.monotonic()
        if name in existing_clusters(self.kind_path):
            labels = _node_labels(self.kind_path, name, cluster.kubeconfig)
            want = rendered.hash[:12]
            if sorted(labels) != sorted([control_plane, *workers]) or any(
                    node.get(kind_config.LABEL_CONFIG) != want for node in labels.values()):
                raise InputError(
                    f"a kind cluster named {name} exists but was not made from this "
                    f"configuration (label {kind_config.LABEL_CONFIG}={want} missing); numacert "
                    f"never reuses it: delete it with `kind delete cluster --name {name}`",
                    "--provider kind")
            self.echo(f"kind: reusing cluster {name} (kept by an earlier run, same config)")
            kind_config.write(rendered)
            cluster.reused = True
            if not self.keep:
                self.created.append(cluster)
        else:
            kind_config.write(rendered)
            for node in forget_nodes_of(name):  # its nodes are new: nothing to restore
                self.echo(f"kind: dropped the stale journal of {node} (its cluster is gone)")
            self.echo(f"kind: creating cluster {name} ({len(workers)} worker(s), "
                      f"image {spec.image})")
            self.created.append(cluster)  # deleted at exit even if creation fails half-way
            run([self.kind_path, "create", "cluster", "--name", name, "--config",
                 rendered.path, "--kubeconfig", cluster.kubeconfig, "--wait", "3m", "--retain"],
                f"kind create cluster {name}", CREATE_TIMEOUT_S, log)
        cluster.created_s = time.monotonic() - started
        if spec.image.startswith(OFFLINE_IMAGE_REPO):
            _remove_coredns(cluster)
        return cluster

    def load_image(self, cluster: Cluster, image: str) -> None:
        """Load `image` from Docker's store into the nodes (pytest-kind's `kind load
        docker-image`): the nodes never pull it. Docker pulls it first if it lacks it."""
        ensure_image(image)
        try:
            cluster.kind.load_docker_image(image)
        except subprocess.CalledProcessError as exc:
            raise InfrastructureError(
                f"kind load docker-image {image} into {cluster.name} failed (exit "
                f"{exc.returncode})") from None


def _remove_coredns(cluster: Cluster) -> None:
    """The offline node image has no coredns image: its pods would sit in ImagePullBackOff
    holding 200m of CPU requests. Certification needs no DNS, so the Deployment goes."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    apps = client.AppsV1Api(config.new_client_from_config(str(cluster.kubeconfig)))
    try:
        apps.delete_namespaced_deployment("coredns", "kube-system", _request_timeout=30)
    except ApiException as exc:
        if exc.status != 404:
            raise InfrastructureError(
                f"removing coredns from {cluster.name}: {exc.reason}") from None


@contextmanager
def _signals_held() -> Iterator[None]:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to hold
        previous = {}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def delete_cluster(kind_path: Path, name: str) -> None:
    """Delete cluster `name`, the files numacert generated for it and any journal of its
    nodes (a matrix run killed in the middle: the changes it journaled went with the nodes)."""
    run([kind_path, "delete", "cluster", "--name", name], f"kind delete cluster {name}",
        DELETE_TIMEOUT_S)
    shutil.rmtree(workdir() / name, ignore_errors=True)
    forget_nodes_of(name)


def forget_nodes_of(name: str) -> list[str]:
    """Drop the runner's journal entries of cluster `name`'s nodes; returns their names. Node
    names derive from the cluster name (a hash of its spec), so a stale entry would otherwise
    refuse every later run of the same spec, and no restore could reach its node."""
    from numacert.providers.journal import Journal

    journal = Journal()
    prefix = f"{name}-"
    dropped = [node for node in journal.nodes() if node.startswith(prefix)]
    for node in dropped:
        journal.remove(node)
    return dropped


def own_clusters(kind_path: Path) -> list[str]:
    """Clusters whose names numacert gives (leftovers of a killed run)."""
    return [n for n in existing_clusters(kind_path) if n.startswith(NAME_PREFIX)]
