"""numacert's pytest plugin (entry point `pytest11`): options, fixtures, results.

Kept thin: the fixtures live in numacert.fixtures, the logic in plain functions of the
numacert package. What the plugin itself does:
  * the command-line options of a certification run (target, nodes, --require/--assume);
  * registers the fixtures and the `check` marker; parametrizes `node_name` over the nodes
    under test (resolved without starting anything: unknown nodes are a usage error);
  * shows progress (discovery, each probe pod) on the terminal as it happens;
  * writes results.json (one record per check and node, node facts) when asked; `numacert run`
    turns it and pytest's JUnit into the reports (numacert.reports), JUnit renamed to
    classname node.policy and name check id, plus a strict flavour.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from numacert import __version__

# Markers of what the fixtures and the discovery test print; the recorder reads them back from
# the captured output (which travels with the report, under pytest-xdist too).
EVIDENCE = "numacert-evidence: "
NODE_EVIDENCE = "numacert-node: "


def pytest_addoption(parser) -> None:
    group = parser.getgroup("numacert")
    group.addoption(
        "--numacert-lab",
        action="store",
        default=os.environ.get("NUMACERT_LAB", "auto"),
        choices=["auto", "require", "skip"],
        help="lab tests: auto = run when the lab can start here (root, Debian packages), "
        "require = fail if it cannot, skip = do not run them (default: $NUMACERT_LAB or auto)",
    )
    group.addoption(
        "--numacert-kind-clusters",
        action="store",
        default=os.environ.get("NUMACERT_KIND", "auto"),
        choices=["auto", "require", "skip"],
        help="kind tests: auto = run when Docker and kind are here, require = fail if not, "
        "skip = do not run them (default: $NUMACERT_KIND or auto); the kind binary is "
        "pytest-kind's --kind-bin, else kind on PATH",
    )
    # --kubeconfig is pytest-kind's option (a dependency), with the same meaning: the cluster
    # under test. Adding it twice is an error, so numacert reads pytest-kind's.
    group.addoption("--context", help="kubeconfig context of the cluster under test")
    group.addoption("--nodes", help="nodes to certify: names (a,b) or a label selector (key=value)")
    group.addoption(
        "--keep-lab", action="store_true", help="leave a lab this run brought up running"
    )
    group.addoption("--image", help="probe image (default: the lab's busybox, or busybox:1.37)")
    group.addoption(
        "--node-access",
        help="testinfra host spec for node access, {node} replaced by the node name "
        "(e.g. ssh://root@{node}); the lab has its own",
    )
    group.addoption(
        "--require", help="KubeletConfiguration fragment: the policy the nodes must run"
    )
    group.addoption(
        "--assume",
        help="diagnostic: behaviour checks assume this KubeletConfiguration fragment over the "
        "node's own configuration instead of reading it",
    )
    group.addoption(
        "--no-kubelet-restart",
        action="store_true",
        help="do not restart the kubelet (NODE-RESTART then cannot run: INCOMPLETE)",
    )
    group.addoption("--numacert-results", help="write results.json here")
    group.addoption(
        "--numacert-namespace",
        help="an existing namespace for the probe pods (numacert creates and deletes none)",
    )
    group.addoption(
        "--numacert-topology",
        help="JSON {node: topology} that numacert read from these nodes moments before (a "
        "matrix run passes it to each combination's run): the topology pod is not run again",
    )
    group.addoption(
        "--numacert-kind",
        choices=["behaviour", "configuration"],
        help="run only the checks of this kind (the others are deselected)",
    )
    group.addoption(
        "--numacert-check",
        action="append",
        default=[],
        metavar="ID",
        help="run only this catalogue check (repeatable; the others are deselected)",
    )


def _check_fragments(config) -> None:
    """A --require/--assume file that cannot be read is a usage error, before any test."""
    from numacert.errors import InputError
    from numacert.kubelet.parse import load_fragment

    for flag in ("--require", "--assume"):
        path = config.getoption(flag, None)
        if path:
            try:
                load_fragment(path, flag)
            except InputError as exc:
                raise pytest.UsageError(f"numacert: {flag}: {exc}") from None


def pytest_configure(config) -> None:
    _check_fragments(config)
    config.addinivalue_line(
        "markers", "check(id): the catalogue check this test implements (suites/catalogue.yaml)"
    )
    config.addinivalue_line("markers", "numacert_discovery: node discovery (not a check)")
    config.pluginmanager.register(ResultsRecorder(config), "numacert-results")
    from numacert.fixtures import certify, kind, lab

    for module, name in ((certify, "numacert-fixtures"), (lab, "numacert-lab-fixtures"),
                         (kind, "numacert-kind-fixtures")):
        if not config.pluginmanager.is_registered(module):
            config.pluginmanager.register(module, name)


def _target_options(config):
    from numacert.target import TargetOptions

    return TargetOptions(
        kubeconfig=config.getoption("kubeconfig", None),
        context=config.getoption("--context"),
        nodes=config.getoption("--nodes"),
        image=config.getoption("--image"),
        node_access=config.getoption("--node-access"),
        keep_lab=config.getoption("--keep-lab"),
    )


def make_session(config):
    """The certification session, made when the first suite test sets up (numacert's own
    tests use none, and never start anything)."""
    from numacert.fixtures import certify
    from numacert.fixtures.session import CertOptions, CertSession

    if certify.SESSION_KEY in config.stash:
        return config.stash[certify.SESSION_KEY]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")

    def progress(message: str) -> None:
        if reporter is None:
            return
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            reporter.write_line(f"numacert: {message}")

    def uncaptured():
        """Long preparation (a lab that builds and boots) prints as it goes."""
        return capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()

    options = CertOptions(
        target=_target_options(config),
        require_path=config.getoption("--require"),
        assume_path=config.getoption("--assume"),
        restart_kubelet=not config.getoption("--no-kubelet-restart"),
        topology_path=config.getoption("--numacert-topology"),
        namespace=config.getoption("--numacert-namespace"),
    )
    session = CertSession(options, progress, uncaptured)
    session.selected_checks = config.stash.get(SELECTED_CHECKS, None)
    config.stash[certify.SESSION_KEY] = session
    return session


def _node_names(config) -> list[str]:
    from numacert.errors import InputError
    from numacert.target import node_names

    try:
        return node_names(_target_options(config))
    except InputError as exc:
        raise pytest.UsageError(f"numacert: {exc}") from None


_NAMES = pytest.StashKey[list]()
SELECTED_CHECKS = pytest.StashKey[set]()


def pytest_collection_modifyitems(config, items) -> None:
    """--numacert-kind / --numacert-check: keep only those checks (node discovery stays)."""
    kind = config.getoption("--numacert-kind", None)
    only = set(config.getoption("--numacert-check", None) or [])
    if not kind and not only:
        return
    from numacert.reports.catalogue import load_catalogue

    kinds = {spec.id: spec.kind for spec in load_catalogue()}
    unknown = only - set(kinds)
    if unknown:
        raise pytest.UsageError(f"numacert: --check: no such check: {', '.join(sorted(unknown))}")

    def wanted(item) -> bool:
        marker = item.get_closest_marker("check")
        if marker is None:
            return True
        check = marker.args[0]
        return (not kind or kinds.get(check) == kind) and (not only or check in only)

    keep = [item for item in items if wanted(item)]
    drop = [item for item in items if not wanted(item)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    # The session runs only the plan phases the remaining checks read.
    config.stash[SELECTED_CHECKS] = {
        m.args[0] for item in keep if (m := item.get_closest_marker("check")) is not None
    }


def pytest_generate_tests(metafunc) -> None:
    if "node_name" not in metafunc.fixturenames:
        return
    config = metafunc.config
    if _NAMES not in config.stash:
        config.stash[_NAMES] = _node_names(config)
    metafunc.parametrize("node_name", config.stash[_NAMES], scope="session")


# ---- results --------------------------------------------------------------------------------


def _status(report) -> str | None:
    if report.when == "call":
        return {"passed": "passed", "failed": "failed", "skipped": "skipped"}[report.outcome]
    if report.outcome == "skipped" and report.when == "setup":
        return "skipped"
    if report.outcome == "failed":
        return "error"  # setup or teardown raised: infrastructure, never the kubelet
    return None


def _skip_text(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _message(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    # pytest.fail(..., pytrace=False): the message itself, whose first line says it all.
    return str(report.longrepr).strip().splitlines()[0] if report.longrepr else ""


class ResultsRecorder:
    """Collects one record per (check test, node) from the reports, and node facts from the
    discovery tests' output; writes results.json at the end. Works on the controller, so it
    sees every report under pytest-xdist too."""

    def __init__(self, config) -> None:
        self.config = config
        self.records: list[dict] = []
        self.nodes: dict[str, dict] = {}
        self.started = datetime.now(UTC).isoformat(timespec="seconds")

    def pytest_collection_finish(self, session) -> None:
        """Every node under test has an entry, discovered or not: an interrupted run that
        never reached a node still gives that node an (INCOMPLETE) verdict."""
        for item in session.items:
            callspec = getattr(item, "callspec", None)
            node = callspec.params.get("node_name") if callspec is not None else None
            if node is not None:
                self.nodes.setdefault(node, {"name": node, "error": "not discovered"})

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report) -> None:
        props = dict(report.user_properties)
        for line in (report.capstdout or "").splitlines():
            if line.startswith(NODE_EVIDENCE):
                node = json.loads(line[len(NODE_EVIDENCE) :])
                self.nodes[node["name"]] = node
        if "numacert.check" not in props:
            if "numacert.discovery" in props and report.outcome == "failed":
                node = props["numacert.node"]
                self.nodes.setdefault(node, {"name": node})["error"] = _message(report)
            return
        status = _status(report)
        if status is not None:
            self._add(_record(report, props, status))

    def _add(self, record: dict) -> None:
        for i, old in enumerate(self.records):
            if old["nodeid"] == record["nodeid"]:
                # A teardown error after a passed call is an error of the same check run.
                if record["status"] == "error":
                    self.records[i] = record
                return
        self.records.append(record)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus) -> None:
        path = self.config.getoption("--numacert-results", None)
        if not path:
            return
        from numacert.fixtures import certify

        cert = self.config.stash.get(certify.SESSION_KEY, None)
        target = None
        if cert is not None and cert._target is not None and not hasattr(cert._target, "exc"):
            target = cert._target.describe()
        results = {
            "numacert_version": __version__,
            "started": self.started,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "interrupted": exitstatus == pytest.ExitCode.INTERRUPTED,
            "target": target,
            "require": cert.require if cert is not None else None,
            "assume": cert.assume if cert is not None else None,
            "nodes": self.nodes,
            "checks": self.records,
            "timings": cert.timings if cert is not None else {},
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=2, default=str) + "\n")


def _record(report, props: dict, status: str) -> dict:
    from numacert.certify.applicability import SEPARATOR

    evidence = {}
    for line in (report.capstdout or "").splitlines():
        if line.startswith(EVIDENCE):
            evidence = json.loads(line[len(EVIDENCE) :])
    skip = _skip_text(report) if status == "skipped" else None
    reason = None
    if skip:
        reason = skip.split(SEPARATOR)[-1]
    elif status != "passed":
        reason = _message(report) or None
    return {
        "check": props["numacert.check"],
        "node": props["numacert.node"],
        "policy": props.get("numacert.policy", "unknown"),
        "case": props.get("numacert.case"),
        "status": status,
        "reason": reason,
        "skip_reason": skip.split(SEPARATOR)[0] if skip else None,
        "predicted": evidence.get("predicted"),
        "observed": evidence.get("observed"),
        "nodeid": report.nodeid,
        "duration": round(report.duration, 3),
    }
