"""The scenario `topology:` section: the three forms, and every error naming its field."""

from __future__ import annotations

import copy

import pytest

from numacert.cpuset import CPUSet
from numacert.errors import InputError
from numacert.topology.generate import generate
from numacert.topology.profiles import load_profile
from numacert.topology.spec import topology_from_spec

W = "scenario.yaml: topology"


def explicit() -> dict:
    """2 sockets, 1 NUMA node each, 2 cores x 2 threads (Linux numbering)."""
    return {
        "cpus": [
            {"id": 0, "socket": 0, "numa": 0, "core": 0},
            {"id": 1, "socket": 0, "numa": 0, "core": 1},
            {"id": 2, "socket": 1, "numa": 1, "core": 2},
            {"id": 3, "socket": 1, "numa": 1, "core": 3},
            {"id": 4, "socket": 0, "numa": 0, "core": 0},
            {"id": 5, "socket": 0, "numa": 0, "core": 1},
            {"id": 6, "socket": 1, "numa": 1, "core": 2},
            {"id": 7, "socket": 1, "numa": 1, "core": 3},
        ],
        "numa": [
            {"id": 0, "memory": "8Gi", "hugepages": {"2Mi": 64}, "distances": [10, 21]},
            {"id": 1, "memory": "8Gi", "hugepages": {"2Mi": 64}, "distances": [21, 10]},
        ],
    }


GENERATE = {
    "sockets": 2,
    "numa_per_socket": 1,
    "cores_per_numa": 2,
    "threads_per_core": 2,
    "memory_per_numa": "8Gi",
    "hugepages_per_numa": {"2Mi": 64},
}


# ---- the three forms ----------------------------------------------------------------------
def test_explicit_equals_generate():
    topo = topology_from_spec(explicit(), W)
    assert topo == topology_from_spec({"generate": GENERATE}, W)
    assert topo == generate(2, 1, 2, 2, "8Gi")
    assert topo.siblings(5) == CPUSet({1, 5})
    assert topo.cpu_by_id[6].core == 2


def test_core_labels_are_renumbered_the_kubelet_way():
    section = explicit()
    for row in section["cpus"]:
        row["core"] = 100 + row["core"]  # any label shared by siblings
    topo = topology_from_spec(section, W)
    assert topo == topology_from_spec(explicit(), W)


def test_explicit_optional_fields():
    section = explicit()
    for node in section["numa"]:
        del node["hugepages"], node["distances"]
    section["cpus"][0]["uncore"] = 5
    section["cpus"][4]["uncore"] = 5
    topo = topology_from_spec(section, W)
    assert topo.numa_by_id[0].hugepages == {}
    assert topo.distance(0, 1) is None
    assert topo.cpu_by_id[4].uncore == 5
    assert topo.cpu_by_id[1].uncore == 0  # socket fallback


def test_memory_only_node_and_byte_memory():
    section = explicit()
    section["numa"].append({"id": 2, "memory": 1024})
    for node in section["numa"]:
        node.pop("distances", None)
    topo = topology_from_spec(section, W)
    assert topo.numa_ids == (0, 1, 2)
    assert topo.numa_by_id[2].memory == 1024


def test_generate_with_numbering_and_distances():
    section = {"generate": {**GENERATE, "cpu_numbering": "qemu", "distances": [[10, 15], [15, 10]]}}
    topo = topology_from_spec(section, W)
    assert topo.siblings(0) == CPUSet({0, 1})
    assert topo.distance(1, 0) == 15


def test_profile_form():
    assert topology_from_spec({"profile": "two-socket-smt"}, W) == load_profile("two-socket-smt")


# ---- errors -------------------------------------------------------------------------------
def _mutate(change):
    section = explicit()
    change(section)
    return section


def _set(path, value):
    """A change function setting section[path...] = value."""

    def change(section):
        target = section
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(path):
    def change(section):
        target = section
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


CASES = [
    # the section and its forms
    ("not a mapping", ["cpus"], W, "must be a mapping"),
    ("neither form", {}, W, "has none of"),
    ("generate and profile", {"generate": GENERATE, "profile": "single-numa"}, W,
     "has generate and profile"),
    ("explicit and profile", {**explicit(), "profile": "x"}, W, "has cpus+numa and profile"),
    ("unknown key", {**explicit(), "sockets": 2}, f"{W}.sockets", "unknown key"),
    ("cpus without numa", {"cpus": explicit()["cpus"]}, f"{W}.numa", "needs both"),
    ("numa without cpus", {"numa": explicit()["numa"]}, f"{W}.cpus", "needs both"),
    # cpus
    ("cpus not a list", _mutate(_set(["cpus"], {"id": 0})), f"{W}.cpus", "must be a list"),
    ("cpus empty", _mutate(_set(["cpus"], [])), f"{W}.cpus", "must not be empty"),
    ("cpu row not a mapping", _mutate(_set(["cpus", 2], 7)), f"{W}.cpus[2]", "mapping"),
    ("cpu missing key", _mutate(_delete(["cpus", 3, "numa"])), f"{W}.cpus[3].numa", "missing"),
    ("cpu extra key", _mutate(_set(["cpus", 1, "die"], 0)), f"{W}.cpus[1].die", "unknown key"),
    ("cpu id negative", _mutate(_set(["cpus", 0, "id"], -1)), f"{W}.cpus[0].id", "non-negative"),
    ("cpu id a string", _mutate(_set(["cpus", 0, "id"], "0")), f"{W}.cpus[0].id", "integer"),
    ("cpu id a bool", _mutate(_set(["cpus", 0, "id"], True)), f"{W}.cpus[0].id", "integer"),
    ("socket float", _mutate(_set(["cpus", 5, "socket"], 0.0)), f"{W}.cpus[5].socket", "integer"),
    ("uncore string", _mutate(_set(["cpus", 5, "uncore"], "a")), f"{W}.cpus[5].uncore", "integer"),
    ("duplicate cpu id", _mutate(_set(["cpus", 7, "id"], 1)), f"{W}.cpus[7].id",
     "duplicate CPU id 1 (also cpus[1])"),
    ("cpu on unknown node", _mutate(_set(["cpus", 3, "numa"], 4)), f"{W}.cpus[3].numa",
     "NUMA node 4 is not in numa"),
    ("siblings on two sockets", _mutate(_set(["cpus", 6, "core"], 0)), f"{W}.cpus[6].socket",
     "CPU 6 shares core 0 with CPU 0"),
    ("siblings on two nodes", _mutate(lambda s: s["cpus"][4].update(numa=1)),
     f"{W}.cpus[4].numa", "shares core 0"),
    ("siblings with two uncores", _mutate(_set(["cpus", 4, "uncore"], 3)),
     f"{W}.cpus[4].uncore", "shares core 0"),
    # numa
    ("numa not a list", _mutate(_set(["numa"], "0")), f"{W}.numa", "must be a list"),
    ("numa missing memory", _mutate(_delete(["numa", 1, "memory"])), f"{W}.numa[1].memory",
     "missing"),
    ("numa extra key", _mutate(_set(["numa", 0, "cpus"], "0-3")), f"{W}.numa[0].cpus",
     "unknown key"),
    ("numa id too big", _mutate(_set(["numa", 1, "id"], 64)), f"{W}.numa[1].id", "outside 0-63"),
    ("duplicate numa id", _mutate(_set(["numa", 1, "id"], 0)), f"{W}.numa[1].id",
     "duplicate NUMA node id 0"),
    ("bad memory", _mutate(_set(["numa", 0, "memory"], "8 gigs")), f"{W}.numa[0].memory",
     "not a quantity"),
    ("memory a list", _mutate(_set(["numa", 0, "memory"], [8])), f"{W}.numa[0].memory",
     "must be a quantity"),
    ("hugepages not a mapping", _mutate(_set(["numa", 0, "hugepages"], 64)),
     f"{W}.numa[0].hugepages", "mapping"),
    ("bad page size", _mutate(_set(["numa", 1, "hugepages"], {"2MB!": 1})),
     f"{W}.numa[1].hugepages.2MB!", "not a quantity"),
    ("bad page count", _mutate(_set(["numa", 1, "hugepages"], {"2Mi": -3})),
     f"{W}.numa[1].hugepages.2Mi", "non-negative"),
    ("hugepages exceed memory", _mutate(_set(["numa", 1, "hugepages"], {"1Gi": 9})),
     f"{W}.numa[1].hugepages", "more than the node's memory"),
    ("distances not a list", _mutate(_set(["numa", 0, "distances"], "10 21")),
     f"{W}.numa[0].distances", "must be a list"),
    ("distance not an int", _mutate(_set(["numa", 0, "distances"], [10, "far"])),
     f"{W}.numa[0].distances[1]", "positive integer"),
    ("distance row too long", _mutate(_set(["numa", 1, "distances"], [21, 10, 30])),
     f"{W}.numa[1].distances", "3 entries for 2 NUMA nodes"),
    ("distances on one node only", _mutate(_delete(["numa", 0, "distances"])),
     f"{W}.numa[0].distances", "missing while other NUMA nodes have distances"),
    ("self distance not smallest", _mutate(_set(["numa", 1, "distances"], [5, 10])),
     f"{W}.numa[1].distances", "must be the smallest"),
    # generate
    ("generate not a mapping", {"generate": [2, 1]}, f"{W}.generate", "must be a mapping"),
    ("generate missing key", {"generate": {k: v for k, v in GENERATE.items() if k != "sockets"}},
     f"{W}.generate.sockets", "missing"),
    ("generate extra key", {"generate": {**GENERATE, "dies": 2}}, f"{W}.generate.dies",
     "unknown key"),
    ("generate bad count", {"generate": {**GENERATE, "cores_per_numa": 0}},
     f"{W}.generate.cores_per_numa", "positive integer"),
    ("generate bad numbering", {"generate": {**GENERATE, "cpu_numbering": 1}},
     f"{W}.generate.cpu_numbering", "string"),
    ("generate unknown numbering", {"generate": {**GENERATE, "cpu_numbering": "zigzag"}},
     f"{W}.generate.cpu_numbering", "unknown numbering"),
    ("generate bad distances", {"generate": {**GENERATE, "distances": [[10]]}},
     f"{W}.generate.distances", "1 rows for 2"),
    ("generate bad memory", {"generate": {**GENERATE, "memory_per_numa": "x"}},
     f"{W}.generate.memory_per_numa", "not a quantity"),
    ("generate bad hugepages", {"generate": {**GENERATE, "hugepages_per_numa": {"2Mi": "x"}}},
     f"{W}.generate.hugepages_per_numa.2Mi", "non-negative"),
    # profile
    ("profile unknown", {"profile": "nope"}, f"{W}.profile", "known profiles: "),
    ("profile not a string", {"profile": 3}, f"{W}.profile", "must be a profile name"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("section", "where", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_error_names_the_field(section, where, message):
    with pytest.raises(InputError) as exc:
        topology_from_spec(copy.deepcopy(section), W)
    assert exc.value.where == where
    assert message in exc.value.what
    assert "\n" not in str(exc.value)


def test_sparse_node_ids_with_distances():
    section = explicit()
    section["numa"][1]["id"] = 2
    for row in section["cpus"]:
        if row["numa"] == 1:
            row["numa"] = 2
    section["numa"][1]["distances"] = [21, 10]
    with pytest.raises(InputError, match="need NUMA ids 0..n-1") as exc:
        topology_from_spec(section, W)
    assert exc.value.where == f"{W}.numa"
    for node in section["numa"]:
        del node["distances"]
    assert topology_from_spec(section, W).numa_ids == (0, 2)  # fine without distances
