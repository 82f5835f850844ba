"""Lab test helpers: skip where the lab cannot run, boot guests, always stop them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from numacert.lab import hostdeps
from numacert.lab.image import NodeImage, build_image
from numacert.lab.qemu import Ports
from numacert.lab.vm import VM, free_port
from numacert.topology.model import Topology


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab image build needs root (mmdebstrap, umoci, mke2fs -d)"
    absent = hostdeps.missing()
    if absent and os.environ.get(hostdeps.ENV_ALLOW_INSTALL) not in ("1", "true", "yes"):
        return f"missing Debian packages: {hostdeps.install_command(absent)}"
    return None


def require_lab(request: pytest.FixtureRequest) -> None:
    """Skip or fail a lab test per --numacert-lab when the lab cannot run here."""
    mode = request.config.getoption("--numacert-lab")
    if mode == "skip":
        pytest.skip("lab tests disabled (--numacert-lab=skip)")
    reason = lab_unavailable()
    if reason:
        if mode == "require":
            pytest.fail(f"the lab cannot run here: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def lab_image(request: pytest.FixtureRequest) -> NodeImage:
    require_lab(request)
    return build_image(progress=False)


@contextmanager
def booted(image: NodeImage, run_dir: Path, topology: Topology, memory_per_node: int,
           **kwargs: object) -> Iterator[VM]:
    """Start a guest, wait for ssh and containerd, and stop it whatever happens.

    Ports are free ones, so a test guest never collides with a running `numacert lab`
    (which holds 127.0.0.2:10250).
    """
    kwargs.setdefault("ports", Ports(ssh=free_port(), kubelet_addr="127.0.0.2",
                                     kubelet_port=free_port("127.0.0.2")))
    vm = VM(run_dir, image, topology, memory_per_node, **kwargs)  # type: ignore[arg-type]
    try:
        vm.start()
        vm.wait_ssh(timeout=600)
        vm.wait_ready(timeout=600)
        yield vm
    finally:
        vm.stop()
