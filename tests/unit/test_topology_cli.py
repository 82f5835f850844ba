"""`numacert topology` through the real entry point: outputs, exit codes, one-line errors."""

from __future__ import annotations

import io
import json

import pytest
import yaml

from numacert.cli.main import main
from numacert.topology.profiles import list_profiles, load_profile
from numacert.topology.sysfs import collector_script, run_collector
from tests.unit.test_topology_sysfs import SYSTEM, two_socket_smt


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_local_machine_table(capsys):
    code, out, err = run(capsys, "topology")
    assert code == 0, err
    assert "fingerprint:" in out
    assert "NUMA" in out and "socket" in out


def test_profile_json(capsys):
    code, out, _ = run(capsys, "topology", "--profile", "xeon-gold-6230", "--output", "json")
    assert code == 0
    data = json.loads(out)
    assert data["fingerprint"] == load_profile("xeon-gold-6230").fingerprint()
    assert len(data["cpus"]) == 80 and len(data["numa"]) == 4
    assert data["source"] == "profile xeon-gold-6230"


def test_profile_yaml(capsys):
    code, out, _ = run(capsys, "topology", "--profile", "two-socket-smt", "-o", "yaml")
    assert code == 0
    data = yaml.safe_load(out)
    assert data["fingerprint"] == load_profile("two-socket-smt").fingerprint()
    assert [c["core"] for c in data["cpus"]] == [0, 0, 2, 2, 4, 4, 6, 6]


def test_profile_table(capsys):
    code, out, _ = run(capsys, "topology", "--profile", "four-numa-unequal")
    assert code == 0
    assert f"fingerprint:  {load_profile('four-numa-unequal').fingerprint()}" in out
    assert "10 12 32 32" in out
    assert "2Mi: 16" in out


def test_list_profiles(capsys):
    code, out, _ = run(capsys, "topology", "--list-profiles")
    assert code == 0
    for name in list_profiles():
        assert name in out
    code, out, _ = run(capsys, "topology", "--list-profiles", "-o", "json")
    assert [p["name"] for p in json.loads(out)] == list_profiles()


def test_snapshot_file_and_stdin(capsys, tmp_path, monkeypatch):
    text = run_collector(str(two_socket_smt(tmp_path / "tree")))
    snap = tmp_path / "node.snap"
    snap.write_text(text)
    expected = load_profile("two-socket-smt").fingerprint()
    code, out, _ = run(capsys, "topology", "--snapshot", str(snap), "-o", "json")
    assert code == 0 and json.loads(out)["fingerprint"] == expected
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, _ = run(capsys, "topology", "--snapshot", "-", "-o", "json")
    assert code == 0 and json.loads(out)["fingerprint"] == expected


def test_sysfs_root(capsys, tmp_path):
    two_socket_smt(tmp_path)
    code, out, _ = run(capsys, "topology", "--sysfs-root", str(tmp_path))
    assert code == 0
    assert load_profile("two-socket-smt").fingerprint() in out


def test_print_collector(capsys):
    code, out, _ = run(capsys, "topology", "--print-collector")
    assert code == 0 and out == collector_script()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--profile", "nope"], "--profile: unknown profile 'nope'; known profiles: "),
        (["--profile", "single-numa", "--snapshot", "x"], "use only one of --profile, --snapshot"),
        (["--list-profiles", "--profile", "single-numa"], "use only one of"),
        (["--output", "xml"], "--output: unknown output 'xml'"),
        (["--snapshot", "/no/such/file"], "/no/such/file: cannot read the snapshot"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, args, needle):
    code, out, err = run(capsys, "topology", *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("numacert: error: ")
    assert needle in err
    assert "Traceback" not in err


def test_garbled_snapshot_exits_2(capsys, tmp_path):
    text = run_collector(str(two_socket_smt(tmp_path / "tree")))
    snap = tmp_path / "bad.snap"
    snap.write_text(text.replace("cpu/3/core_id\t1", "cpu/3/core_id\tone"))
    code, _, err = run(capsys, "topology", "--snapshot", str(snap))
    assert code == 2
    assert err.count("\n") == 1
    assert f"{snap}: cpu/3/core_id: not a non-negative integer" in err


def test_garbled_sysfs_root_exits_2(capsys, tmp_path):
    two_socket_smt(tmp_path)
    (tmp_path / SYSTEM / "node/node1/meminfo").write_text("nothing here\n")
    code, _, err = run(capsys, "topology", "--sysfs-root", str(tmp_path))
    assert code == 2
    assert err.count("\n") == 1 and "node/1/memtotal" in err
