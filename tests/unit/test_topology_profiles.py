"""Shipped topology profiles: each loads, the named ones match their references exactly."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from numacert.cpuset import CPUSet
from numacert.errors import InputError
from numacert.topology.profiles import (
    list_profiles,
    load_profile,
    profile_data,
    profile_description,
)
from numacert.topology.spec import topology_from_spec

REQUIRED = {
    "single-numa",
    "two-socket-smt",
    "four-numa-unequal",
    "xeon-gold-6230",
    "nine-numa",
    "bench-256",
}

# Pinned so that an accidental change to a profile (or to the fingerprint) is noticed: update
# deliberately, together with whatever records fingerprints (JUnit properties, verdicts).
FINGERPRINTS = {
    "bench-256": "4236f6a50f52",
    "four-numa-unequal": "22e5efba7ed0",
    "nine-numa": "f78c6854e80e",
    "single-numa": "71bd504cfa77",
    "two-socket-smt": "56df35e988a6",
    "xeon-gold-6230": "8280e242241d",
}


def test_required_profiles_are_shipped():
    assert REQUIRED <= set(list_profiles())
    assert list_profiles() == sorted(list_profiles())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_profile_loads_and_describes_itself(name):
    topo = load_profile(name)
    assert topo.num_cpus > 0
    assert profile_description(name)
    assert "\n" not in profile_description(name)
    data = profile_data(name)
    assert ("generate" in data) != ("cpus" in data)


def test_all_shipped_files_load():
    for name in list_profiles():
        load_profile(name)


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_fingerprints_are_stable(name):
    assert load_profile(name).fingerprint() == FINGERPRINTS[name]
    # to_dict() is the explicit form: feeding it back gives the same topology.
    again = topology_from_spec(load_profile(name).to_dict(), "t")
    assert again == load_profile(name)
    assert again.fingerprint() == FINGERPRINTS[name]


def test_xeon_gold_6230_is_upstream_topo_dual_socket_multi_numa_per_socket_ht():
    # kubelet-algorithms.md §7.2: 80 CPUs, 40 cores, 2 sockets, 4 NUMA; NUMA n =
    # {10n..10n+9} ∪ {40+10n..40+10n+9}; c and c+40 siblings with core id c; NUMA 0,1 on
    # socket 0, NUMA 2,3 on socket 1.
    topo = load_profile("xeon-gold-6230")
    assert (topo.num_cpus, topo.num_cores, topo.num_sockets, topo.num_numa_nodes) == (
        80,
        40,
        2,
        4,
    )
    for n in range(4):
        expected = CPUSet(range(10 * n, 10 * n + 10)) | CPUSet(range(40 + 10 * n, 50 + 10 * n))
        assert topo.cpus_by_numa[n] == expected
    for c in range(40):
        assert topo.siblings(c) == CPUSet({c, c + 40})
        assert topo.cpu_by_id[c].core == topo.cpu_by_id[c + 40].core == c
    for cpu in topo.cpus:
        assert cpu.socket == (0 if cpu.numa in (0, 1) else 1)
    assert topo.distance(0, 1) < topo.distance(0, 2)


def test_single_numa_is_upstream_topo_single_socket_ht():
    topo = load_profile("single-numa")
    assert topo.num_cpus == 8 and topo.num_sockets == 1
    for c in range(8):
        assert topo.cpu_by_id[c].core == c % 4


def test_two_socket_smt_is_the_lab_guest():
    topo = load_profile("two-socket-smt")
    assert topo.num_cpus == 8 and topo.num_sockets == 2
    assert topo.cpus_by_numa == {0: CPUSet.parse("0-3"), 1: CPUSet.parse("4-7")}
    assert [str(topo.cores[c]) for c in topo.cores] == ["0-1", "2-3", "4-5", "6-7"]
    for node in topo.numa_nodes:
        assert node.hugepages.get(2 * 2**20, 0) > 0


def test_four_numa_unequal_distances():
    topo = load_profile("four-numa-unequal")
    assert len(topo.numa_nodes) == 4
    assert topo.numa_by_id[0].distances == (10, 12, 32, 32)
    assert topo.numa_by_id[2].distances == (32, 32, 10, 12)
    assert len({topo.distance(a, b) for a in range(4) for b in range(4) if a != b}) > 1


def test_nine_numa_and_bench_sizes():
    nine = load_profile("nine-numa")
    assert len(nine.numa_nodes) == 9 and nine.num_numa_nodes == 9
    assert nine.num_cpus <= 32
    bench = load_profile("bench-256")
    assert (bench.num_cpus, bench.num_sockets, len(bench.numa_nodes)) == (256, 2, 8)
    assert bench.cpus_per_core == 2


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(InputError) as exc:
        load_profile("no-such-box")
    message = str(exc.value)
    assert message.startswith("profile: unknown profile 'no-such-box'")
    for name in REQUIRED:
        assert name in message


@pytest.mark.parametrize("name", ["../pyproject", "Two-Socket", "", "two-socket-smt.yaml"])
def test_bad_profile_names(name):
    with pytest.raises(InputError, match="unknown profile"):
        load_profile(name, where="--profile")


def test_profiles_are_package_data():
    # pyproject ships numacert.clusters **/*.yaml; the files must live there, as YAML.
    folder = resources.files("numacert.clusters").joinpath("profiles")
    names = [e.name for e in folder.iterdir() if e.is_file()]
    assert all(n.endswith(".yaml") for n in names), names
    for n in names:
        assert isinstance(yaml.safe_load(folder.joinpath(n).read_text()), dict)


@pytest.mark.parametrize("name", list_profiles())
def test_to_dict_round_trips_through_from_dict(name):
    from numacert.topology.model import Topology

    topology = load_profile(name)
    assert Topology.from_dict(topology.to_dict()) == topology
    assert Topology.from_dict(topology.to_dict()).fingerprint(True) == topology.fingerprint(True)
