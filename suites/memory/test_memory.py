"""Memory Manager checks: memory nodes pinned, rejection when memory fits no NUMA set, and
touched memory really on the pinned node."""

import pytest

from numacert.certify import checks


@pytest.mark.check("MEM-PIN")
def test_memory_nodes_pinned(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.mem_pin(node_run, prediction, node_facts.topology))


@pytest.mark.check("MEM-REJECT")
def test_memory_that_fits_no_numa_set_rejected(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.mem_reject(node_run, prediction, node_facts.topology))


@pytest.mark.check("MEM-LOCAL")
def test_touched_memory_is_local(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.mem_local(node_run, prediction, node_facts.topology))
