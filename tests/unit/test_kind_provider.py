"""The kind provider's pure parts and its refusals: finding kind, pytest-kind without downloads
or ./.pytest-kind, option checks that fail before any Docker call (exit 2, nothing created)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from numacert.cli.main import main
from numacert.errors import InfrastructureError, InputError
from numacert.kind.cluster import NumacertKindCluster, find_kind
from numacert.kind.node_image import image_ref
from numacert.matrix.resolve import Status, resolve, run_anyway
from numacert.matrix.spec import load_matrix


def _exe(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_kind_prefers_kind_bin(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_kind(str(_exe(tmp_path / "mykind"))) == tmp_path / "mykind"


def test_find_kind_on_path(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _exe(bindir / "kind")
    monkeypatch.setenv("PATH", str(bindir))
    assert find_kind(None) == bindir / "kind"


def test_no_kind_names_both_ways(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError) as exc:
        find_kind(None)
    assert "PATH" in str(exc.value) and "--kind-bin" in str(exc.value)


def test_kind_bin_not_executable(tmp_path):
    plain = tmp_path / "kind"
    plain.write_text("")
    with pytest.raises(InputError, match="not an executable file"):
        find_kind(str(plain))


def test_pytest_kind_cluster_object_downloads_nothing_and_writes_nothing_here(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cluster = NumacertKindCluster("numacert-x", tmp_path / "state" / "kubeconfig",
                                  tmp_path / "no-kind", tmp_path / "no-kubectl")
    assert not (tmp_path / ".pytest-kind").exists()
    with pytest.raises(InputError):
        cluster.ensure_kind()
    with pytest.raises(InfrastructureError):
        cluster.ensure_kubectl()
    assert os.listdir(tmp_path) == []


def test_image_ref_carries_version_and_key():
    assert image_ref("v1.37.2", "abc") == "numacert.local/kind-node:v1.37.2-abc"


@pytest.mark.parametrize("args, where", [
    (["--kubeconfig", "k"], "--kubeconfig"),
    (["--nodes", "a"], "--nodes"),
    (["--node-access", "docker://{node}"], "--node-access"),
    (["--kind-way", "cluster"], "--kind-way"),
    (["--run-unsupported"], "--run-unsupported"),
    (["--ignore-opt-in-label"], "--ignore-opt-in-label"),
    (["--matrix", "kind", "--require", "x.yaml"], "--require"),
    (["--matrix", "no-such-matrix"], "matrix"),
])
def test_bad_kind_options_exit_2_before_docker(tmp_path, monkeypatch, capsys, args, where):
    # No kind and no docker on PATH: a refusal must come before either is looked for.
    monkeypatch.setenv("PATH", str(tmp_path))
    code = main(["run", "--provider", "kind", "--output-dir", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert where in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--kind-bin", "--kind-image", "--keep-cluster",
                                  "--kind-way"])
def test_kind_options_need_the_kind_provider(tmp_path, capsys, flag):
    value = {"--kind-bin": ["x"], "--kind-image": ["x"], "--keep-cluster": [],
             "--kind-way": ["cluster"]}[flag]
    code = main(["run", flag, *value, "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert "only with --provider kind" in capsys.readouterr().err


def test_shipped_kind_matrix_on_one_numa_node():
    """On a single-NUMA host the recommended combination is UNSUPPORTED; --run-unsupported
    runs it, keeping the reason as a warning; invalid ones would stay invalid."""
    from numacert.kubelet.parse import from_dict
    from numacert.topology.profiles import load_profile

    matrix = load_matrix("kind")
    topology = load_profile("single-numa")
    base = from_dict({"reservedSystemCPUs": "0", "systemReserved": {"memory": "256Mi"},
                      "evictionHard": {"memory.available": "100Mi"}}, "base")
    resolved = resolve(matrix, base, topology, 37)
    status = {r.id: r.status for r in resolved}
    assert status == {"none.none.none": Status.OK, "static.none.none": Status.OK,
                      "recommended": Status.UNSUPPORTED}
    anyway = {r.id: r for r in run_anyway(resolved)}
    assert all(r.status == Status.OK for r in anyway.values())
    assert anyway["recommended"].run_anyway.startswith("needs-numa-nodes:2")
    assert anyway["static.none.none"].run_anyway is None


def test_deleting_a_cluster_forgets_its_nodes_journals(tmp_path, monkeypatch):
    """A matrix run killed in the middle leaves a journal for a kind node; once its cluster is
    gone (deleted, or about to be created anew) the entry must go, or every later run of the
    same spec (same node names) would be refused with nothing left to restore."""
    from numacert.kind.cluster import forget_nodes_of
    from numacert.providers.journal import Journal, new_entry

    monkeypatch.setenv("NUMACERT_STATE", str(tmp_path))
    journal = Journal()
    for node in ("numacert-abc-worker", "numacert-abc-worker2", "numacert-abcd-worker",
                 "lab-node"):
        journal.write(_entry(new_entry, node))
    assert sorted(forget_nodes_of("numacert-abc")) == ["numacert-abc-worker",
                                                       "numacert-abc-worker2"]
    assert sorted(journal.nodes()) == ["lab-node", "numacert-abcd-worker"]


def _entry(new_entry, node):
    return new_entry(node=node, provider="ssh", target={"kind": "cluster"},
                     config_file="/var/lib/kubelet/config.yaml", flags_files=[],
                     root_dir="/var/lib/kubelet", files=[], configz={},
                     was_unschedulable=False)
