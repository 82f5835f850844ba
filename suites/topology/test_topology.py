"""Topology Manager checks: alignment, rejection, best-effort spanning, closest NUMA nodes,
more than 8 NUMA nodes."""

import pytest

from numacert.certify import checks


@pytest.mark.check("TM-ALIGN")
def test_aligned_on_one_numa_node(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.tm_align(node_run, prediction, node_facts.topology))


@pytest.mark.check("TM-REJECT")
def test_unalignable_pod_rejected(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.tm_reject(node_run, prediction, node_facts.topology))


@pytest.mark.check("TM-BESTEFFORT")
def test_best_effort_spans_as_predicted(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.tm_besteffort(node_run, prediction, node_facts.topology))


@pytest.mark.check("TM-CLOSEST")
def test_closest_numa_nodes(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.tm_closest(node_run, prediction, node_facts.topology))


@pytest.mark.check("TM-MAXNUMA")
def test_more_than_eight_numa_nodes(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.tm_maxnuma(node_run, prediction, node_facts.topology, node_facts.configz))
