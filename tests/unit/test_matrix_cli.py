"""`numacert run --matrix`, `plan --matrix` and `restore` on bad input: one line naming what
and where, exit 2, and nothing started or changed (none of these reaches a node)."""

from __future__ import annotations

import pytest

from numacert.cli.main import main
from numacert.providers.journal import Journal, SavedFile, new_entry
from numacert.state import ENV_STATE


@pytest.fixture(autouse=True)
def _own_state(tmp_path, monkeypatch):
    """Journals go to a folder of the test's own, never the user's."""
    monkeypatch.setenv(ENV_STATE, str(tmp_path / "state"))


def _run(capsys, *args: str) -> tuple[int, str]:
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.err


def _one_line(err: str) -> None:
    assert err.count("\n") == 1, err


@pytest.mark.parametrize(
    "args,where,what",
    [
        (["run", "--matrix", "no-such-matrix"], "--matrix", "no-such-matrix"),
        (["plan", "--matrix", "no-such-matrix"], "--matrix", "no-such-matrix"),
        (["run", "--matrix", "reduced", "--require", "x.yaml"], "--require", "matrix"),
        (["run", "--provider", "ssh"], "--provider", "only with --matrix"),
        (["run", "--ignore-opt-in-label"], "--ignore-opt-in-label", "only with --matrix"),
        (["run", "--matrix", "reduced", "--provider", "ssh"], "--provider", "--kubeconfig"),
        (
            ["run", "--matrix", "reduced", "--provider", "lab", "--kubeconfig", "k"],
            "--provider",
            "lab provider",
        ),
        (
            ["run", "--matrix", "reduced", "--kubeconfig", "k", "--provider", "ssh"],
            "--node-access",
            "--node-access",
        ),
        (["run", "--matrix", "reduced", "--nodes", "bogus"], "--nodes", "bogus"),
        (["plan", "--matrix", "reduced", "--nodes", "bogus"], "--nodes", "bogus"),
        (["restore", "--from-node"], "--from-node", "--node"),
        (["restore", "--node", "n1"], "--node", "no journal for node n1"),
    ],
)
def test_bad_input(capsys, tmp_path, args, where, what):
    rc, err = _run(capsys, *args)
    assert rc == 2
    _one_line(err)
    assert where in err and what in err


def test_missing_kubeconfig_for_ssh(capsys, tmp_path):
    rc, err = _run(
        capsys,
        "run",
        "--matrix",
        "reduced",
        "--kubeconfig",
        str(tmp_path / "none"),
        "--node-access",
        "ssh://root@{node}",
    )
    assert rc == 2
    _one_line(err)
    assert "no such kubeconfig file" in err


def test_restore_with_nothing_journaled(capsys):
    rc = main(["restore"])
    assert rc == 0
    assert "nothing to restore" in capsys.readouterr().out


def test_a_journaled_node_is_refused_by_a_plain_run(capsys, tmp_path):
    """While a journal says the lab node is changed, `numacert run` refuses it (exit 2)
    without starting anything."""
    Journal().write(
        new_entry(
            node="127.0.0.2",
            provider="lab",
            target={"kind": "lab"},
            config_file="/var/lib/kubelet/config.yaml",
            flags_files=[],
            root_dir="/var/lib/kubelet",
            files=[
                SavedFile("/var/lib/kubelet/config.yaml", b"kind: KubeletConfiguration\n", 0o644)
            ],
            configz={},
            was_unschedulable=False,
        )
    )
    out = tmp_path / "out"
    rc, err = _run(capsys, "run", "--nodes", "127.0.0.2", "--output-dir", str(out))
    assert rc == 2
    _one_line(err)
    assert "still changed" in err and "numacert restore --node 127.0.0.2" in err
    assert not out.exists()
