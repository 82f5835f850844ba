"""`numacert predict`: the scenario contract of design.md, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from numacert.cli.main import main

SCENARIOS = Path(__file__).resolve().parents[2] / "clusters" / "scenarios"


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, data: dict | str, name: str = "s.yaml") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def guaranteed(name: str, cpu: str, memory: str = "128Mi", **extra) -> dict:
    limits = {"cpu": cpu, "memory": memory, **extra}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c1", "resources": {"limits": limits}}]},
    }


# An explicit 2-NUMA topology, 8 CPUs, SMT siblings (i, i+4) as Linux numbers them.
EXPLICIT = {
    "cpus": [{"id": i, "socket": i % 4 // 2, "numa": i % 4 // 2, "core": i % 4} for i in range(8)],
    "numa": [
        {"id": 0, "memory": "4Gi", "hugepages": {"2Mi": 64}, "distances": [10, 21]},
        {"id": 1, "memory": "4Gi", "hugepages": {"2Mi": 64}, "distances": [21, 10]},
    ],
}
KUBELET = {
    "cpuManagerPolicy": "static",
    "reservedSystemCPUs": "0,4",
    "topologyManagerPolicy": "single-numa-node",
    "memoryManagerPolicy": "Static",
    "systemReserved": {"memory": "512Mi"},
    "reservedMemory": [{"numaNode": 0, "limits": {"memory": "612Mi"}}],
}


def test_shipped_example_predicts(capsys):
    code, out, err = run(["predict", str(SCENARIOS / "single-numa-node-pod-scope.yaml")], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"steps", "state"}
    p1, p2, be, delete = result["steps"]
    assert set(p1) == {"action", "pod", "admitted", "reason", "message", "containers"}
    assert p1["admitted"] is True and p1["containers"]["app"]["exclusive"] is True
    assert set(p1["containers"]["app"]) == {"cpus", "exclusive", "numa_affinity", "mems"}
    assert p1["containers"]["app"]["mems"] == "0"
    assert p2 == {
        "action": "add",
        "pod": "p2",
        "admitted": False,
        "reason": "TopologyAffinityError",
        "message": "Resources cannot be allocated with Topology locality",
        "containers": {},
    }
    assert be["containers"]["shell"]["exclusive"] is False
    assert delete["action"] == "delete"
    assert result["state"]["cpu"] == {"policyName": "static", "defaultCpuSet": "0-7"}


def test_explicit_topology_and_starting_state(tmp_path, capsys):
    # A pod already running holds CPUs 1,5 (one core of NUMA 0) and 1Gi on node 0.
    scenario = {
        "topology": EXPLICIT,
        "kubelet": KUBELET,
        "state": {
            "cpu": {
                "policyName": "static",
                "defaultCpuSet": "0,2-4,6-7",
                "entries": {"running": {"app": "1,5"}},
                "checksum": 12345,
            },
            "memory": {
                "policyName": "Static",
                "entries": {
                    "running": {
                        "app": [{"numaAffinity": [0], "type": "memory", "size": 1073741824}]
                    }
                },
            },
        },
        "steps": [
            {"add": guaranteed("p1", "2")},
            {"add": guaranteed("p2", "2")},
            {"add": guaranteed("p3", "2")},
            {"delete": "running"},
            {"add": guaranteed("p4", "2")},
        ],
    }
    code, out, err = run(["predict", write(tmp_path, scenario)], capsys)
    assert code == 0, err
    steps = json.loads(out)["steps"]
    # NUMA 0 = {0,1,4,5}: 0,4 reserved and 1,5 held by the running pod, so nothing is free
    # there. p1 and p2 fill NUMA 1's two cores; p3 fits nowhere and is rejected.
    assert steps[0]["containers"]["c1"] == {
        "cpus": "2,6",
        "exclusive": True,
        "numa_affinity": [1],
        "mems": "1",
    }
    assert steps[1]["containers"]["c1"] == {
        "cpus": "3,7",
        "exclusive": True,
        "numa_affinity": [1],
        "mems": "1",
    }
    assert steps[2]["admitted"] is False
    assert steps[2]["reason"] == "TopologyAffinityError"
    assert steps[2]["containers"] == {}
    # Deleting the state's pod (by uid) frees 1,5 on NUMA 0 for p4.
    assert steps[4]["containers"]["c1"] == {
        "cpus": "1,5",
        "exclusive": True,
        "numa_affinity": [0],
        "mems": "0",
    }
    state = json.loads(out)["state"]
    assert "running" not in state["cpu"]["entries"]
    assert set(state["cpu"]["entries"]) == {"p1", "p2", "p4"}
    assert state["cpu"]["defaultCpuSet"] == "0,4"
    assert "running" not in state["memory"]["entries"]


def test_yaml_output(capsys):
    code, out, _ = run(
        ["predict", str(SCENARIOS / "single-numa-node-pod-scope.yaml"), "--output", "yaml"], capsys
    )
    assert code == 0
    assert yaml.safe_load(out)["steps"][1]["reason"] == "TopologyAffinityError"


@pytest.mark.parametrize(
    "mutate,where",
    [
        (lambda s: s.update(topology={"profile": "no-such-profile"}), "topology"),
        (lambda s: s["kubelet"].update(topologyManagerPolicy="bogus"), "topologyManagerPolicy"),
        (
            lambda s: s["kubelet"].update(
                reservedMemory=[{"numaNode": 0, "limits": {"memory": "1Gi"}}]
            ),
            "reservedMemory",
        ),
        (lambda s: s["topology"]["cpus"][3].update(numa=7), "topology.cpus"),
        (lambda s: s.update(bogus=1), "bogus"),
        (lambda s: s["steps"].append({"delete": "nobody"}), "steps[1]"),
        (lambda s: s["steps"].append({"add": guaranteed("p1", "1")}), "steps[1]"),
        (
            lambda s: s["steps"].append(
                {"add": dict(guaranteed("other", "1"), metadata={"name": "other", "uid": "p1"})}
            ),
            "steps[1]",
        ),
        (
            lambda s: s["steps"].append({"add": {"kind": "Pod", "metadata": {"name": "x"}}}),
            "steps[1]",
        ),
        (lambda s: s["steps"].append({"add": guaranteed("x", "2xx")}), "steps[1]"),
        (
            lambda s: s.update(
                state={
                    "cpu": {
                        "policyName": "static",
                        "defaultCpuSet": "0-7",
                        "entries": {"a": {"b": "1"}},
                    }
                }
            ),
            "state.cpu",
        ),
        (lambda s: s.update(node={"allocatable": {"cpu": "x"}}), "node.allocatable.cpu"),
        (
            # a critical pod that does not fit: the kubelet would preempt, numacert cannot say
            lambda s: s["steps"].append(
                {
                    "add": {
                        "kind": "Pod",
                        "metadata": {"name": "crit"},
                        "spec": {
                            "priorityClassName": "system-node-critical",
                            "containers": [{"name": "c", "resources": {"requests": {"cpu": "7"}}}],
                        },
                    }
                }
            ),
            "steps[1]",
        ),
    ],
)
def test_bad_scenarios_exit_2_with_one_line(tmp_path, capsys, mutate, where):
    scenario = {
        "topology": json.loads(json.dumps(EXPLICIT)),
        "kubelet": dict(KUBELET),
        "steps": [{"add": guaranteed("p1", "1")}],
    }
    mutate(scenario)
    path = write(tmp_path, scenario)
    code, out, err = run(["predict", path], capsys)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert path in lines[0] and where in lines[0], lines[0]
    assert "Traceback" not in err


def test_malformed_yaml_and_missing_file(tmp_path, capsys):
    path = write(tmp_path, "topology: [unclosed\n")
    code, _, err = run(["predict", path], capsys)
    assert code == 2 and path in err and "YAML" in err
    code, _, err = run(["predict", str(tmp_path / "absent.yaml")], capsys)
    assert code == 2 and "absent.yaml" in err
