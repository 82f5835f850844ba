"""numacert.providers: the pure parts (layout parsing, the config file rewrite, the journal,
the opt-in label) and the matrix runner's matrix.json against the reports' reader."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from numacert.errors import InfrastructureError, InputError
from numacert.proc import ProcessRecord
from numacert.providers import layout
from numacert.providers.journal import (
    Journal,
    JournalEntry,
    NodeClaims,
    SavedFile,
    new_entry,
)
from numacert.providers.procedure import policy_view, render_config_file
from numacert.providers.safety import OPT_IN_LABEL, opted_in

KUBEADM_ARGV = [
    "/usr/bin/kubelet",
    "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
    "--kubeconfig=/etc/kubernetes/kubelet.conf",
    "--config=/var/lib/kubelet/config.yaml",
    "--hostname-override=127.0.0.2",
]


def test_flag_value_both_spellings_last_wins():
    assert layout.flag_value(KUBEADM_ARGV, "config") == "/var/lib/kubelet/config.yaml"
    assert layout.flag_value(["kubelet", "--config", "/a.yaml"], "config") == "/a.yaml"
    assert layout.flag_value(["k", "--config=/a", "--config=/b"], "config") == "/b"
    assert layout.flag_value(KUBEADM_ARGV, "root-dir") is None
    # a prefix of another flag is not that flag
    assert layout.flag_value(["k", "--config-dir=/d"], "config") is None


def test_environment_files_from_systemctl_show():
    shown = (
        "/var/lib/kubelet/kubeadm-flags.env (ignore_errors=yes)\n"
        "/etc/default/kubelet (ignore_errors=yes)\n"
    )
    assert layout.environment_files(shown) == [
        "/var/lib/kubelet/kubeadm-flags.env",
        "/etc/default/kubelet",
    ]
    assert layout.environment_files("") == []


class FakeAccess:
    """A node shell answering the few commands layout.discover runs (pure test double of
    the testinfra host: what is under test is the parsing, not ssh)."""

    spec = "fake://node"

    def __init__(self, pid: str, argv: list[str], env_files: str, files: set[str]):
        self.answers = {
            "systemctl show -p MainPID --value kubelet": pid,
            f"cat /proc/{pid}/cmdline": "\0".join(argv) + "\0",
            "systemctl show -p EnvironmentFiles --value kubelet": env_files,
        }
        self.files = files

    def run(self, command: str, check: bool = True) -> str:
        return self.answers[command]

    def exists(self, path: str) -> bool:
        return path in self.files


def test_discover_kubeadm_layout():
    access = FakeAccess(
        "1994",
        KUBEADM_ARGV,
        "/var/lib/kubelet/kubeadm-flags.env (ignore_errors=yes)\n"
        "/etc/default/kubelet (ignore_errors=yes)\n",
        {"/var/lib/kubelet/kubeadm-flags.env"},
    )
    found = layout.discover(access)
    assert found.config_file == "/var/lib/kubelet/config.yaml"
    assert found.flags_files == ("/var/lib/kubelet/kubeadm-flags.env",)  # the absent one left out
    assert found.state_files == (
        "/var/lib/kubelet/cpu_manager_state",
        "/var/lib/kubelet/memory_manager_state",
    )
    custom = FakeAccess(
        "7", ["kubelet", "--config", "/etc/k/c.yaml", "--root-dir=/data/k"], "", set()
    )
    assert layout.discover(custom).state_files[0] == "/data/k/cpu_manager_state"


@pytest.mark.parametrize(
    "pid,argv,expected",
    [
        ("0", [], "no kubelet runs as the systemd unit"),
        ("42", ["kubelet", "--v=2"], "without --config"),
    ],
)
def test_discover_refuses_what_it_cannot_reconfigure(pid, argv, expected):
    with pytest.raises(InfrastructureError, match=expected):
        layout.discover(FakeAccess(pid, argv, "", set()))


ORIGINAL = b"""\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
cpuManagerPolicy: static
cpuManagerPolicyOptions:
  full-pcpus-only: "true"
reservedSystemCPUs: "0"
# a comment the rewrite drops: YAML round trips keep data, not comments
"""


def test_render_config_file_sets_and_removes_only_the_given_fields():
    new = yaml.safe_load(
        render_config_file(
            ORIGINAL,
            {"topologyManagerPolicy": "restricted", "cpuManagerPolicyOptions": None},
            "node:/var/lib/kubelet/config.yaml",
        )
    )
    assert new["topologyManagerPolicy"] == "restricted"
    assert "cpuManagerPolicyOptions" not in new
    assert new["cgroupDriver"] == "systemd" and new["reservedSystemCPUs"] == "0"
    assert new["cpuManagerPolicy"] == "static"


@pytest.mark.parametrize("text", [b"{unclosed", b"- a list\n"])
def test_render_config_file_refuses_what_is_not_a_config(text):
    with pytest.raises(InputError, match="node:/c.yaml"):
        render_config_file(text, {}, "node:/c.yaml")


def test_policy_view_fills_the_kubelets_defaults():
    view = policy_view({"cpuManagerPolicy": "static"})
    assert view["cpuManagerPolicy"] == "static"
    assert view["topologyManagerPolicy"] == "none"
    assert view["topologyManagerScope"] == "container"
    assert view["memoryManagerPolicy"] == "None"
    assert view["cpuManagerPolicyOptions"] == {}


def _entry(node: str = "n1") -> JournalEntry:
    return new_entry(
        node=node,
        provider="ssh",
        target={
            "kind": "cluster",
            "kubeconfig": "/k",
            "context": None,
            "node_access": "ssh://{node}",
        },
        config_file="/var/lib/kubelet/config.yaml",
        flags_files=["/var/lib/kubelet/kubeadm-flags.env"],
        root_dir="/var/lib/kubelet",
        files=[SavedFile("/var/lib/kubelet/config.yaml", ORIGINAL, 0o644)],
        configz={"cpuManagerPolicy": "static"},
        was_unschedulable=False,
    )


def test_journal_round_trip(tmp_path):
    journal = Journal(tmp_path)
    assert journal.nodes() == [] and journal.read("n1") is None
    journal.write(_entry())
    back = journal.read("n1")
    assert back is not None
    assert back.files[0].content == ORIGINAL and back.files[0].mode == 0o644
    assert back.configz == {"cpuManagerPolicy": "static"}
    assert back.runner["pid"] > 0 and back.created
    assert journal.nodes() == ["n1"]
    journal.remove("n1")
    assert journal.nodes() == []


def test_journal_detects_a_corrupt_copy(tmp_path):
    journal = Journal(tmp_path)
    journal.write(_entry())
    data = json.loads(journal.path("n1").read_text())
    data["files"][0]["content_base64"] = "aGVsbG8="  # "hello": not what the checksum says
    journal.path("n1").write_text(json.dumps(data))
    with pytest.raises(InfrastructureError, match="corrupt"):
        journal.read("n1")


def test_journal_file_names_are_safe(tmp_path):
    journal = Journal(tmp_path)
    assert journal.path("../etc/x").parent == tmp_path
    journal.write(_entry("node/with:odd"))
    assert journal.nodes() == ["node/with:odd"]


# ---- node claims: two matrix runs never hold one node -------------------------------------


@pytest.fixture
def other_process():
    """A live process that is not this one (another numacert run, as far as claims go)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_claim_is_taken_and_released(tmp_path):
    claims = NodeClaims(tmp_path)
    claims.take("n1")
    assert claims.holder("n1").pid == os.getpid()
    claims.take("n1")  # this process again: fine
    claims.release("n1")
    assert claims.holder("n1") is None and not claims.path("n1").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


def test_a_node_held_by_another_live_run_is_refused(tmp_path, other_process):
    claims = NodeClaims(tmp_path)
    ProcessRecord.of(other_process.pid).write(claims.path("n1"))
    with pytest.raises(InputError, match=f"another numacert run \\(pid {other_process.pid}"):
        claims.take("n1")
    claims.release("n1")  # not ours: left alone
    assert claims.holder("n1").pid == other_process.pid


def test_a_claim_of_a_run_that_is_gone_is_taken_over(tmp_path, other_process):
    claims = NodeClaims(tmp_path)
    record = ProcessRecord.of(other_process.pid)
    other_process.kill()
    other_process.wait()
    record.write(claims.path("n1"))
    assert claims.holder("n1") is None
    claims.take("n1")
    assert claims.holder("n1").pid == os.getpid()


def test_a_claim_is_not_fooled_by_a_reused_pid(tmp_path, other_process):
    """A record names a process by pid and start time: the same pid started at another time
    is another process, so the claim is stale."""
    claims = NodeClaims(tmp_path)
    record = ProcessRecord.of(other_process.pid)
    ProcessRecord(record.pid, record.start_time - 100).write(claims.path("n1"))
    assert claims.holder("n1") is None


def test_claims_are_all_or_none(tmp_path, other_process):
    claims = NodeClaims(tmp_path)
    ProcessRecord.of(other_process.pid).write(claims.path("n2"))
    with pytest.raises(InputError, match="node n2"):
        with claims.held(["n1", "n2", "n3"]):
            pytest.fail("the block must not run")
    assert claims.holder("n1") is None and claims.holder("n3") is None
    with claims.held(["n1", "n3"]):
        assert {claims.holder(n).pid for n in ("n1", "n3")} == {os.getpid()}
    assert claims.holder("n1") is None and claims.holder("n3") is None


def test_claims_are_not_journal_entries(tmp_path):
    NodeClaims(tmp_path).take("n1")
    assert Journal(tmp_path).nodes() == []


def test_opt_in_label():
    key, value = OPT_IN_LABEL.split("=")
    assert opted_in({key: value})
    assert not opted_in({key: "false"})
    assert not opted_in({})
    assert not opted_in(None)


def test_matrix_record_is_what_the_matrix_reports_read(tmp_path):
    """matrix.json as the runner writes it is accepted by numacert.reports.matrix, with
    UNSUPPORTED combinations carrying `code | sentence` and the others not run yet."""
    from numacert.lab.kubelet_config import lab_kubelet_config
    from numacert.lab.profile import load_lab_profile
    from numacert.matrix.resolve import Status, resolve
    from numacert.matrix.runner import MatrixRecord, Prepared, managed_fields
    from numacert.matrix.spec import load_matrix
    from numacert.reports.matrix import load_matrix as load_record

    profile = load_lab_profile("default")
    base = lab_kubelet_config(profile.topology, profile.kubelet)
    matrix = load_matrix("default")
    resolved = resolve(matrix, base, profile.topology, 37)
    prepared = Prepared(matrix, None, {}, resolved, [])
    record = MatrixRecord(tmp_path, prepared)
    ok = next(r for r in resolved if r.status == Status.OK)
    record.update(ok.id, status="run", node="n1", dir=ok.id, timings={"apply": 1.0})
    record.finish(interrupted=False)
    parsed = load_record(tmp_path / "matrix.json")
    statuses = {c.id: c.status for c in parsed.combinations}
    assert statuses[ok.id] == "run"
    unsupported = [r for r in resolved if r.status == Status.UNSUPPORTED]
    assert unsupported and all(statuses[r.id] == "unsupported" for r in unsupported)
    assert all(c.reason_code for c in parsed.combinations if c.status == "unsupported")
    # What a combination writes: every managed field, None where the kubelet default applies.
    fields = managed_fields(ok)
    assert fields["cpuManagerPolicy"] == "static"
    assert set(fields) >= {"topologyManagerPolicy", "memoryManagerPolicy", "reservedMemory"}


def test_a_topology_snapshot_round_trips_for_the_child_run(tmp_path):
    """What the matrix runner writes for a combination's run is what the session reads back:
    the same topology, so the child needs no collector pod."""
    from numacert.fixtures.session import CertOptions, CertSession
    from numacert.lab.profile import load_lab_profile
    from numacert.target import TargetOptions

    topology = load_lab_profile("default").topology
    path = tmp_path / "topology.json"
    path.write_text(json.dumps({"n1": topology.to_dict()}))
    session = CertSession(
        CertOptions(TargetOptions(), topology_path=str(path)), progress=lambda s: None
    )
    back = session._topology_snapshot("n1")
    assert back is not None and back.fingerprint() == topology.fingerprint()
    assert session._topology_snapshot("n2") is None  # another node: its own collector pod
