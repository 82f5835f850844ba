"""The logic of each catalogue check: observations in, problems out.

Each function takes what the run observed and what the oracle predicted, and returns an
Outcome: the problems (empty = the check holds), and predicted vs observed for the report.
Every check compares with the prediction AND with an invariant that holds whatever the oracle
says. The suites call these and assert; nothing here talks to a node. Pure.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from numacert.certify.compare import (
    Prediction,
    expected_mems,
    integer_exclusive,
    mismatches,
    numa_nodes_of,
    observed_dict,
    overlapping,
    predict_plan,
    predicted_dict,
)
from numacert.certify.execute import NodeRun, PodObservation
from numacert.cpuset import CPUSet
from numacert.kubelet.config import KubeletConfig
from numacert.kubelet.parse import from_dict
from numacert.kubelet.validate import check_reserved_memory, node_allocatable_reservation
from numacert.probes.report import TOUCH_BYTES
from numacert.quantity import to_bytes
from numacert.topology.model import Topology

SHARED_PODS = ("shared-0", "frac", "burst", "shared-1", "shared-final")
TM_REJECTION_MESSAGE = "Resources cannot be allocated with Topology locality"


@dataclass
class Outcome:
    problems: list[str] = field(default_factory=list)
    predicted: dict = field(default_factory=dict)
    observed: dict = field(default_factory=dict)
    # Set when the run had nothing for this check to read (a pod left out of the plan).
    not_exercised: str | None = None

    def add_pod(self, name: str, prediction: Prediction, run: NodeRun, topology: Topology):
        self.predicted[name] = predicted_dict(prediction.pods[name], topology)
        self.observed[name] = observed_dict(run.pods[name])


def _present(run: NodeRun, names) -> list[str]:
    return [n for n in names if n in run.pods]


def _concurrent_before(run: NodeRun, pod: str) -> list[str]:
    """Pods of the same phase added before `pod` (all still running when it started)."""
    for phase in run.plan.phases:
        names = [p.name for p in phase.adds]
        if pod in names:
            return names[: names.index(pod)]
    return []


def _exclusive_sets(
    run: NodeRun, prediction: Prediction, pods: list[str], later: bool = False
) -> dict[str, CPUSet]:
    """Observed CPU sets of the containers that hold exclusive CPUs, as `pod/container`."""
    out = {}
    for name in pods:
        obs = run.pods.get(name)
        if obs is None or not obs.admitted:
            continue
        oracle_pod = prediction.oracle_pods[name]
        for container in obs.logs:
            if integer_exclusive(oracle_pod, container, prediction.config) is None:
                continue
            view = obs.later.get(container) if later else obs.view(container)
            if view is not None and not _init_done(oracle_pod, container, later):
                out[f"{name}/{container}"] = view.cpus
    return out


def _init_done(oracle_pod, container: str, later: bool) -> bool:
    """A regular init container has exited by the time its pod runs: its CPUs are free."""
    for c in oracle_pod.init_containers:
        if c.name == container and not c.sidecar:
            return True
    return False


def _one_pod(
    run: NodeRun, prediction: Prediction, topology: Topology, name: str
) -> tuple[Outcome, PodObservation | None]:
    """An Outcome for a check about one plan pod, compared with its prediction already; the
    pod's observation, or None (and not_exercised) when the plan left it out."""
    out = Outcome()
    if name not in run.pods:
        out.not_exercised = run.plan.left_out.get(name, f"{name} not in the plan")
        return out, None
    out.add_pod(name, prediction, run, topology)
    out.problems += mismatches(topology, prediction.pods[name], run.pods[name])
    return out, run.pods[name]


# ---- CPU ---------------------------------------------------------------------------------


def cpu_shared(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out = Outcome()
    strict = prediction.config.cpu_option("strict-cpu-reservation")
    for name in _present(run, SHARED_PODS):
        out.add_pod(name, prediction, run, topology)
        obs = run.pods[name]
        out.problems += mismatches(topology, prediction.pods[name], obs)
        if not obs.admitted:
            continue
        view = obs.view("c")
        taken = _exclusive_sets(run, prediction, _concurrent_before(run, name))
        for owner, cpus in taken.items():
            if view.cpus & cpus:
                out.problems.append(
                    f"{name}: shared container runs on CPUs {CPUSet(view.cpus & cpus)} "
                    f"held exclusively by {owner}"
                )
        if strict and view.cpus & prediction.reserved:
            out.problems.append(
                f"{name}: shared container runs on reserved CPUs "
                f"{CPUSet(view.cpus & prediction.reserved)} under strict-cpu-reservation"
            )
    return out


def cpu_exclusive(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out = Outcome()
    for phase in run.plan.phases:
        names = [p.name for p in phase.adds if p.name in run.pods]
        sets = _exclusive_sets(run, prediction, names)
        for key, cpus in sets.items():
            pod, container = key.split("/")
            want = integer_exclusive(prediction.oracle_pods[pod], container, prediction.config)
            if len(cpus) != want:
                out.problems.append(f"{key}: {len(cpus)} CPUs ({cpus}), requested {want}")
            if cpus & prediction.reserved:
                out.problems.append(
                    f"{key}: exclusive CPUs include reserved {CPUSet(cpus & prediction.reserved)}"
                )
        # Init containers hand their CPUs on: only concurrently running sets must be disjoint.
        out.problems += [f"phase {phase.name}: {p}" for p in overlapping(sets)]
        # Every pod the oracle gives exclusive CPUs is compared, admitted or not: a kubelet
        # that wrongly rejects them all must fail here, not leave the check unexercised.
        for name in names:
            step = prediction.pods[name]
            if any(c.exclusive for c in step.containers.values()) or any(
                k.startswith(f"{name}/") for k in sets
            ):
                out.add_pod(name, prediction, run, topology)
                out.problems += mismatches(topology, step, run.pods[name])
    if not out.observed:
        out.not_exercised = "no pod of the plan gets exclusive CPUs here"
    return out


def cpu_smt(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out, obs = _one_pod(run, prediction, topology, "smt-odd")
    if obs is not None and (obs.admitted or obs.reason != "SMTAlignmentError"):
        out.problems.append(
            f"smt-odd: a 1-CPU request under full-pcpus-only must be rejected with "
            f"SMTAlignmentError; kubelet: phase {obs.phase}, reason {obs.reason}"
        )
    cores = [CPUSet(c) for c in topology.cores.values()]
    for phase in run.plan.phases:
        names = [p.name for p in phase.adds if p.name in run.pods]
        for key, cpus in _exclusive_sets(run, prediction, names).items():
            # Only a core the reservation already splits may be handed out in part.
            partial = [
                c for c in cores if (c & cpus) and not c <= cpus and not c & prediction.reserved
            ]
            if partial:
                out.problems.append(f"{key}: CPUs {cpus} split physical cores {partial}")
            out.observed[key] = str(cpus)
    if out.not_exercised and len(out.observed) > 0:
        out.not_exercised = None  # the whole-core rule ran on the exclusive sets
    return out


def cpu_init(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out, obs = _one_pod(run, prediction, topology, "init")
    if obs is None:
        return out
    if obs.admitted:
        init, side, app = (obs.view(c).cpus for c in ("init", "side", "app"))
        if not init & side:
            out.problems.append(f"init: the sidecar ({side}) did not reuse the init CPUs ({init})")
        if side & app:
            out.problems.append(f"init: app CPUs {app} overlap the sidecar's {side}")
    return out


def cpu_reconcile(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out = Outcome()
    checkpoint = next((ph for ph in run.plan.phases if ph.checkpoint), None)
    if checkpoint is None:
        out.not_exercised = "no checkpoint phase"
        return out
    names = [p.name for p in checkpoint.adds if run.pods.get(p.name) and run.pods[p.name].admitted]
    exclusive = _exclusive_sets(run, prediction, names, later=True)
    pool = prediction.pool_at_checkpoint
    for name in names:
        obs = run.pods[name]
        for container, view in obs.later.items():
            key = f"{name}/{container}"
            out.observed[key] = view.to_dict()
            if view.cgroup_cpus is not None and view.cgroup_cpus != view.cpus:
                out.problems.append(
                    f"{key}: Cpus_allowed_list {view.cpus} differs from its cgroup's "
                    f"cpuset.cpus.effective {view.cgroup_cpus}"
                )
            step = prediction.pods[name].containers[container]
            want = CPUSet.parse(step.cpus) if step.exclusive else pool
            out.predicted[key] = str(want)
            if view.cpus != want:
                out.problems.append(
                    f"{key}: after the reconcile period runs on {view.cpus}, predicted {want}"
                )
            if not step.exclusive:
                for owner, cpus in exclusive.items():
                    if view.cpus & cpus:
                        out.problems.append(
                            f"{key}: shared container still on CPUs {CPUSet(view.cpus & cpus)} "
                            f"held exclusively by {owner}"
                        )
    out.problems += overlapping(exclusive)
    return out


# ---- Topology Manager --------------------------------------------------------------------


def _aligned_nodes(obs: PodObservation, oracle_pod, config: KubeletConfig, topology) -> dict:
    """container -> (NUMA nodes of its exclusive CPUs or None, pinned mems or None)."""
    out = {}
    for container in obs.logs:
        if any(
            c.name == container and c.init and not c.sidecar for c in oracle_pod.init_containers
        ):
            continue  # a regular init container has exited; upstream skips it too
        view = obs.view(container)
        cpus = (
            numa_nodes_of(topology, view.cpus)
            if integer_exclusive(oracle_pod, container, config) is not None
            else None
        )
        pinned = config.memory_manager_policy == "Static" and oracle_pod.qos_class == "Guaranteed"
        out[container] = (cpus, view.mems if pinned else None)
    return out


def tm_align(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out = Outcome()
    config = prediction.config
    for name, obs in run.pods.items():
        if not obs.admitted:
            continue
        oracle_pod = prediction.oracle_pods[name]
        aligned = _aligned_nodes(obs, oracle_pod, config, topology)
        nodes_used: set[int] = set()
        any_aligned = False
        for container, (cpu_nodes, mems) in aligned.items():
            if cpu_nodes is None and mems is None:
                continue
            any_aligned = True
            used = CPUSet((cpu_nodes or CPUSet()) | (mems or CPUSet()))
            nodes_used |= used
            if len(used) != 1:
                out.problems.append(
                    f"{name}/{container}: aligned resources on NUMA nodes {used} "
                    f"(CPUs on {cpu_nodes}, memory on {mems})"
                )
        if config.topology_manager_scope == "pod" and len(nodes_used) > 1:
            out.problems.append(
                f"{name}: pod scope, but its containers are aligned to NUMA nodes "
                f"{CPUSet(nodes_used)}"
            )
        if any_aligned:
            out.add_pod(name, prediction, run, topology)
            out.problems += mismatches(topology, prediction.pods[name], obs)
    if not out.observed:
        out.not_exercised = "no aligned pod ran"
    return out


def tm_reject(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out, obs = _one_pod(run, prediction, topology, "toobig")
    if obs is None:
        return out
    out.observed["toobig"]["events"] = obs.events
    if prediction.pods["toobig"].admitted:
        # A correct kubelet admits it here (restricted with a preferred multi-NUMA hint, or no
        # hint at all without the static CPU Manager): compared above, rejection not probed.
        out.not_exercised = out.not_exercised or "toobig has a preferred hint under this policy"
        return out
    if obs.admitted:
        out.problems.append("toobig: admitted, but it cannot be aligned as the policy demands")
        return out
    if obs.reason != "TopologyAffinityError":
        out.problems.append(f"toobig: reason {obs.reason!r}, not 'TopologyAffinityError'")
    if obs.message != f"Pod was rejected: {TM_REJECTION_MESSAGE}":
        out.problems.append(f"toobig: message {obs.message!r}")
    if ("Warning", "TopologyAffinityError", TM_REJECTION_MESSAGE) not in obs.events:
        out.problems.append(f"toobig: no Warning TopologyAffinityError event; events: {obs.events}")
    return out


def tm_besteffort(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out, obs = _one_pod(run, prediction, topology, "toobig")
    if obs is None:
        return out
    if not prediction.pods["toobig"].admitted:
        # restricted rejects it (TM-REJECT's business); nothing spans here.
        out.not_exercised = out.not_exercised or "toobig is rejected under this policy"
        return out
    if not obs.admitted:
        out.problems.append(f"toobig: rejected ({obs.reason}) under a policy that admits it")
    elif prediction.config.cpu_manager_policy == "static":
        nodes = numa_nodes_of(topology, obs.view("c").cpus)
        if len(nodes) < 2:
            out.problems.append(f"toobig: more CPUs than a NUMA node has, yet on nodes {nodes}")
    return out


def tm_closest(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out = tm_besteffort(run, prediction, topology)
    if out.not_exercised or "toobig" not in run.pods or not run.pods["toobig"].admitted:
        return out
    used = numa_nodes_of(topology, run.pods["toobig"].view("c").cpus)

    def spread(nodes) -> int:
        return max((topology.distance(a, b) or 0) for a in nodes for b in nodes)

    from itertools import combinations

    need = len(run.pods["toobig"].view("c").cpus)
    candidates = [
        set(s)
        for s in combinations(topology.numa_ids, len(used))
        if sum(len(topology.cpus_by_numa[n] - prediction.reserved) for n in s) >= need
    ]
    best = min(spread(s) for s in candidates)
    if spread(used) != best:
        out.problems.append(
            f"toobig: NUMA nodes {used} have distance {spread(used)}; a set with {best} fits"
        )
    return out


def tm_maxnuma(run: NodeRun, prediction: Prediction, topology: Topology, configz: dict) -> Outcome:
    out = Outcome()
    numa = len(topology.numa_ids)
    option = (configz.get("topologyManagerPolicyOptions") or {}).get("max-allowable-numa-nodes")
    out.observed["max-allowable-numa-nodes"] = option
    out.predicted["max-allowable-numa-nodes"] = f">= {numa}"
    try:
        value = int(option) if option is not None else 8
    except ValueError:
        value = 8
    if value < numa:
        out.problems.append(
            f"{numa} NUMA nodes but max-allowable-numa-nodes is {option or 'unset (8)'}"
        )
    # Working means pods are admitted and placed as predicted (aligned, under
    # single-numa-node, which TM-ALIGN's rule covers).
    if prediction.config.topology_manager_policy == "single-numa-node":
        out.problems += tm_align(run, prediction, topology).problems
    for name in _present(run, ("excl", "pair")):
        out.problems += mismatches(topology, prediction.pods[name], run.pods[name])
    return out


# ---- Memory and hugepages ------------------------------------------------------------------


def mem_pin(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out = Outcome()
    static = prediction.config.memory_manager_policy == "Static"
    everywhere = CPUSet(topology.numa_ids)
    checkpoint = next((ph for ph in run.plan.phases if ph.checkpoint), None)
    phase_a = {p.name for p in checkpoint.adds} if checkpoint else set(run.pods)
    for name, obs in run.pods.items():
        if not obs.admitted or name not in phase_a:
            continue
        out.add_pod(name, prediction, run, topology)
        out.problems += mismatches(topology, prediction.pods[name], obs, fields=("mems",))
        guaranteed = prediction.oracle_pods[name].qos_class == "Guaranteed"
        for container in obs.logs:
            mems = obs.view(container).mems
            if not (static and guaranteed) and mems != everywhere:
                out.problems.append(
                    f"{name}/{container}: not pinned by the Memory Manager, yet its memory "
                    f"nodes are {mems}, not every node {everywhere}"
                )
    return out


def mem_reject(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out = Outcome()
    if "nomem" not in run.pods:
        out.not_exercised = run.plan.left_out.get("nomem", "nomem not in the plan")
        return out
    for name in [n for n in run.pods if n.startswith("big-")] + ["nomem"]:
        out.add_pod(name, prediction, run, topology)
        out.problems += mismatches(topology, prediction.pods[name], run.pods[name])
    obs = run.pods["nomem"]
    if prediction.pods["nomem"].admitted:
        # Memory spread over a NUMA group before it (a multi-NUMA pod) leaves room: compared
        # above; the rejection itself is not exercised on this node and policy.
        out.not_exercised = out.not_exercised or "nomem fits a NUMA node group here"
        return out
    if obs.admitted:
        out.problems.append("nomem: admitted, but its memory fits no NUMA node set any more")
    elif obs.reason not in ("TopologyAffinityError", "UnexpectedAdmissionError"):
        out.problems.append(f"nomem: rejected with reason {obs.reason!r}")
    return out


def hp_numa(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out = Outcome()
    obs = run.pods.get("excl")
    log = obs.logs.get("c") if obs is not None and obs.admitted else None
    if log is None or log.hugepages_before is None:
        out.not_exercised = run.plan.left_out.get("excl/hugepages", "no hugepage probe ran")
        return out
    mems = log.first.mems
    pages = prediction.oracle_pods["excl"].containers[0].limits.get("hugepages-2Mi", 0) // (2 << 20)
    drop = {
        n: log.hugepages_before.get(n, 0) - log.hugepages_after.get(n, 0)
        for n in log.hugepages_before
    }
    out.observed = {
        "free_before": log.hugepages_before,
        "free_after": log.hugepages_after,
        "mems": str(mems),
        "errors": [e for e in log.errors if e.startswith("hp_error")],
    }
    want = expected_mems(prediction.pods["excl"].containers["c"].mems, topology)
    out.predicted = {"pages": pages, "from_nodes": str(want)}
    out.problems += [f"excl: {e}" for e in log.errors if e.startswith("hp_error")]
    if sum(drop.values()) != pages:
        out.problems.append(f"excl: {sum(drop.values())} pages faulted, requested {pages}")
    outside = {n: d for n, d in drop.items() if d > 0 and n not in want}
    if outside:
        out.problems.append(f"excl: hugepages taken on NUMA nodes {sorted(outside)}, not {want}")
    # Whatever the oracle says: the kernel must not hand out pages outside the container's
    # own memory nodes.
    escaped = {n: d for n, d in drop.items() if d > 0 and n not in mems}
    if escaped:
        out.problems.append(
            f"excl: hugepages taken on NUMA nodes {sorted(escaped)}, outside its "
            f"Mems_allowed_list {mems}"
        )
    return out


def mem_local(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out = Outcome()
    obs = run.pods.get("excl")
    log = obs.logs.get("c") if obs is not None and obs.admitted else None
    if log is None or log.numa_stat is None:
        out.not_exercised = "no memory probe ran"
        return out
    want = expected_mems(prediction.pods["excl"].containers["c"].mems, topology)
    touched = {}
    for kind in ("anon", "shmem"):
        for node, amount in log.numa_stat.get(kind, {}).items():
            touched[node] = touched.get(node, 0) + amount
    errors = [e for e in log.errors if e.startswith("touch_error")]
    out.observed = {"numa_stat": log.numa_stat, "errors": errors}
    out.predicted = {"on_nodes": str(want), "at_least": TOUCH_BYTES}
    out.problems += [f"excl: {e}" for e in errors]
    outside = {n: b for n, b in touched.items() if b and n not in want}
    if outside:
        out.problems.append(f"excl: memory charged on NUMA nodes outside {want}: {outside}")
    mems = log.first.mems
    escaped = {n: b for n, b in touched.items() if b and n not in mems}
    if escaped:
        out.problems.append(
            f"excl: memory charged on NUMA nodes {sorted(escaped)}, outside its "
            f"Mems_allowed_list {mems}"
        )
    inside = sum(b for n, b in touched.items() if n in want)
    if inside < TOUCH_BYTES:
        out.problems.append(f"excl: only {inside} bytes on {want}, touched {TOUCH_BYTES}")
    return out


# ---- node ----------------------------------------------------------------------------------


def node_release(run: NodeRun, prediction: Prediction, topology: Topology) -> Outcome:
    out = Outcome()
    if "shared-final" not in run.pods or "shared-0" not in run.pods:
        out.not_exercised = "no release probe ran"
        return out
    first, last = run.pods["shared-0"], run.pods["shared-final"]
    if not first.admitted or not last.admitted:
        out.problems.append(
            f"a BestEffort probe was rejected: shared-0 {first.phase} ({first.reason}), "
            f"shared-final {last.phase} ({last.reason})"
        )
        return out
    before = first.view("c").cpus
    after = last.view("c").cpus
    out.predicted = {"shared pool": str(before)}
    out.observed = {"shared pool": str(after)}
    if before != after:
        out.problems.append(f"the shared pool was {before} before the suite, {after} after it")
    if run.state_files_end is not None:
        uids = {obs.uid for obs in run.pods.values() if obs.uid}
        for key in ("cpu", "memory"):
            entries = (run.state_files_end.get(key) or {}).get("entries") or {}
            left = sorted(uids & set(entries))
            if left:
                out.problems.append(f"{key} manager state still holds the suite's pods {left}")
    return out


def node_restart(run: NodeRun) -> Outcome:
    out = Outcome()
    for name, obs in run.pods.items():
        for container, view in obs.after_restart.items():
            before = obs.later.get(container)
            key = f"{name}/{container}"
            out.predicted[key] = before.to_dict() if before else None
            out.observed[key] = view.to_dict()
            if before is not None and (before.cpus, before.mems) != (view.cpus, view.mems):
                out.problems.append(
                    f"{key}: CPUs/memory nodes {before.cpus}/{before.mems} before the kubelet "
                    f"restart, {view.cpus}/{view.mems} after"
                )
        if obs.phase_after_restart not in (None, "Running"):
            out.problems.append(f"{name}: {obs.phase_after_restart} after the kubelet restart")
    return out


# Rejections by the resource managers' admit handler (the Topology Manager and the managers
# it calls): each counts one Topology Manager admission error.
RESOURCE_MANAGER_REJECTIONS = (
    "TopologyAffinityError",
    "SMTAlignmentError",
    "UnexpectedAdmissionError",
)


def node_metrics(run: NodeRun, prediction: Prediction) -> Outcome:
    from numacert.probes.metrics import TM_ERRORS

    out = Outcome()
    rejected = sorted(n for n, o in run.pods.items() if o.reason in RESOURCE_MANAGER_REJECTIONS)
    predicted = sorted(
        n
        for n, s in prediction.pods.items()
        if n in run.pods and s.reason in RESOURCE_MANAGER_REJECTIONS
    )
    delta = run.metric_delta(TM_ERRORS)
    out.predicted = {TM_ERRORS: len(predicted), "pods": predicted}
    out.observed = {TM_ERRORS: delta, "pods": rejected}
    if delta != len(rejected):
        out.problems.append(
            f"{TM_ERRORS} grew by {delta:g}, but the resource managers rejected "
            f"{len(rejected)} pods ({', '.join(rejected) or 'none'})"
        )
    if rejected != predicted:
        out.problems.append(f"resource-manager rejections of {rejected}, predicted {predicted}")
    return out


# ---- configuration -------------------------------------------------------------------------


_TYPED = {
    "cpuManagerPolicy": "cpu_manager_policy",
    "topologyManagerPolicy": "topology_manager_policy",
    "topologyManagerScope": "topology_manager_scope",
    "memoryManagerPolicy": "memory_manager_policy",
}


def cfg_policy(required: dict, configz: dict) -> Outcome:
    """Every field of the --require fragment as the kubelet runs it (its /configz)."""
    out = Outcome()
    want = from_dict(copy.deepcopy(required), "--require")
    have = from_dict(copy.deepcopy(configz), "/configz")
    for key, value in required.items():
        if key in ("apiVersion", "kind"):
            continue
        out.predicted[key] = value
        out.observed[key] = configz.get(key)
        if key in _TYPED:
            if getattr(want, _TYPED[key]) != getattr(have, _TYPED[key]):
                out.problems.append(
                    f"{key}: required {value!r}, the kubelet runs {configz.get(key)!r}"
                )
        elif key in ("cpuManagerPolicyOptions", "topologyManagerPolicyOptions"):
            running = configz.get(key) or {}
            for option, wanted in (value or {}).items():
                if str(running.get(option, "")).lower() != str(wanted).lower():
                    out.problems.append(
                        f"{key}.{option}: required {wanted!r}, the kubelet runs "
                        f"{running.get(option)!r}"
                    )
        elif key == "reservedSystemCPUs":
            if CPUSet.parse(str(value)) != CPUSet.parse(str(configz.get(key) or "")):
                out.problems.append(
                    f"{key}: required {value!r}, the kubelet runs {configz.get(key)!r}"
                )
        elif key == "reservedMemory":
            if _reserved(want) != _reserved(have):
                out.problems.append(
                    f"{key}: required {value!r}, the kubelet runs {configz.get(key)!r}"
                )
        elif configz.get(key) != value:
            out.problems.append(f"{key}: required {value!r}, the kubelet runs {configz.get(key)!r}")
    return out


def _reserved(config: KubeletConfig) -> dict:
    return {
        (r.numa_node, name): to_bytes(q)
        for r in config.reserved_memory
        for name, q in r.limits.items()
    }


def cfg_reserved(
    config: KubeletConfig, topology: Topology, capacity: dict, allocatable: dict
) -> Outcome:
    out = Outcome()
    reservation = node_allocatable_reservation(config, topology)
    problems = check_reserved_memory(topology.numa_ids, reservation, config.reserved_memory)
    out.problems += [p.message for p in problems]
    out.predicted = {"reservation": reservation}
    out.observed = {
        "reservedMemory": {str(k): v for k, v in _reserved(config).items()},
        "capacity": capacity,
        "allocatable": allocatable,
    }
    hugepages = sum(to_bytes(v) for r, v in capacity.items() if r.startswith("hugepages-"))
    for resource in ("memory", *[r for r in capacity if r.startswith("hugepages-")]):
        if resource not in capacity or resource not in allocatable:
            continue
        want = to_bytes(capacity[resource]) - reservation.get(resource, 0)
        if resource == "memory":
            want -= hugepages  # pre-allocated hugepages are never memory for pods
        have = to_bytes(allocatable[resource])
        if want != have:
            out.problems.append(
                f"allocatable {resource} is {have}, capacity minus reservations is {want}"
            )
    return out


def cfg_state(run: NodeRun, configz: dict, prediction: Prediction | None = None) -> Outcome:
    """The state files at the checkpoint against configz and the containers; with the
    prediction, every container it gives exclusive CPUs must have its entry."""
    out = Outcome()
    prediction_pods = prediction.pods if prediction is not None else None
    state = run.state_files or {}
    cpu, memory = state.get("cpu"), state.get("memory")
    want_cpu = configz.get("cpuManagerPolicy", "none")
    want_mm = configz.get("memoryManagerPolicy", "None")
    out.predicted = {"cpu policyName": want_cpu, "memory policyName": want_mm}
    out.observed = {
        "cpu policyName": (cpu or {}).get("policyName"),
        "memory policyName": (memory or {}).get("policyName"),
    }
    if cpu is None or cpu.get("policyName") != want_cpu:
        out.problems.append(
            f"cpu_manager_state names policy {(cpu or {}).get('policyName')!r}, "
            f"the kubelet runs {want_cpu!r}"
        )
    if want_mm == "Static" and (memory is None or memory.get("policyName") != want_mm):
        out.problems.append(
            f"memory_manager_state names policy {(memory or {}).get('policyName')!r}, "
            f"the kubelet runs {want_mm!r}"
        )
    checkpoint = next((ph for ph in run.plan.phases if ph.checkpoint), None)
    for p in checkpoint.adds if checkpoint else ():
        obs = run.pods.get(p.name)
        if obs is None or not obs.admitted or not obs.uid:
            continue
        cpu_entries = ((cpu or {}).get("entries") or {}).get(obs.uid, {})
        step = prediction_pods.get(p.name) if prediction_pods else None
        if step is not None and cpu is not None:
            for container, placement in step.containers.items():
                if placement.exclusive and container in obs.later and container not in cpu_entries:
                    out.problems.append(
                        f"{p.name}/{container}: holds exclusive CPUs {obs.later[container].cpus} "
                        "but cpu_manager_state has no entry for it"
                    )
        for container, cpus in cpu_entries.items():
            view = obs.later.get(container)
            if view is not None and CPUSet.parse(cpus) != view.cpus:
                out.problems.append(
                    f"{p.name}/{container}: cpu_manager_state says {cpus}, the container runs "
                    f"on {view.cpus}"
                )
        mem_entries = ((memory or {}).get("entries") or {}).get(obs.uid, {})
        for container, blocks in mem_entries.items():
            nodes = CPUSet(n for b in blocks for n in b.get("numaAffinity", []))
            view = obs.later.get(container)
            if view is not None and nodes and nodes != view.mems:
                out.problems.append(
                    f"{p.name}/{container}: memory_manager_state says NUMA {nodes}, the "
                    f"container's memory nodes are {view.mems}"
                )
    return out


def _default_field(config: KubeletConfig, field: str) -> KubeletConfig:
    alt = copy.deepcopy(config)
    if field == "cpuManagerPolicy":
        alt.cpu_manager_policy = "none"
        alt.cpu_manager_policy_options = {}
    elif field.startswith("cpuManagerPolicyOptions."):
        alt.cpu_manager_policy_options.pop(field.split(".", 1)[1], None)
    elif field == "topologyManagerPolicy":
        alt.topology_manager_policy = "none"
    elif field == "topologyManagerScope":
        alt.topology_manager_scope = "container"
    elif field == "memoryManagerPolicy":
        alt.memory_manager_policy = "None"
        alt.reserved_memory = []
    return alt


def applied_fields(config: KubeletConfig) -> list[str]:
    """The policy fields of `config` that differ from the kubelet defaults."""
    fields = []
    if config.cpu_manager_policy != "none":
        fields.append("cpuManagerPolicy")
    fields += [
        f"cpuManagerPolicyOptions.{o}"
        for o in config.cpu_manager_policy_options
        if config.cpu_option(o)
    ]
    if config.topology_manager_policy != "none":
        fields.append("topologyManagerPolicy")
    if config.topology_manager_scope != "container":
        fields.append("topologyManagerScope")
    if config.memory_manager_policy != "None":
        fields.append("memoryManagerPolicy")
    return fields


def cfg_applied(run: NodeRun, config: KubeletConfig, topology: Topology) -> Outcome:
    """Each non-default policy field is shown to be in force by the pods whose outcome would
    differ without it: those must behave as the field predicts."""
    out = Outcome()
    actual = predict_plan(topology, config, run.plan)
    fields = applied_fields(config)
    for fld in fields:
        try:
            alt = predict_plan(topology, _default_field(config, fld), run.plan)
        except Exception as exc:  # noqa: BLE001 - a default the kubelet would refuse: no probe
            out.observed[fld] = f"not probed: {exc}"
            continue
        witnesses = [
            name
            for name in run.pods
            if predicted_dict(actual.pods[name], topology)
            != predicted_dict(alt.pods[name], topology)
        ]
        out.predicted[fld] = witnesses
        if not witnesses:
            out.observed[fld] = "no pod of the plan tells it from the default"
            continue
        wrong = []
        for name in witnesses:
            wrong += mismatches(topology, actual.pods[name], run.pods[name])
        out.observed[fld] = wrong or "in force"
        out.problems += [f"{fld}: {w}" for w in wrong]
    if fields and not any(out.predicted.get(f) for f in fields):
        out.not_exercised = "no pod of the plan tells any policy field from its default"
    return out
