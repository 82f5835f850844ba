"""The sysfs collector (real script, real sh) against fake trees, and the snapshot parser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from numacert.cpuset import CPUSet
from numacert.errors import InputError
from numacert.topology.generate import generate
from numacert.topology.profiles import load_profile
from numacert.topology.sysfs import (
    collect_local,
    collector_script,
    parse_snapshot,
    run_collector,
)

SYSTEM = "sys/devices/system"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_tree(
    root: Path,
    *,
    online: str,
    nodes: dict[int, dict] | None,
    cpus: dict[int, dict],
) -> Path:
    """A fake /sys. nodes: {id: {cpulist, memtotal_kb?, distance?, hugepages?: {kB: n}}};
    cpus: {id: {package?, core?, siblings?, l3?: (id | None, shared_list), l3_index?}}.
    A key set to None (or absent where optional) leaves the file out."""
    system = root / SYSTEM
    _write(system / "cpu" / "online", online + "\n")
    _write(system / "cpu" / "possible", online + "\n")  # noise the collector must skip
    for n, spec in (nodes or {}).items():
        d = system / "node" / f"node{n}"
        _write(d / "cpulist", spec["cpulist"] + "\n")
        if spec.get("memtotal_kb") is not None:
            _write(
                d / "meminfo",
                f"Node {n} MemTotal:       {spec['memtotal_kb']} kB\n"
                f"Node {n} MemFree:        1000 kB\n",
            )
        if spec.get("distance") is not None:
            _write(d / "distance", spec["distance"] + "\n")
        for kb, count in (spec.get("hugepages") or {}).items():
            _write(d / "hugepages" / f"hugepages-{kb}kB" / "nr_hugepages", f"{count}\n")
            _write(d / "hugepages" / f"hugepages-{kb}kB" / "free_hugepages", f"{count}\n")
    if nodes is not None:
        _write(system / "node" / "online", ",".join(str(n) for n in nodes) + "\n")
    for c, spec in cpus.items():
        d = system / "cpu" / f"cpu{c}"
        d.mkdir(parents=True, exist_ok=True)
        t = d / "topology"
        if spec.get("package") is not None:
            _write(t / "physical_package_id", f"{spec['package']}\n")
        if spec.get("core") is not None:
            _write(t / "core_id", f"{spec['core']}\n")
        if spec.get("siblings") is not None:
            _write(t / "thread_siblings_list", spec["siblings"] + "\n")
        # L1/L2 always present, so the collector must pick the level-3 one.
        for index, level in (("index0", 1), ("index1", 1), ("index2", 2)):
            _write(d / "cache" / index / "level", f"{level}\n")
            _write(d / "cache" / index / "id", "0\n")
        if spec.get("l3") is not None:
            cache_id, shared = spec["l3"]
            idx = d / "cache" / spec.get("l3_index", "index3")
            _write(idx / "level", "3\n")
            _write(idx / "shared_cpu_list", shared + "\n")
            if cache_id is not None:
                _write(idx / "id", f"{cache_id}\n")
    return root


def two_socket_smt(root: Path, **overrides) -> Path:
    """The lab default as a qemu guest shows it: nodes 0-3 / 4-7, siblings adjacent."""
    nodes = {
        0: {"cpulist": "0-3", "memtotal_kb": 4 * 1024 * 1024, "distance": "10 21",
            "hugepages": {2048: 64}},
        1: {"cpulist": "4-7", "memtotal_kb": 4 * 1024 * 1024, "distance": "21 10",
            "hugepages": {2048: 64}},
    }  # fmt: skip
    cpus = {
        c: {
            "package": c // 4,
            "core": (c % 4) // 2,
            "siblings": f"{c - c % 2}-{c - c % 2 + 1}",
            "l3": (c // 4, f"{c // 4 * 4}-{c // 4 * 4 + 3}"),
        }
        for c in range(8)
    }
    for key, value in overrides.items():
        if key == "nodes":
            nodes = value
        elif key == "cpus":
            cpus = value
    return make_tree(root, online="0-7", nodes=nodes, cpus=cpus)


def collect(root: Path):
    return collect_local(str(root))


# ---- the script itself --------------------------------------------------------------------
def test_script_is_package_data_and_posix():
    script = collector_script()
    assert script.startswith("#!/bin/sh")
    for bashism in ("[[", "declare ", "local ", "function ", "$'", "<<<", "${!", "(("):
        assert bashism not in script, bashism


@pytest.mark.parametrize("shell", [["sh"], ["busybox", "sh"], ["bash", "--posix"]])
def test_script_gives_same_snapshot_in_every_shell(tmp_path, shell):
    if shutil.which(shell[0]) is None:
        pytest.skip(f"{shell[0]} not installed")
    two_socket_smt(tmp_path)
    out = subprocess.run(
        [*shell, "-s"],
        input=collector_script(),
        capture_output=True,
        text=True,
        env={**os.environ, "SYSFS_ROOT": str(tmp_path)},
        check=True,
    ).stdout
    assert out == run_collector(str(tmp_path))
    assert out.splitlines()[0] == "numacert-sysfs\t1"
    assert out.splitlines()[-1] == "end\tok"


def test_snapshot_lines(tmp_path):
    two_socket_smt(tmp_path)
    lines = run_collector(str(tmp_path)).splitlines()
    assert "online\t0-7" in lines
    assert "node/1/cpulist\t4-7" in lines
    assert "node/0/distance\t10 21" in lines
    assert "node/0/memtotal\tMemTotal:       4194304 kB" in lines
    assert "node/0/hugepages/2048kB\t64" in lines
    assert "cpu/5/core_id\t0" in lines
    assert "cpu/5/thread_siblings_list\t4-5" in lines
    assert "cpu/5/l3/id\t1" in lines
    assert "cpu/5/l3/shared_cpu_list\t4-7" in lines
    assert not any(line.startswith("cpu/5/l3/level") for line in lines)


# ---- fake machines ------------------------------------------------------------------------
def test_two_socket_smt_matches_generator_and_lab_profile(tmp_path):
    topo = collect(two_socket_smt(tmp_path))
    expected = generate(2, 1, 2, 2, "4Gi", {"2Mi": 64}, cpu_numbering="qemu")
    assert topo == expected
    assert topo == load_profile("two-socket-smt")
    assert topo.siblings(2) == CPUSet({2, 3})
    assert topo.cpus_by_numa == {0: CPUSet(range(4)), 1: CPUSet(range(4, 8))}
    assert topo.distance(0, 1) == 21
    # L3 spans exactly the node: a node cache in cadvisor, so uncore falls back to the socket.
    assert [c.uncore for c in topo.cpus] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_l3_shared_by_two_nodes_becomes_uncore_id(tmp_path):
    nodes = {
        0: {"cpulist": "0-1,4-5", "memtotal_kb": 1024},
        1: {"cpulist": "2-3,6-7", "memtotal_kb": 1024},
    }
    cpus = {c: {"package": 0, "core": c % 4, "l3": (7, "0-7")} for c in range(8)}
    topo = collect(make_tree(tmp_path, online="0-7", nodes=nodes, cpus=cpus))
    assert {c.uncore for c in topo.cpus} == {7}
    assert topo.siblings(1) == CPUSet({1, 5})
    assert topo.numa_by_id[0].distances is None


def test_machine_without_l3_info(tmp_path):
    cpus = {c: {"package": c // 4, "core": (c % 4) // 2} for c in range(8)}
    topo = collect(two_socket_smt(tmp_path, cpus=cpus))
    assert [c.uncore for c in topo.cpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert topo.num_cores == 4


def test_l3_without_id_file_falls_back_to_socket(tmp_path):
    cpus = {c: {"package": 0, "core": c, "l3": (None, "0-1")} for c in range(4)}
    nodes = {0: {"cpulist": "0-1", "memtotal_kb": 1}, 1: {"cpulist": "2-3", "memtotal_kb": 1}}
    topo = collect(make_tree(tmp_path, online="0-3", nodes=nodes, cpus=cpus))
    assert {c.uncore for c in topo.cpus} == {0}


def test_l3_found_under_another_index(tmp_path):
    # Some arm64 machines list the L3 as index2 (index3 absent); the collector searches levels.
    cpus = {c: {"package": 0, "core": c, "l3": (c // 2 + 4, f"{c - c % 2}-{c - c % 2 + 1}"),
                "l3_index": "index5"} for c in range(4)}  # fmt: skip
    topo = collect(
        make_tree(tmp_path, online="0-3", nodes={0: {"cpulist": "0-3", "memtotal_kb": 8}},
                  cpus=cpus)
    )  # fmt: skip
    assert [c.uncore for c in topo.cpus] == [4, 4, 5, 5]
    assert topo.num_uncore_caches == 2


def test_node_without_hugepages_or_distance(tmp_path):
    nodes = {
        0: {"cpulist": "0-3", "memtotal_kb": 2048, "hugepages": {2048: 8, 1048576: 1}},
        1: {"cpulist": "4-7", "memtotal_kb": 2048},
    }
    topo = collect(two_socket_smt(tmp_path, nodes=nodes))
    assert topo.numa_by_id[0].hugepages == {2 * 2**20: 8, 2**30: 1}
    assert topo.numa_by_id[1].hugepages == {}
    assert topo.numa_by_id[0].distances is None
    assert topo.numa_by_id[1].memory == 2048 * 1024


def test_offline_cpus_are_left_out(tmp_path):
    cpus = {c: {"package": 0, "core": c} for c in range(3)}
    cpus[3] = {}  # an offline CPU has no topology directory
    nodes = {0: {"cpulist": "0-3", "memtotal_kb": 64}}
    topo = collect(make_tree(tmp_path, online="0-2", nodes=nodes, cpus=cpus))
    assert topo.all_cpus == CPUSet({0, 1, 2})


def test_no_node_directories_gives_one_node_per_package(tmp_path):
    cpus = {c: {"package": c // 2, "core": c % 2} for c in range(4)}
    topo = collect(make_tree(tmp_path, online="0-3", nodes=None, cpus=cpus))
    assert topo.cpus_by_numa == {0: CPUSet({0, 1}), 1: CPUSet({2, 3})}
    assert [n.memory for n in topo.numa_nodes] == [0, 0]  # cadvisor reports none there
    assert all(n.distances is None and n.hugepages == {} for n in topo.numa_nodes)


def test_memory_only_node(tmp_path):
    nodes = {
        0: {"cpulist": "0-1", "memtotal_kb": 1024, "distance": "10 20"},
        1: {"cpulist": "", "memtotal_kb": 4096, "distance": "20 10"},
    }
    cpus = {c: {"package": 0, "core": c} for c in range(2)}
    topo = collect(make_tree(tmp_path, online="0-1", nodes=nodes, cpus=cpus))
    assert topo.numa_ids == (0, 1)
    assert topo.cpu_numa_ids == (0,)


# ---- garbled and missing pieces -----------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "content", "piece"),
    [
        ("cpu/cpu1/topology/core_id", "abc\n", "cpu/1/core_id"),
        ("cpu/cpu6/topology/physical_package_id", "-1\n", "cpu/6/physical_package_id"),
        ("cpu/cpu2/topology/thread_siblings_list", "2-x\n", "cpu/2/thread_siblings_list"),
        ("node/node0/cpulist", "0-3,a\n", "node/0/cpulist"),
        ("node/node1/meminfo", "Node 1 MemFree: 5 kB\n", "node/1/memtotal"),
        ("node/node1/meminfo", "Node 1 MemTotal: many kB\n", "node/1/memtotal"),
        ("node/node0/distance", "10 twenty\n", "node/0/distance"),
        ("node/node1/hugepages/hugepages-2048kB/nr_hugepages", "lots\n", "node/1/hugepages"),
        ("node/node1/hugepages/hugepages-huge/nr_hugepages", "1\n", "node/1/hugepages/huge"),
        ("cpu/cpu3/cache/index3/id", "x\n", "cpu/3/l3/id"),
        ("cpu/online", "0-\n", "online"),
    ],
)
def test_garbled_file_names_the_piece(tmp_path, path, content, piece):
    two_socket_smt(tmp_path)
    _write(tmp_path / SYSTEM / path, content)
    with pytest.raises(InputError) as exc:
        collect(tmp_path)
    assert piece in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("path", "piece"),
    [
        ("cpu/online", "online"),
        ("cpu/cpu5/topology/core_id", "cpu/5/core_id"),
        ("cpu/cpu0/topology/physical_package_id", "cpu/0/physical_package_id"),
        ("node/node1/cpulist", "node/1/cpulist"),
        ("node/node0/meminfo", "node/0/memtotal"),
    ],
)
def test_missing_required_file_names_the_piece(tmp_path, path, piece):
    two_socket_smt(tmp_path)
    (tmp_path / SYSTEM / path).unlink()
    with pytest.raises(InputError, match="missing") as exc:
        collect(tmp_path)
    assert piece in str(exc.value)


def test_online_cpu_in_no_node(tmp_path):
    two_socket_smt(tmp_path)
    _write(tmp_path / SYSTEM / "node/node1/cpulist", "4-6\n")
    with pytest.raises(InputError, match=r"online CPUs 7 are in no node"):
        collect(tmp_path)


def test_cpu_on_two_nodes(tmp_path):
    two_socket_smt(tmp_path)
    _write(tmp_path / SYSTEM / "node/node1/cpulist", "3-7\n")
    with pytest.raises(InputError, match=r"node/1/cpulist: CPU 3 is also on node 0"):
        collect(tmp_path)


def test_distance_row_length_mismatch(tmp_path):
    two_socket_smt(tmp_path)
    _write(tmp_path / SYSTEM / "node/node1/distance", "21 10 30\n")
    with pytest.raises(InputError, match="3 distances for 2 nodes"):
        collect(tmp_path)


def test_multiline_garbage_keeps_the_format(tmp_path):
    two_socket_smt(tmp_path)
    _write(tmp_path / SYSTEM / "cpu/cpu0/topology/core_id", "0\nextra\tline\n")
    topo = collect(tmp_path)  # only the first line of a file counts
    assert topo.num_cpus == 8


# ---- the snapshot text --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a numacert sysfs snapshot"),
        ("hello\nend\tok\n", "not a numacert sysfs snapshot"),
        ("numacert-sysfs\t2\nend\tok\n", "not a numacert sysfs snapshot"),
        ("numacert-sysfs\t1\nonline\t0\n", "truncated"),
        ("numacert-sysfs\t1\nonline 0\nend\tok\n", "line 2 is not 'key<TAB>value'"),
        ("numacert-sysfs\t1\nonline\t0\nonline\t0\nend\tok\n", "line 3: duplicate key online"),
        ("numacert-sysfs\t1\nonline\t\nend\tok\n", "no online CPUs"),
        ("numacert-sysfs\t1\nonline\t0\nnode\tx\nend\tok\n", "line 3 (node)"),
    ],
)
def test_bad_snapshot_text(text, message):
    with pytest.raises(InputError, match=re.escape(message)) as exc:
        parse_snapshot(text, "node.snap")
    assert str(exc.value).startswith("node.snap")


def test_snapshot_round_trip_from_text(tmp_path):
    text = run_collector(str(two_socket_smt(tmp_path)))
    assert parse_snapshot(text, "x") == parse_snapshot(text.replace("\n", "\r\n"), "x")


# ---- this machine -------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/sys/devices/system/cpu/online").exists(), reason="needs Linux")
def test_this_machine():
    topo = collect_local()
    online = CPUSet.parse(Path("/sys/devices/system/cpu/online").read_text())
    assert topo.all_cpus == online
    node_dirs = sorted(
        int(p.name[4:])
        for p in Path("/sys/devices/system/node").glob("node*")
        if p.name[4:].isdigit()
    )
    if node_dirs:
        assert list(topo.numa_ids) == node_dirs
        assert all(n.memory > 0 for n in topo.numa_nodes)
    assert topo.num_cores >= 1 and topo.cpus_per_core >= 1
    assert len(topo.fingerprint()) == 12
