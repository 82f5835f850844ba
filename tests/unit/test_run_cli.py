"""`numacert run` on bad input: one line naming what and where, exit 2, nothing created.

None of these needs a cluster: each is refused before anything starts (the lab included).
"""

from __future__ import annotations

import socket

import pytest
import yaml

from numacert.cli.main import main
from numacert.cli.run_cmd import pytest_args


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kubeconfig(tmp_path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    return str(path)


def run(capsys, *args: str) -> tuple[int, str]:
    rc = main(["run", *args])
    return rc, capsys.readouterr().err


def test_unknown_lab_node(capsys, tmp_path):
    out = tmp_path / "out"
    rc, err = run(capsys, "--nodes", "does-not-exist", "--output-dir", str(out))
    assert rc == 2
    assert err.count("\n") == 1
    assert "--nodes" in err and "does-not-exist" in err
    assert not out.exists()


def test_unreachable_api_server(capsys, tmp_path):
    config = _kubeconfig(tmp_path, f"https://127.0.0.1:{_closed_port()}")
    out = tmp_path / "out"
    rc, err = run(capsys, "--kubeconfig", config, "--nodes", "n1", "--output-dir", str(out))
    assert rc == 2
    assert err.count("\n") == 1
    assert "cannot reach the API server" in err and "--kubeconfig" in err
    assert not out.exists()


def test_missing_kubeconfig_and_unknown_context(capsys, tmp_path):
    rc, err = run(capsys, "--kubeconfig", str(tmp_path / "nope"), "--nodes", "n1")
    assert rc == 2 and "no such kubeconfig file" in err and err.count("\n") == 1
    config = _kubeconfig(tmp_path, "https://127.0.0.1:1")
    rc, err = run(capsys, "--kubeconfig", config, "--context", "other", "--nodes", "n1")
    assert rc == 2 and "--context" in err and err.count("\n") == 1


def test_malformed_option(capsys):
    rc, err = run(capsys, "--no-such-option")
    assert rc == 2
    assert "No such option" in err


@pytest.mark.parametrize(
    ("text", "flag", "what"),
    [
        ("cpuManagerPolicy: [static]\n", "--require", "cpuManagerPolicy"),
        ("topologyManagerScope: 3\n", "--assume", "topologyManagerScope"),
        (": : :\n", "--require", "YAML"),
    ],
)
def test_malformed_policy_fragment(capsys, tmp_path, text, flag, what):
    path = tmp_path / "fragment.yaml"
    path.write_text(text)
    rc, err = run(capsys, flag, str(path), "--output-dir", str(tmp_path / "out"))
    assert rc == 2
    assert err.count("\n") == 1
    assert what in err or what.lower() in err.lower(), err
    assert not (tmp_path / "out").exists()


def test_unknown_check(capsys):
    rc, err = run(capsys, "--check", "NO-SUCH")
    assert rc == 2 and "NO-SUCH" in err and "--check" in err


def test_pytest_args_carry_every_option(tmp_path):
    args = pytest_args(
        tmp_path,
        {
            "kubeconfig": "k",
            "context": "c",
            "nodes": "a,b",
            "image": "i",
            "node_access": "ssh://root@{node}",
            "require": "r.yaml",
            "assume": None,
            "keep_lab": True,
            "no_kubelet_restart": True,
            "checks": "behaviour",
            "check": ("TM-ALIGN",),
            "topology_snapshot": "t.json",
        },
    )
    joined = " ".join(args)
    for part in (
        "--pyargs numacert.suites",
        "--kubeconfig k",
        "--context c",
        "--nodes a,b",
        "--image i",
        "--node-access ssh://root@{node}",
        "--require r.yaml",
        "--keep-lab",
        "--no-kubelet-restart",
        "--numacert-kind behaviour",
        "--numacert-check TM-ALIGN",
        "--numacert-topology t.json",
        f"--numacert-results {tmp_path / 'results.json'}",
    ):
        assert part in joined, part
    assert "--assume" not in joined
