"""What a lab could leave behind on the host: processes, mounts and network devices.

Read before a lab starts and after it stops, so a test can prove `lab down` left nothing.
"""

from __future__ import annotations

import os

LAB_PROCESS_PREFIXES = ("qemu-system", "etcd", "kube-")


def host_footprint() -> dict[str, set[str]]:
    procs = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if comm.startswith(LAB_PROCESS_PREFIXES):
                procs.add(f"{pid} {comm}")
    with open("/proc/self/mounts") as f:
        mounts = {line.split()[1] for line in f}
    links = set(os.listdir("/sys/class/net"))
    return {"processes": procs, "mounts": mounts, "links": links}
