"""Policy matrix files (numacert.matrix.spec): the format, the cross product, every error."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from numacert.errors import InputError
from numacert.matrix.spec import (
    Combination,
    load_matrix,
    matrix_from_dict,
    matrix_from_text,
    shipped_matrices,
)

GOOD = """\
name: small
description: two axes and an include
axes:
  cpu:
    static: {cpuManagerPolicy: static}
    static-full-pcpus:
      cpuManagerPolicy: static
      cpuManagerPolicyOptions: {full-pcpus-only: "true"}
  topology:
    none: {topologyManagerPolicy: none}
    restricted-pod: {topologyManagerPolicy: restricted, topologyManagerScope: pod}
  memory:
    none: {memoryManagerPolicy: None}
    static: {memoryManagerPolicy: Static}
  hugepages:
    none: []
    2Mi: [2048Ki]
exclude:
  - {topology: none, memory: static}
  - {cpu: static-full-pcpus, hugepages: [none]}
include:
  - id: recommended-low-latency
    description: the article's pick
    kubelet:
      cpuManagerPolicy: static
      topologyManagerPolicy: single-numa-node
      topologyManagerScope: pod
      memoryManagerPolicy: Static
    hugepages: [2Mi, 1Gi]
"""


def load_text(text: str, source: str = "m.yaml"):
    return matrix_from_text(textwrap.dedent(text), source)


def test_good_file_cross_product_exclude_include():
    m = load_text(GOOD)
    assert (m.name, m.description, m.source) == ("small", "two axes and an include", "m.yaml")
    # 2 x 2 x 2 x 2 = 16; minus topology none + memory static (4); minus full-pcpus without
    # hugepages (4, one of which is already gone) -> 16 - 4 - 3 = 9; plus the include.
    assert m.ids() == [
        "static.none.none.none",
        "static.none.none.2Mi",
        "static.restricted-pod.none.none",
        "static.restricted-pod.none.2Mi",
        "static.restricted-pod.static.none",
        "static.restricted-pod.static.2Mi",
        "static-full-pcpus.none.none.2Mi",
        "static-full-pcpus.restricted-pod.none.2Mi",
        "static-full-pcpus.restricted-pod.static.2Mi",
        "recommended-low-latency",
    ]
    c = m.combinations[8]
    assert c.labels == {
        "cpu": "static-full-pcpus",
        "topology": "restricted-pod",
        "memory": "static",
        "hugepages": "2Mi",
    }
    assert c.kubelet == {
        "cpuManagerPolicy": "static",
        "cpuManagerPolicyOptions": {"full-pcpus-only": "true"},
        "topologyManagerPolicy": "restricted",
        "topologyManagerScope": "pod",
        "memoryManagerPolicy": "Static",
    }
    assert c.hugepages == ("2Mi",)  # canonical: 2048Ki is 2Mi
    assert c.where == "axes"
    assert m.combinations[0].hugepages == ()
    inc = m.combinations[-1]
    assert (inc.labels, inc.description, inc.where) == ({}, "the article's pick", "include[0]")
    assert inc.hugepages == ("2Mi", "1Gi")  # ascending by size


def test_any_axis_may_be_omitted_and_include_alone_is_a_matrix():
    m = load_text(
        """\
        name: one-axis
        axes:
          topology:
            best-effort: {topologyManagerPolicy: best-effort}
            restricted: {topologyManagerPolicy: restricted}
        """
    )
    assert m.ids() == ["best-effort", "restricted"]
    m = load_text(
        """\
        name: only-include
        include:
          - {id: a, kubelet: {cpuManagerPolicy: static}}
        """
    )
    assert m.ids() == ["a"] and m.combinations[0].hugepages == ()


def test_locate_names_the_path_in_the_file():
    m = load_text(GOOD)
    c = m.combinations[8]
    assert c.locate("topologyManagerPolicy") == "axes.topology.restricted-pod.topologyManagerPolicy"
    assert (
        c.locate("cpuManagerPolicyOptions.full-pcpus-only")
        == "axes.cpu.static-full-pcpus.cpuManagerPolicyOptions.full-pcpus-only"
    )
    assert c.locate("reservedSystemCPUs") is None
    inc = m.combinations[-1]
    assert inc.locate("memoryManagerPolicy") == "include[0].kubelet.memoryManagerPolicy"
    c2 = Combination(
        "x", {}, (), {}, origins={"reservedMemory": "include[0].kubelet.reservedMemory"}
    )
    assert (
        c2.locate("reservedMemory[0].numaNode") == "include[0].kubelet.reservedMemory[0].numaNode"
    )


def test_maps_from_two_axes_merge_and_equal_values_agree():
    m = load_text(
        """\
        name: gates
        axes:
          cpu:
            s: {cpuManagerPolicy: static, featureGates: {CPUManagerPolicyAlphaOptions: true}}
          topology:
            t:
              topologyManagerPolicy: best-effort
              featureGates: {TopologyManagerPolicyAlphaOptions: true}
              cpuManagerPolicy: static
        """
    )
    assert m.combinations[0].kubelet["featureGates"] == {
        "CPUManagerPolicyAlphaOptions": True,
        "TopologyManagerPolicyAlphaOptions": True,
    }
    assert m.combinations[0].locate("featureGates.TopologyManagerPolicyAlphaOptions") == (
        "axes.topology.t.featureGates.TopologyManagerPolicyAlphaOptions"
    )


# (file text, where the error must point, a piece of the message)
BAD = [
    ("- a\n- b\n", "m.yaml", "must be a map"),
    ("name: [unclosed\n", "m.yaml", "not valid YAML (line"),
    (
        "name: x\naxes:\n  cpu:\n    static: {cpuManagerPolicy: static}\n"
        "    static: {cpuManagerPolicy: none}\n",
        "m.yaml",
        "duplicate key 'static'",
    ),
    ("description: no name\n", "m.yaml", "name is required"),
    ("name: x\nfoo: 1\n", "m.yaml: foo", "unknown key 'foo'"),
    ("name: Bad_Name\n", "m.yaml: name", "not a label"),
    ("name: x\naxes:\n  gpu: {a: {}}\n", "m.yaml: axes.gpu", "unknown axis 'gpu'"),
    ("name: x\naxes:\n  cpu: {Static_1: {}}\n", "m.yaml: axes.cpu.Static_1", "not a valid label"),
    ("name: x\naxes:\n  cpu: {a.b: {}}\n", "m.yaml: axes.cpu.a.b", "not a valid label"),
    ("name: x\naxes:\n  memory: {no: {}}\n", "m.yaml: axes.memory", "must be a string"),
    ("name: x\naxes:\n  cpu: {}\n", "m.yaml: axes.cpu", "must not be empty"),
    ("name: x\naxes:\n  cpu: {static: static}\n", "m.yaml: axes.cpu.static", "must be a map"),
    ("name: x\naxes:\n  hugepages: {a: 2Mi}\n", "m.yaml: axes.hugepages.a", "must be a list"),
    ("name: x\naxes:\n  hugepages: {a: [2Mx]}\n", "m.yaml: axes.hugepages.a[0]", "2Mx"),
    (
        "name: x\naxes:\n  hugepages: {a: [2Mi, 2048Ki]}\n",
        "m.yaml: axes.hugepages.a[1]",
        "repeats",
    ),
    (
        "name: x\naxes:\n  hugepages: {2Mi: [2Mi], 2mi: [2Mi]}\n",
        "m.yaml: axes.hugepages.2mi",
        "only in case",
    ),
    (
        "name: x\naxes:\n  cpu: {s: {}}\nexclude:\n  - {memory: static}\n",
        "m.yaml: exclude[0].memory",
        "no memory axis",
    ),
    (
        "name: x\naxes:\n  cpu: {s: {}}\nexclude:\n  - {cpu: [s, t]}\n",
        "m.yaml: exclude[0].cpu",
        "'t' is not a label of the cpu axis",
    ),
    ("name: x\naxes:\n  cpu: {s: {}}\nexclude:\n  - {cpu: 3}\n", "m.yaml: exclude[0].cpu", "label"),
    (
        "name: x\naxes:\n  cpu: {s: {}}\nexclude:\n  - {gpu: s}\n",
        "m.yaml: exclude[0].gpu",
        "unknown",
    ),
    ("name: x\naxes:\n  cpu: {s: {}}\nexclude:\n  - {cpu: s}\n", "m.yaml", "no combinations"),
    ("name: x\n", "m.yaml", "no combinations"),
    ("name: x\ninclude:\n  - {kubelet: {}}\n", "m.yaml: include[0]", "id is required"),
    ("name: x\ninclude:\n  - {id: a..b, kubelet: {}}\n", "m.yaml: include[0].id", "not an id"),
    ("name: x\ninclude:\n  - {id: a, kubelet: {}, foo: 1}\n", "m.yaml: include[0].foo", "unknown"),
    (
        "name: x\ninclude:\n  - {id: a, kubelet: {}}\n  - {id: a, kubelet: {}}\n",
        "m.yaml: include[1].id",
        "duplicate combination id 'a' (also at include[0])",
    ),
    (
        "name: x\ninclude:\n  - {id: Ab, kubelet: {}}\n  - {id: aB, kubelet: {}}\n",
        "m.yaml: include[1].id",
        "differ in more than case",
    ),
    (
        "name: x\naxes:\n  cpu: {s: {}}\n  memory: {m: {}}\ninclude:\n  - {id: s.m, kubelet: {}}\n",
        "m.yaml: include[0].id",
        "also a combination of the axes",
    ),
    # kubelet fragments are read as the kubelet reads them
    (
        "name: x\naxes:\n  topology: {t: {topologyManagerPolicyy: restricted}}\n",
        "m.yaml: axes.topology.t.topologyManagerPolicyy",
        'did you mean "topologyManagerPolicy"',
    ),
    (
        "name: x\naxes:\n  cpu: {f: {cpuManagerPolicyOptions: {full-pcpus-only: true}}}\n",
        "m.yaml: axes.cpu.f.cpuManagerPolicyOptions.full-pcpus-only",
        "quote it",
    ),
    (
        "name: x\ninclude:\n  - {id: a, kubelet: {memorymanagerpolicy: Static}}\n",
        "m.yaml: include[0].kubelet.memorymanagerpolicy",
        "did you mean",
    ),
    (
        "name: x\ninclude:\n  - {id: a, kubelet: {reservedMemory: [{limits: {memory: 1Gi}}]}}\n",
        "m.yaml: include[0].kubelet.reservedMemory[0]",
        "numaNode is required",
    ),
    (
        "name: x\ninclude:\n  - {id: a, kubelet: []}\n",
        "m.yaml: include[0].kubelet",
        "must be a map",
    ),
    (
        "name: x\naxes:\n  cpu: {s: {cpuManagerPolicy: static}}\n"
        "  topology: {t: {cpuManagerPolicy: none}}\n",
        "m.yaml: axes.topology.t.cpuManagerPolicy",
        "also set, differently, at axes.cpu.s.cpuManagerPolicy",
    ),
]


@pytest.mark.parametrize(("text", "where", "what"), BAD, ids=[b[2] for b in BAD])
def test_malformed_files_name_the_file_and_the_path(text, where, what):
    with pytest.raises(InputError) as exc:
        matrix_from_text(text, "m.yaml")
    assert exc.value.where == where, str(exc.value)
    assert what in exc.value.what, str(exc.value)


def test_not_a_mapping_from_dict():
    with pytest.raises(InputError, match="must be a map"):
        matrix_from_dict(None, "m.yaml")


def test_load_by_path_and_by_name(tmp_path: Path):
    f = tmp_path / "mine.yaml"
    f.write_text(GOOD)
    assert load_matrix(f).source == str(f)
    assert load_matrix(str(f)).name == "small"
    m = load_matrix("reduced")
    assert m.source == "clusters/matrix/reduced.yaml"
    # a bare name that is not shipped but is a file
    bare = tmp_path / "bare"
    bare.write_text(GOOD)
    assert load_matrix(str(bare)).name == "small"


def test_unknown_name_and_missing_file():
    with pytest.raises(InputError) as exc:
        load_matrix("no-such-matrix")
    assert exc.value.where == "--matrix"
    for name in shipped_matrices():
        assert name in exc.value.what
    with pytest.raises(InputError) as exc:
        load_matrix("/nonexistent/m.yaml")
    assert exc.value.where == "/nonexistent/m.yaml"
    assert "no such file" in exc.value.what


def test_shipped_names():
    assert {"reduced", "default"} <= set(shipped_matrices())
