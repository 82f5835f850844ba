"""The probe container's shell text and its log parser.

parse_log on hand-written logs (the shapes the probe prints), then the real shell text of
probe_command: on this host with its own sh (the host's Cpus_allowed_list must come back), and
under busybox sh in a chroot built as a fake container root (fake /proc/self/status, cgroup
files, per-node hugepage counters, memory.numa_stat), so every line the probe prints is
checked against values the test chose.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numacert.cpuset import CPUSet
from numacert.probes.report import (
    BEGIN,
    END,
    HUGEPAGES_MOUNT,
    READY,
    REPORT_INTERVAL,
    TOUCH_BYTES,
    ProbeLogError,
    View,
    parse_log,
    probe_command,
)

MiB = 1 << 20


def report(cpus: str, mems: str, cgroup_cpus: str | None = None, cgroup_mems: str | None = None):
    """One report exactly as the probe prints it: grep -H over the status file (its lines use
    a tab) and the two cgroup files (a missing one prints nothing)."""
    lines = [
        BEGIN,
        f"/proc/self/status:Cpus_allowed_list:\t{cpus}",
        f"/proc/self/status:Mems_allowed_list:\t{mems}",
    ]
    if cgroup_cpus is not None:
        lines.append(f"/sys/fs/cgroup/cpuset.cpus.effective:{cgroup_cpus}")
    if cgroup_mems is not None:
        lines.append(f"/sys/fs/cgroup/cpuset.mems.effective:{cgroup_mems}")
    lines.append(END)
    return "\n".join(lines) + "\n"


# ---- parse_log on hand-written logs -------------------------------------------------------


def test_one_report_then_ready():
    log = parse_log(report("2-3", "0", "2-3", "0") + READY + "\n")
    assert log.ready
    assert log.reports == [
        View(CPUSet({2, 3}), CPUSet({0}), CPUSet({2, 3}), CPUSet({0})),
    ]
    assert log.first == log.last == log.reports[0]
    assert log.hugepages_before is None and log.numa_stat is None and log.errors == []


def test_many_reports_keep_their_order():
    text = (
        report("0-7", "0-1", "0-7", "0-1")
        + READY
        + "\n"
        + report("0,6-7", "0-1", "0,6-7", "0-1")
        + report("0,6-7", "0-1", "0,6-7", "0-1")
    )
    log = parse_log(text)
    assert [str(v.cpus) for v in log.reports] == ["0-7", "0,6-7", "0,6-7"]
    assert log.first.cpus == CPUSet(range(8))
    assert log.last.cpus == CPUSet({0, 6, 7})


@pytest.mark.parametrize(
    "tail",
    [
        BEGIN + "\n",
        BEGIN + "\nCpus_allowed_list:\t0-3\n",
        BEGIN + "\nCpus_allowed_list:\t0-3\nMems_allowed_list:\t0\ncgroup_cpus: 0-3\n",
        BEGIN + "\nCpus_allowed_list:\t0-",  # cut in the middle of a line
    ],
)
def test_half_written_last_report_is_ignored(tail):
    log = parse_log(report("1", "0", "1", "0") + READY + "\n" + report("1", "0") + tail)
    assert len(log.reports) == 2
    assert log.last.cpus == CPUSet({1})


def test_report_without_cgroup_files_has_no_cgroup_sets():
    # cgroup v1 or no cpuset controller: `cat` prints nothing after the colon.
    log = parse_log(report("0-1", "0"))
    assert log.first.cgroup_cpus is None and log.first.cgroup_mems is None


def test_init_container_single_report_in_the_older_form():
    # A regular init container reports once, says ready and exits: no loop output. The form
    # probes printed before one grep -H read every file is still read.
    text = "\n".join(
        [
            BEGIN,
            "Cpus_allowed_list:\t5",
            "Mems_allowed_list:\t1",
            "cgroup_cpus: 5",
            "cgroup_mems: 1",
        ]
    )
    log = parse_log(text + "\n" + END + "\n" + READY)
    assert log.ready and len(log.reports) == 1
    assert log.first == View(CPUSet({5}), CPUSet({1}), CPUSet({5}), CPUSet({1}))


def test_not_ready_without_marker():
    assert not parse_log(report("0", "0")).ready


def test_hugepages_before_and_after():
    text = "hp_before: 0=64 1=64 \nhp_after: 0=64 1=62 \n" + report("2", "1") + READY
    log = parse_log(text)
    assert log.hugepages_before == {0: 64, 1: 64}
    assert log.hugepages_after == {0: 64, 1: 62}
    assert log.errors == []


def test_hugepages_multi_digit_nodes():
    log = parse_log("hp_before: 0=1 1=2 10=3 \nhp_after: 0=1 1=2 10=1\n")
    assert log.hugepages_before == {0: 1, 1: 2, 10: 3}
    assert log.hugepages_after[10] == 1


def test_numa_stat_lines():
    text = "numa_stat: anon N0=1048576 N1=0;shmem N0=16777216 N1=4096;\n" + report("1", "0")
    log = parse_log(text)
    assert log.numa_stat == {"anon": {0: 1048576, 1: 0}, "shmem": {0: 16777216, 1: 4096}}


def test_numa_stat_empty_when_file_is_missing():
    # grep on a missing memory.numa_stat prints nothing: the probe still says `numa_stat:`.
    log = parse_log("numa_stat: \n" + report("1", "0"))
    assert log.numa_stat == {}


def test_error_lines():
    text = (
        "hp_before: 0=2 1=2 \nhp_error: fallocate failed\nhp_after: 0=2 1=2 \n"
        "touch_error: write to /dev/shm failed\nnuma_stat: \n" + report("1", "0") + READY
    )
    log = parse_log(text)
    assert log.errors == ["hp_error: fallocate failed", "touch_error: write to /dev/shm failed"]
    assert log.ready and len(log.reports) == 1


def test_other_programs_lines_outside_reports_are_ignored():
    text = "sh: can't create /dev/shm/numacert-touch: Read-only file system\n" + report("3", "0")
    log = parse_log(text)
    assert len(log.reports) == 1 and log.errors == []


@pytest.mark.parametrize(
    "text",
    [
        f"{BEGIN}\nsomething else entirely\n{END}\n",
        f"{BEGIN}\nCpus_allowed_list:\t0-3\n{END}\n",
        f"{BEGIN}\nMems_allowed_list:\t0\n{END}\n",
        f"{BEGIN}\n{END}\n",
    ],
)
def test_report_without_allowed_lists_is_an_error(text):
    with pytest.raises(ProbeLogError, match="without the allowed lists"):
        parse_log(report("0", "0") + text)


def test_empty_log_has_no_report():
    log = parse_log("")
    assert log.reports == [] and log.first is None and log.last is None and not log.ready


@pytest.mark.parametrize(
    "text",
    [
        f"{BEGIN}\nCpus_allowed_list:\tzero\nMems_allowed_list:\t0\n{END}\n",
        f"{BEGIN}\nCpus_allowed_list:\t0\nMems_allowed_list:\t0-\n{END}\n",
        f"{BEGIN}\nCpus_allowed_list:\t0\nMems_allowed_list:\t0\ncgroup_cpus: 0-x\n{END}\n",
        "hp_before: 0=many\n",
        "hp_after: 0=1 1\n",
    ],
)
def test_malformed_values_are_probe_log_errors(text):
    """A value the probe never prints is a ProbeLogError (what the module documents for a
    log that is not the probe's), not a bare ValueError from deep inside the parser."""
    with pytest.raises(ProbeLogError, match="unreadable probe log"):
        parse_log(report("0", "0") + text)


@settings(max_examples=60, deadline=None)
@given(
    views=st.lists(
        st.tuples(
            st.frozensets(st.integers(0, 255), min_size=1),
            st.frozensets(st.integers(0, 63), min_size=1),
            st.one_of(st.none(), st.frozensets(st.integers(0, 255), min_size=1)),
        ),
        min_size=1,
        max_size=5,
    ),
    cut=st.integers(0, 200),
)
def test_round_trip_and_any_truncation(views, cut):
    """Whatever the sets, parse_log gives back every complete report, and a log cut anywhere
    gives back a prefix of them (never a half report)."""
    text = f"{READY}\n".join(
        report(str(CPUSet(c)), str(CPUSet(m)), None if g is None else str(CPUSet(g)))
        for c, m, g in views
    )
    full = parse_log(text)
    assert [(set(v.cpus), set(v.mems)) for v in full.reports] == [
        (set(c), set(m)) for c, m, _ in views
    ]
    assert [v.cgroup_cpus for v in full.reports] == [
        None if g is None else CPUSet(g) for _, _, g in views
    ]
    cut_text = text[: max(0, len(text) - cut)]
    partial = parse_log(cut_text)
    assert partial.reports == full.reports[: len(partial.reports)]
    assert len(partial.reports) == cut_text.count(END)


# ---- the shell text on this host ---------------------------------------------------------


def _status_field(name: str) -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_one_shot_probe_runs_on_this_host():
    """keep_running=False, as a regular init container runs it, with the host's own sh."""
    command = probe_command(keep_running=False)
    assert command[:2] == ["sh", "-c"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    log = parse_log(done.stdout)
    assert log.ready and len(log.reports) == 1
    assert log.first.cpus == CPUSet(os.sched_getaffinity(0))
    assert log.first.cpus == CPUSet.parse(_status_field("Cpus_allowed_list"))
    assert log.first.mems == CPUSet.parse(_status_field("Mems_allowed_list"))
    cgroup = Path("/sys/fs/cgroup/cpuset.cpus.effective")
    if cgroup.exists():
        assert log.first.cgroup_cpus == CPUSet.parse(cgroup.read_text())
    else:
        assert log.first.cgroup_cpus is None


# ---- the shell text under busybox sh in a fake container root -----------------------------

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
APPLETS = ("sh", "grep", "cat", "head", "tr", "sleep", "printf", "echo")
NODE_DIR = "sys/devices/system/node"

needs_chroot = pytest.mark.skipif(
    not (os.path.exists(BUSYBOX) and os.path.exists(CHROOT) and os.geteuid() == 0),
    reason="needs busybox and root (chroot into a fake container root)",
)

# A fake fallocate that does what the kernel does for a hugetlbfs file: takes the pages from
# the free pool of the NUMA node named by the FAKE_HP_NODE file (a real one would take them
# where the task's mems allow).
FAKE_FALLOCATE = """#!/bin/sh
[ "$1" = "-l" ] || exit 2
node=$(cat /fake-hp-node)
f=/sys/devices/system/node/node$node/hugepages/hugepages-2048kB/free_hugepages
[ -f $f ] && echo $(( $(cat $f) - $2 / 2097152 )) > $f
: > "$3"
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_root(
    root: Path,
    *,
    cpus: str,
    mems: str,
    cgroup_cpus: str | None,
    cgroup_mems: str | None,
    free_pages: dict[int, int],
    numa_stat: str | None,
    hp_node: int = 0,
    fallocate_fails: bool = False,
) -> Path:
    """A container's root filesystem as the probe sees it, with busybox as every tool."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy(BUSYBOX, bin_dir / "busybox")
    for applet in APPLETS:
        (bin_dir / applet).symlink_to("busybox")
    fallocate = "#!/bin/sh\nexit 1\n" if fallocate_fails else FAKE_FALLOCATE
    _write(bin_dir / "fallocate", fallocate)
    (bin_dir / "fallocate").chmod(0o755)
    _write(root / "fake-hp-node", f"{hp_node}\n")
    _write(
        root / "proc/self/status",
        f"Name:\tgrep\nState:\tR (running)\nCpus_allowed:\tff\nCpus_allowed_list:\t{cpus}\n"
        f"Mems_allowed:\t00000003\nMems_allowed_list:\t{mems}\nvoluntary_ctxt_switches:\t0\n",
    )
    cgroup = root / "sys/fs/cgroup"
    cgroup.mkdir(parents=True)
    if cgroup_cpus is not None:
        _write(cgroup / "cpuset.cpus.effective", cgroup_cpus + "\n")
    if cgroup_mems is not None:
        _write(cgroup / "cpuset.mems.effective", cgroup_mems + "\n")
    if numa_stat is not None:
        _write(cgroup / "memory.numa_stat", numa_stat)
    for node, free in free_pages.items():
        _write(
            root / NODE_DIR / f"node{node}/hugepages/hugepages-2048kB/free_hugepages", f"{free}\n"
        )
        _write(root / NODE_DIR / f"node{node}/cpulist", "0\n")
    (root / NODE_DIR).mkdir(parents=True, exist_ok=True)
    _write(root / NODE_DIR / "online", "0-1\n")
    (root / HUGEPAGES_MOUNT.lstrip("/")).mkdir()
    (root / "dev/shm").mkdir(parents=True)
    with open(root / "dev/zero", "wb") as zero:  # sparse: reads as zeros, costs no disk
        zero.truncate(TOUCH_BYTES * 2)
    return root


def run_in(root: Path, command: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROOT, str(root), "/bin/sh", "-c", command[2]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/bin"},
    )


NUMA_STAT = (
    "anon N0=0 N1=1331200\n"
    "file N0=4096 N1=8192\n"
    "kernel_stack N0=0 N1=16384\n"
    "shmem N0=0 N1=16777216\n"
    "anon_thp N0=0 N1=0\n"
    "shmem_thp N0=0 N1=0\n"
)


@needs_chroot
def test_busybox_probe_with_every_one_shot_probe(tmp_path):
    root = fake_root(
        tmp_path / "root",
        cpus="4-5,12",
        mems="1",
        cgroup_cpus="4-5,12",
        cgroup_mems="1",
        free_pages={0: 64, 1: 64, 10: 8},
        numa_stat=NUMA_STAT,
        hp_node=1,
    )
    command = probe_command(keep_running=False, hugepages_bytes=4 * MiB, touch=True)
    done = run_in(root, command)
    assert done.returncode == 0, done.stderr
    log = parse_log(done.stdout)
    assert log.errors == [], done.stdout
    assert log.ready and len(log.reports) == 1
    assert log.first == View(CPUSet({4, 5, 12}), CPUSet({1}), CPUSet({4, 5, 12}), CPUSet({1}))
    # Read before and after the fallocate: two pages left node 1, nothing else moved.
    assert log.hugepages_before == {0: 64, 1: 64, 10: 8}
    assert log.hugepages_after == {0: 64, 1: 62, 10: 8}
    # Only the anon and shmem lines, not anon_thp / shmem_thp / file.
    assert log.numa_stat == {"anon": {0: 0, 1: 1331200}, "shmem": {0: 0, 1: 16777216}}
    # The touch really wrote TOUCH_BYTES to /dev/shm.
    assert (root / "dev/shm/numacert-touch").stat().st_size == TOUCH_BYTES
    assert (root / HUGEPAGES_MOUNT.lstrip("/") / "numacert-probe").exists()


@needs_chroot
def test_busybox_probe_reports_failures_as_error_lines(tmp_path):
    root = fake_root(
        tmp_path / "root",
        cpus="0-3",
        mems="0-1",
        cgroup_cpus=None,  # no cpuset controller delegated
        cgroup_mems=None,
        free_pages={0: 2, 1: 2},
        numa_stat=None,  # no memory.numa_stat
        fallocate_fails=True,
    )
    (root / "dev/shm").chmod(0o555)
    (root / "dev/shm").rmdir()  # the write to /dev/shm fails
    command = probe_command(keep_running=False, hugepages_bytes=4 * MiB, touch=True)
    done = run_in(root, command)
    log = parse_log(done.stdout)
    assert log.errors == ["hp_error: fallocate failed", "touch_error: write to /dev/shm failed"]
    assert log.hugepages_before == log.hugepages_after == {0: 2, 1: 2}
    assert log.numa_stat == {}
    assert log.first.cgroup_cpus is None and log.first.cgroup_mems is None
    assert log.first.cpus == CPUSet(range(4)) and log.first.mems == CPUSet({0, 1})
    assert log.ready


@needs_chroot
def test_busybox_probe_without_one_shot_probes_prints_only_reports(tmp_path):
    root = fake_root(
        tmp_path / "root",
        cpus="1",
        mems="0",
        cgroup_cpus="1",
        cgroup_mems="0",
        free_pages={0: 2},
        numa_stat=NUMA_STAT,
    )
    done = run_in(root, probe_command(keep_running=False))
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stdout.splitlines() if ":" in line] == [
        "/proc/self/status:Cpus_allowed_list:\t1",
        "/proc/self/status:Mems_allowed_list:\t0",
        "/sys/fs/cgroup/cpuset.cpus.effective:1",
        "/sys/fs/cgroup/cpuset.mems.effective:0",
    ]
    log = parse_log(done.stdout)
    assert log.hugepages_before is None and log.numa_stat is None


@needs_chroot
def test_busybox_probe_keeps_reporting_what_the_kernel_says_now(tmp_path):
    """The running probe repeats its report: a later one shows the cpuset after the kubelet
    changed it (here: the fake status and cgroup files change after the first report)."""
    root = fake_root(
        tmp_path / "root",
        cpus="0-7",
        mems="0-1",
        cgroup_cpus="0-7",
        cgroup_mems="0-1",
        free_pages={0: 2, 1: 2},
        numa_stat=None,
    )
    proc = subprocess.Popen(
        [CHROOT, str(root), "/bin/sh", "-c", probe_command()[2]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/bin"},
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 4 * REPORT_INTERVAL + 10
        while lines.count(END) < 1:
            assert time.monotonic() < deadline, lines
            lines.append(proc.stdout.readline().rstrip("\n"))
        status = root / "proc/self/status"
        status.write_text(status.read_text().replace("0-7", "0,6-7"))
        (root / "sys/fs/cgroup/cpuset.cpus.effective").write_text("0,6-7\n")
        while lines.count(END) < 2:
            assert time.monotonic() < deadline, lines
            lines.append(proc.stdout.readline().rstrip("\n"))
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    log = parse_log("\n".join(lines))
    assert log.ready
    assert [str(v.cpus) for v in log.reports] == ["0-7", "0,6-7"]
    assert log.last.cgroup_cpus == CPUSet({0, 6, 7})


UNSHARE = shutil.which("unshare")


@needs_chroot
@pytest.mark.skipif(UNSHARE is None, reason="needs unshare (util-linux) for a PID namespace")
def test_busybox_probe_as_pid_1_ends_at_once_on_sigterm(tmp_path):
    """In a container the probe's shell is PID 1, which ignores SIGTERM unless it traps it:
    a deleted probe must end at once, not after the grace period (or a sleep) runs out."""
    root = fake_root(
        tmp_path / "root",
        cpus="0",
        mems="0",
        cgroup_cpus="0",
        cgroup_mems="0",
        free_pages={0: 0},
        numa_stat=None,
    )
    proc = subprocess.Popen(
        # --kill-child: whatever happens, the namespace's PID 1 dies with unshare
        [UNSHARE, "--pid", "--kill-child", CHROOT, str(root), "/bin/sh", "-c", probe_command()[2]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/bin"},
    )
    shell = None
    try:
        lines = []
        deadline = time.monotonic() + 10
        while READY not in lines:
            assert time.monotonic() < deadline, lines
            lines.append(proc.stdout.readline().rstrip("\n"))
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        shell = int(children[0])
        status = Path(f"/proc/{shell}/status").read_text()
        nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
        assert nspid.split()[-1] == "1"  # the shell is PID 1 of its namespace
        start = time.monotonic()
        os.kill(shell, signal.SIGTERM)
        proc.wait(timeout=REPORT_INTERVAL * 3)
        assert time.monotonic() - start < REPORT_INTERVAL / 2
    finally:
        if proc.poll() is None:
            proc.kill()  # unshare; --kill-child takes the shell and its sleep with it
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


@needs_chroot
def test_busybox_hugepage_probe_on_a_kernel_without_numa_sysfs(tmp_path):
    """Without /sys/devices/system/node/node* (a CONFIG_NUMA=n kernel) the glob stays
    literal; hp_free skips it instead of printing `[0-9]*=0`, which parse_log cannot read."""
    root = fake_root(
        tmp_path / "root",
        cpus="0-1",
        mems="0",
        cgroup_cpus="0-1",
        cgroup_mems="0",
        free_pages={},
        numa_stat=None,
    )
    shutil.rmtree(root / NODE_DIR)
    done = run_in(root, probe_command(keep_running=False, hugepages_bytes=4 * MiB))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "[0-9]" not in done.stdout
    lines = done.stdout.splitlines()
    assert [line.rstrip() for line in lines[:2]] == ["hp_before:", "hp_after:"]
    log = parse_log(done.stdout)
    assert log.hugepages_before == log.hugepages_after == {}
    assert log.errors == [] and log.ready and log.first.cpus == CPUSet({0, 1})


def test_probe_command_shapes():
    plain = probe_command()
    assert plain[:2] == ["sh", "-c"] and len(plain) == 3
    loop = plain[2][plain[2].index(f"echo {READY};") :]
    assert "while" in loop and f"sleep {REPORT_INTERVAL}" in loop and "report" in loop
    once = probe_command(keep_running=False)
    assert "while" not in once[2] and "sleep" not in once[2]
    # The report repeats in every running probe: one process (a grep) a report, no more.
    report_fn = plain[2][plain[2].index("report() {") : plain[2].index(f"echo {END}; }}")]
    assert "$(" not in report_fn and report_fn.count("grep") == 1 and "cat " not in report_fn
    assert once[2].rstrip().endswith(f"echo {READY};")
    hp = probe_command(hugepages_bytes=4 * MiB)[2]
    assert f"fallocate -l {4 * MiB} {HUGEPAGES_MOUNT}/numacert-probe" in hp
    assert hp.index("hp_before") < hp.index("fallocate -l") < hp.index('echo "hp_after')
    touch = probe_command(touch=True)[2]
    assert f"head -c {TOUCH_BYTES} /dev/zero" in touch
    assert touch.index("head -c") < touch.index("memory.numa_stat")
    # The one-shot probes run before the first report, so `ready` means they are done.
    for text in (hp, touch):
        assert text.index("hp_" if text is hp else "numa_stat") < text.index("report; echo")
