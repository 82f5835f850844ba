"""numacert.proc: the one command runner and the one process record, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from numacert.errors import InfrastructureError
from numacert.proc import (
    CommandFailed,
    CommandTimedOut,
    ProcessRecord,
    run,
    spawn_detached,
    start_time,
    tail,
    tail_file,
)
from numacert.wait import poll_until


def _gone(pid: int) -> bool:
    """No such process, or only a zombie left."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[0] == "Z"


# ---- run -------------------------------------------------------------------------------


def test_run_returns_output_and_status():
    r = run(["sh", "-c", "echo out; echo err >&2"], "a shell", 30)
    assert (r.returncode, r.stdout, r.stderr) == (0, "out\n", "err\n")
    assert r.output == "out\nerr\n"
    assert r.argv == ["sh", "-c", "echo out; echo err >&2"] and r.seconds >= 0


def test_failure_names_what_the_exit_status_and_the_output_tail():
    script = "for i in $(seq 1 40); do echo line$i; done; exit 3"
    with pytest.raises(CommandFailed) as exc:
        run(["sh", "-c", script], "the counting shell", 30)
    msg = str(exc.value)
    assert msg.startswith("the counting shell failed (exit 3):\n")
    assert "line40" in msg and "line16" in msg and "line15\n" not in msg  # the last 25 lines
    assert exc.value.returncode == 3 and "line1\n" in exc.value.output
    assert isinstance(exc.value, InfrastructureError)


def test_failure_without_output_says_so():
    with pytest.raises(CommandFailed, match=r"^sh failed \(exit 3\) with no output$"):
        run(["sh", "-c", "exit 3"], "sh", 30)


def test_check_false_returns_the_status():
    assert run(["sh", "-c", "exit 3"], "sh", 30, check=False).returncode == 3


def test_timeout_names_what_and_stops_the_whole_group(tmp_path: Path):
    pidfile = tmp_path / "grandchild"
    script = f"sleep 60 & echo $! > {pidfile}; echo started; wait"
    start = time.monotonic()
    with pytest.raises(CommandTimedOut) as exc:
        run(["sh", "-c", script], "the sleepy shell", 0.5)
    assert time.monotonic() - start < 8
    assert str(exc.value).startswith("timed out after 0s waiting for the sleepy shell")
    assert "started" in str(exc.value) and exc.value.output == "started\n"
    grandchild = int(pidfile.read_text())
    assert poll_until(lambda: _gone(grandchild), 5, 0.05), "the grandchild survived"


def test_timeout_message_rounds_seconds():
    with pytest.raises(CommandTimedOut, match=r"^timed out after 1s waiting for sleep$"):
        run(["sleep", "10"], "sleep", 1)


def test_a_child_keeping_the_descriptors_does_not_hold_the_runner():
    # Like qemu -daemonize: the command exits, something it started keeps stdout/stderr open.
    start = time.monotonic()
    r = run(["sh", "-c", "sleep 5 & echo hi"], "a daemonizing shell", 30)
    assert r.stdout == "hi\n"
    assert time.monotonic() - start < 4


def test_log_gets_command_output_and_status(tmp_path: Path):
    log = tmp_path / "build.log"
    log.write_text("before\n")
    run(["sh", "-c", "echo hello"], "the greeting", 30, log=log)
    with pytest.raises(CommandFailed, match=rf"the failure failed \(exit 2\) \(log: {log}\)"):
        run(["sh", "-c", "echo oops >&2; exit 2"], "the failure", 30, log=log)
    text = log.read_text()
    assert text.startswith("before\n")
    assert "=== the greeting: sh -c echo hello\nhello\n=== the greeting: exit 0 after 0s" in text
    assert "oops\n=== the failure: exit 2" in text


def test_env_is_set_on_top_of_the_environment_and_cwd_is_used(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("NUMACERT_TEST_INHERITED", "yes")
    r = run(
        ["sh", "-c", 'echo "$NUMACERT_TEST_INHERITED $EXTRA $(pwd)"'],
        "env",
        30,
        cwd=tmp_path,
        env={"EXTRA": "x"},
    )
    assert r.stdout == f"yes x {tmp_path}\n"


def test_stdin_is_devnull_unless_given(tmp_path: Path):
    assert run(["cat"], "cat", 30).stdout == ""
    assert run(["cat"], "cat", 30, input="text in").stdout == "text in"
    assert run(["cat"], "cat", 30, input=b"\x00bytes").stdout == "\x00bytes"
    src = tmp_path / "src"
    src.write_bytes(b"from a file")
    with src.open("rb") as f:
        assert run(["cat"], "cat", 30, stdin=f).stdout == "from a file"


def test_stdout_to_a_file(tmp_path: Path):
    dest = tmp_path / "out"
    with dest.open("wb") as f:
        r = run(["sh", "-c", "echo data; echo note >&2"], "copy", 30, stdout=f)
    assert dest.read_text() == "data\n" and r.stdout == "" and r.stderr == "note\n"


def test_a_command_that_cannot_start(tmp_path: Path):
    with pytest.raises(InfrastructureError, match=r"^the tool: cannot run /nonexistent/tool"):
        run(["/nonexistent/tool"], "the tool", 30)


def test_output_is_decoded_leniently():
    r = run([sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'\\xff ok')"], "py", 30)
    assert r.stdout.endswith(" ok")


def test_tail_helpers(tmp_path: Path):
    assert tail("a\nb\nc\n\n", 2) == "b\nc"
    log = tmp_path / "log"
    log.write_bytes(b"x\r\n" * 5 + b"last\n")
    assert tail_file(log, 2) == "x\nlast"
    assert tail_file(tmp_path / "missing") is None


# ---- ProcessRecord ---------------------------------------------------------------------


@pytest.fixture
def sleeper(tmp_path: Path):
    records: list[ProcessRecord] = []

    def start(*argv: str) -> ProcessRecord:
        rec = spawn_detached(list(argv) or ["/bin/sleep", "60"], tmp_path / "logs" / "p.log")
        records.append(rec)
        return rec

    yield start
    for rec in records:
        rec.stop(grace=1)


def test_spawn_detached_records_pid_and_start_time(sleeper, tmp_path: Path):
    rec = sleeper()
    assert rec.alive()
    assert rec.start_time == start_time(rec.pid)
    assert rec.exe == "/bin/sleep"
    assert os.getsid(rec.pid) == rec.pid  # its own session and process group
    log = (tmp_path / "logs" / "p.log").read_text()
    assert "start: /bin/sleep 60" in log


def test_spawn_detached_appends_output_to_the_log(sleeper, tmp_path: Path):
    rec = sleeper("/bin/sh", "-c", "echo to-out; echo to-err >&2")
    assert rec.wait_gone(5)
    log = (tmp_path / "logs" / "p.log").read_text()
    assert "to-out\nto-err\n" in log


def test_spawn_detached_of_a_missing_program(tmp_path: Path):
    with pytest.raises(InfrastructureError, match="cannot start /nonexistent"):
        spawn_detached(["/nonexistent"], tmp_path / "log")


def test_a_reused_pid_is_not_the_recorded_process(sleeper):
    rec = sleeper()
    other = ProcessRecord(rec.pid, rec.start_time + 1, "/bin/sleep")
    assert rec.alive() and not other.alive()
    assert not other.signal(signal.SIGTERM)  # never signals a process that is not its own
    assert rec.alive()
    other.stop(grace=0.1)  # nothing to stop
    assert rec.alive()


def test_a_zombie_is_not_alive_and_gets_reaped(sleeper):
    rec = sleeper("/bin/sh", "-c", "exit 0")
    # Our child: a zombie until reaped. alive() reaps it.
    assert poll_until(lambda: not rec.alive(), 5, 0.05)
    assert rec.wait_reaped(2)
    assert not Path(f"/proc/{rec.pid}").exists() or start_time(rec.pid) != rec.start_time


def test_record_of_a_missing_process():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert ProcessRecord.of(proc.pid) is None or not ProcessRecord.of(proc.pid).alive()


def test_write_read_round_trip_in_the_control_plane_format(sleeper, tmp_path: Path):
    rec = sleeper()
    path = tmp_path / "pids" / "etcd.pid"
    rec.write(path)
    assert json.loads(path.read_text()) == {
        "pid": rec.pid,
        "starttime": rec.start_time,
        "exe": "/bin/sleep",
    }
    assert ProcessRecord.read(path) == rec
    assert list(path.parent.iterdir()) == [path]  # no temp file left


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json",
        "[1]",
        '{"pid": 1}',
        '{"pid": "1", "starttime": 2}',
        '{"pid": 1, "starttime": null}',
    ],
)
def test_read_of_a_bad_record(tmp_path: Path, content: str):
    path = tmp_path / "x.pid"
    path.write_text(content)
    assert ProcessRecord.read(path) is None
    assert ProcessRecord.read(tmp_path / "missing.pid") is None


def test_stop_terminates_and_reaps(sleeper):
    rec = sleeper()
    rec.stop(grace=5)
    assert not rec.alive()
    assert not Path(f"/proc/{rec.pid}").exists() or start_time(rec.pid) != rec.start_time


def test_stop_escalates_to_sigkill(sleeper):
    rec = sleeper("/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.1; done")
    time.sleep(0.2)  # let the shell set its trap
    start = time.monotonic()
    rec.stop(grace=0.5, group=True)
    assert not rec.alive()
    assert time.monotonic() - start < 5


def test_group_stop_reaches_what_the_process_started(sleeper, tmp_path: Path):
    pidfile = tmp_path / "child"
    rec = sleeper("/bin/sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait")
    assert poll_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, 0.05)
    child = int(pidfile.read_text())
    rec.stop(grace=5, group=True)
    assert poll_until(lambda: _gone(child), 5, 0.05)
