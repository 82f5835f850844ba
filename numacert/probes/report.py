"""What a probe container runs, and how its log is read back.

A probe container prints a report of its placement as the kernel enforces it (the
Cpus_allowed_list and Mems_allowed_list of /proc/self/status, and its cgroup's effective
cpuset), prints `numacert-ready`, then repeats the report every few seconds until it is
deleted. The first report is the placement at start; a later one shows what the kubelet's
reconcile loop has made of it. Regular init containers report once and exit.

Optional one-shot probes run before the first report:
  * hugepages: the per-NUMA-node free 2Mi pages before and after faulting the container's
    hugepages (fallocate on its hugetlbfs mount), so the pages' NUMA node is seen directly;
  * touch: write some memory to /dev/shm and print the anon and shmem lines of the container
    cgroup's memory.numa_stat, where the kernel says on which node the pages really landed.

Pure: building the shell text and parsing logs; no Kubernetes access here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from numacert.cpuset import CPUSet

READY = "numacert-ready"
BEGIN = "numacert-report-begin"
END = "numacert-report-end"
# Seconds between two reports of a running container. A re-read waits for the second report
# after its moment (1.5 intervals on average), so this sets what each re-read costs; each
# round costs the node two forks (sleep, grep), about 16 ms of CPU each on the TCG lab.
REPORT_INTERVAL = 2
HUGEPAGES_MOUNT = "/hugepages-2Mi"
TOUCH_BYTES = 16 << 20

# One grep reads all three files (-H names the file on each line): one process a report.
# Shell builtins would fork nothing, but busybox `read` takes /proc files a byte a syscall,
# which costs far more. The cgroup files hold a single line starting with a CPU or node id.
CGROUP_CPUS = "/sys/fs/cgroup/cpuset.cpus.effective"
CGROUP_MEMS = "/sys/fs/cgroup/cpuset.mems.effective"
_STATUS = "/proc/self/status"
_REPORT_FN = (
    "report() { "
    f"echo {BEGIN}; "
    f"grep -H -E '^(Cpus|Mems)_allowed_list|^[0-9]' {_STATUS} {CGROUP_CPUS} {CGROUP_MEMS} "
    "2>/dev/null; "
    f"echo {END}; "
    "}; "
)
_HP_FREE_FN = (
    "hp_free() { for n in /sys/devices/system/node/node[0-9]*; do "
    '[ -d "$n" ] || continue; '
    'printf "%s=%s " "${n##*node}" '
    '"$(cat $n/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)"; '
    "done; }; "
)


def probe_command(
    *, keep_running: bool = True, hugepages_bytes: int = 0, touch: bool = False
) -> list[str]:
    """The container's command (sh -c ...) for a probe with the given one-shot probes."""
    script = _REPORT_FN
    if hugepages_bytes:
        script += _HP_FREE_FN
        script += 'echo "hp_before: $(hp_free)"; '
        script += (
            f"fallocate -l {hugepages_bytes} {HUGEPAGES_MOUNT}/numacert-probe "
            '|| echo "hp_error: fallocate failed"; '
        )
        script += 'echo "hp_after: $(hp_free)"; '
    if touch:
        script += (
            f"head -c {TOUCH_BYTES} /dev/zero > /dev/shm/numacert-touch "
            '|| echo "touch_error: write to /dev/shm failed"; '
            "echo \"numa_stat: $(grep -E '^(anon|shmem) ' /sys/fs/cgroup/memory.numa_stat "
            "| tr '\\n' ';')\"; "
        )
    script += f"report; echo {READY}; "
    if keep_running:
        # As PID 1 the shell ignores SIGTERM unless it traps it; sleeping in the background
        # and waiting lets the trap run at once, so a deleted probe ends without its grace
        # period running out.
        script = "trap 'exit 0' TERM; " + script
        script += f"while :; do sleep {REPORT_INTERVAL} & wait $!; report; done"
    return ["sh", "-c", script]


@dataclass(frozen=True)
class View:
    """One report: where the container may run, as the kernel says."""

    cpus: CPUSet
    mems: CPUSet
    cgroup_cpus: CPUSet | None
    cgroup_mems: CPUSet | None

    def to_dict(self) -> dict:
        return {
            "cpus": str(self.cpus),
            "mems": str(self.mems),
            "cgroup_cpus": None if self.cgroup_cpus is None else str(self.cgroup_cpus),
            "cgroup_mems": None if self.cgroup_mems is None else str(self.cgroup_mems),
        }


@dataclass
class ProbeLog:
    """Everything one container's log says."""

    reports: list[View] = field(default_factory=list)
    ready: bool = False
    hugepages_before: dict[int, int] | None = None
    hugepages_after: dict[int, int] | None = None
    numa_stat: dict[str, dict[int, int]] | None = None  # "anon"/"shmem" -> node -> bytes
    errors: list[str] = field(default_factory=list)

    @property
    def first(self) -> View | None:
        return self.reports[0] if self.reports else None

    @property
    def last(self) -> View | None:
        return self.reports[-1] if self.reports else None


class ProbeLogError(ValueError):
    """A log that is not what the probe prints (truncated, another program's)."""


def _cpuset(value: str) -> CPUSet | None:
    value = value.strip()
    return CPUSet.parse(value) if value else None


def _node_counts(text: str) -> dict[int, int]:
    counts = {}
    for part in text.split():
        node, _, count = part.partition("=")
        counts[int(node)] = int(count)
    return counts


_NUMA_STAT = re.compile(r"N(\d+)=(\d+)")


def parse_log(text: str) -> ProbeLog:
    """Parse a probe container's log; complete reports only (the last may be half written).
    ProbeLogError for anything the probe does not print."""
    try:
        return _parse(text)
    except ProbeLogError:
        raise
    except ValueError as exc:  # CPUSetError, int(): a line that is not what the probe prints
        raise ProbeLogError(f"unreadable probe log: {exc}") from None


# What grep -H prints in a report -> the line as the parser reads it.
_REPORT_PREFIXES = {
    f"{_STATUS}:": "",
    f"{CGROUP_CPUS}:": "cgroup_cpus:",
    f"{CGROUP_MEMS}:": "cgroup_mems:",
}


def _report_line(line: str) -> str:
    for prefix, key in _REPORT_PREFIXES.items():
        if line.startswith(prefix):
            return key + line[len(prefix) :]
    return line  # the probe's older form: "Cpus_allowed_list:\t0-3", "cgroup_cpus: 0-3"


def _parse(text: str) -> ProbeLog:
    log = ProbeLog()
    current: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if line == BEGIN:
            current = {}
        elif line == END and current is not None:
            if "Cpus_allowed_list" not in current or "Mems_allowed_list" not in current:
                raise ProbeLogError(f"a report without the allowed lists: {current}")
            log.reports.append(
                View(
                    cpus=CPUSet.parse(current["Cpus_allowed_list"]),
                    mems=CPUSet.parse(current["Mems_allowed_list"]),
                    cgroup_cpus=_cpuset(current.get("cgroup_cpus", "")),
                    cgroup_mems=_cpuset(current.get("cgroup_mems", "")),
                )
            )
            current = None
        elif line == READY:
            log.ready = True
        elif current is not None:
            key, _, value = _report_line(line).partition(":")
            current[key.strip()] = value.strip()
        else:
            key, _, value = line.partition(":")
            value = value.strip()
            if key == "hp_before":
                log.hugepages_before = _node_counts(value)
            elif key == "hp_after":
                log.hugepages_after = _node_counts(value)
            elif key == "numa_stat":
                stat: dict[str, dict[int, int]] = {}
                for entry in value.split(";"):
                    name, _, rest = entry.strip().partition(" ")
                    if name:
                        stat[name] = {int(n): int(b) for n, b in _NUMA_STAT.findall(rest)}
                log.numa_stat = stat
            elif key.endswith("_error"):
                log.errors.append(f"{key}: {value}")
    return log
