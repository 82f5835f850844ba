"""Debian packages the lab host needs, a check that names what is missing, and an installer.

The check looks at dpkg's own database (a binary on PATH from elsewhere does not count:
busybox must be the static build, qemu must be Debian's with its firmware files).
`ensure()` installs only when running as root and explicitly allowed (flag or
NUMACERT_LAB_INSTALL_DEPS=1), which is how CI uses it; otherwise it raises with the exact
apt-get command to run.
"""

from __future__ import annotations

import os
import shutil

from numacert.errors import InfrastructureError
from numacert.proc import run

ENV_ALLOW_INSTALL = "NUMACERT_LAB_INSTALL_DEPS"

# package -> why the lab needs it (shown in the error so the user knows what each is for)
PACKAGES: dict[str, str] = {
    "qemu-system-x86": "runs the emulated multi-NUMA guest (TCG)",
    "qemu-utils": "qemu-img: per-lab copy-on-write overlay of the cached disk image",
    "mmdebstrap": "builds the guest's Debian bookworm root filesystem",
    "umoci": "builds the pause and test OCI images offline",
    "busybox-static": "the static busybox inside the OCI images",
    "openssh-client": "ssh/scp/ssh-keygen to reach the guest",
    "e2fsprogs": "mke2fs -d: turns the root filesystem into an ext4 image",
}


def _installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    proc = run(
        ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package],
        f"dpkg-query of {package}",
        60,
        check=False,
    )
    return proc.returncode == 0 and proc.stdout.startswith("ii")


def missing(packages: dict[str, str] | None = None) -> list[str]:
    """Packages from `packages` (default: PACKAGES) that dpkg does not list as installed."""
    return [p for p in (packages or PACKAGES) if not _installed(p)]


def install_command(packages: list[str]) -> str:
    """The exact command that installs `packages` on Debian bookworm."""
    return "apt-get update && apt-get install -y --no-install-recommends " + " ".join(packages)


def check() -> None:
    """Raise InfrastructureError naming every missing package and the command to install them."""
    absent = missing()
    if absent:
        why = "; ".join(f"{p}: {PACKAGES[p]}" for p in absent)
        raise InfrastructureError(
            f"the lab needs Debian packages that are not installed ({why}). "
            f"Install them with: {install_command(absent)}"
        )


def ensure(allow_install: bool | None = None) -> list[str]:
    """Make sure every package is installed; returns the packages it installed.

    Installs only as root and when `allow_install` is true (None: read NUMACERT_LAB_INSTALL_DEPS).
    """
    absent = missing()
    if not absent:
        return []
    if allow_install is None:
        allow_install = os.environ.get(ENV_ALLOW_INSTALL, "") in ("1", "true", "yes")
    if not allow_install or os.geteuid() != 0:
        check()  # raises with the command to run
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update"], "apt-get update", 600, env=env)
    run(["apt-get", "install", "-y", "--no-install-recommends", *absent],
        f"apt-get install {' '.join(absent)}", 1800, env=env)
    still = missing()
    if still:
        raise InfrastructureError(f"apt-get reported success but {', '.join(still)} is missing")
    return absent
