"""JUnit rewrite: classname/name, properties in the default flavour, none in the strict one.

The end-to-end tests rewrite the JUnit of a real pytest run (a tiny generated suite that adds
numacert properties through item.user_properties, as the plugin does), validate the strict
flavour against Jenkins xunit-plugin's junit-10.xsd and read the default one with junitparser,
the library GitHub's publish-unit-test-result action reads JUnit with.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest
import xmlschema

from numacert.errors import InputError
from numacert.reports.junit import (
    case_properties,
    junit_filename,
    pytest_address,
    rewrite,
    rewrite_tree,
)
from numacert.reports.results import CheckRecord, NodeInfo, Results

XSD = Path(__file__).parent / "data" / "junit-10.xsd"
NODE = "127.0.0.2"
CLASSNAME = "127-0-0-2.static+full-pcpus-only_single-numa-node-pod_Static"
TOKEN = CLASSNAME.split(".", 1)[1]
POLICY = {
    "cpu_manager": "static",
    "cpu_manager_options": {"full-pcpus-only": "true"},
    "topology_manager": "single-numa-node",
    "topology_scope": "pod",
    "topology_manager_options": {},
    "memory_manager": "Static",
}

CONFTEST = """
import pytest

TUPLE = [
    ("numacert.node", "127.0.0.2"),
    ("numacert.kubelet_version", "v1.37.2"),
    ("numacert.cpu_manager", "static"),
    ("numacert.topology_manager", "single-numa-node"),
    ("numacert.topology_scope", "pod"),
    ("numacert.memory_manager", "Static"),
    ("numacert.topology_fingerprint", "2s-2n-4c-2t-a1b2c3"),
]


def pytest_configure(config):
    config.addinivalue_line("markers", "check(id): the numacert check id")


def pytest_collection_modifyitems(items):
    for item in items:
        marker = item.get_closest_marker("check")
        if marker is None:
            continue
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("case") if callspec else None
        item.user_properties.extend(TUPLE)
        item.user_properties.append(("numacert.check", marker.args[0]))
        item.user_properties.append(("numacert.case", case))
"""

SUITE = """
import pytest


@pytest.fixture
def cluster():
    raise TimeoutError("API server did not answer in 30s")


@pytest.mark.check("TM-ALIGN")
@pytest.mark.parametrize("case", ["gu-2cpu", "gu-4cpu"])
def test_tm_align(case):
    assert case == "gu-2cpu", "container c1 spans NUMA nodes 0,1"


@pytest.mark.check("CPU-SMT")
def test_cpu_smt():
    pytest.skip("needs-smt")


@pytest.mark.check("CFG-STATE")
def test_cfg_state(cluster):
    pass


def test_not_numacert():
    pass
"""


def _record(test: str, check: str, status: str, case: str | None = None, **kw) -> CheckRecord:
    return CheckRecord(
        check=check,
        node=NODE,
        policy=TOKEN,
        status=status,
        case=case,
        nodeid=f"test_generated.py::{test}",
        **kw,
    )


RESULTS = Results(
    nodes={NODE: NodeInfo(name=NODE, policy=POLICY)},
    checks=[
        _record("test_tm_align[gu-2cpu]", "TM-ALIGN", "passed", "gu-2cpu"),
        _record(
            "test_tm_align[gu-4cpu]",
            "TM-ALIGN",
            "failed",
            "gu-4cpu",
            reason="container c1 spans NUMA nodes 0,1",
            predicted={"numa": [0]},
            observed={"numa": [0, 1]},
        ),
        _record("test_cpu_smt", "CPU-SMT", "skipped", skip_reason="needs-smt"),
        _record("test_cfg_state", "CFG-STATE", "error", reason="API server did not answer"),
    ],
)


@pytest.fixture(scope="module")
def pytest_junit(tmp_path_factory) -> Path:
    """The --junitxml of a real pytest run of the generated suite."""
    root = tmp_path_factory.mktemp("generated")
    (root / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (root / "test_generated.py").write_text(textwrap.dedent(SUITE))
    out = root / "pytest.xml"
    # Only the generated suite's own hooks: no installed plugin (numacert's included) takes part.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-o",
            "junit_family=xunit2",
            f"--junitxml={out}",
            str(root),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one failure, one error
    return out


@pytest.fixture(scope="module")
def rewritten(pytest_junit, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("rewritten")
    default, strict = out / junit_filename("numacert"), out / junit_filename("numacert-strict")
    rewrite(pytest_junit, default, RESULTS)
    rewrite(pytest_junit, strict, RESULTS, strict=True)
    return default, strict


def _cases(path: Path) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in ET.parse(path).getroot().iter("testcase")}


# ---- against a real pytest run ---------------------------------------------------------------


def test_pytest_itself_wrote_case_properties(pytest_junit):
    cases = _cases(pytest_junit)
    props = case_properties(cases["test_tm_align[gu-2cpu]"])
    assert props["numacert.check"] == "TM-ALIGN" and props["numacert.case"] == "gu-2cpu"
    # ...which is exactly what makes pytest's own output invalid against junit-10.xsd.
    assert not xmlschema.XMLSchema(XSD).is_valid(str(pytest_junit))


def test_strict_flavour_validates_against_junit_10_xsd(rewritten):
    _, strict = rewritten
    xmlschema.XMLSchema(XSD).validate(str(strict))
    root = ET.parse(strict).getroot()
    assert not [p for c in root.iter("testcase") for p in c.findall("properties")]
    assert set(_cases(strict)) >= {"TM-ALIGN[gu-2cpu]", "CPU-SMT", "CFG-STATE"}


def test_default_flavour_as_junitparser_reads_it(rewritten):
    default, _ = rewritten
    xml = junitparser.JUnitXml.fromfile(str(default))
    cases = {(c.classname, c.name): c for suite in xml for c in suite}
    assert set(cases) == {
        (CLASSNAME, "TM-ALIGN[gu-2cpu]"),
        (CLASSNAME, "TM-ALIGN[gu-4cpu]"),
        (CLASSNAME, "CPU-SMT"),
        (CLASSNAME, "CFG-STATE"),
        ("test_generated", "test_not_numacert"),  # not a numacert test: left as pytest wrote it
    }
    assert cases[(CLASSNAME, "TM-ALIGN[gu-2cpu]")].is_passed
    failed = cases[(CLASSNAME, "TM-ALIGN[gu-4cpu]")]
    assert failed.is_failure and "container c1 spans NUMA nodes 0,1" in failed.result[0].message
    assert failed.system_out.startswith("predicted:\n")
    assert 'observed:\n{\n  "numa": [\n    0,\n    1\n  ]\n}' in failed.system_out
    assert cases[(CLASSNAME, "CPU-SMT")].is_skipped
    assert cases[(CLASSNAME, "CFG-STATE")].is_error
    props = {p.name: p.value for p in cases[(CLASSNAME, "CPU-SMT")].child(junitparser.Properties)}
    assert props["numacert.node"] == NODE and props["numacert.check"] == "CPU-SMT"
    assert props["numacert.topology_fingerprint"] == "2s-2n-4c-2t-a1b2c3"
    assert props["numacert.kubelet_version"] == "v1.37.2"


# ---- on hand-written documents ---------------------------------------------------------------


def _doc(*cases: str) -> ET.Element:
    return ET.fromstring(
        '<testsuites><testsuite name="pytest" tests="1" failures="0" errors="0">'
        + "".join(cases)
        + "</testsuite></testsuites>"
    )


def _case(classname: str, name: str, **props: str) -> str:
    inner = "".join(f'<property name="numacert.{k}" value="{v}"/>' for k, v in props.items())
    body = f"<properties>{inner}</properties>" if props else ""
    return f'<testcase classname="{classname}" name="{name}" time="0.1">{body}</testcase>'


def test_a_record_is_found_by_node_check_and_case_when_nodeids_differ():
    record = CheckRecord(check="X", node="n.1", policy="p_q-r_S", status="passed", case="c")
    root = _doc(_case("suites.mod", "test_x[n.1-c]", node="n.1", check="X", case="c"))
    rewrite_tree(root, Results(nodes={}, checks=[record]))
    case = root.find(".//testcase")
    assert (case.get("classname"), case.get("name")) == ("n-1.p_q-r_S", "X[c]")


def test_without_a_record_the_token_comes_from_the_node_then_the_properties():
    root = _doc(
        _case("m", "t1", node="a", check="X", case="None"),
        _case(
            "m",
            "t2",
            node="b",
            check="Y",
            cpu_manager="none",
            topology_manager="none",
            topology_scope="container",
            memory_manager="None",
        ),
    )
    rewrite_tree(root, Results(nodes={"a": NodeInfo(name="a", policy=POLICY)}, checks=[]))
    got = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert got == [(f"a.{TOKEN}", "X"), ("b.none_none-container_None", "Y")]


def test_equal_names_keep_pytests_name_to_stay_apart():
    root = _doc(
        _case("m", "test_one", node="a", check="X"),
        _case("m", "test_two", node="a", check="X"),
    )
    rewrite_tree(root, Results(nodes={}, checks=[]))
    names = [c.get("name") for c in root.iter("testcase")]
    assert names == ["X", "X (test_two)"]


def test_testcases_without_numacert_properties_are_untouched():
    root = _doc(_case("m", "t"), '<testcase classname="m" name="u" file="x.py" line="3"/>')
    rewrite_tree(root, Results(nodes={}, checks=[]))
    assert [(c.get("classname"), c.get("name")) for c in root.iter("testcase")] == [
        ("m", "t"),
        ("m", "u"),
    ]


def test_strict_drops_case_properties_and_attributes_the_xsd_lacks_only():
    root = ET.fromstring(
        '<testsuites><testsuite name="pytest" tests="1" failures="0" errors="0">'
        '<properties><property name="run" value="1"/></properties>'
        '<testcase classname="m" name="u" file="x.py" line="3" time="0.1">'
        '<properties><property name="k" value="v"/></properties></testcase>'
        "</testsuite></testsuites>"
    )
    rewrite_tree(root, Results(nodes={}, checks=[]), strict=True)
    case = root.find(".//testcase")
    assert case.find("properties") is None and set(case.attrib) == {"classname", "name", "time"}
    assert root.find("testsuite/properties") is not None  # suite-level properties stay


def test_a_failure_appends_to_an_existing_system_out():
    record = CheckRecord(
        check="X", node="a", policy="t", status="failed", predicted=[1], observed=[2]
    )
    root = _doc(
        '<testcase classname="m" name="t"><properties>'
        '<property name="numacert.node" value="a"/><property name="numacert.check" value="X"/>'
        "</properties><failure message='m'>boom</failure><system-out>log</system-out></testcase>"
    )
    rewrite_tree(root, Results(nodes={}, checks=[record]))
    assert root.find(".//system-out").text.startswith("log\npredicted:\n[\n  1\n]")


@pytest.mark.parametrize(
    ("context", "name"),
    [
        ("numacert", "junit_numacert.xml"),
        ("numacert-strict", "junit_numacert-strict.xml"),
        ("numacert_node 1.example", "junit_numacert-node-1-example.xml"),
        ("__", "junit_numacert.xml"),
    ],
)
def test_junit_filename(context, name):
    assert junit_filename(context) == name


@pytest.mark.parametrize(
    ("nodeid", "address"),
    [
        (
            "suites/topology/test_align.py::test_x[127.0.0.2-gu]",
            ("suites.topology.test_align", "test_x[127.0.0.2-gu]"),
        ),
        ("a/test_b.py::TestC::test_d[x/y::z]", ("a.test_b.TestC", "test_d[x/y::z]")),
    ],
)
def test_pytest_address(nodeid, address):
    assert pytest_address(nodeid) == address


def test_bad_junit_is_an_input_error_naming_the_file(tmp_path):
    src = tmp_path / "pytest.xml"
    src.write_text("<testsuites><testsuite>")
    with pytest.raises(InputError, match="not valid JUnit XML") as e:
        rewrite(src, tmp_path / "out.xml", Results(nodes={}, checks=[]))
    assert str(src) in str(e.value)
