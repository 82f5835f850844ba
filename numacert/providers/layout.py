"""Where a node keeps its kubelet's configuration, found from the running kubelet itself.

On kubeadm nodes and most distributions the kubelet is the systemd unit `kubelet`; its
`--config` flag names the KubeletConfiguration file, and the unit's EnvironmentFiles carry
more flags (kubeadm: /var/lib/kubelet/kubeadm-flags.env, /etc/default/kubelet). numacert
reads these from the node rather than assuming paths, so a distribution that moved them is
still handled, and one it cannot read is refused before anything is changed.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from numacert.errors import InfrastructureError

UNIT = "kubelet"
DEFAULT_ROOT_DIR = "/var/lib/kubelet"
STATE_FILES = ("cpu_manager_state", "memory_manager_state")


@dataclass(frozen=True)
class KubeletLayout:
    """The files that make a node's kubelet configuration, as the running kubelet uses them."""

    config_file: str  # --config
    flags_files: tuple[str, ...]  # the unit's EnvironmentFiles that exist on the node
    root_dir: str = DEFAULT_ROOT_DIR  # --root-dir: where the state files live

    @property
    def state_files(self) -> tuple[str, ...]:
        return tuple(f"{self.root_dir}/{name}" for name in STATE_FILES)

    @property
    def restored_files(self) -> tuple[str, ...]:
        """The files a restore writes back byte for byte."""
        return (self.config_file, *self.flags_files)


def flag_value(argv: list[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` in a kubelet argv (last one wins, as
    with the kubelet's own flag parsing)."""
    value = None
    for i, arg in enumerate(argv):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def environment_files(show_value: str) -> list[str]:
    """Paths from `systemctl show -p EnvironmentFiles --value`: one per line, each followed by
    `(ignore_errors=yes|no)`."""
    paths = []
    for line in show_value.splitlines():
        line = line.strip()
        if line:
            paths.append(line.split(" (ignore_errors=")[0].strip())
    return paths


def discover(access) -> KubeletLayout:
    """The layout of the kubelet running on the node behind `access` (a NodeAccess).

    InfrastructureError when no kubelet runs as the systemd unit `kubelet`, or it runs
    without --config (flags-only kubelets cannot be reconfigured through a file)."""
    pid = access.run(f"systemctl show -p MainPID --value {UNIT}").strip()
    if not pid.isdigit() or pid == "0":
        raise InfrastructureError(
            f"on {access.spec}: no kubelet runs as the systemd unit {UNIT!r} "
            f"(MainPID {pid or 'empty'}); numacert reconfigures systemd-run kubelets only"
        )
    argv = [a for a in access.run(f"cat /proc/{pid}/cmdline").split("\0") if a]
    config = flag_value(argv, "config")
    if not config:
        raise InfrastructureError(
            f"on {access.spec}: the kubelet runs without --config ({shlex.join(argv)[:200]}); "
            "numacert reconfigures kubelets through their configuration file only"
        )
    root_dir = flag_value(argv, "root-dir") or DEFAULT_ROOT_DIR
    listed = environment_files(access.run(f"systemctl show -p EnvironmentFiles --value {UNIT}"))
    present = tuple(p for p in listed if access.exists(p))
    return KubeletLayout(config_file=config, flags_files=present, root_dir=root_dir)
