"""Lab profiles and the lab kubelet configuration: pure parts, no guest needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from numacert.cli.main import main
from numacert.errors import InputError
from numacert.kubelet.render import to_yaml
from numacert.lab.kubelet_config import LAB_BASE, lab_kubelet_config, read_override
from numacert.lab.lab import Lab
from numacert.lab.profile import list_lab_profiles, load_lab_profile
from numacert.lab.qemu import qemu_shape


def test_issue_profiles_are_shipped():
    assert {"default", "single-numa", "four-numa", "nine-numa"} <= set(list_lab_profiles())


@pytest.mark.parametrize("name", list_lab_profiles())
def test_every_profile_boots_as_qemu_can_and_validates(name):
    profile = load_lab_profile(name)
    qemu_shape(profile.topology)  # raises when qemu cannot reproduce the topology
    config = lab_kubelet_config(profile.topology, profile.kubelet)
    assert config.cpu_manager_policy == "static"
    # The guest kernel lists a 1Gi size on the lab's CPU model; the topology says so too.
    assert all(1 << 30 in n.hugepages for n in profile.topology.numa_nodes)


def test_default_profile_is_the_issue_default():
    p = load_lab_profile("default")
    t = p.topology
    assert (t.num_sockets, len(t.numa_nodes), t.num_cpus, t.cpus_per_core) == (2, 2, 8, 2)
    assert t.cpus_by_numa == {0: {0, 1, 2, 3}, 1: {4, 5, 6, 7}}
    assert p.hugepages_2m() == {0: 64, 1: 64}


def test_memory_manager_static_gets_a_derived_reserved_memory():
    p = load_lab_profile("default")
    config = lab_kubelet_config(p.topology, p.kubelet)
    # systemReserved 256Mi + the lab's evictionHard memory.available 100Mi, on NUMA node 0.
    assert [(r.numa_node, r.limits) for r in config.reserved_memory] == [(0, {"memory": "356Mi"})]


def test_override_wins_field_by_field_and_keeps_the_lab_base():
    p = load_lab_profile("default")
    config = lab_kubelet_config(
        p.topology, p.kubelet, {"topologyManagerPolicy": "best-effort"}, "o.yaml"
    )
    assert config.topology_manager_policy == "best-effort"
    assert config.cpu_manager_policy == "static"
    rendered = yaml.safe_load(to_yaml(config))
    for key in ("cgroupDriver", "containerRuntimeEndpoint", "tlsCertFile"):
        assert rendered[key] == LAB_BASE[key]


def test_invalid_override_names_the_file_and_field():
    p = load_lab_profile("default")
    with pytest.raises(InputError) as exc:
        lab_kubelet_config(p.topology, p.kubelet, {"topologyManagerScope": "node"}, "bad.yaml")
    assert "bad.yaml" in str(exc.value) and "topologyManagerScope" in str(exc.value)


def test_override_of_another_kind_is_refused(tmp_path: Path):
    path = tmp_path / "x.yaml"
    path.write_text("kind: Pod\n")
    p = load_lab_profile("default")
    with pytest.raises(InputError, match="kind") as exc:
        lab_kubelet_config(p.topology, p.kubelet, read_override(path), str(path))
    assert str(path) in str(exc.value)


@pytest.mark.parametrize(
    "args,where",
    [
        (["lab", "up", "--profile", "no-such"], "--profile"),
        (["lab", "up", "--kubelet", "BAD"], "topologyManagerPolicy"),
        (["lab", "up", "--kubelet", "MISSING"], "MISSING"),
    ],
)
def test_bad_lab_input_exits_2_and_touches_nothing(tmp_path, monkeypatch, capsys, args, where):
    state = tmp_path / "state"
    monkeypatch.setenv("NUMACERT_LAB_DIR", str(state))
    bad = tmp_path / "bad.yaml"
    bad.write_text("topologyManagerPolicy: sometimes\n")
    args = [
        str(bad) if a == "BAD" else str(tmp_path / "missing.yaml") if a == "MISSING" else a
        for a in args
    ]
    where = "missing.yaml" if where == "MISSING" else where
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and where in err[0], err
    assert not state.exists() or not any(state.iterdir())


def test_status_of_a_lab_that_never_ran(tmp_path):
    assert Lab(tmp_path, progress=False).status()["up"] is False


def test_reconfigure_refuses_a_bad_configuration_before_touching_the_node(tmp_path, monkeypatch):
    from numacert.lab.lab import LabRecord

    lab = Lab(tmp_path, progress=False)
    LabRecord("default", "v1.37.2", "kind: KubeletConfiguration\n", None).write(lab.record_path)
    touched: list[str] = []
    monkeypatch.setattr(Lab, "_is_up", lambda self: True)
    monkeypatch.setattr(Lab, "node_handle", lambda self: touched.append("node"))
    monkeypatch.setattr(Lab, "vm", lambda self: touched.append("vm"))
    with pytest.raises(InputError) as exc:
        lab.reconfigure({"cpuManagerPolicy": "dynamic"}, "bad.yaml")
    assert "bad.yaml" in str(exc.value) and "cpuManagerPolicy" in str(exc.value)
    assert touched == []
    assert "kind: KubeletConfiguration" in lab.record_path.read_text()


def test_reconfigure_needs_a_running_lab(tmp_path):
    with pytest.raises(InputError, match="not up"):
        Lab(tmp_path, progress=False).reconfigure({}, "x.yaml")


def test_vm_record_round_trips(tmp_path):
    """`lab status` and `lab down` rebuild the guest from vm.json in another process."""
    from numacert.lab.image import NodeImage
    from numacert.lab.qemu import Ports
    from numacert.lab.vm import VM

    profile = load_lab_profile("four-numa")
    image = NodeImage(
        "k",
        tmp_path,
        tmp_path / "vmlinuz",
        tmp_path / "initrd",
        tmp_path / "root",
        tmp_path / "key",
    )
    vm = VM(
        tmp_path / "vm",
        image,
        profile.topology,
        profile.memory_per_numa,
        ports=Ports(ssh=2222),
        hugepages_2m_per_node=profile.hugepages_2m(),
        extra=["-drive", "file=seed.img,if=virtio,format=raw,readonly=on"],
    )
    vm.run_dir.mkdir()
    vm._save()
    again = VM.attach(vm.run_dir)
    assert again.topology == profile.topology
    assert again.argv() == vm.argv()


def test_lab_node_names_and_guest_dirs(tmp_path):
    from numacert.lab.lab import node_names

    assert node_names(3) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    lab = Lab(tmp_path, progress=False)
    assert lab.guest_dir("127.0.0.2") == tmp_path / "vm"
    assert lab.guest_dir("127.0.0.3") == tmp_path / "vm-2"
    assert lab.nodes == ["127.0.0.2"]  # no lab recorded: the one `lab up` starts by default


def test_lab_record_without_nodes_reads_as_one_node(tmp_path):
    """lab.json written before labs had several nodes still reads."""
    import json

    from numacert.lab.lab import LabRecord

    path = tmp_path / "lab.json"
    path.write_text(
        json.dumps(
            {
                "profile": "default",
                "k8s_version": "v1.37.2",
                "kubelet_config": "",
                "kubelet_source": None,
                "node_name": "127.0.0.2",
            }
        )
    )
    assert LabRecord.read(path).node_names == ["127.0.0.2"]
    two = LabRecord("default", "v1.37.2", "", None, nodes=["127.0.0.2", "127.0.0.3"])
    two.write(path)
    assert LabRecord.read(path).node_names == ["127.0.0.2", "127.0.0.3"]


@pytest.mark.parametrize("count", [0, 5])
def test_lab_node_count_is_checked_before_anything_starts(tmp_path, count):
    with pytest.raises(InputError, match="1 to 4 nodes"):
        Lab(tmp_path, progress=False).up(nodes=count)
    assert not (tmp_path / "lab.json").exists()


def test_run_names_only_nodes_of_the_recorded_lab(tmp_path, monkeypatch):
    from numacert.lab.lab import ENV_STATE, LabRecord
    from numacert.target import TargetOptions, lab_node_names

    monkeypatch.setenv(ENV_STATE, str(tmp_path))
    LabRecord("default", "v1.37.2", "", None, nodes=["127.0.0.2", "127.0.0.3"]).write(
        tmp_path / "lab.json"
    )
    assert lab_node_names(TargetOptions()) == ["127.0.0.2", "127.0.0.3"]
    assert lab_node_names(TargetOptions(nodes="127.0.0.3")) == ["127.0.0.3"]
    with pytest.raises(InputError, match="127.0.0.4"):
        lab_node_names(TargetOptions(nodes="127.0.0.4"))
