"""Hugepage checks: the pages a pinned pod faults come from its NUMA node."""

import pytest

from numacert.certify import checks


@pytest.mark.check("HP-NUMA")
def test_hugepages_from_the_aligned_node(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.hp_numa(node_run, prediction, node_facts.topology))
