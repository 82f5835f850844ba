"""Node checks: discovery, release to baseline, kubelet restart, admission metrics."""

import json

import pytest

from numacert.certify import checks
from numacert.fixtures.certify import NODE_EVIDENCE, policy_of
from numacert.kubelet.render import to_dict


@pytest.mark.numacert_discovery
def test_discovery(numacert_session, node_name, record_property):
    """What the node is and runs (printed for the report); an error here is an error of
    every check of the node."""
    record_property("numacert.node", node_name)
    record_property("numacert.discovery", "true")
    facts = numacert_session.facts(node_name)
    config = numacert_session.config(node_name)
    access = numacert_session.target.access(node_name)
    node = {
        "name": node_name,
        "kubelet_version": facts.kubelet_version,
        "topology_fingerprint": facts.topology.fingerprint(),
        "topology": facts.topology.to_dict(),
        "policy": policy_of(config),
        "policy_source": "assumed" if numacert_session.assume else "configz",
        "configz_policy": policy_of(facts.config),
        "capacity": facts.capacity,
        "allocatable": facts.allocatable,
        "node_access": access is not None,
        "kubelet_config": to_dict(facts.config),
        "error": None,
    }
    print(NODE_EVIDENCE + json.dumps(node, default=str))


@pytest.mark.check("NODE-RELEASE")
def test_release_to_baseline(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.node_release(node_run, prediction, node_facts.topology))


@pytest.mark.check("NODE-RESTART")
def test_assignments_survive_kubelet_restart(node_run, assert_outcome):
    if not node_run.restarted:
        pytest.skip("not-run:kubelet-restart-disabled | --no-kubelet-restart was given")
    assert_outcome(checks.node_restart(node_run))


@pytest.mark.check("NODE-METRICS")
def test_admission_metrics(node_run, prediction, assert_outcome):
    if node_run.metrics_before is None or node_run.metrics_after is None:
        pytest.skip(
            f"needs-metrics | the kubelet's /metrics could not be read: {node_run.metrics_error}"
        )
    assert_outcome(checks.node_metrics(node_run, prediction))
