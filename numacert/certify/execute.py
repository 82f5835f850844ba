"""Run a plan on a node and record what the kubelet did: plain observations, no verdicts.

Pods are created in plan order, each once the one before is admitted (the kubelet admits them
in that order, as the oracle replays them), and observed when they run or are rejected: phase,
reason, message, the Warning event of a rejection, and every container's probe log. After
phase A's pods run, the checkpoint re-reads every container once the reconcile period has
passed, snapshots the kubelet's state files and admission metrics, and restarts the kubelet
where node access allows.

Every failure here is infrastructure (a timeout, an API error, a missing image): it raises, and
the fixture that called it turns it into a JUnit error, never a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from numacert.certify.plan import Plan, PodPlan
from numacert.errors import InfrastructureError
from numacert.probes.kube import (
    POD_POLL,
    create_pod,
    delete_pod,
    pod_events,
    pod_log,
    ready_heartbeat,
    request_delete,
    wait_admitted,
    wait_pod,
    wait_ready_after,
)
from numacert.probes.metrics import admission_counters
from numacert.probes.report import REPORT_INTERVAL, ProbeLog, View, parse_log
from numacert.wait import wait_until

REJECTION_EVENT_TIMEOUT = 30.0


@dataclass
class PodObservation:
    name: str
    phase: str
    reason: str | None
    message: str | None
    events: list[tuple[str, str, str]]
    logs: dict[str, ProbeLog]  # container -> its log when the pod was first observed
    later: dict[str, View] = field(default_factory=dict)  # after the reconcile period
    after_restart: dict[str, View] = field(default_factory=dict)
    phase_after_restart: str | None = None
    uid: str | None = None

    @property
    def admitted(self) -> bool:
        return self.phase != "Failed"

    def view(self, container: str) -> View | None:
        log = self.logs.get(container)
        return log.first if log else None


@dataclass
class NodeRun:
    node: str
    plan: Plan
    pods: dict[str, PodObservation] = field(default_factory=dict)
    state_files: dict | None = None  # at the checkpoint; None without node access
    state_files_end: dict | None = None  # after every pod is gone
    metrics_before: dict[str, float] | None = None
    metrics_after: dict[str, float] | None = None
    metrics_error: str | None = None
    # read just before and after the kubelet restart, which sets every counter back to 0
    metrics_at_restart: tuple[dict[str, float], dict[str, float]] | None = None
    restarted: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    pod_start_seconds: dict[str, float] = field(default_factory=dict)

    def metric_delta(self, name: str) -> float:
        """How much a counter grew over the run, across a kubelet restart."""
        before, after = self.metrics_before or {}, self.metrics_after or {}
        if self.metrics_at_restart is None:
            return after.get(name, 0) - before.get(name, 0)
        stopped, started = self.metrics_at_restart
        return (stopped.get(name, 0) - before.get(name, 0)) + (
            after.get(name, 0) - started.get(name, 0)
        )


def _containers(plan: PodPlan) -> list[str]:
    spec = plan.manifest["spec"]
    return [c["name"] for c in spec.get("initContainers", [])] + [
        c["name"] for c in spec["containers"]
    ]


def _running_containers(plan: PodPlan) -> list[str]:
    spec = plan.manifest["spec"]
    sidecars = [c["name"] for c in spec.get("initContainers", []) if c.get("restartPolicy")]
    return sidecars + [c["name"] for c in spec["containers"]]


class Runner:
    """Executes one plan on one node in one namespace."""

    def __init__(
        self,
        target,
        namespace: str,
        node: str,
        reconcile_seconds: float,
        restart: bool,
        progress: Callable[[str], None] | None = None,
        pod_timeout: float = 300.0,
    ) -> None:
        self.target = target
        self.core = target.core
        self.namespace = namespace
        self.node = node
        self.reconcile_seconds = reconcile_seconds
        self.restart = restart
        self.progress = progress or (lambda _msg: None)
        self.pod_timeout = pod_timeout

    def run(self, plan: Plan, barriers: set[str] | None = None) -> NodeRun:
        """Run `plan`. Pods in `barriers` change the shared pool (they take exclusive CPUs):
        every pod before one is fully observed before it is created, so no shared container
        starts while the pool is still changing. Other pods are created as soon as the one
        before them is admitted, and observed together: the kubelet admits in creation order,
        and their container starts overlap."""
        barriers = set() if barriers is None else barriers
        run = NodeRun(self.node, plan)
        access = self.target.access(self.node)
        run.metrics_before = self._metrics(run)
        for phase in plan.phases:
            start = time.monotonic()
            pending: list[tuple[PodPlan, str, float]] = []
            for pod_plan in phase.adds:
                if pod_plan.name in barriers:
                    self._observe_all(pending, run)
                self.progress(f"{self.node}: pod {pod_plan.name} ({pod_plan.purpose})")
                pending.append(self._create(pod_plan))
            self._observe_all(pending, run)
            run.timings[f"phase {phase.name} pods"] = time.monotonic() - start
            if phase.checkpoint:
                start = time.monotonic()
                self._checkpoint(phase.adds, run, access)
                run.timings["checkpoint"] = time.monotonic() - start
            start = time.monotonic()
            self._delete(phase.deletes)
            run.timings[f"phase {phase.name} deletes"] = time.monotonic() - start
        run.metrics_after = self._metrics(run)
        if access is not None:
            run.state_files_end = access.state_files()
        return run

    # ---- one pod ------------------------------------------------------------------------
    def _create(self, pod_plan: PodPlan) -> tuple[PodPlan, str, float]:
        """Create the pod on the node with the run's image; return once the kubelet has
        admitted or rejected it."""
        spec = dict(pod_plan.manifest["spec"], nodeName=self.node)
        for key in ("containers", "initContainers"):
            if key in spec:
                spec[key] = [dict(c, image=self.target.image) for c in spec[key]]
        start = time.monotonic()
        created = create_pod(self.core, self.namespace, dict(pod_plan.manifest, spec=spec))
        wait_admitted(self.core, self.namespace, pod_plan.name, self.pod_timeout)
        return pod_plan, created.metadata.uid, start

    def _observe_all(self, pending: list[tuple[PodPlan, str, float]], run: NodeRun) -> None:
        for pod_plan, uid, start in pending:
            run.pods[pod_plan.name] = self._observe(pod_plan, uid, start, run)
        pending.clear()

    def _observe(self, pod_plan: PodPlan, uid: str, start: float, run: NodeRun) -> PodObservation:
        pod = wait_pod(self.core, self.namespace, pod_plan.name, self.pod_timeout)
        run.pod_start_seconds[pod_plan.name] = time.monotonic() - start
        phase = pod.status.phase
        if phase == "Failed":
            events = self._rejection_events(pod_plan.name, pod.status.reason)
            return PodObservation(
                pod_plan.name, phase, pod.status.reason, pod.status.message, events, {}, uid=uid
            )
        logs = {}
        for name in _containers(pod_plan):
            logs[name] = self._log(pod_plan.name, name)
            if not logs[name].reports:
                raise InfrastructureError(
                    f"pod {self.namespace}/{pod_plan.name} container {name} printed no report"
                )
        return PodObservation(pod_plan.name, phase, None, None, [], logs, uid=uid)

    def _rejection_events(self, name: str, reason: str | None) -> list[tuple[str, str, str]]:
        def found():
            events = pod_events(self.core, self.namespace, name)
            return events if any(e[1] == reason for e in events) else None

        try:
            return wait_until(found, REJECTION_EVENT_TIMEOUT, f"a {reason} event on {name}")
        except InfrastructureError:
            # No event is an observation (the check says so), not an infrastructure error.
            return pod_events(self.core, self.namespace, name)

    # ---- the checkpoint -----------------------------------------------------------------
    def _checkpoint(self, adds: tuple[PodPlan, ...], run: NodeRun, access) -> None:
        running = [p for p in adds if run.pods[p.name].admitted]
        self.progress(f"{self.node}: re-reading every container after the reconcile period")
        start = time.monotonic()
        time.sleep(self.reconcile_seconds)
        self._read_later(running, run, "later")
        run.timings["checkpoint reconcile re-read"] = time.monotonic() - start
        if access is not None:
            start = time.monotonic()
            run.state_files = access.state_files()
            run.timings["checkpoint state files"] = time.monotonic() - start
            if self.restart:
                self.progress(f"{self.node}: kubelet restart with pinned pods running")
                stopped = self._metrics(run)
                start = time.monotonic()
                self._restart_kubelet(access)
                run.restarted = True
                run.timings["checkpoint kubelet restart"] = time.monotonic() - start
                started = self._metrics(run)
                if stopped is not None and started is not None:
                    run.metrics_at_restart = (stopped, started)
                start = time.monotonic()
                self._read_later(running, run, "after_restart")
                run.timings["checkpoint restart re-read"] = time.monotonic() - start
                for p in running:
                    obs = run.pods[p.name]
                    obs.phase_after_restart = self.core.read_namespaced_pod(
                        p.name, self.namespace
                    ).status.phase

    def _read_later(self, running: list[PodPlan], run: NodeRun, attr: str) -> None:
        """Each running container's newest report taken wholly after now: the count of its
        reports is noted for every container first, then each must show two more."""
        counts = {
            (p.name, name): len(self._log(p.name, name).reports)
            for p in running
            for name in _running_containers(p)
        }
        for (pod, name), before in counts.items():

            def newer(pod=pod, name=name, before=before):
                log = self._log(pod, name)
                return log.last if len(log.reports) >= before + 2 else None

            view = wait_until(
                newer,
                REPORT_INTERVAL * 10 + 60,
                f"a new report from {pod}/{name}",
                poll=POD_POLL,
            )
            getattr(run.pods[pod], attr)[name] = view

    def _log(self, pod: str, container: str) -> ProbeLog:
        return parse_log(pod_log(self.core, self.namespace, pod, container))

    def _restart_kubelet(self, access) -> None:
        """Restart the kubelet and wait for the node to be Ready with a heartbeat newer than
        the last one before the restart (the node's clock, not ours)."""
        last = ready_heartbeat(self.core, self.node)
        access.restart_kubelet()
        wait_ready_after(self.core, self.node, last, 300, "after the kubelet restart")

    # ---- deletion, metrics ----------------------------------------------------------------
    def _delete(self, names: tuple[str, ...]) -> None:
        for name in names:
            request_delete(self.core, self.namespace, name)
        for name in names:
            delete_pod(self.core, self.namespace, name, self.pod_timeout)

    def _metrics(self, run: NodeRun) -> dict[str, float] | None:
        try:
            return admission_counters(self.target.kubelet_get(self.node, "metrics"))
        except Exception as exc:  # noqa: BLE001 - metrics are optional; the check says why
            run.metrics_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            return None
