"""Host processes: one runner for commands that finish, one record for processes that outlive
the numacert process that started them.

`run()` runs a command to completion with a timeout. Its output goes to temporary files, not
pipes, so a child that daemonizes (qemu -daemonize) or leaves a grandchild holding the
descriptors cannot make the wait hang; the command leads its own process group, and on a
timeout or an interrupt (Ctrl-C) the whole group is terminated (SIGTERM, then SIGKILL), not just
the first process (`go build` runs compilers and linkers below it). A failure raises an
InfrastructureError naming what ran, its exit status and the tail of its output; a timeout
"timed out after Ns waiting for <what>".

`ProcessRecord` is a pid plus that process's start time (field 22 of /proc/<pid>/stat, clock
ticks since boot): a pid is reused once its process is gone, the pair never is, so a record
never takes an unrelated process for its own. `spawn_detached()` starts a process in its own
session (it outlives the CLI) and returns its record; `ProcessRecord.write()`/`read()` keep it
in a small JSON file ({"pid", "starttime", "exe"}).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from numacert.errors import InfrastructureError
from numacert.wait import poll_until

TAIL_LINES = 25
TERM_GRACE_S = 5.0  # SIGTERM -> SIGKILL when a command is stopped (timeout, Ctrl-C)


# --------------------------------------------------------------------------------------------
# commands that finish


class CommandFailed(InfrastructureError):
    """A command exited non-zero. `returncode` and `output` (stdout + stderr) are kept."""

    def __init__(self, message: str, returncode: int, output: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output = output


class CommandTimedOut(InfrastructureError):
    """A command ran out of time and was stopped. `output` is what it printed until then."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


@dataclass(frozen=True)
class Completed:
    """A finished command: exit status, what it printed, how long it took."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        """stdout, then stderr."""
        return self.stdout + self.stderr


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of `text`, trailing blank lines dropped."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def tail_file(path: Path, lines: int = 20, max_bytes: int = 256 * 1024) -> str | None:
    """The last `lines` lines of a (log) file, or None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            data = f.read()
    except OSError:
        return None
    return tail(data.decode(errors="replace").replace("\r", ""), lines)


def _stop_group(proc: subprocess.Popen[bytes], grace: float = TERM_GRACE_S) -> None:
    """SIGTERM the command's process group, SIGKILL it after `grace` seconds, reap the leader."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
            if sig == signal.SIGKILL:
                return
    # The leader exited on SIGTERM; the loop also sent SIGKILL to whatever was left of its group.


def _read(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


def run(
    argv: Sequence[str | os.PathLike[str]],
    what: str,
    timeout: float,
    log: Path | None = None,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    *,
    input: bytes | str | None = None,
    stdin: IO[Any] | None = None,
    stdout: IO[bytes] | None = None,
) -> Completed:
    """Run `argv` to completion, at most `timeout` seconds.

    `what` names the command in errors ("mke2fs of the seed disk"). `log`, when given, gets the
    command line, its output and its exit status appended. `env` holds variables set on top of
    this process's environment. With `check` (the default) a non-zero exit raises CommandFailed
    ("<what> failed (exit N) (log: ...):" and the output's last lines); a timeout always raises
    CommandTimedOut, a command that cannot start an InfrastructureError. stdin is /dev/null
    unless `input` (bytes or text) or `stdin` (an open file) is given; `stdout` (an open binary
    file) takes the command's stdout instead of the result.
    """
    args = [os.fspath(a) for a in argv]
    full_env = {**os.environ, **env} if env is not None else None
    data = input.encode() if isinstance(input, str) else input
    if data is not None:
        stdin_arg: Any = subprocess.PIPE
    else:
        stdin_arg = stdin if stdin is not None else subprocess.DEVNULL
    where = f" (log: {log})" if log is not None else ""
    if log is not None:
        with log.open("a") as lf:
            lf.write(f"\n=== {what}: {' '.join(args)}" + (f" (cwd {cwd})" if cwd else "") + "\n")
    start = time.monotonic()
    timed_out = False
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        try:
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                env=full_env,
                stdin=stdin_arg,
                stdout=stdout if stdout is not None else out_f,
                stderr=err_f,
                start_new_session=True,
            )
        except OSError as exc:
            raise InfrastructureError(
                f"{what}: cannot run {args[0]}: {exc.strerror or exc}"
            ) from None
        try:
            proc.communicate(input=data, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop_group(proc)
        except BaseException:
            _stop_group(proc)
            raise
        seconds = time.monotonic() - start
        result = Completed(
            args, proc.returncode, "" if stdout is not None else _read(out_f), _read(err_f), seconds
        )
    if log is not None:
        with log.open("a") as lf:
            lf.write(result.output)
            if result.output and not result.output.endswith("\n"):
                lf.write("\n")
            end = f"TIMEOUT after {timeout:.0f}s" if timed_out else f"exit {result.returncode}"
            lf.write(f"=== {what}: {end} after {seconds:.0f}s\n")
    if timed_out:
        last = tail(result.output)
        raise CommandTimedOut(
            f"timed out after {timeout:.0f}s waiting for {what}{where}"
            + (f"; last output:\n{last}" if last else ""),
            result.output,
        )
    if check and result.returncode != 0:
        last = tail(result.output)
        raise CommandFailed(
            f"{what} failed (exit {result.returncode}){where}"
            + (f":\n{last}" if last else " with no output"),
            result.returncode,
            result.output,
        )
    return result


# --------------------------------------------------------------------------------------------
# processes that outlive their starter


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of `pid` from /proc/<pid>/stat; None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The comm field (2) may hold spaces and parentheses: split after its last ')'. The state
    # is field 3, the start time field 22.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def start_time(pid: int) -> int | None:
    """The start time of `pid` (clock ticks after boot), None when there is no such process."""
    st = _stat(pid)
    return st[1] if st is not None else None


def _reap(pid: int) -> None:
    # Possible (and needed) only when this Python process is the parent; else a no-op.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@dataclass(frozen=True)
class ProcessRecord:
    """A process as it was started: pid and start time (and, for the reader, its program)."""

    pid: int
    start_time: int
    exe: str | None = None

    @classmethod
    def of(cls, pid: int, exe: str | None = None) -> ProcessRecord | None:
        """The record of the process `pid` names now; None when there is none."""
        st = start_time(pid)
        return cls(pid, st, exe) if st is not None else None

    def _state(self) -> str | None:
        """This process's state letter, or None when it is gone (its pid may name another)."""
        st = _stat(self.pid)
        if st is None or st[1] != self.start_time:
            return None
        if st[0] == "Z":  # reap it if it is our child; a zombie is dead for every purpose here
            _reap(self.pid)
            st = _stat(self.pid)
            if st is None or st[1] != self.start_time:
                return None
        return st[0]

    def alive(self) -> bool:
        """The process still runs (a zombie does not; a reused pid is not ours)."""
        state = self._state()
        return state is not None and state != "Z"

    def wait_gone(self, timeout: float, poll: float = 0.1) -> bool:
        """Wait up to `timeout` seconds for the process to end; True once it has."""
        return bool(poll_until(lambda: not self.alive(), timeout, poll))

    def wait_reaped(self, timeout: float = 5.0) -> bool:
        """Give the parent (this process, or init once the starter exited) a moment to reap the
        ended process, so that `ps` right after a stop shows nothing. True once it is."""
        return bool(poll_until(lambda: self._state() is None, timeout, 0.1))

    def signal(self, sig: int, group: bool = False) -> bool:
        """Send `sig` to the process (to its whole process group with `group`: it must lead
        one, as spawn_detached's processes do) if it still runs; True if it was sent."""
        if not self.alive():
            return False
        try:
            if group:
                try:
                    os.killpg(self.pid, sig)
                except PermissionError:
                    os.kill(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def stop(
        self,
        grace: float = 20.0,
        kill_wait: float = 10.0,
        group: bool = False,
        what: str | None = None,
    ) -> None:
        """SIGTERM, SIGKILL after `grace` seconds, then wait until it is reaped. Raises when it
        survives SIGKILL for `kill_wait` seconds; a process already gone is fine."""
        if self.alive():
            self.signal(signal.SIGTERM, group)
            if not self.wait_gone(grace):
                self.signal(signal.SIGKILL, group)
                if not self.wait_gone(kill_wait):
                    name = what or self.exe or "process"
                    raise InfrastructureError(f"{name} (pid {self.pid}) survived SIGKILL")
        self.wait_reaped()

    # ---- the file

    def write(self, path: Path) -> None:
        """Write the record as JSON (atomically: a reader sees the old file or the new one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps({"pid": self.pid, "starttime": self.start_time, "exe": self.exe}))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> ProcessRecord | None:
        """The record in `path`; None when there is no file or it is not a record."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        pid, st, exe = data.get("pid"), data.get("starttime"), data.get("exe")
        if not isinstance(pid, int) or not isinstance(st, int):
            return None
        return cls(pid, st, exe if isinstance(exe, str) else None)


def spawn_detached(
    argv: Sequence[str | os.PathLike[str]], log: Path, env: Mapping[str, str] | None = None
) -> ProcessRecord:
    """Start `argv` in a new session with stdin /dev/null and stdout + stderr appended to
    `log` (after a line naming the time and the command), and return its record.

    A new session: no terminal signal reaches it and it outlives the CLI that started it; it
    leads its process group, so `stop(group=True)` reaches whatever it spawned. posix_spawn,
    not Popen: no Popen object whose finaliser would complain that it still runs.
    """
    args = [os.fspath(a) for a in argv]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as lf:
        lf.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(args)}\n".encode())
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    full_env = {**os.environ, **env} if env is not None else dict(os.environ)
    try:
        pid = os.posix_spawn(args[0], args, full_env, file_actions=actions, setsid=True)
    except OSError as exc:
        raise InfrastructureError(f"cannot start {args[0]}: {exc.strerror or exc}") from None
    # Our unreaped child: its /proc entry stays (as a zombie at worst) until we wait for it.
    record = ProcessRecord.of(pid, args[0])
    if record is None:
        raise InfrastructureError(f"{args[0]} (pid {pid}) vanished at once; see {log}")
    return record
