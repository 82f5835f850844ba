"""Run a policy matrix: apply each combination to a node, certify it, put the node back.

prepare()  reads everything and changes nothing: the target, the opt-in labels, the journals,
           each node's kubelet files, topology and version; every combination resolved per
           node (invalid ones rejected, exit 2), and the order (numacert.matrix.schedule).
           `numacert plan --matrix` stops here.
execute()  one worker thread per node runs that node's queue: apply (the providers'
           procedure, journaled), then one `numacert run` of the node as a child process (so
           every combination is certified exactly as a plain run certifies a node, with the
           combination as --require), then the next. Whatever happens (failure, Ctrl-C,
           SIGTERM) every node this run changed is restored before it returns; the reports
           of numacert.reports.matrix are written from what the children wrote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from numacert.errors import InputError
from numacert.kubelet.parse import from_dict
from numacert.kubelet.render import to_dict
from numacert.matrix.resolve import (
    MANAGED_FIELDS,
    Resolved,
    Status,
    raise_if_invalid,
    resolve,
    run_anyway,
)
from numacert.matrix.schedule import queues, schedule
from numacert.matrix.spec import Matrix
from numacert.providers import node_handle, provider_for
from numacert.providers.journal import Journal
from numacert.providers.procedure import NodeHandle, Original, Reconfigurer
from numacert.providers.restore import RestoreOutcome, restore_entry
from numacert.providers.safety import check_opt_in
from numacert.topology.model import Topology

CHILD_STOP_TIMEOUT = 180.0  # a child run needs this long to delete its pods after SIGINT
# Tells a child `numacert run` which runner's journal it may ignore: the node it certifies is
# changed on purpose, by its parent (any other run is refused while the journal exists).
ENV_RUNNER = "NUMACERT_MATRIX_RUNNER"
BAD_INPUT = 2


@dataclass
class NodePrep:
    """One node as found before the run."""

    handle: NodeHandle
    original: Original
    topology: Topology
    k8s_minor: int
    allocatable: dict[str, str]
    resolved: list[Resolved]


@dataclass
class Prepared:
    matrix: Matrix
    target: Any  # numacert.target.Target
    nodes: dict[str, NodePrep]
    resolved: list[Resolved]  # as on every node (they must agree)
    rounds: list
    refusals: list[str] = field(default_factory=list)  # why a run would refuse to start

    @property
    def runnable(self) -> list[Resolved]:
        return [r for r in self.resolved if r.status == Status.OK]


def managed_fields(resolved: Resolved) -> dict[str, Any]:
    """The KubeletConfiguration fields a combination writes; None removes a field (it then
    takes the kubelet's default)."""
    rendered = to_dict(resolved.config)
    return {key: rendered.get(key) for key in MANAGED_FIELDS}


def prepare(matrix: Matrix, target, reconfigurer: Reconfigurer, ignore_label: bool,
            echo: Callable[[str], None], strict: bool = True,
            run_unsupported: bool = False) -> Prepared:
    """Everything `numacert plan --matrix` shows and `run --matrix` needs; changes nothing.
    InputError for what the user must fix (an invalid combination, nodes that disagree on
    what they support); with `strict`, also for a node that may not be changed (no opt-in
    label, a journal says it is changed), before any pod is created."""
    from numacert.probes.discovery import node_topology
    from numacert.probes.kube import temporary_namespace

    refusals = []
    try:
        check_opt_in(target.core, target.nodes, ignore_label)
    except InputError as exc:
        if strict:
            raise
        refusals.append(str(exc))
    handles = {name: node_handle(target, name) for name in target.nodes}
    for handle in handles.values():
        try:
            reconfigurer.refuse_if_changed(handle)
        except InputError as exc:
            if strict:
                raise
            refusals.append(str(exc))
    nodes: dict[str, NodePrep] = {}
    with temporary_namespace(target.core, "numacert-matrix") as namespace:
        for name, handle in handles.items():
            echo(f"{name}: reading the kubelet's files, version and topology")
            original = reconfigurer.preflight(handle)
            source = f"{name}:{original.layout.config_file}"
            try:
                base = from_dict(yaml.safe_load(original.config_bytes.decode()), source)
            except yaml.YAMLError as exc:
                raise InputError(f"not YAML: {exc}", source) from None
            status = target.core.read_node(name).status
            minor = int(status.node_info.kubelet_version.lstrip("v").split(".")[1])
            topology = node_topology(target.core, namespace, name, target.image)
            resolved = resolve(matrix, base, topology, minor)
            raise_if_invalid(resolved, f"{matrix.source} on node {name}")
            if run_unsupported:
                resolved = run_anyway(resolved)
            nodes[name] = NodePrep(handle, original, topology, minor,
                                   dict(status.allocatable or {}), resolved)
    first_name, first = next(iter(nodes.items()))
    for name, prep in nodes.items():
        for a, b in zip(first.resolved, prep.resolved, strict=True):
            if a.status != b.status:
                raise InputError(
                    f"nodes {first_name} and {name} differ: combination {a.id} is {a.status} on "
                    f"{first_name} but {b.status} on {name} ({b.reason or a.reason}); run the "
                    "matrix on nodes of one kind at a time",
                    "--nodes",
                )
    runnable = [r for r in first.resolved if r.status == Status.OK]
    rounds = schedule(runnable, list(nodes)) if runnable else []
    return Prepared(matrix, target, nodes, first.resolved, rounds, refusals)


# ---- execute -----------------------------------------------------------------------------


class _Interrupted(Exception):
    """SIGTERM, turned into something the main thread can stop on like Ctrl-C."""


class MatrixRecord:
    """matrix.json (the contract numacert.reports.matrix reads), rewritten at every change
    so a killed run leaves a readable record."""

    def __init__(self, out: Path, prepared: Prepared) -> None:
        self.path = out / "matrix.json"
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {
            "matrix": prepared.matrix.name,
            "source": str(prepared.matrix.source),
            "started": _now(),
            "finished": None,
            "interrupted": False,
            "combinations": [
                {
                    "id": r.id,
                    "labels": dict(r.combination.labels),
                    "kubelet": dict(r.combination.kubelet),
                    "status": "not-run" if r.status == Status.OK else "unsupported",
                    "reason": r.coded_reason,
                    "run_anyway": r.run_anyway,  # unsupported here, run by --run-unsupported
                    "node": None,
                    "dir": None,
                    "timings": {},
                }
                for r in prepared.resolved
            ],
        }
        self.save()

    def update(self, combination: str, **fields: Any) -> None:
        with self.lock:
            entry = next(c for c in self.data["combinations"] if c["id"] == combination)
            entry.update(fields)
            self._write()

    def finish(self, interrupted: bool) -> None:
        with self.lock:
            self.data["finished"] = _now()
            self.data["interrupted"] = interrupted
            self._write()

    def save(self) -> None:
        with self.lock:
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class RunSettings:
    """What each combination's `numacert run` child gets besides the node and --require."""

    child_args: list[str]  # --kubeconfig/--context/--image/--node-access/...
    junit_context: str


class MatrixExecution:
    def __init__(self, prepared: Prepared, reconfigurer: Reconfigurer, out: Path,
                 settings: RunSettings, echo: Callable[[str], None]) -> None:
        self.prepared = prepared
        self.reconfigurer = reconfigurer
        self.out = out
        self.settings = settings
        self.echo = echo
        self.record = MatrixRecord(out, prepared)
        self.stop = threading.Event()
        self.children: dict[str, subprocess.Popen] = {}
        self.children_lock = threading.Lock()

    # One thread per node. Each combination's run makes and deletes its own namespace: a
    # namespace shared by a node's queue would save the namespace controller's seconds per
    # combination, but a runner killed with SIGKILL would leave it (it is not journaled).
    def _node_worker(self, node: str, combos: list[Resolved]) -> None:
        prep = self.prepared.nodes[node]
        for resolved in combos:
            if self.stop.is_set():
                return
            self.record.update(resolved.id, node=node, status="running", dir=resolved.id)
            self.echo(f"{node}: applying {resolved.id}")
            try:
                apply_s = self.reconfigurer.apply(
                    prep.handle, prep.original, managed_fields(resolved), resolved.id
                )
            except Exception as exc:  # noqa: BLE001 - recorded; the node is restored at the end
                self.record.update(resolved.id, status="error", reason=f"apply failed: {exc}")
                self.echo(f"{node}: {resolved.id}: apply failed: {exc}")
                continue
            if self.stop.is_set():
                self.record.update(resolved.id, status="not-run", timings={"apply": apply_s})
                return
            certify_s, code = self._certify(node, resolved)
            timings = {"apply": round(apply_s, 1), "certify": round(certify_s, 1)}
            if code == BAD_INPUT:  # the child refused to start: nothing was certified
                self.record.update(resolved.id, status="error", timings=timings,
                                   reason=f"numacert run refused: {self._last_line(resolved)}")
            else:
                self.record.update(resolved.id, status="run", timings=timings)
            self.echo(f"{node}: {resolved.id}: certified in {certify_s:.0f}s (exit {code})")

    def _certify(self, node: str, resolved: Resolved) -> tuple[float, int]:
        return certify_child(self.out / resolved.id, node, resolved,
                             self.prepared.nodes[node].topology, self.settings,
                             lambda proc: self._track(node, proc))

    def _track(self, node: str, proc: subprocess.Popen | None) -> None:
        with self.children_lock:
            if proc is None:
                self.children.pop(node, None)
            else:
                self.children[node] = proc

    def _last_line(self, resolved: Resolved) -> str:
        lines = (self.out / resolved.id / "run.log").read_text().strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def _stop_children(self) -> None:
        """Ask each child run to stop the way Ctrl-C does (it deletes its pods), then wait."""
        with self.children_lock:
            live = list(self.children.values())
        for proc in live:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + CHILD_STOP_TIMEOUT
        for proc in live:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()

    def run(self) -> tuple[bool, list[RestoreOutcome]]:
        """Run every node's queue; restore every node. Returns (interrupted, restores)."""
        interrupted = False
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
        pool = ThreadPoolExecutor(max_workers=max(1, len(self.prepared.nodes)),
                                  thread_name_prefix="numacert-node")
        try:
            futures = [pool.submit(self._node_worker, node, combos)
                       for node, combos in queues(self.prepared.rounds).items()]
            pending = set(futures)
            while pending:  # short waits: Ctrl-C and SIGTERM reach the main thread at once
                _, pending = wait_futures(pending, timeout=1.0)
            for f in futures:
                f.result()  # a bug in a worker must not pass silently
        except (KeyboardInterrupt, _Interrupted):
            interrupted = True
            self.echo("numacert: interrupted; stopping the runs and restoring the nodes")
            self.stop.set()
            self._stop_children()
            pool.shutdown(wait=True)  # workers finish the step they are in (bounded waits)
        finally:
            pool.shutdown(wait=True)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the restore must not be cut short
            restores = self._restore_all()
            signal.signal(signal.SIGTERM, previous)
            self.record.finish(interrupted)
        return interrupted, restores

    def _restore_all(self) -> list[RestoreOutcome]:
        out = []
        journal = self.reconfigurer.journal
        for node in self.prepared.nodes:
            entry = journal.read(node)
            if entry is None:
                continue  # never changed (or already restored)
            self.echo(f"{node}: restoring the original kubelet configuration")
            outcome = restore_entry(entry, journal, self.echo, self.prepared.target)
            self.echo(f"{node}: {outcome.message}")
            out.append(outcome)
        return out


def certify_child(run_dir: Path, node: str, resolved: Resolved, topology: Topology,
                  settings: RunSettings,
                  track: Callable[[subprocess.Popen | None], None]) -> tuple[float, int]:
    """Certify `node` under `resolved` exactly as a plain `numacert run` does, in a child
    process writing into `run_dir` (run.log, the reports), with the combination as --require
    and `topology` handed over (no collector pod). `track` gets the child while it runs (so an
    interrupt can stop it) and None after. Returns (seconds, exit status)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    require = run_dir / "require.yaml"
    fragment = {k: v for k, v in managed_fields(resolved).items() if v is not None}
    require.write_text(yaml.safe_dump(fragment, sort_keys=False))
    snapshot = run_dir / "topology.json"
    snapshot.write_text(json.dumps({node: topology.to_dict()}))
    argv = [sys.executable, "-m", "numacert.cli.main", "run", "--nodes", node,
            "--require", str(require), "--output-dir", str(run_dir),
            "--topology-snapshot", str(snapshot),
            "--junit-context", settings.junit_context, *settings.child_args]
    start = time.monotonic()
    with (run_dir / "run.log").open("w") as log:
        env = dict(os.environ, **{ENV_RUNNER: str(os.getpid())})
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
        track(proc)
        code = proc.wait()
        track(None)
    return time.monotonic() - start, code


def _raise_interrupted(signum, frame) -> None:  # noqa: ANN001 - signal handler signature
    raise _Interrupted()


def make_reconfigurer(target, echo: Callable[[str], None]) -> Reconfigurer:
    return Reconfigurer(provider_for(target), Journal(), echo)


def child_args(options: dict) -> list[str]:
    args = []
    for flag in ("kubeconfig", "context", "image", "node_access"):
        if options.get(flag):
            args += [f"--{flag.replace('_', '-')}", str(options[flag])]
    if options.get("no_kubelet_restart"):
        args.append("--no-kubelet-restart")
    if options.get("checks", "all") != "all":
        args += ["--checks", options["checks"]]
    for check in options.get("check") or ():
        args += ["--check", check]
    args.append("--keep-lab")  # the matrix run owns the lab's lifetime, not each child
    return args

