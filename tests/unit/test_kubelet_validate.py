"""Start-up validation of kubelet configurations (numacert.kubelet.validate), version-aware."""

from __future__ import annotations

import pytest

from numacert.errors import InputError
from numacert.kubelet import options as opt
from numacert.kubelet.config import KubeletConfig, ReservedMemory
from numacert.kubelet.parse import from_dict
from numacert.kubelet.validate import (
    CPU_NO_RESERVATION,
    MM_NO_SYSTEM_RESERVED,
    Problem,
    check_reserved_memory,
    derive_reserved_memory,
    errors,
    fail_cgroup_v1_effective,
    node_allocatable_reservation,
    reserved_cpu_millis,
    reserved_memory_bytes,
    system_reserved_memory,
    validate,
)
from numacert.topology.model import CPU, NUMANode, Topology

GI = 2**30
MI = 2**20


def topo(
    numa: int = 2,
    sockets: int = 2,
    cores_per_numa: int = 2,
    threads: int = 2,
    memory: int = 8 * GI,
    distances: bool = True,
) -> Topology:
    """numa NUMA nodes spread over `sockets` sockets; CPU ids sequential, siblings adjacent."""
    cpus, nodes, cid = [], [], 0
    for n in range(numa):
        socket = n * sockets // numa
        for _ in range(cores_per_numa):
            core = cid
            for _ in range(threads):
                cpus.append(CPU(id=cid, socket=socket, numa=n, core=core, uncore=socket))
                cid += 1
        row = tuple(10 if i == n else 20 for i in range(numa)) if distances else None
        nodes.append(NUMANode(id=n, memory=memory, distances=row))
    return Topology(cpus, nodes)


T2 = topo()


def cfg(**kw) -> KubeletConfig:
    return from_dict(kw)


def msgs(problems: list[Problem], severity: str = "error") -> list[str]:
    return [p.message for p in problems if p.severity == severity]


def only_error(problems: list[Problem]) -> Problem:
    errs = errors(problems)
    assert len(errs) == 1, errs
    return errs[0]


STATIC = {"cpuManagerPolicy": "static", "reservedSystemCPUs": "0"}


# ---- the happy path -------------------------------------------------------------------------
def test_default_config_is_valid_everywhere():
    for minor in opt.SUPPORTED_MINORS:
        assert validate(KubeletConfig(), T2, minor) == []


def test_numaresources_operator_example():
    # lab-feasibility.md §6.2: kubeReserved 512Mi + systemReserved 512Mi + evictionHard 100Mi
    c = cfg(
        cpuManagerPolicy="static",
        reservedSystemCPUs="0,1",
        kubeReserved={"memory": "512Mi"},
        systemReserved={"memory": "512Mi"},
        evictionHard={"memory.available": "100Mi"},
        topologyManagerPolicy="single-numa-node",
        topologyManagerScope="pod",
        memoryManagerPolicy="Static",
        reservedMemory=[{"numaNode": 0, "limits": {"memory": "1124Mi"}}],
    )
    assert node_allocatable_reservation(c, T2) == {"memory": 1124 * MI}
    assert validate(c, T2, 33) == []
    bad = cfg(**{**c_dict(c), "reservedMemory": [{"numaNode": 0, "limits": {"memory": "1Gi"}}]})
    p = only_error(validate(bad, T2, 33))
    assert p.message == (
        'the total amount "1Gi" of type "memory" is not equal to the value "1124Mi" '
        "determined by Node Allocatable feature"
    )
    assert p.code == "mm.reserved-sum"


def c_dict(c: KubeletConfig) -> dict:
    from numacert.kubelet.render import to_dict

    d = to_dict(c)
    d.pop("apiVersion")
    d.pop("kind")
    return d


# ---- version range --------------------------------------------------------------------------
@pytest.mark.parametrize("minor", [29, 38, 0])
def test_minor_outside_range(minor):
    with pytest.raises(InputError) as e:
        validate(KubeletConfig(), T2, minor)
    assert e.value.where == "k8s_minor"
    assert "1.30 to 1.37" in e.value.what


# ---- policies and scope ---------------------------------------------------------------------
def test_unknown_cpu_policy():
    p = only_error(validate(cfg(cpuManagerPolicy="Static"), T2, 31))
    assert (p.field, p.message) == ("cpuManagerPolicy", 'unknown policy: "Static"')


def test_unknown_memory_policy_lowercase_static():
    # FM-04: `static` must be `Static`
    p = only_error(validate(cfg(memoryManagerPolicy="static"), T2, 31))
    assert (p.field, p.message) == ("memoryManagerPolicy", 'unknown policy: "static"')


def test_unknown_tm_policy_and_scope():
    # Configuration validation catches these before the Topology Manager's own
    # `unknown policy: "<x>"` / `unknown scope: "<x>"` could be printed.
    ps = validate(cfg(topologyManagerPolicy="unknown", topologyManagerScope="unknown"), T2, 34)
    assert msgs(ps) == [
        'invalid configuration: topologyManagerPolicy (--topology-manager-policy) "unknown" '
        'must be one of: ["none" "best-effort" "restricted" "single-numa-node"]',
        'invalid configuration: topologyManagerScope (--topology-manager-scope) "unknown" '
        'must be one of: "container", or "pod"',
    ]
    assert [p.field for p in ps] == ["topologyManagerPolicy", "topologyManagerScope"]


def test_raise_first_names_source_and_field():
    with pytest.raises(InputError) as e:
        validate(cfg(cpuManagerPolicy="dynamic"), T2, 33, raise_first=True, source="k.yaml")
    assert e.value.where == "k.yaml: cpuManagerPolicy"
    assert str(e.value) == 'k.yaml: cpuManagerPolicy: unknown policy: "dynamic"'


def test_warnings_never_raise():
    c = cfg(topologyManagerPolicyOptions={"prefer-closest-numa-nodes": "true"})
    ps = validate(c, T2, 33, raise_first=True)
    assert [p.code for p in ps] == ["tm.options-ignored"]


# ---- CPU Manager ----------------------------------------------------------------------------
def test_static_without_reservation():
    for c in (
        cfg(cpuManagerPolicy="static"),
        cfg(cpuManagerPolicy="static", kubeReserved={"cpu": "0"}),
    ):
        p = only_error(validate(c, T2, 33))
        assert p.message == CPU_NO_RESERVATION
        assert p.code == "cpu.static-no-reservation"


def test_static_with_reservation_ok():
    assert validate(cfg(cpuManagerPolicy="static", kubeReserved={"cpu": "500m"}), T2, 33) == []
    assert validate(cfg(cpuManagerPolicy="static", systemReserved={"cpu": "1"}), T2, 30) == []
    assert validate(cfg(**STATIC), T2, 37) == []


def test_reserved_cpu_millis():
    assert (
        reserved_cpu_millis(cfg(kubeReserved={"cpu": "500m"}, systemReserved={"cpu": "1"})) == 1500
    )
    # reservedSystemCPUs overrides kube/system reserved cpu
    assert reserved_cpu_millis(cfg(reservedSystemCPUs="0-3", kubeReserved={"cpu": "9"})) == 4000
    assert reserved_cpu_millis(KubeletConfig()) == 0
    with pytest.raises(InputError) as e:
        reserved_cpu_millis(cfg(reservedSystemCPUs="0-"))
    assert e.value.where == "reservedSystemCPUs"


def test_reserved_system_cpus_bad_list():
    p = only_error(validate(cfg(**{**STATIC, "reservedSystemCPUs": "zero"}), T2, 33))
    assert p.field == "reservedSystemCPUs"
    assert p.message.startswith(
        "invalid configuration: unable to parse reservedSystemCPUs (--reserved-cpus) zero, error:"
    )


def test_reserved_system_cpus_not_on_machine():
    p = only_error(validate(cfg(**{**STATIC, "reservedSystemCPUs": "0,64"}), T2, 33))
    assert p.code == "cpu.reserved-cpus-missing"
    assert not p.verbatim
    assert "64" in p.message


def test_reservation_larger_than_machine():
    p = only_error(validate(cfg(cpuManagerPolicy="static", kubeReserved={"cpu": "9"}), T2, 33))
    assert p.message == (
        "[cpumanager] unable to reserve the required amount of CPUs (size of  did not equal 9)"
    )


def test_unknown_cpu_option():
    c = cfg(**STATIC, cpuManagerPolicyOptions={"full-pcpu-only": "true"})
    p = only_error(validate(c, T2, 33))
    assert p.message == 'unknown CPU Manager Policy option: "full-pcpu-only"'
    assert p.field == "cpuManagerPolicyOptions.full-pcpu-only"


def test_bad_bool_cpu_option():
    c = cfg(**STATIC, cpuManagerPolicyOptions={"full-pcpus-only": "yes"})
    p = only_error(validate(c, T2, 33))
    assert p.message == (
        'bad value for option "full-pcpus-only": strconv.ParseBool: parsing "yes": invalid syntax'
    )


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True", "0", "f", "False"])
def test_go_bools_accepted(value):
    c = cfg(**STATIC, cpuManagerPolicyOptions={"full-pcpus-only": value})
    assert validate(c, T2, 33) == []


@pytest.mark.parametrize(
    "option,minor,ok",
    [
        # alpha options need CPUManagerPolicyAlphaOptions (off by default)
        ("align-by-socket", 30, False),
        ("align-by-socket", 37, False),
        ("distribute-cpus-across-numa", 32, False),  # alpha until 1.32
        ("distribute-cpus-across-numa", 33, True),  # beta from 1.33
        ("strict-cpu-reservation", 32, False),  # alpha in 1.32
        ("strict-cpu-reservation", 33, True),
        ("strict-cpu-reservation", 35, True),  # GA
        ("prefer-align-cpus-by-uncorecache", 33, False),  # alpha until 1.33
        ("prefer-align-cpus-by-uncorecache", 34, True),
        ("full-pcpus-only", 30, True),  # beta
        ("distribute-cpus-across-cores", 31, False),
    ],
)
def test_cpu_option_maturity_by_version(option, minor, ok):
    c = cfg(**STATIC, cpuManagerPolicyOptions={option: "true"})
    ps = validate(c, T2, minor)
    if ok:
        assert errors(ps) == []
    else:
        assert msgs(ps) == [
            f'CPU Manager Policy Alpha-level Options not enabled, but option "{option}" provided'
        ]


@pytest.mark.parametrize(
    "option,minor",
    [
        ("distribute-cpus-across-cores", 30),
        ("strict-cpu-reservation", 31),
        ("prefer-align-cpus-by-uncorecache", 31),
    ],
)
def test_cpu_option_unknown_before_it_exists(option, minor):
    c = cfg(
        **STATIC,
        cpuManagerPolicyOptions={option: "true"},
        featureGates={"CPUManagerPolicyAlphaOptions": True},
    )
    assert msgs(validate(c, T2, minor)) == [f'unknown CPU Manager Policy option: "{option}"']


def test_beta_option_with_beta_gate_off():
    c = cfg(
        **STATIC,
        cpuManagerPolicyOptions={"full-pcpus-only": "true"},
        featureGates={"CPUManagerPolicyBetaOptions": False},
    )
    assert msgs(validate(c, T2, 32)) == [
        'CPU Manager Policy Beta-level Options not enabled, but option "full-pcpus-only" provided'
    ]
    # GA from 1.33: no gate needed
    assert errors(validate(c, T2, 33)) == []


def test_alpha_option_with_gate_on():
    c = cfg(
        **STATIC,
        cpuManagerPolicyOptions={"align-by-socket": "true"},
        featureGates={"CPUManagerPolicyAlphaOptions": True},
    )
    assert validate(c, T2, 31) == []


@pytest.mark.parametrize(
    "a,b",
    [
        ("full-pcpus-only", "distribute-cpus-across-cores"),
        ("distribute-cpus-across-numa", "distribute-cpus-across-cores"),
        ("prefer-align-cpus-by-uncorecache", "distribute-cpus-across-cores"),
        ("prefer-align-cpus-by-uncorecache", "distribute-cpus-across-numa"),
    ],
)
def test_mutually_exclusive_cpu_options(a, b):
    c = cfg(
        **STATIC,
        cpuManagerPolicyOptions={a: "true", b: "true"},
        featureGates={"CPUManagerPolicyAlphaOptions": True},
    )
    assert msgs(validate(c, T2, 34)) == [
        f"static policy options {a} and {b} can not be used at the same time"
    ]
    # false values do not conflict
    c2 = cfg(
        **STATIC,
        cpuManagerPolicyOptions={a: "true", b: "false"},
        featureGates={"CPUManagerPolicyAlphaOptions": True},
    )
    assert errors(validate(c2, T2, 34)) == []


def test_align_by_socket_with_single_numa_node():
    c = cfg(
        **STATIC,
        cpuManagerPolicyOptions={"align-by-socket": "true"},
        featureGates={"CPUManagerPolicyAlphaOptions": True},
        topologyManagerPolicy="single-numa-node",
    )
    assert msgs(validate(c, T2, 33)) == [
        "Topolgy manager single-numa-node policy is incompatible with CPUManager "
        "align-by-socket policy option"
    ]


def test_align_by_socket_sockets_more_than_numa():
    two_sockets_one_numa = Topology([CPU(0, 0, 0, 0, 0), CPU(1, 1, 0, 1, 1)], [NUMANode(0, 8 * GI)])
    c = cfg(
        **STATIC,
        cpuManagerPolicyOptions={"align-by-socket": "true"},
        featureGates={"CPUManagerPolicyAlphaOptions": True},
    )
    assert msgs(validate(c, two_sockets_one_numa, 33)) == [
        "Align by socket is not compatible with hardware where number of sockets are more "
        "than number of NUMA"
    ]
    assert validate(c, T2, 33) == []


def test_none_policy_with_options():
    c = cfg(cpuManagerPolicyOptions={"full-pcpus-only": "true", "a": "b"})
    assert msgs(validate(c, T2, 33)) == [
        "None policy: received unsupported options=map[a:b full-pcpus-only:true]"
    ]


def test_options_gate_disabled():
    c = cfg(
        **STATIC,
        cpuManagerPolicyOptions={"full-pcpus-only": "true"},
        featureGates={"CPUManagerPolicyOptions": False},
    )
    ps = validate(c, T2, 32)
    assert [p.code for p in errors(ps)] == ["gate.options-off"]
    # locked to true from 1.33
    ps = validate(c, T2, 33)
    assert msgs(ps) == [
        "cannot set feature gate CPUManagerPolicyOptions to false, feature is locked to true"
    ]


# ---- Topology Manager -----------------------------------------------------------------------
def big(n: int, distances: bool = True) -> Topology:
    return topo(numa=n, sockets=2, cores_per_numa=1, threads=1, memory=GI, distances=distances)


def test_more_than_8_numa_nodes():
    # §7.1 TestNewManager: 9 NUMA nodes with best-effort
    c = cfg(topologyManagerPolicy="best-effort")
    p = only_error(validate(c, big(9), 34))
    assert p.message == "unsupported on machines with more than 8 NUMA Nodes"
    assert validate(cfg(topologyManagerPolicy="none"), big(9), 34) == []
    assert validate(c, big(8), 34) == []


def test_max_allowable_numa_nodes():
    c = cfg(
        topologyManagerPolicy="restricted",
        topologyManagerPolicyOptions={"max-allowable-numa-nodes": "16"},
    )
    assert validate(c, big(9), 31) == []
    assert validate(c, big(16), 35) == []
    assert msgs(validate(c, big(17), 35)) == [
        "unsupported on machines with more than 16 NUMA Nodes"
    ]
    # unknown before 1.31
    assert msgs(validate(c, big(9), 30)) == [
        'unknown Topology Manager Policy option: "max-allowable-numa-nodes"'
    ]
    # beta until 1.34: the beta gate off refuses it (lower-case text from 1.34,
    # v1.34.4 topologymanager/policy_options.go:54), GA in 1.35 does not care
    off = cfg(**c_dict(c), featureGates={"TopologyManagerPolicyBetaOptions": False})
    assert msgs(validate(off, big(9), 34)) == [
        "topology manager policy beta-level options not enabled, but option "
        '"max-allowable-numa-nodes" provided'
    ]
    assert msgs(validate(off, big(9), 33)) == [
        "Topology Manager Policy Beta-level Options not enabled, but option "
        '"max-allowable-numa-nodes" provided'
    ]
    assert validate(off, big(9), 35) == []


def test_max_allowable_numa_nodes_values():
    def run(v: str) -> list[str]:
        c = cfg(
            topologyManagerPolicy="restricted",
            topologyManagerPolicyOptions={"max-allowable-numa-nodes": v},
        )
        return msgs(validate(c, T2, 35))

    assert run("4") == ['the minimum value of "max-allowable-numa-nodes" should not be less than 8']
    assert run("true") == [
        'unable to convert policy option to integer "max-allowable-numa-nodes": '
        'strconv.Atoi: parsing "true": invalid syntax'
    ]
    assert run("8") == []
    assert run("+10") == []


def test_prefer_closest_needs_distances():
    c = cfg(
        topologyManagerPolicy="best-effort",
        topologyManagerPolicyOptions={"prefer-closest-numa-nodes": "true"},
    )
    p = only_error(validate(c, topo(distances=False), 33))
    assert "error getting NUMA distances from cadvisor" in p.message
    assert validate(c, T2, 33) == []
    # false does not read distances
    c2 = cfg(
        topologyManagerPolicy="best-effort",
        topologyManagerPolicyOptions={"prefer-closest-numa-nodes": "false"},
    )
    assert validate(c2, topo(distances=False), 33) == []


def test_tm_option_bad_bool_and_unknown():
    c = cfg(
        topologyManagerPolicy="restricted",
        topologyManagerPolicyOptions={"prefer-closest-numa-nodes": "on", "x": "1"},
    )
    assert msgs(validate(c, T2, 32)) == [
        'bad value for option "prefer-closest-numa-nodes": strconv.ParseBool: parsing "on": '
        "invalid syntax",
        'unknown Topology Manager Policy option: "x"',
    ]


def test_tm_options_gate_off():
    c = cfg(
        topologyManagerPolicy="restricted",
        topologyManagerPolicyOptions={"x": "1"},
        featureGates={"TopologyManagerPolicyOptions": False},
    )
    assert [p.code for p in errors(validate(c, T2, 33))] == ["gate.options-off"]


# ---- Memory Manager -------------------------------------------------------------------------
def test_static_needs_reserved_memory_default_eviction():
    # evictionHard unset: the kubelet default memory.available=100Mi applies (FM-04)
    p = only_error(validate(cfg(memoryManagerPolicy="Static"), T2, 33))
    assert p.message == (
        'the total amount "0" of type "memory" is not equal to the value "100Mi" determined '
        "by Node Allocatable feature"
    )


def test_static_without_any_reservation():
    c = cfg(memoryManagerPolicy="Static", evictionHard={})
    p = only_error(validate(c, T2, 33))
    assert (
        p.message
        == MM_NO_SYSTEM_RESERVED
        == ("[memorymanager] you should specify the system reserved memory")
    )


def test_static_with_default_eviction_ok():
    c = cfg(
        memoryManagerPolicy="Static",
        systemReserved={"memory": "1Gi"},
        reservedMemory=[{"numaNode": 0, "limits": {"memory": "1124Mi"}}],
    )
    assert validate(c, T2, 33) == []


def test_reserved_memory_numa_node_missing():
    c = cfg(
        memoryManagerPolicy="Static",
        reservedMemory=[
            {"numaNode": 0, "limits": {"memory": "50Mi"}},
            {"numaNode": 2, "limits": {"memory": "50Mi"}},
        ],
    )
    p = only_error(validate(c, T2, 33))
    assert p.message == (
        "the reserved memory configuration references a NUMA node 2 that does not exist on "
        "this machine"
    )
    assert p.field == "reservedMemory[1].numaNode"


def test_reserved_memory_split_across_nodes():
    c = cfg(
        memoryManagerPolicy="Static",
        kubeReserved={"memory": "1Gi"},
        reservedMemory=[
            {"numaNode": 0, "limits": {"memory": "612Mi"}},
            {"numaNode": 1, "limits": {"memory": "512Mi"}},
        ],
    )
    assert validate(c, T2, 33) == []
    assert reserved_memory_bytes(c) == {0: {"memory": 612 * MI}, 1: {"memory": 512 * MI}}


def test_eviction_percentage_of_capacity():
    # 10% of 16Gi total, computed through float32 like the kubelet
    c = cfg(memoryManagerPolicy="Static", evictionHard={"memory.available": "10%"})
    alloc = node_allocatable_reservation(c, T2)["memory"]
    assert alloc == int(16 * GI * 0.10000000149011612)
    assert abs(alloc - 16 * GI // 10) < 100


def test_eviction_hard_set_without_memory_available():
    # a set evictionHard replaces the defaults: no memory threshold at all
    c = cfg(systemReserved={"memory": "1Gi"}, evictionHard={"nodefs.available": "10%"})
    assert node_allocatable_reservation(c, T2) == {"memory": GI}


def test_hugepages_reservation():
    c = cfg(
        memoryManagerPolicy="Static",
        systemReserved={"memory": "1Gi", "hugepages-2Mi": "10Mi"},
        reservedMemory=[{"numaNode": 0, "limits": {"memory": "1124Mi"}}],
    )
    assert node_allocatable_reservation(c, T2) == {"memory": 1124 * MI, "hugepages-2Mi": 10 * MI}
    assert msgs(validate(c, T2, 33)) == [
        'the total amount "0" of type "hugepages-2Mi" is not equal to the value "10Mi" '
        "determined by Node Allocatable feature"
    ]
    # Bottlerocket #4754: hugepages in reservedMemory that node allocatable does not reserve
    c2 = cfg(
        memoryManagerPolicy="Static",
        systemReserved={"memory": "1Gi"},
        reservedMemory=[{"numaNode": 0, "limits": {"memory": "1124Mi", "hugepages-2Mi": "10Mi"}}],
    )
    assert msgs(validate(c2, T2, 33)) == [
        'the total amount "10Mi" of type "hugepages-2Mi" is not equal to the value "0" '
        "determined by Node Allocatable feature"
    ]


def test_reserved_memory_entry_validation():
    c = cfg(
        memoryManagerPolicy="Static",
        reservedMemory=[
            {"numaNode": 0, "limits": {"memory": "0", "cpu": "1"}},
            {"numaNode": 0, "limits": {"cpu": "1"}},
        ],
    )
    assert msgs(validate(c, T2, 33)) == [
        "invalid configuration: reserved memory may not be zero for NUMA node 0 and resource "
        '"memory"',
        'invalid configuration: the limit type "cpu" for NUMA node 0 is not supported, only '
        "[memory hugepages-<HugePageSize>] is accepted",
        'invalid configuration: the limit type "cpu" for NUMA node 0 is not supported, only '
        "[memory hugepages-<HugePageSize>] is accepted",
        "invalid configuration: the reserved memory has a duplicate value for NUMA node 0 and "
        'resource "cpu"',
    ]


def test_reserved_memory_with_none_policy_warns():
    c = cfg(reservedMemory=[{"numaNode": 0, "limits": {"memory": "1Gi"}}])
    ps = validate(c, T2, 33)
    assert errors(ps) == [] and [p.code for p in ps] == ["mm.reserved-ignored"]


# §7.6 TestValidateReservedMemory (2 NUMA nodes)
def rm(node: int, **limits: str) -> ReservedMemory:
    return ReservedMemory(node, {k.replace("_", "-"): v for k, v in limits.items()})


@pytest.mark.parametrize(
    "allocatable,reserved,expected",
    [
        ({}, [], None),
        ({"memory": "0"}, [rm(0, memory="0")], None),
        (
            {},
            [rm(0, memory="12")],
            'the total amount "12" of type "memory" is not equal to the value "0" determined by '
            "Node Allocatable feature",
        ),
        (
            {"hugepages-2Mi": "5"},
            [],
            'the total amount "0" of type "hugepages-2Mi" is not equal to the value "5" determined '
            "by Node Allocatable feature",
        ),
        (
            {"memory": "5"},
            [rm(0, memory="12")],
            'the total amount "12" of type "memory" is not equal to the value "5" determined by '
            "Node Allocatable feature",
        ),
        (
            {},
            [rm(2, memory="12")],
            "the reserved memory configuration references a NUMA node 2 that does not exist on "
            "this machine",
        ),
        (
            {"memory": "17", "hugepages-2Mi": "77", "hugepages-1Gi": "13"},
            [
                rm(0, memory="12", hugepages_2Mi="70", hugepages_1Gi="13"),
                rm(1, memory="5", hugepages_2Mi="7"),
            ],
            None,
        ),
        (
            {"memory": "17", "hugepages-2Mi": "14", "hugepages-1Gi": "13"},
            [
                rm(0, memory="12", hugepages_2Mi="70", hugepages_1Gi="13"),
                rm(1, memory="5", hugepages_2Mi="7"),
            ],
            'the total amount "77" of type "hugepages-2Mi" is not equal to the value "14" '
            "determined by Node Allocatable feature",
        ),
    ],
)
def test_validate_reserved_memory_vectors(allocatable, reserved, expected):
    ps = check_reserved_memory([0, 1], allocatable, reserved)
    assert [p.message for p in ps] == ([] if expected is None else [expected])


def test_get_system_reserved_memory_vectors():
    # §7.6 TestGetSystemReservedMemory
    got = system_reserved_memory(
        [0, 1], {"memory": "2Gi"}, [rm(0, memory="1Gi"), rm(1, memory="1Gi")]
    )
    assert got == {0: {"memory": GI}, 1: {"memory": GI}}
    with pytest.raises(InputError) as e:
        system_reserved_memory([0, 1], {}, [rm(0, memory="1Gi")])
    assert e.value.what == (
        'the total amount "1Gi" of type "memory" is not equal to the value "0" determined by '
        "Node Allocatable feature"
    )
    assert system_reserved_memory([0, 1, 3], {}, []) == {0: {}, 1: {}, 3: {}}


def test_quantity_formatting_follows_the_operands():
    # decimal inputs print decimal, binary inputs binary
    ps = check_reserved_memory([0], {"memory": "1G"}, [rm(0, memory="1Gi")])
    assert ps[0].message.startswith(
        'the total amount "1Gi" of type "memory" is not equal to the value "1G"'
    )


def test_derive_reserved_memory():
    c = cfg(
        memoryManagerPolicy="Static",
        kubeReserved={"memory": "512Mi"},
        systemReserved={"memory": "512Mi", "hugepages-1Gi": "1Gi"},
    )
    derived = derive_reserved_memory(c, T2)
    assert derived == [ReservedMemory(0, {"memory": "1124Mi", "hugepages-1Gi": "1Gi"})]
    c.reserved_memory = derived
    assert validate(c, T2, 33) == []
    assert derive_reserved_memory(cfg(evictionHard={}), T2) == []


def test_derive_reserved_memory_lowest_node():
    t = Topology([CPU(0, 0, 3, 0, 0)], [NUMANode(3, GI), NUMANode(5, GI)])
    assert derive_reserved_memory(KubeletConfig(), t) == [ReservedMemory(3, {"memory": "100Mi"})]


# ---- failCgroupV1 ----------------------------------------------------------------------------
def test_fail_cgroup_v1_defaults():
    assert not fail_cgroup_v1_effective(KubeletConfig(), 30)
    assert not fail_cgroup_v1_effective(KubeletConfig(), 34)
    assert fail_cgroup_v1_effective(KubeletConfig(), 35)
    assert not fail_cgroup_v1_effective(cfg(failCgroupV1=False), 36)
    assert fail_cgroup_v1_effective(cfg(failCgroupV1=True), 31)


def test_fail_cgroup_v1_on_cgroup_v1_host():
    p = only_error(validate(KubeletConfig(), T2, 35, cgroup_version=1))
    assert p.message.startswith("kubelet is configured to not run on a host using cgroup v1.")
    assert validate(cfg(failCgroupV1=False), T2, 35, cgroup_version=1) == []
    assert validate(KubeletConfig(), T2, 35, cgroup_version=2) == []
    assert validate(KubeletConfig(), T2, 34, cgroup_version=1) == []


def test_fail_cgroup_v1_unknown_on_130():
    ps = validate(cfg(failCgroupV1=False), T2, 30)
    assert [(p.code, p.severity) for p in ps] == [("cgroup.field-unknown", "warning")]


# ---- typos (FM-05) --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key,guess",
    [
        ("cpuManagerPolicyOption", "cpuManagerPolicyOptions"),
        ("cpu-manager-policy", "cpuManagerPolicy"),
        ("topology_manager_policy", "topologyManagerPolicy"),
        ("reservedCPUs", "reservedSystemCPUs"),
    ],
)
def test_misspelt_fields_warn(key, guess):
    ps = validate(from_dict({key: "x"}), T2, 33)
    assert [p.code for p in ps] == ["config.unknown-field"]
    assert f'did you mean "{guess}"' in ps[0].message


def test_real_fields_do_not_warn():
    c = from_dict(
        {
            "kubeReservedCgroup": "/runtime",
            "cgroupDriver": "systemd",
            "cpuManagerReconcilePeriod": "5s",
        }
    )
    assert validate(c, T2, 33) == []


def test_memory_manager_gate_off_warns_before_132():
    c = cfg(featureGates={"MemoryManager": False}, memoryManagerPolicy="Static")
    ps = validate(c, T2, 31)
    assert "gate.memory-manager-off" in [p.code for p in ps]


def test_topology_optional():
    # config-only checks still run without a machine
    assert msgs(validate(cfg(cpuManagerPolicy="x"), None, 33)) == ['unknown policy: "x"']
    assert validate(cfg(memoryManagerPolicy="Static"), None, 33) == []


# ---- option tables --------------------------------------------------------------------------
def test_option_tables_cover_every_minor():
    for table in (opt.CPU_MANAGER_OPTIONS, opt.TOPOLOGY_MANAGER_OPTIONS):
        for name, levels in table.items():
            assert set(levels) <= set(opt.SUPPORTED_MINORS), name
            # maturity never goes backwards
            order = {opt.ALPHA: 0, opt.BETA: 1, opt.GA: 2}
            seq = [order[levels[m]] for m in sorted(levels)]
            assert seq == sorted(seq), name
    for gate, per_minor in opt.GATES.items():
        assert set(per_minor) == set(opt.SUPPORTED_MINORS), gate
    assert opt.cpu_option_level("full-pcpus-only", 33) == opt.GA
    assert opt.tm_option_level("prefer-closest-numa-nodes", 32) == opt.GA
    assert opt.required_gate("cpu", opt.GA) is None
