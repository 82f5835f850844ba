"""Property tests of the Memory Manager over generated topologies and Guaranteed pod sequences.

The fast hint path (subset-sum tables, cached capacity pass) is judged against a direct
transcription of calculateHints (§4.4) working on the machine-state dict.
"""

from __future__ import annotations

from itertools import combinations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numacert.oracle.bitmask import mask_of
from numacert.oracle.hints import AllocationError, Hint, KubeletStartError
from numacert.oracle.memory_manager import (
    ERR_STATE_DIFFERS,
    MemoryManager,
    pod_requested_resources,
)
from numacert.oracle.pod import Container, Pod
from numacert.topology.model import CPU, NUMANode, Topology
from tests.unit.test_memory_manager import kubelet_restart_outcomes

Mi, Gi = 2**20, 2**30
UNIT = 256 * Mi
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---- strategies -------------------------------------------------------------------------------
@st.composite
def machines(draw):
    n = draw(st.integers(1, 4))
    ids = sorted(draw(st.sets(st.integers(0, 5), min_size=n, max_size=n)))
    if draw(st.booleans()):
        ids = list(range(n))
    nodes, reserved = [], {}
    for k, nid in enumerate(ids):
        hp2 = draw(st.sampled_from([0, 64, 256]))
        hp1 = draw(st.integers(0, 2))
        res_mem = draw(st.sampled_from([0, UNIT, 2 * UNIT])) if k else UNIT
        res_hp2 = draw(st.sampled_from([0, 0, 8 * 2 * Mi])) if hp2 else 0
        free_units = draw(st.integers(2, 24))
        memory = hp2 * 2 * Mi + hp1 * Gi + res_mem + free_units * UNIT
        # every size listed, zero counts too, as cadvisor reports them
        hugepages = {2 * Mi: hp2, Gi: hp1}
        nodes.append(NUMANode(nid, memory, hugepages))
        reserved[nid] = {"memory": res_mem}
        if res_hp2:
            reserved[nid]["hugepages-2Mi"] = res_hp2
    cpus = [CPU(k, 0, nid, k, 0) for k, nid in enumerate(ids)]
    return Topology(cpus, nodes), reserved


@st.composite
def containers(draw, name: str, init: bool):
    req = {"memory": draw(st.integers(1, 20)) * UNIT}
    if draw(st.booleans()):
        req["hugepages-2Mi"] = draw(st.integers(0, 96)) * 2 * Mi
    if draw(st.integers(0, 3)) == 0:
        req["hugepages-1Gi"] = draw(st.integers(0, 2)) * Gi
    sidecar = init and draw(st.booleans())
    cpu = draw(st.sampled_from([500, 1000, 2000]))
    return Container(name, cpu, cpu, dict(req), dict(req), init=init, sidecar=sidecar)


@st.composite
def pods(draw, uid: str):
    inits = [draw(containers(f"i{k}", True)) for k in range(draw(st.integers(0, 2)))]
    apps = [draw(containers(f"a{k}", False)) for k in range(draw(st.integers(1, 3)))]
    return Pod(uid, uid, tuple(inits), tuple(apps))


@st.composite
def programs(draw):
    """A sequence of steps: ("add", pod, mode, random hints) or ("del", index)."""
    steps = []
    for k in range(draw(st.integers(1, 14))):
        if k and draw(st.integers(0, 3)) == 0:
            steps.append(("del", draw(st.integers(0, 50))))
            continue
        mode = draw(st.sampled_from(["container", "container", "pod", "none", "random"]))
        rnd = [
            (draw(st.integers(1, 63)), draw(st.booleans()), draw(st.booleans())) for _ in range(6)
        ]
        steps.append(("add", draw(pods(f"p{k}")), mode, rnd))
    return steps


# ---- a naive calculateHints on the machine-state dict -----------------------------------------
def naive_hints(ms: dict, req: dict[str, int]) -> dict[str, list[Hint]]:
    nodes = sorted(int(k) for k in ms)
    min_size = len(nodes)
    found = []
    for size in range(1, len(nodes) + 1):
        for combo in combinations(nodes, size):
            tables = [ms[str(n)] for n in combo]

            def total(field, r, tables=tables):
                return sum(t["memoryMap"].get(r, {}).get(field, 0) for t in tables)

            if any(total("allocatable", r) < q for r, q in req.items()):
                continue
            min_size = min(min_size, size)
            if size == 1 and len(tables[0]["cells"]) > 1:
                continue
            bad = False
            if size > 1:
                for t in tables:
                    if t["numberOfAssignments"] > 0 and (
                        len(t["cells"]) == 1 or sorted(t["cells"]) != list(combo)
                    ):
                        bad = True
            if bad or any(total("free", r) < q for r, q in req.items()):
                continue
            found.append(combo)
    hints = [Hint(mask_of(c), len(c) == min_size) for c in found]
    return {r: list(hints) for r in req} if hints else {}


# ---- driver -----------------------------------------------------------------------------------
def best(hints) -> Hint:
    if not hints:
        return Hint(None, False)
    return min(hints["memory"], key=lambda h: (not h.preferred, h.mask.bit_count(), h.mask))


def random_hint(topology: Topology, rnd, k: int) -> Hint:
    raw, preferred, nil = rnd[k % len(rnd)]
    ids = topology.numa_ids
    mask = mask_of(ids[i] for i in range(len(ids)) if raw >> i & 1)
    if nil or not mask:
        return Hint(None, preferred)
    return Hint(mask, preferred)


def run_step(mm: MemoryManager, step, live: list[Pod]) -> tuple:
    if step[0] == "del":
        if not live:
            return ("del", None)
        pod = live.pop(step[1] % len(live))
        mm.remove_pod(pod.uid)
        return ("del", pod.uid)
    _, pod, mode, rnd = step
    try:
        if mode == "pod":
            hint = best(mm.get_pod_topology_hints(pod))
        for k, c in enumerate(pod.all_containers()):
            if mode == "container":
                hint = best(mm.get_topology_hints(pod, c))
            elif mode == "none":
                hint = Hint(None, False)
            elif mode == "random":
                hint = random_hint(mm.topology, rnd, k)
            mm.allocate(pod, c, hint)
    except AllocationError as exc:
        mm.remove_pod(pod.uid)
        return ("add", pod.uid, exc.message)
    for c in pod.all_containers():
        mm.container_started(pod, c)
    live.append(pod)
    return ("add", pod.uid, {c.name: mm.container_mems(pod.uid, c.name) for c in pod.containers})


def check_invariants(mm: MemoryManager, strict: bool) -> None:
    ms = mm.machine_state()
    state = mm.to_state()
    pairs = {k: 0 for k in ms}
    block_sum: dict[str, int] = {}
    for containers_ in state.get("entries", {}).values():
        for blocks in containers_.values():
            for b in blocks:
                block_sum[b["type"]] = block_sum.get(b["type"], 0) + b["size"]
                for n in b["numaAffinity"]:
                    pairs[str(n)] += 1
    reserved_sum: dict[str, int] = {}
    for key, node in ms.items():
        assert node["numberOfAssignments"] == pairs[key]
        if node["numberOfAssignments"] == 0:
            assert node["cells"] == [int(key)]
        for rtype, t in node["memoryMap"].items():
            assert t["free"] + t["reserved"] == t["allocatable"], (key, rtype, t)
            assert t["free"] >= 0 and t["reserved"] >= 0
            reserved_sum[rtype] = reserved_sum.get(rtype, 0) + t["reserved"]
    if strict:
        for rtype in set(block_sum) | set(reserved_sum):
            assert reserved_sum.get(rtype, 0) == block_sum.get(rtype, 0), rtype


# ---- properties -------------------------------------------------------------------------------
@SETTINGS
@given(machines(), programs())
def test_sequences_keep_invariants_and_release_to_initial(machine, program):
    topology, reserved = machine
    mm = MemoryManager(topology, "Static", reserved)
    initial = mm.machine_state()
    # conservation and release-to-initial hold for random TM hints too (1,500 examples tried)
    strict = True
    live: list[Pod] = []
    for step in program:
        if step[0] == "add":
            # the fast hints equal the direct transcription (fresh pod: no reusable memory)
            pod = step[1]
            ms = mm.machine_state()
            assert mm.get_pod_topology_hints(pod) == naive_hints(ms, pod_requested_resources(pod))
            first = pod.all_containers()[0]
            assert mm.get_topology_hints(pod, first) == naive_hints(ms, first.memory_requests())
        run_step(mm, step, live)
        check_invariants(mm, strict)
    # state round trip at the end of the sequence. The kubelet's restart check replays the
    # blocks and drops what finds no free memory, so it refuses some files it wrote itself (a
    # single-NUMA block on a node whose memory went to a group, test_memory_manager.py); the
    # oracle may refuse only what the kubelet refuses in every replay order.
    state = mm.to_state()
    try:
        again = MemoryManager(topology, "Static", reserved, state=state)
    except KubeletStartError as exc:
        assert str(exc) == ERR_STATE_DIFFERS
        outcomes, _ = kubelet_restart_outcomes(mm.initial_machine_state(), state, limit=2000)
        assert outcomes == {False}
    else:
        assert again.to_state() == state
    while live:
        mm.remove_pod(live.pop().uid)
        check_invariants(mm, strict)
    if strict:
        assert mm.machine_state() == initial
    assert mm.to_state() == {"policyName": "Static", "machineState": mm.machine_state()}


@SETTINGS
@given(machines(), programs())
def test_deterministic(machine, program):
    topology, reserved = machine
    runs = []
    for _ in range(2):
        mm = MemoryManager(topology, "Static", reserved)
        live: list[Pod] = []
        results = [run_step(mm, step, live) for step in program]
        runs.append((results, mm.to_state()))
    assert runs[0] == runs[1]
