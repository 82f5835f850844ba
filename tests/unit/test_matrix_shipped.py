"""The shipped matrices (clusters/matrix/*.yaml) on the lab's default node."""

from __future__ import annotations

from importlib import resources

import pytest

from numacert.kubelet import options as opt
from numacert.lab.kubelet_config import lab_kubelet_config
from numacert.lab.profile import load_lab_profile
from numacert.matrix.resolve import Status, raise_if_invalid, resolve
from numacert.matrix.spec import load_matrix, shipped_matrices

LAB = load_lab_profile("default")
BASE = lab_kubelet_config(LAB.topology, LAB.kubelet)


def on_lab(name: str, minor: int = opt.MAX_MINOR):
    return resolve(load_matrix(name), BASE, LAB.topology, minor)


@pytest.mark.parametrize("name", shipped_matrices())
def test_shipped_file_is_named_documented_and_never_invalid(name):
    m = load_matrix(name)
    assert m.name == name and m.description
    text = resources.files("numacert.clusters").joinpath("matrix", f"{name}.yaml").read_text()
    assert text.startswith("# numacert policy matrix (format: docs/matrix.md).")
    for minor in opt.SUPPORTED_MINORS:
        resolved = on_lab(name, minor)
        raise_if_invalid(resolved, m.source)
        assert all(r.status != Status.INVALID for r in resolved)
        assert not [w for r in resolved for w in r.warnings], name


def test_reduced_is_the_ci_subset():
    resolved = on_lab("reduced")
    ok = [r for r in resolved if r.status == Status.OK]
    assert len(resolved) in (6, 7) and len(ok) >= 6
    configs = [r.config for r in ok]
    assert {c.cpu_manager_policy for c in configs} == {"static"}
    assert {c.topology_manager_scope for c in configs} == {"container", "pod"}
    assert {c.topology_manager_policy for c in configs} == {
        "best-effort",
        "restricted",
        "single-numa-node",
    }
    assert {c.memory_manager_policy for c in configs} == {"None", "Static"}


def test_default_covers_every_policy_scope_and_memory_policy():
    resolved = on_lab("default")
    seen = {
        (
            r.config.topology_manager_policy,
            r.config.topology_manager_scope,
            r.config.memory_manager_policy,
        )
        for r in resolved
        if r.status == Status.OK and r.config.cpu_manager_policy == "static"
    }
    for tm in ("best-effort", "restricted", "single-numa-node"):
        for scope in ("container", "pod"):
            for mm in ("None", "Static"):
                assert (tm, scope, mm) in seen
    assert ("none", "container", "None") in seen and ("none", "container", "Static") in seen
    assert any(r.config.cpu_manager_policy == "none" for r in resolved)  # the baseline
    unsupported = {r.id: r.code for r in resolved if r.status == Status.UNSUPPORTED}
    assert unsupported == {
        "recommended-low-latency-1Gi": "needs-hugepages:1Gi",
        "recommended-large-workloads": "needs-numa-nodes:3",
        "many-numa-nodes": "needs-numa-nodes:9",
    }
    ok = {r.id for r in resolved if r.status == Status.OK}
    assert "recommended-low-latency" in ok


def test_default_on_bigger_lab_profiles():
    # prefer-closest-numa-nodes runs on the lab's 4-node profile with unequal distances.
    four = load_lab_profile("four-numa")
    base = lab_kubelet_config(four.topology, four.kubelet)
    resolved = {r.id: r for r in resolve(load_matrix("default"), base, four.topology, 37)}
    assert resolved["recommended-large-workloads"].status == Status.OK
    assert resolved["many-numa-nodes"].code == "needs-numa-nodes:9"
