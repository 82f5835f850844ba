"""`numacert lab down` leaves no process, mount or network device behind.

Named to run after every other module that uses the session's lab: it takes the lab down.
"""

from __future__ import annotations

import pytest

from numacert.lab.footprint import host_footprint
from numacert.lab.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_lab_down_leaves_nothing(lab: Lab):
    if not getattr(lab, "started_by_tests", False):
        pytest.skip("the lab was up before these tests; it is not ours to take down")
    before = lab.footprint_before
    lab.down()
    after = host_footprint()
    assert after["processes"] == set(), after["processes"]
    assert after["mounts"] <= before["mounts"], after["mounts"] - before["mounts"]
    assert after["links"] <= before["links"], after["links"] - before["links"]
    assert lab.status()["up"] is False
    # Nothing of this cluster is handed to the next lab.
    assert not (lab.cp_dir / "etcd-data").exists()
