"""Rewrite pytest's --junitxml output so CI dashboards show node, policy and check.

pytest names a testcase after its Python location (classname `suites.topology.test_align`, name
`test_tm_align[127.0.0.2-gu]`); GitLab, the GitHub reporters and Jenkins display only those two.
Each numacert testcase (one carrying `numacert.*` properties) is renamed to classname
`<node, dots as '-'>.<policy token>` and name `<CHECK-ID>` or `<CHECK-ID>[<case>]`, and a failure
gets predicted and observed in its system-out. Other testcases are left as they are.

The default flavour keeps the testcase <properties> (Prow/TestGrid group by them; Jenkins keeps
them with keepProperties). The strict flavour drops them so the file validates against Jenkins
xunit-plugin's junit-10.xsd, which allows no testcase <properties>.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from numacert.errors import InputError
from numacert.reports.policy import policy_token
from numacert.reports.results import CheckRecord, Results

PREFIX = "numacert."
# The testcase attributes junit-10.xsd allows.
STRICT_ATTRIBUTES = frozenset({"name", "time", "classname", "group"})
_CONTEXT_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def junit_filename(context: str) -> str:
    """`junit_<context>.xml`, the name Prow's Spyglass and TestGrid pick up.

    TestGrid splits the name at underscores (context, timestamp, thread), so the context keeps
    only letters, digits and '-': `numacert node_1.x` -> `junit_numacert-node-1-x.xml`.
    """
    safe = re.sub("-{2,}", "-", _CONTEXT_UNSAFE.sub("-", context)).strip("-")
    return f"junit_{safe or 'numacert'}.xml"


def rewrite(src: Path, dst: Path, results: Results, strict: bool = False) -> None:
    """Read pytest's JUnit XML at `src`, write the renamed document to `dst`."""
    tree = _parse(Path(src))
    rewrite_tree(tree.getroot(), results, strict)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    tree.write(dst, encoding="utf-8", xml_declaration=True)


def rewrite_tree(root: ET.Element, results: Results, strict: bool = False) -> None:
    """The rewrite on a parsed document, in place."""
    index = _RecordIndex(results)
    taken: set[tuple[str, str]] = set()
    for case in root.iter("testcase"):
        props = case_properties(case)
        if PREFIX + "check" in props and PREFIX + "node" in props:
            _rename(case, props, index.find(case, props), results, taken)
        if strict:
            make_strict(case)


def case_properties(case: ET.Element) -> dict[str, str]:
    """The testcase's <properties> as a dict (the last value wins for a repeated name)."""
    return {
        p.get("name", ""): p.get("value", "")
        for props in case.findall("properties")
        for p in props.findall("property")
    }


def _parse(src: Path) -> ET.ElementTree:
    try:
        return ET.parse(src)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", str(src)) from None
    except ET.ParseError as e:
        raise InputError(f"not valid JUnit XML: {e}", str(src)) from None


def _rename(
    case: ET.Element,
    props: dict[str, str],
    record: CheckRecord | None,
    results: Results,
    taken: set[tuple[str, str]],
) -> None:
    node = props[PREFIX + "node"]
    classname = f"{node.replace('.', '-')}.{_token(record, props, results)}"
    name = _label(props[PREFIX + "check"], record.case if record else _case(props))
    if (classname, name) in taken:
        # GitLab keeps only the first of two equal names: keep pytest's name to tell them apart.
        name = f"{name} ({case.get('name', '')})"
    taken.add((classname, name))
    case.set("classname", classname)
    case.set("name", name)
    if record is not None and record.status == "failed":
        _add_comparison(case, record)


def _token(record: CheckRecord | None, props: dict[str, str], results: Results) -> str:
    if record is not None and record.policy:
        return record.policy
    info = results.nodes.get(props[PREFIX + "node"])
    if info is not None and info.policy:
        return policy_token(info.policy)
    # Last resort: the tuple in the properties (it carries no policy options).
    return policy_token(
        {
            key: props.get(PREFIX + key)
            for key in ("cpu_manager", "topology_manager", "topology_scope", "memory_manager")
        }
    )


def _case(props: dict[str, str]) -> str | None:
    value = props.get(PREFIX + "case", "")
    # A user property of None is written as the string "None".
    return None if value in ("", "None") else value


def _label(check: str, case: str | None) -> str:
    return f"{check}[{case}]" if case else check


def _add_comparison(case: ET.Element, record: CheckRecord) -> None:
    if record.predicted is None and record.observed is None:
        return
    text = (
        f"predicted:\n{json.dumps(record.predicted, indent=2, sort_keys=True)}\n"
        f"observed:\n{json.dumps(record.observed, indent=2, sort_keys=True)}\n"
    )
    out = case.find("system-out")
    if out is None:
        out = ET.SubElement(case, "system-out")
        out.text = text
    else:
        out.text = (out.text or "") + "\n" + text


def make_strict(case: ET.Element) -> None:
    """Drop what junit-10.xsd does not allow on a testcase: its <properties>, and attributes
    other than name, time, classname and group."""
    for props in case.findall("properties"):
        case.remove(props)
    for attr in [a for a in case.attrib if a not in STRICT_ATTRIBUTES]:
        del case.attrib[attr]


class _RecordIndex:
    """Finds a testcase's record: by pytest's own address for the record's nodeid (exact),
    else by node, check and case when that is unique."""

    def __init__(self, results: Results) -> None:
        self.by_address: dict[tuple[str, str], CheckRecord] = {}
        self.by_key: dict[tuple[str, str, str | None], list[CheckRecord]] = {}
        for r in results.checks:
            if r.nodeid:
                self.by_address[pytest_address(r.nodeid)] = r
            self.by_key.setdefault((r.node, r.check, r.case), []).append(r)

    def find(self, case: ET.Element, props: dict[str, str]) -> CheckRecord | None:
        exact = self.by_address.get((case.get("classname", ""), case.get("name", "")))
        if exact is not None:
            return exact
        key = (props[PREFIX + "node"], props[PREFIX + "check"], _case(props))
        candidates = self.by_key.get(key, [])
        return candidates[0] if len(candidates) == 1 else None


def pytest_address(nodeid: str) -> tuple[str, str]:
    """The (classname, name) pytest's junitxml gives a test id (without --junitprefix):
    `a/test_b.py::TestC::test_d[x/y]` -> (`a.test_b.TestC`, `test_d[x/y]`)."""
    path, bracket, params = nodeid.partition("[")
    parts = path.split("::")
    parts[0] = parts[0].replace("/", ".").removesuffix(".py")
    parts[-1] += bracket + params
    return ".".join(parts[:-1]), parts[-1]
