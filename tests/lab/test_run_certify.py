"""`numacert run` against the lab, as a user runs it: certification, mutation proofs,
cleanup after success and after Ctrl-C, and bad input.

Mutation proofs: the lab node is deliberately configured otherwise than a --require file (or
an --assume file) says, and the verdict must be NOT CERTIFIED, naming the check that catches
it and, for behaviour checks, predicted vs observed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from numacert.fixtures.cli import Run, certify, numacert
from numacert.lab.lab import NODE_NAME
from numacert.probes.kube import TEST_IMAGE, delete_namespace, pod_manifest
from numacert.wait import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.slow]

MANAGED = "app.kubernetes.io/managed-by=numacert"
# What a node running the lab's default policy cannot exercise, or what does not apply to it.
DEFAULT_SKIPS = {
    "CPU-SMT": "not-applicable:full-pcpus-only=off",
    "TM-BESTEFFORT": "not-applicable:topology_manager=single-numa-node",
    "TM-CLOSEST": "not-applicable:topology_manager=single-numa-node",
    "TM-MAXNUMA": "needs-numa-nodes:9",
}
LAB_POLICY = {
    "cpuManagerPolicy": "static",
    "topologyManagerPolicy": "single-numa-node",
    "memoryManagerPolicy": "Static",
}


def fragment(tmp_path: Path, name: str, data: dict) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def leftovers(api) -> list[str]:
    """Namespaces and pods numacert made that still exist."""
    spaces = api.list_namespace(label_selector=MANAGED).items
    pods = api.list_pod_for_all_namespaces(label_selector=MANAGED).items
    return [f"namespace {n.metadata.name}" for n in spaces] + [
        f"pod {p.metadata.namespace}/{p.metadata.name}" for p in pods
    ]


def assert_certified(run: Run) -> None:
    assert run.rc == 0, run.describe()
    [verdict] = run.verdicts
    assert verdict["verdict"] == "CERTIFIED", run.describe()
    records = run.records()
    skipped = {c: r["skip_reason"] for c, r in records.items() if r["status"] == "skipped"}
    # No check that can run on this node is skipped: only those that do not apply or that
    # need hardware the lab does not have.
    assert skipped == DEFAULT_SKIPS
    assert all(r["status"] in ("passed", "skipped") for r in records.values()), records


# ---- certification -------------------------------------------------------------------------


def test_certifies_the_lab_as_lab_up_leaves_it(lab, lab_api, tmp_path):
    require = fragment(tmp_path, "require", {**LAB_POLICY, "topologyManagerScope": "container"})
    run = certify(tmp_path, "--require", require)
    assert_certified(run)
    assert leftovers(lab_api) == []
    for name in ("report.html", "report.md", "junit_numacert.xml", "junit_numacert-strict.xml"):
        assert (run.dir / name).is_file(), name
    assert "CERTIFIED" in run.out


def test_certifies_pod_scope_with_hugepages(lab, lab_api, kubelet_policy, tmp_path):
    """single-numa-node + pod scope + static CPUs + Memory Manager Static + 2Mi hugepages, the
    second run in a row: certified, and again nothing left behind."""
    require = fragment(tmp_path, "require", {**LAB_POLICY, "topologyManagerScope": "pod"})
    with kubelet_policy({"topologyManagerScope": "pod"}):
        run = certify(tmp_path, "--require", require)
    assert_certified(run)
    assert run.records()["HP-NUMA"]["status"] == "passed"
    assert leftovers(lab_api) == []


# ---- mutation proofs: configuration --------------------------------------------------------

# The node runs none of what the required files below ask for.
MISCONFIGURED = {
    "cpuManagerPolicy": "none",
    "topologyManagerPolicy": "best-effort",
    "memoryManagerPolicy": "None",
}


@pytest.fixture(scope="module")
def misconfigured_lab(lab, kubelet_policy):
    with kubelet_policy(MISCONFIGURED):
        yield lab


@pytest.mark.parametrize(
    ("required", "field"),
    [
        ({"cpuManagerPolicy": "static"}, "cpuManagerPolicy"),
        ({"topologyManagerPolicy": "single-numa-node"}, "topologyManagerPolicy"),
        ({"memoryManagerPolicy": "Static"}, "memoryManagerPolicy"),
        ({"topologyManagerScope": "pod"}, "topologyManagerScope"),
        ({"cpuManagerPolicyOptions": {"full-pcpus-only": "true"}}, "full-pcpus-only"),
    ],
    ids=[
        "cpu-none-for-static",
        "best-effort-for-single-numa-node",
        "mm-none-for-static",
        "container-for-pod-scope",
        "full-pcpus-only-missing",
    ],
)
def test_configuration_mutation_is_not_certified(misconfigured_lab, tmp_path, required, field):
    require = fragment(tmp_path, "require", required)
    run = certify(tmp_path, "--require", require, "--check", "CFG-POLICY")
    assert run.rc == 1, run.describe()
    [verdict] = run.verdicts
    assert verdict["verdict"] == "NOT CERTIFIED"
    record = run.records()["CFG-POLICY"]
    assert record["status"] == "failed"
    assert field in record["reason"], record


# ---- mutation proofs: behaviour --------------------------------------------------------------

# The node runs best-effort and Memory Manager None (static CPUs, container scope); each
# --assume below states something it does not run.
BEHAVIOUR_NODE = {"topologyManagerPolicy": "best-effort", "memoryManagerPolicy": "None"}


@pytest.fixture(scope="module")
def best_effort_lab(lab, kubelet_policy):
    with kubelet_policy(BEHAVIOUR_NODE):
        yield lab


@pytest.mark.parametrize(
    ("assumed", "check", "pod"),
    [
        ({"topologyManagerPolicy": "single-numa-node"}, "TM-REJECT", "toobig"),
        ({"memoryManagerPolicy": "Static"}, "MEM-PIN", "excl"),
        ({"topologyManagerScope": "pod"}, "CPU-EXCLUSIVE", "pair"),
    ],
    ids=["single-numa-node-on-best-effort", "static-on-none", "pod-scope-on-container"],
)
def test_behaviour_mutation_is_not_certified(best_effort_lab, tmp_path, assumed, check, pod):
    assume = fragment(tmp_path, "assume", assumed)
    run = certify(tmp_path, "--assume", assume, "--checks", "behaviour", "--check", check)
    assert run.rc == 1, run.describe()
    [verdict] = run.verdicts
    assert verdict["verdict"] == "NOT CERTIFIED"
    record = run.records()[check]
    assert record["status"] == "failed", record
    assert pod in record["reason"]
    # predicted vs observed, side by side, for the pod that gives the kubelet away
    assert record["predicted"][pod] != record["observed"][pod], record


# ---- Ctrl-C and bad input ----------------------------------------------------------------------


def test_ctrl_c_mid_run_leaves_nothing_and_writes_an_incomplete_report(lab, lab_api, tmp_path):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "numacert.cli.main", "run", "--output-dir", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        # Interrupt once the first probe pods exist: the suite is mid-run.
        wait_until(
            lambda: (
                lab_api.list_pod_for_all_namespaces(label_selector=MANAGED).items
                or proc.poll() is not None
            ),
            600,
            "numacert run to start its probe pods",
        )
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(5)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 3, output[-3000:]
    assert leftovers(lab_api) == [], output[-3000:]
    [verdict] = json.loads((out / "verdict.json").read_text())
    assert verdict["verdict"] == "INCOMPLETE"
    assert (out / "report.html").is_file()


def test_unknown_node_is_one_line_exit_2_and_creates_nothing(lab, lab_api, tmp_path):
    spaces = {n.metadata.name for n in lab_api.list_namespace().items}
    proc = numacert("run", "--nodes", "does-not-exist", "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "does-not-exist" in proc.stderr, proc.stderr
    assert {n.metadata.name for n in lab_api.list_namespace().items} == spaces
    assert not (tmp_path / "o").exists()


# ---- --namespace: a namespace numacert did not make ------------------------------------------


def test_a_given_namespace_is_used_and_left_as_it_was(lab, lab_api, tmp_path):
    """--namespace: no namespace is created or deleted; numacert's pods run there and go;
    another pod in it is left alone."""
    name = "given-by-the-user"
    lab_api.create_namespace({"metadata": {"name": name}})
    try:
        foreign = pod_manifest(
            "someone-elses",
            [{"name": "c", "image": TEST_IMAGE, "command": ["sleep", "3600"]}],
            node_name=NODE_NAME,
        )
        lab_api.create_namespaced_pod(name, foreign)
        wait_until(
            lambda: lab_api.read_namespaced_pod("someone-elses", name).status.phase == "Running",
            120,
            "the foreign pod to run",
        )
        spaces = {n.metadata.name for n in lab_api.list_namespace().items}
        run = certify(tmp_path, "--namespace", name, "--check", "CPU-SHARED")
        assert run.rc == 3, run.describe()  # one check: INCOMPLETE at best
        assert run.records()["CPU-SHARED"]["status"] == "passed", run.describe()
        assert {n.metadata.name for n in lab_api.list_namespace().items} == spaces
        left = [p.metadata.name for p in lab_api.list_namespaced_pod(name).items]
        assert left == ["someone-elses"], left
        assert leftovers(lab_api) == []
    finally:
        delete_namespace(lab_api, name)


def test_a_namespace_that_does_not_exist_is_one_line_exit_2(lab, lab_api, tmp_path):
    spaces = {n.metadata.name for n in lab_api.list_namespace().items}
    proc = numacert("run", "--namespace", "no-such-ns", "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "--namespace" in proc.stderr and "no-such-ns" in proc.stderr, proc.stderr
    assert {n.metadata.name for n in lab_api.list_namespace().items} == spaces
    assert not (tmp_path / "o").exists()
