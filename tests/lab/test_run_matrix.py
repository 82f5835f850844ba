"""`numacert run --matrix` on the lab, over real SSH against a node laid out like a kubeadm
node: every combination applied and certified, the node put back byte for byte; a runner
killed mid-reconfiguration and `numacert restore`; a node without the opt-in label refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from importlib import resources

import pytest
import yaml
from kubernetes import watch

from numacert.fixtures.cli import numacert
from numacert.lab.kubelet_config import CONFIG_FILE, FLAGS_FILE
from numacert.lab.lab import NODE_NAME
from numacert.providers.journal import NODE_JOURNAL, Journal
from numacert.providers.procedure import policy_view
from numacert.providers.safety import OPT_IN_LABEL

pytestmark = [pytest.mark.lab, pytest.mark.slow]

MANAGED = "app.kubernetes.io/managed-by=numacert"
# Unsupported on the lab (2 NUMA nodes): reported before anything is applied.
UNSUPPORTED = {
    "id": "many-numa-nodes",
    "kubelet": {
        "cpuManagerPolicy": "static",
        "topologyManagerPolicy": "best-effort",
        "topologyManagerPolicyOptions": {"max-allowable-numa-nodes": "16"},
    },
}


def node_files(lab) -> str:
    """sha256sum of the kubelet's configuration and flags files, as the node reports them."""
    return lab.guest_shell(f"sha256sum {CONFIG_FILE} {FLAGS_FILE}")


def assert_node_as_before(lab, files_before: str, configz_before: dict) -> None:
    assert node_files(lab) == files_before, "kubelet files not byte-identical after restore"
    assert lab.kubelet_configz() == configz_before, "configz differs from the original"
    assert lab.node_ready()
    assert not lab.node().spec.unschedulable, "node left cordoned"
    assert Journal().read(NODE_NAME) is None, "runner's journal left behind"
    assert lab.guest_shell(f"test -e {NODE_JOURNAL} && echo yes || echo no").strip() == "no"


def leftovers(api) -> list[str]:
    names = [ns.metadata.name for ns in api.list_namespace().items]
    pods = api.list_pod_for_all_namespaces(label_selector=MANAGED).items
    return [n for n in names if n.startswith("numacert")] + [p.metadata.name for p in pods]


class ReadyMarks:
    """Watches the lab node while a run goes on and keeps each time its Ready condition was
    marked Unknown by numacert (reason NumacertKubeletStopped), by transition time."""

    def __init__(self, api) -> None:
        self.api = api
        self.seen: list = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.stop.is_set():
            stream = watch.Watch().stream(
                self.api.list_node, field_selector=f"metadata.name={NODE_NAME}", timeout_seconds=5
            )
            for event in stream:
                for cond in event["object"].status.conditions or []:
                    marked = cond.type == "Ready" and cond.reason == "NumacertKubeletStopped"
                    if marked and cond.last_transition_time not in self.seen:
                        self.seen.append(cond.last_transition_time)

    def __enter__(self) -> ReadyMarks:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture
def original(lab):
    return node_files(lab), lab.kubelet_configz()


def test_unlabelled_node_is_refused(lab, lab_api, original, tmp_path):
    key = OPT_IN_LABEL.split("=")[0]
    lab_api.patch_node(NODE_NAME, {"metadata": {"labels": {key: None}}})
    try:
        proc = numacert("run", "--matrix", "reduced", "--output-dir", str(tmp_path / "out"))
    finally:
        lab.label_node()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and OPT_IN_LABEL in proc.stderr
    assert "applying" not in proc.stdout
    assert not (tmp_path / "out").exists()
    assert_node_as_before(lab, *original)
    assert leftovers(lab_api) == []


def test_matrix_applies_certifies_and_restores(lab, lab_api, original, tmp_path):
    matrix = yaml.safe_load(
        resources.files("numacert.clusters").joinpath("matrix", "reduced.yaml").read_text()
    )
    matrix["name"] = "reduced-plus-unsupported"
    matrix["include"].append(UNSUPPORTED)
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(matrix))
    out = tmp_path / "out"
    with ReadyMarks(lab_api) as marks:
        proc = numacert("run", "--matrix", str(path), "--output-dir", str(out))
    detail = f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    lines = proc.stdout.splitlines()
    unsupported = next(i for i, line in enumerate(lines) if "UNSUPPORTED many-numa-nodes" in line)
    first_apply = next(i for i, line in enumerate(lines) if ": applying " in line)
    assert unsupported < first_apply, detail
    verdict = json.loads((out / "matrix-verdict.json").read_text())
    by_id = {c["id"]: c for c in verdict["combinations"]}
    assert by_id["many-numa-nodes"]["verdict"] == "UNSUPPORTED"
    assert "needs-numa-nodes:9" in by_id["many-numa-nodes"]["reason"]
    ran = {i: c["verdict"] for i, c in by_id.items() if i != "many-numa-nodes"}
    assert len(ran) == 6
    assert set(ran.values()) == {"CERTIFIED"}, f"{ran}\n{detail}"
    assert proc.returncode == 0, detail
    # Each combination was certified as that combination: CFG-POLICY held it to --require.
    for cid in ran:
        results = json.loads((out / cid / "results.json").read_text())
        policy = next(r for r in results["checks"] if r["check"] == "CFG-POLICY")
        assert policy["status"] == "passed", f"{cid}: {policy}"
        required = yaml.safe_load((out / cid / "require.yaml").read_text())
        assert results["nodes"][NODE_NAME]["policy"]["topology_scope"] == required.get(
            "topologyManagerScope", "container"
        )
    assert (out / "matrix.html").is_file() and (out / "junit_numacert-strict.xml").is_file()
    assert_node_as_before(lab, *original)
    assert leftovers(lab_api) == []
    # Each of the 7 kubelet stops of the procedure (6 applies, 1 restore) marked the node's
    # Ready Unknown before the kubelet started again (so it took its fast status path).
    assert len(marks.seen) == 7, marks.seen


def test_killed_runner_then_restore(lab, lab_api, original, tmp_path):
    """A second run started while the first prepares is refused (the node is claimed before
    any journal exists); SIGKILL to the runner while it reconfigures the node (kubelet
    stopped, state files removed, new file being written); a new run is refused;
    `numacert restore` brings the node back to its original files, configz and Ready."""
    path = tmp_path / "one.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "one",
                "include": [
                    {
                        "id": "restricted-pod",
                        "kubelet": {
                            "cpuManagerPolicy": "static",
                            "topologyManagerPolicy": "restricted",
                            "topologyManagerScope": "pod",
                        },
                    }
                ],
            }
        )
    )
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "numacert.cli.main",
            "run",
            "--matrix",
            str(path),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    second = None
    try:
        deadline = time.monotonic() + 600
        for line in runner.stdout:
            seen.append(line)
            if second is None and "reading the kubelet's files" in line:
                # The runner prepares (no journal yet): a second run is refused all the same.
                second = numacert(
                    "run", "--matrix", str(path), "--output-dir", str(tmp_path / "second")
                )
            if "kubelet stop, state files removed" in line:
                break
            assert time.monotonic() < deadline, "".join(seen)
        else:
            pytest.fail(f"the runner ended before reconfiguring: {''.join(seen)}")
        time.sleep(1.0)  # inside the stop / rm / write sequence
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert second is not None, "".join(seen)
    assert second.returncode == 2, second.stdout + second.stderr
    assert "being reconfigured by another numacert run" in second.stderr, second.stderr
    assert not (tmp_path / "second").exists()
    assert Journal().read(NODE_NAME) is not None, "no journal after the kill"
    refused = numacert("run", "--matrix", str(path), "--output-dir", str(tmp_path / "again"))
    assert refused.returncode == 2 and "still changed" in refused.stderr, refused.stderr
    restored = numacert("restore", timeout=900)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"{NODE_NAME}: restored" in restored.stdout
    assert_node_as_before(lab, *original)
    assert policy_view(lab.kubelet_configz()) == policy_view(original[1])
    assert leftovers(lab_api) == []


def test_plan_changes_nothing(lab, original):
    proc = numacert("plan", "--matrix", "default", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "UNSUPPORTED many-numa-nodes" in proc.stdout
    assert "== recommended-low-latency on 127.0.0.2" in proc.stdout
    assert "pod toobig: rejected, TopologyAffinityError" in proc.stdout
    assert_node_as_before(lab, *original)


@pytest.fixture(autouse=True)
def _never_leave_a_changed_node(lab):
    """Whatever a test did, the lab node is restored before the next one."""
    yield
    if Journal().read(NODE_NAME) is not None:
        numacert("restore", timeout=900)
