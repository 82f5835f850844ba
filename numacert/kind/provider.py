"""`numacert run --provider kind`: kind clusters made for the policy under test, their
workers certified exactly as any node is, the clusters deleted at the end.

Without --matrix: one cluster whose worker runs the policy (--require FILE, else the
recommended low-latency combination: static CPU Manager, single-numa-node, Memory Manager
Static), certified by a plain run held to that policy (CFG-POLICY).

With --matrix, two ways through the combinations (--kind-way):
  in-place  one cluster; its worker is reconfigured for each combination by the matrix runner
            with the same procedure real nodes get (numacert.providers.procedure), reached with
            `docker exec` (testinfra's docker:// backend) instead of SSH;
  cluster   one cluster per combination, the worker's kubelet configured by kind/kubeadm at
            creation (numacert.kind.config), deleted after its certification.
Both write the same matrix reports. in-place is the default: measured faster here (see
docs/kind.md).

kind nodes see the host's CPUs and NUMA nodes: the checks that need two NUMA nodes skip with
their reason on a single-NUMA host (as on any node that has one).
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import click
import yaml

from numacert.errors import InfrastructureError, InputError
from numacert.kind import config as kind_config
from numacert.kind.cluster import (
    Cluster,
    KindClusters,
    find_kind,
    image_kubernetes_version,
)
from numacert.lab.binaries import DEFAULT_K8S_VERSION, parse_version
from numacert.matrix.resolve import Resolved, Status, raise_if_invalid, resolve, run_anyway
from numacert.matrix.spec import Matrix, load_matrix, matrix_from_dict
from numacert.proc import CommandFailed
from numacert.topology.model import Topology

DEFAULT_WAY = "in-place"
NODE_ACCESS = "docker://{node}"
# The worker's policy when the user names none: the combination most latency-critical pods
# are run under (the seed article's recommendation).
RECOMMENDED = {
    "cpuManagerPolicy": "static",
    "topologyManagerPolicy": "single-numa-node",
    "topologyManagerScope": "container",
    "memoryManagerPolicy": "Static",
}


@dataclass(frozen=True)
class KindSetup:
    kind_path: Path
    image: str  # node image
    minor: int
    cgroup_v1: bool
    topology: Topology  # the host's: kind nodes see it as it is
    probe_image: str


def _probe_image(given: str | None) -> str:
    if given:
        return given
    if Path("/bin/busybox").is_file():  # numacert's own test image, built locally
        from numacert.kind.node_image import test_image

        return test_image()
    from numacert.target import CLUSTER_IMAGE

    return CLUSTER_IMAGE


def setup(options: dict) -> KindSetup:
    """Everything a kind run needs before any cluster exists; InputError/InfrastructureError
    for what is missing (no cluster created)."""
    from numacert.kind.cluster import cgroup_v1
    from numacert.topology.sysfs import collect_local

    for flag in ("kubeconfig", "context", "nodes", "node_access", "assume"):
        if options.get(flag):
            raise InputError("the kind provider makes its own clusters and nodes",
                             f"--{flag.replace('_', '-')}")
    kind_path = find_kind(options.get("kind_bin"))
    v1 = cgroup_v1()  # also: the Docker daemon answers
    image = options.get("kind_image") or f"kindest/node:{DEFAULT_K8S_VERSION}"
    minor = parse_version(image_kubernetes_version(image))[1]
    return KindSetup(kind_path, image, minor, v1, collect_local(),
                     _probe_image(options.get("image")))


def cluster_spec(s: KindSetup, worker: dict) -> kind_config.KindClusterSpec:
    return kind_config.KindClusterSpec(image=s.image, k8s_minor=s.minor, workers=(worker,),
                                       cgroup_v1=s.cgroup_v1)


def resolve_on_kind(s: KindSetup, matrix: Matrix, run_unsupported: bool = False
                    ) -> list[Resolved]:
    """The matrix's combinations on a kind worker of this host (invalid ones: exit 2)."""
    from numacert.kubelet.parse import from_dict

    base = from_dict(kind_config.expected_kubelet(cluster_spec(s, {}), 0), "kind worker")
    resolved = resolve(matrix, base, s.topology, s.minor)
    raise_if_invalid(resolved, f"{matrix.source} on a kind worker")
    return run_anyway(resolved) if run_unsupported else resolved


def _policy_matrix(require: str | None) -> Matrix:
    if require:
        from numacert.kubelet.parse import load_fragment

        load_fragment(require, "--require")
        fragment = yaml.safe_load(Path(require).read_text())
        source = require
    else:
        fragment, source = dict(RECOMMENDED), "the recommended policy"
    return matrix_from_dict({"name": "kind", "description": "the policy of a kind run",
                             "include": [{"id": "policy", "kubelet": fragment}]}, source)


def _out(options: dict) -> Path:
    from numacert.cli.run_cmd import _default_output_dir

    out = Path(options["output_dir"]) if options.get("output_dir") else _default_output_dir()
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_kind(options: dict) -> int:
    if options.get("ignore_opt_in_label"):
        raise InputError("kind workers are numacert's own: they carry the label",
                         "--ignore-opt-in-label")
    way = options.get("kind_way") or DEFAULT_WAY
    for flag in ("kind_way", "run_unsupported"):
        if options.get(flag) and not options.get("matrix"):
            raise InputError("only with --matrix", f"--{flag.replace('_', '-')}")
    matrix = load_matrix(options["matrix"]) if options.get("matrix") else None
    if matrix is None:
        policy = _policy_matrix(options.get("require"))
    elif options.get("require"):
        raise InputError("a matrix run requires each combination itself", "--require")
    s = setup(options)
    # SIGTERM (a CI job cancelled) must delete the clusters as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if matrix is None:
            return _run_policy(s, policy, options)
        if way == "in-place":
            return _run_matrix_in_place(s, matrix, options)
        return _run_matrix_cluster_per_combination(s, matrix, options)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:  # noqa: ANN001 - signal handler signature
    raise KeyboardInterrupt


def _cluster_options(options: dict, cluster: Cluster, s: KindSetup) -> dict:
    return {**options, "kubeconfig": str(cluster.kubeconfig), "context": None,
            "nodes": ",".join(cluster.workers), "node_access": NODE_ACCESS,
            "image": s.probe_image, "provider": None, "keep_lab": False}


def _start(clusters: KindClusters, s: KindSetup, worker: dict, log: Path) -> Cluster:
    cluster = clusters.create(cluster_spec(s, worker), log)
    clusters.load_image(cluster, s.probe_image)
    return cluster


def _run_policy(s: KindSetup, policy: Matrix, options: dict) -> int:
    from numacert.cli.run_cmd import certify
    from numacert.matrix.runner import managed_fields

    (resolved,) = resolve_on_kind(s, policy)
    if resolved.status == Status.UNSUPPORTED:
        # Still certified: the kubelet runs it, and each check this host cannot exercise
        # skips with its reason (the verdict says so), as on any node of this hardware.
        click.echo(f"kind: note: on this host {resolved.reason} ({resolved.code}); the checks "
                   "that need it will skip")
    out = _out(options)
    fields = managed_fields(resolved)
    require = out / "require.yaml"
    require.write_text(yaml.safe_dump({k: v for k, v in fields.items() if v is not None},
                                      sort_keys=False))
    with KindClusters(s.kind_path, options.get("keep_cluster", False), click.echo) as clusters:
        cluster = _start(clusters, s, fields, out / "kind.log")
        click.echo(f"kind: cluster {cluster.name} up in {cluster.created_s:.0f}s; certifying "
                   f"{', '.join(cluster.workers)}")
        return certify({**_cluster_options(options, cluster, s), "require": str(require),
                        "output_dir": str(out), "matrix": None})


def _run_matrix_in_place(s: KindSetup, matrix: Matrix, options: dict) -> int:
    from numacert.cli.matrix_cmd import run_matrix

    resolve_on_kind(s, matrix)  # invalid combinations: exit 2 before any cluster exists
    out = _out(options)
    with KindClusters(s.kind_path, options.get("keep_cluster", False), click.echo) as clusters:
        cluster = _start(clusters, s, {}, out / "kind.log")
        click.echo(f"kind: cluster {cluster.name} up in {cluster.created_s:.0f}s; the matrix "
                   f"runs on {', '.join(cluster.workers)} in place")
        return run_matrix({**_cluster_options(options, cluster, s), "provider": "ssh",
                           "output_dir": str(out), "ignore_opt_in_label": False})


def _one_cluster(clusters: KindClusters, s: KindSetup, r: Resolved, options: dict, out: Path,
                 record, track) -> None:
    """Create the cluster of combination `r`, certify its worker, delete it."""
    from numacert.matrix.runner import RunSettings, certify_child, child_args, managed_fields

    record.update(r.id, status="running", dir=r.id)
    (out / r.id).mkdir(parents=True, exist_ok=True)
    click.echo(f"kind: {r.id}: creating its cluster")
    started = time.monotonic()
    try:
        cluster = _start(clusters, s, managed_fields(r), out / r.id / "kind.log")
    except (InfrastructureError, CommandFailed) as exc:
        record.update(r.id, status="error", reason=f"cluster creation failed: {exc}")
        click.echo(f"kind: {r.id}: cluster creation failed: {exc}")
        clusters.delete_all()
        return
    apply_s = time.monotonic() - started
    worker = cluster.workers[0]
    record.update(r.id, node=worker)
    settings = RunSettings(child_args(_cluster_options(options, cluster, s)),
                           options["junit_context"])
    certify_s, code = certify_child(out / r.id, worker, r, s.topology, settings, track)
    timings = {"apply": round(apply_s, 1), "certify": round(certify_s, 1)}
    if code == 2:  # the child refused to start: nothing was certified
        record.update(r.id, status="error", timings=timings,
                      reason="numacert run refused (see run.log)")
    else:
        record.update(r.id, status="run", timings=timings)
    click.echo(f"kind: {r.id}: certified in {certify_s:.0f}s (exit {code})")
    if not options.get("keep_cluster"):
        clusters.delete(cluster)


def _run_matrix_cluster_per_combination(s: KindSetup, matrix: Matrix, options: dict) -> int:
    from numacert.cli.matrix_cmd import report_outcome, show_unsupported
    from numacert.matrix.runner import CHILD_STOP_TIMEOUT, MatrixRecord, Prepared
    from numacert.reports.matrix import write_matrix_reports

    resolved = resolve_on_kind(s, matrix, options.get("run_unsupported", False))
    show_unsupported(resolved)
    runnable = [r for r in resolved if r.status == Status.OK]
    if not runnable:
        raise InputError(f"no combination of {matrix.source} can run on a kind worker here",
                         "--matrix")
    out = _out(options)
    record = MatrixRecord(out, Prepared(matrix, None, {}, resolved, []))
    child: list[subprocess.Popen] = []

    def track(proc: subprocess.Popen | None) -> None:
        child.clear()
        if proc is not None:
            child.append(proc)

    interrupted = False
    with KindClusters(s.kind_path, options.get("keep_cluster", False), click.echo) as clusters:
        try:
            for r in runnable:
                _one_cluster(clusters, s, r, options, out, record, track)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the child, then the clusters go
            interrupted = True
            click.echo("numacert: interrupted; stopping the run and deleting the clusters")
            for proc in list(child):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(timeout=CHILD_STOP_TIMEOUT)
                    except subprocess.TimeoutExpired:
                        proc.kill()
        finally:
            record.finish(interrupted)
    verdict = write_matrix_reports(out, options["junit_context"])
    return report_outcome(verdict, interrupted, [])
