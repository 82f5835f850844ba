"""Predicted against observed, and the invariants a correct kubelet meets whatever the oracle.

`predict_plan` replays a plan on the oracle's NodeModel; `mismatches` compares one pod's
prediction with its observation field by field; the invariant functions check properties of
the observations alone (exclusive sets disjoint, aligned resources on one NUMA node, ...), so
a wrong oracle cannot hide a wrong kubelet, nor the reverse. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from numacert.certify.execute import PodObservation
from numacert.certify.plan import Plan
from numacert.cpuset import CPUSet
from numacert.kubelet.config import KubeletConfig
from numacert.oracle.node import NodeModel, StepResult
from numacert.oracle.pod import Pod, pod_from_manifest
from numacert.topology.model import Topology

REJECTED_PREFIX = "Pod was rejected: "


@dataclass
class Prediction:
    config: KubeletConfig
    pods: dict[str, StepResult]
    oracle_pods: dict[str, Pod]
    # The shared pool after phase A's pods are admitted: what every shared container of
    # phase A must run on once the reconcile loop has caught up.
    pool_at_checkpoint: CPUSet | None
    # The CPU Manager's reserved CPUs (static policy), empty otherwise.
    reserved: CPUSet


def predict_plan(topology: Topology, config: KubeletConfig, plan: Plan) -> Prediction:
    """What a correct kubelet running `config` does with `plan`, pod by pod."""
    model = NodeModel(topology, config, allocatable=plan.allocatable, k8s_minor=plan.k8s_minor)
    results: dict[str, StepResult] = {}
    pods: dict[str, Pod] = {}
    pool = None
    for phase in plan.phases:
        for pod_plan in phase.adds:
            pod = pod_from_manifest(pod_plan.manifest)
            pods[pod.name] = pod
            results[pod.name] = model.add(pod)
        if phase.checkpoint:
            pool = CPUSet(model.cpu.shared_pool())
        for name in phase.deletes:
            if name in model.pods:
                model.delete(name)
    return Prediction(config, results, pods, pool, CPUSet(model.cpu.reserved))


# ---- one pod, predicted vs observed ----------------------------------------------------------


def observed_dict(obs: PodObservation) -> dict:
    """An observation in the shape of an oracle step (for reports, side by side)."""
    return {
        "admitted": obs.admitted,
        "reason": obs.reason,
        "message": _strip(obs.message),
        "containers": {
            name: {"cpus": str(log.first.cpus), "mems": str(log.first.mems)}
            for name, log in obs.logs.items()
            if log.first is not None
        },
    }


def predicted_dict(step: StepResult, topology: Topology) -> dict:
    return {
        "admitted": step.admitted,
        "reason": step.reason,
        "message": step.message,
        "containers": {
            name: {"cpus": c.cpus, "mems": str(expected_mems(c.mems, topology))}
            for name, c in step.containers.items()
        },
    }


def _strip(message: str | None) -> str | None:
    return message.removeprefix(REJECTED_PREFIX) if message else message


def expected_mems(mems: str | None, topology: Topology) -> CPUSet:
    """A container's Mems_allowed_list: its pinned nodes, or every node when not pinned."""
    return CPUSet.parse(mems) if mems else CPUSet(topology.numa_ids)


def mismatches(
    topology: Topology,
    predicted: StepResult,
    observed: PodObservation,
    fields: tuple[str, ...] = ("admission", "cpus", "mems"),
) -> list[str]:
    """Differences between one pod's prediction and its observation, one line each."""
    problems: list[str] = []
    pod = observed.name
    if "admission" in fields:
        if bool(predicted.admitted) != observed.admitted:
            problems.append(
                f"{pod}: predicted {'admitted' if predicted.admitted else 'rejected'} "
                f"({predicted.reason}), kubelet "
                f"{'admitted' if observed.admitted else 'rejected'} ({observed.reason})"
            )
            return problems
        if not observed.admitted:
            if predicted.reason != observed.reason:
                problems.append(
                    f"{pod}: reason predicted {predicted.reason!r}, kubelet {observed.reason!r}"
                )
            if predicted.message != _strip(observed.message):
                problems.append(
                    f"{pod}: message predicted {predicted.message!r}, "
                    f"kubelet {_strip(observed.message)!r}"
                )
    if not observed.admitted or not predicted.admitted:
        return problems
    for name, want in predicted.containers.items():
        view = observed.view(name)
        if view is None:
            problems.append(f"{pod}/{name}: no report from the container")
            continue
        if "cpus" in fields and CPUSet.parse(want.cpus) != view.cpus:
            problems.append(f"{pod}/{name}: cpus predicted {want.cpus}, kubelet {view.cpus}")
        if "mems" in fields:
            mems = expected_mems(want.mems, topology)
            if mems != view.mems:
                problems.append(f"{pod}/{name}: mems predicted {mems}, kubelet {view.mems}")
    return problems


# ---- invariants (observations alone) ---------------------------------------------------------


def numa_nodes_of(topology: Topology, cpus: CPUSet) -> CPUSet:
    return CPUSet(topology.cpu_by_id[c].numa for c in cpus)


def integer_exclusive(pod: Pod, container: str, config: KubeletConfig) -> int | None:
    """The CPUs a correct static CPU Manager gives the container exclusively, else None."""
    if config.cpu_manager_policy != "static" or pod.qos_class != "Guaranteed":
        return None
    for c in pod.all_containers():
        if c.name == container:
            if c.cpu_request and c.cpu_request % 1000 == 0:
                return c.cpu_request // 1000
    return None


def overlapping(sets: dict[str, CPUSet]) -> list[str]:
    """Pairs of named sets that share CPUs."""
    names = sorted(sets)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = sets[a] & sets[b]
            if common:
                out.append(f"{a} and {b} share CPUs {CPUSet(common)}")
    return out
