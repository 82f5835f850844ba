"""What a lab could leave behind on the host: processes, mounts and network devices.

Read before a lab starts and after it stops, so a test can prove `lab down` left nothing.
Only what the lab itself could create counts, so that whatever else runs on the host (Docker
and its kind clusters, whose containers run their own kube-apiserver and etcd, mount overlays
and add bridges) cannot make the comparison fail:
  processes  qemu, etcd and kube-* in this host's mount namespace (a container's are not ours)
  mounts     below numacert's state and cache roots
  links      named as the lab would name a device (today it adds none: qemu user networking)
"""

from __future__ import annotations

import os

from numacert.lab.cache import cache_dir
from numacert.state import state_root

LAB_PROCESS_PREFIXES = ("qemu-system", "etcd", "kube-")
LAB_LINK_PREFIXES = ("numacert", "lab", "tap")


def _namespace(pid: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def host_footprint() -> dict[str, set[str]]:
    own = _namespace("self")
    procs = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if comm.startswith(LAB_PROCESS_PREFIXES) and _namespace(pid) == own:
                procs.add(f"{pid} {comm}")
    roots = tuple(str(p) for p in (state_root(), cache_dir()))
    with open("/proc/self/mounts") as f:
        mounts = {point for point in (line.split()[1] for line in f)
                  if point.startswith(roots)}
    links = {name for name in os.listdir("/sys/class/net") if name.startswith(LAB_LINK_PREFIXES)}
    return {"processes": procs, "mounts": mounts, "links": links}
