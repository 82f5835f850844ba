"""The topology generator: numberings, counts, distances, hugepages, and its errors."""

from __future__ import annotations

import pytest

from numacert.cpuset import CPUSet
from numacert.errors import InputError
from numacert.topology.generate import default_distances, generate


def test_linux_numbering_first_threads_first():
    topo = generate(2, 1, 4, 2, "8Gi")
    assert topo.cpus_by_numa == {0: CPUSet.parse("0-3,8-11"), 1: CPUSet.parse("4-7,12-15")}
    assert topo.siblings(0) == CPUSet({0, 8})
    assert topo.siblings(12) == CPUSet({4, 12})
    assert topo.cpu_by_id[12].core == 4  # platform-unique: the core's lowest thread
    assert topo.cpus_by_socket == {0: CPUSet.parse("0-3,8-11"), 1: CPUSet.parse("4-7,12-15")}


@pytest.mark.parametrize("numbering", ["sequential", "qemu"])
def test_sequential_numbering_siblings_adjacent(numbering):
    topo = generate(2, 1, 4, 2, "8Gi", cpu_numbering=numbering)
    assert topo.cpus_by_numa == {0: CPUSet.parse("0-7"), 1: CPUSet.parse("8-15")}
    assert topo.siblings(0) == CPUSet({0, 1})
    assert topo.siblings(9) == CPUSet({8, 9})
    assert topo == generate(2, 1, 4, 2, "8Gi", cpu_numbering="sequential")


def test_counts_and_multi_numa_sockets():
    topo = generate(2, 2, 3, 2, "1Gi", {})
    assert (topo.num_cpus, topo.num_cores, topo.num_sockets) == (24, 12, 2)
    assert topo.num_numa_nodes == 4
    assert topo.cpus_per_core == 2
    assert topo.cpus_by_numa[1] == CPUSet.parse("3-5,15-17")
    assert {topo.cpu_by_id[c].socket for c in topo.cpus_by_numa[1]} == {0}
    assert {topo.cpu_by_id[c].socket for c in topo.cpus_by_numa[2]} == {1}
    assert [c.uncore for c in topo.cpus] == [c.socket for c in topo.cpus]  # socket fallback


def test_no_smt():
    topo = generate(1, 2, 2, 1, "1Gi")
    assert topo.cpus_per_core == 1
    assert topo.cpus_by_numa == {0: CPUSet({0, 1}), 1: CPUSet({2, 3})}


def test_memory_and_default_hugepages():
    topo = generate(1, 2, 1, 2, "3Gi")
    for node in topo.numa_nodes:
        assert node.memory == 3 * 2**30
        assert node.hugepages == {2 * 2**20: 64}
    assert generate(1, 1, 1, 1, 2 * 2**30, {"1Gi": 1, "2Mi": 3}).numa_nodes[0].hugepages == {
        2**30: 1,
        2 * 2**20: 3,
    }
    assert generate(1, 1, 1, 1, "1Gi", {}).hugepage_sizes == ()


def test_default_distances():
    topo = generate(2, 2, 1, 1, "1Gi")
    assert topo.numa_by_id[0].distances == (10, 21, 21, 21)
    assert topo.numa_by_id[3].distances == (21, 21, 21, 10)
    assert default_distances(2) == [[10, 21], [21, 10]]


def test_custom_distances():
    matrix = [[10, 12, 32], [12, 10, 32], [32, 32, 10]]
    topo = generate(3, 1, 1, 2, "1Gi", distances=matrix)
    assert topo.distance(0, 1) == 12
    assert topo.distance(2, 0) == 32


@pytest.mark.parametrize(
    ("kwargs", "where", "message"),
    [
        ({"sockets": 0}, "gen.sockets", "positive integer"),
        ({"sockets": True}, "gen.sockets", "positive integer"),
        ({"numa_per_socket": "2"}, "gen.numa_per_socket", "positive integer"),
        ({"cores_per_numa": -1}, "gen.cores_per_numa", "positive integer"),
        ({"threads_per_core": 1.5}, "gen.threads_per_core", "positive integer"),
        ({"memory_per_numa": "lots"}, "gen.memory_per_numa", "not a quantity"),
        ({"memory_per_numa": [1]}, "gen.memory_per_numa", "must be a quantity"),
        ({"memory_per_numa": "-1Gi"}, "gen.memory_per_numa", "negative"),
        ({"hugepages_per_numa": [64]}, "gen.hugepages_per_numa", "mapping"),
        ({"hugepages_per_numa": {"big": 1}}, "gen.hugepages_per_numa.big", "not a quantity"),
        ({"hugepages_per_numa": {"2Mi": -1}}, "gen.hugepages_per_numa.2Mi", "non-negative"),
        ({"hugepages_per_numa": {"2Mi": "4"}}, "gen.hugepages_per_numa.2Mi", "non-negative"),
        ({"hugepages_per_numa": {"0": 1}}, "gen.hugepages_per_numa.0", "positive"),
        ({"hugepages_per_numa": {"1Gi": 5}}, "gen.hugepages_per_numa", "more than the node"),
        ({"cpu_numbering": "amd"}, "gen.cpu_numbering", "unknown numbering"),
        ({"distances": [[10, 21]]}, "gen.distances", "1 rows for 2 NUMA nodes"),
        ({"distances": [[10, 21], [21]]}, "gen.distances[1]", "1 entries for 2"),
        ({"distances": [[10, 21], [21, "x"]]}, "gen.distances[1][1]", "positive integer"),
        ({"distances": [[10, 21], 5]}, "gen.distances[1]", "must be a list"),
        ({"distances": "10 21"}, "gen.distances", "must be a list"),
        ({"sockets": 65}, "gen", "65 NUMA nodes"),
    ],
)
def test_errors_name_the_field(kwargs, where, message):
    args = {
        "sockets": 2,
        "numa_per_socket": 1,
        "cores_per_numa": 2,
        "threads_per_core": 2,
        "memory_per_numa": "4Gi",
    }
    args.update(kwargs)
    with pytest.raises(InputError, match=message) as exc:
        generate(**args, where="gen")
    assert exc.value.where == where
