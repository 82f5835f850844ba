"""CPU Manager checks: the shared pool, exclusive CPUs, whole cores, init containers, and
exclusivity after the reconcile loop has run."""

import pytest

from numacert.certify import checks


@pytest.mark.check("CPU-SHARED")
def test_shared_pool(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.cpu_shared(node_run, prediction, node_facts.topology))


@pytest.mark.check("CPU-EXCLUSIVE")
def test_exclusive_cpus(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.cpu_exclusive(node_run, prediction, node_facts.topology))


@pytest.mark.check("CPU-SMT")
def test_whole_cores(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.cpu_smt(node_run, prediction, node_facts.topology))


@pytest.mark.check("CPU-INIT")
def test_init_and_sidecar_cpus(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.cpu_init(node_run, prediction, node_facts.topology))


@pytest.mark.check("CPU-RECONCILE")
def test_exclusivity_after_reconcile(node_run, prediction, node_facts, assert_outcome):
    assert_outcome(checks.cpu_reconcile(node_run, prediction, node_facts.topology))
