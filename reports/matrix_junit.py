"""One JUnit document for a policy matrix run: every combination's rewritten JUnit, merged.

Each combination keeps its own testsuite(s), renamed to the combination id (`<id> (<pytest's
suite name>)` when its file has several), with suite properties `numacert.combination` and
`numacert.matrix`. In the default flavour every testcase also gets a `numacert.combination`
property (Prow/Spyglass and TestGrid read testcase properties, not suite ones).

Testcases keep their classname `<node>.<policy token>` and name `<CHECK-ID>[<case>]`. The token
comes from the policy only, so two combinations that differ in something else (hugepages, an
option the token does not carry) give equal classname and name, and GitLab keeps only the first
of two equal names: a (classname, name) found in more than one combination gets ` (<id>)`
appended to its name, in every combination that has it.

A combination without a JUnit of its own is one testsuite holding one testcase named after the
combination: skipped for an unsupported or a not-run combination (the reason as message),
errored for an `error` combination, or for one that ran but whose JUnit file is missing or
unreadable.

The strict flavour is the default document without testcase properties (and without attributes
junit-10.xsd does not allow), so it validates against Jenkins xunit-plugin's junit-10.xsd.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from numacert.reports.junit import junit_filename, make_strict
from numacert.reports.matrix import (
    NOT_RUN,
    RUN,
    UNSUPPORTED_STATUS,
    CombinationVerdict,
    MatrixVerdict,
)
from numacert.reports.policy import policy_token

PREFIX = "numacert."
NO_JUNIT = "no-junit"  # the type of the error standing for a run's missing JUnit file
# The testsuite attributes junit-10.xsd allows.
STRICT_SUITE_ATTRIBUTES = frozenset(
    {
        "name",
        "tests",
        "failures",
        "errors",
        "group",
        "time",
        "skipped",
        "timestamp",
        "hostname",
        "id",
        "package",
        "file",
        "log",
        "url",
        "version",
    }
)
# KubeletConfiguration key -> results.json policy key (what policy_token reads).
_FRAGMENT_KEYS = {
    "cpuManagerPolicy": "cpu_manager",
    "cpuManagerPolicyOptions": "cpu_manager_options",
    "topologyManagerPolicy": "topology_manager",
    "topologyManagerScope": "topology_scope",
    "topologyManagerPolicyOptions": "topology_manager_options",
    "memoryManagerPolicy": "memory_manager",
}
# XML 1.0 forbids these characters even escaped; an error message may carry them (ANSI codes).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def merge_junit(
    mv: MatrixVerdict, out_dir: Path, context: str, dst: Path, dst_strict: Path
) -> None:
    """Write the merged document to `dst` and its strict flavour to `dst_strict`."""
    root = merge_tree(mv, Path(out_dir), context)
    _write(root, dst)
    _write(strict_tree(root), dst_strict)


def merge_tree(mv: MatrixVerdict, out_dir: Path, context: str) -> ET.Element:
    """The merged document (default flavour), combinations in matrix order."""
    per_combination = [(c, _suites(c, mv.matrix.name, out_dir, context)) for c in mv.combinations]
    _disambiguate(per_combination)
    root = ET.Element("testsuites", {"name": f"numacert matrix {mv.matrix.name}"})
    for _, suites in per_combination:
        root.extend(suites)
    cases = list(root.iter("testcase"))
    root.set("tests", str(len(cases)))
    root.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    root.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    root.set("time", _seconds(sum(_float(s.get("time")) for s in root.findall("testsuite"))))
    return root


def strict_tree(root: ET.Element) -> ET.Element:
    """A copy of `root` that junit-10.xsd accepts."""
    strict = copy.deepcopy(root)
    for case in strict.iter("testcase"):
        make_strict(case)
    for suite in strict.iter("testsuite"):
        for attr in [a for a in suite.attrib if a not in STRICT_SUITE_ATTRIBUTES]:
            del suite.attrib[attr]
    return strict


def fragment_policy(kubelet: dict[str, Any]) -> dict[str, Any]:
    """The policy dict (results.json's shape) a KubeletConfiguration fragment sets; a field the
    fragment leaves to the node is absent (policy_token writes it `unknown`)."""
    return {key: kubelet[field] for field, key in _FRAGMENT_KEYS.items() if field in kubelet}


def _suites(c: CombinationVerdict, matrix: str, out_dir: Path, context: str) -> list[ET.Element]:
    if c.status != RUN:
        kind = "skipped" if c.status in (UNSUPPORTED_STATUS, NOT_RUN) else "error"
        message = c.reason or f"{c.status} (no reason given)"
        return [_synthetic(c, matrix, kind, message, c.status)]
    if c.combination.dir is None:
        return [_synthetic(c, matrix, "error", "no output folder in matrix.json", NO_JUNIT)]
    src = out_dir / c.combination.dir / junit_filename(context)
    try:
        doc = ET.parse(src).getroot()
    except OSError as e:
        return [_synthetic(c, matrix, "error", f"no JUnit file: {src}: {e.strerror}", NO_JUNIT)]
    except ET.ParseError as e:
        return [_synthetic(c, matrix, "error", f"not valid JUnit XML: {src}: {e}", NO_JUNIT)]
    suites = doc.findall("testsuite") if doc.tag == "testsuites" else [doc]
    if doc.tag not in ("testsuites", "testsuite") or not suites:
        return [_synthetic(c, matrix, "error", f"no testsuite in the JUnit file: {src}", NO_JUNIT)]
    for i, suite in enumerate(suites):
        original = suite.get("name") or str(i + 1)
        suite.set("name", c.id if len(suites) == 1 else f"{c.id} ({original})")
        _add_properties(suite, _suite_properties(c, matrix))
        for case in suite.iter("testcase"):
            _add_properties(case, [(PREFIX + "combination", c.id)])
    return suites


def _synthetic(c: CombinationVerdict, matrix: str, kind: str, message: str, why: str) -> ET.Element:
    """One testsuite, one testcase named after the combination: `kind` skipped or error, its
    type `numacert.<why>`."""
    combination = c.combination
    message = _xml_text(message)
    timings = combination.timings
    suite = ET.Element(
        "testsuite",
        {
            "name": c.id,
            "tests": "1",
            "failures": "0",
            "errors": "1" if kind == "error" else "0",
            "skipped": "1" if kind == "skipped" else "0",
            "time": _seconds(sum(timings.values())),
        },
    )
    _add_properties(suite, _suite_properties(c, matrix))
    node = combination.node
    token = policy_token(fragment_policy(combination.kubelet))
    case = ET.SubElement(
        suite,
        "testcase",
        {
            "classname": f"{(node or 'no-node').replace('.', '-')}.{token}",
            "name": c.id,
            "time": _seconds(sum(timings.values())),
        },
    )
    props = [(PREFIX + "combination", c.id), (PREFIX + "policy", token)]
    if node:
        props.insert(1, (PREFIX + "node", node))
    _add_properties(case, props)
    outcome = ET.SubElement(case, kind, {"type": f"numacert.{why}", "message": message})
    outcome.text = message
    return suite


def _suite_properties(c: CombinationVerdict, matrix: str) -> list[tuple[str, str]]:
    return [
        (PREFIX + "combination", c.id),
        (PREFIX + "matrix", matrix),
        (PREFIX + "combination_status", c.status),
    ]


def _add_properties(element: ET.Element, props: list[tuple[str, str]]) -> None:
    """Append to the element's <properties>, creating it as the first child."""
    holder = element.find("properties")
    if holder is None:
        holder = ET.Element("properties")
        element.insert(0, holder)
    for name, value in props:
        ET.SubElement(holder, "property", {"name": name, "value": _xml_text(value)})


def _disambiguate(per_combination: list[tuple[CombinationVerdict, list[ET.Element]]]) -> None:
    """` (<id>)` after the name of a testcase whose (classname, name) another combination has."""
    owners: dict[tuple[str, str], set[str]] = {}
    for c, suites in per_combination:
        for case in _cases(suites):
            owners.setdefault(_key(case), set()).add(c.id)
    for c, suites in per_combination:
        for case in _cases(suites):
            if len(owners[_key(case)]) > 1:
                case.set("name", f"{case.get('name', '')} ({c.id})")


def _cases(suites: list[ET.Element]) -> list[ET.Element]:
    return [case for suite in suites for case in suite.iter("testcase")]


def _key(case: ET.Element) -> tuple[str, str]:
    return case.get("classname", ""), case.get("name", "")


def _xml_text(text: str) -> str:
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _float(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _write(root: ET.Element, dst: Path) -> None:
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(dst, encoding="utf-8", xml_declaration=True)
