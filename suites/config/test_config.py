"""Configuration checks: the node runs the required policy, really applies it, reserves
memory consistently, and its state files agree with what containers see."""

import pytest

from numacert.certify import checks


@pytest.mark.check("CFG-POLICY")
def test_configured_as_required(numacert_session, node_facts, assert_outcome):
    assert_outcome(checks.cfg_policy(numacert_session.require, node_facts.configz))


@pytest.mark.check("CFG-APPLIED")
def test_configuration_really_applied(node_run, node_facts, assert_outcome):
    assert_outcome(checks.cfg_applied(node_run, node_facts.config, node_facts.topology))


@pytest.mark.check("CFG-RESERVED")
def test_reserved_memory_consistent(node_facts, assert_outcome):
    assert_outcome(
        checks.cfg_reserved(
            node_facts.config, node_facts.topology, node_facts.capacity, node_facts.allocatable
        )
    )


@pytest.mark.check("CFG-STATE")
def test_state_files_agree(node_run, node_facts, prediction, assert_outcome):
    assert_outcome(checks.cfg_state(node_run, node_facts.configz, prediction))
