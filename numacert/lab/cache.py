"""Where the lab keeps what it downloads and builds: outside the checkout, keyed by inputs.

Nothing here is ever committed. A build lands in `<cache>/<kind>/<key>/` where the key is a
hash of every input that shapes the result, so a changed input means a new directory and an
unchanged one means a cache hit (the binaries are keyed by their version the same way). A file
lock, `<cache>/locks/<name>.lock`, keeps two processes from building the same thing at once.
This module is the only place that knows where the cache is and how it is locked.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from numacert.errors import InfrastructureError
from numacert.wait import poll_until

ENV_CACHE = "NUMACERT_CACHE"


def cache_dir() -> Path:
    """The cache root: $NUMACERT_CACHE, else ~/.cache/numacert. Created if missing."""
    root = os.environ.get(ENV_CACHE)
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "numacert"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _canonical(value: Any) -> Any:
    # Paths and bytes are not JSON; turn them into stable text before hashing.
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def content_key(inputs: Any, length: int = 16) -> str:
    """A short stable hex hash of `inputs` (any JSON-able mix of dicts, lists, str, bytes, Path)."""
    blob = json.dumps(_canonical(inputs), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def keyed_dir(kind: str, key: str) -> Path:
    """`<cache>/<kind>/<key>` (not created: callers build into a temp dir and rename)."""
    return cache_dir() / kind / key


@contextmanager
def cache_lock(name: str, timeout: float = 3600.0, poll: float = 1.0) -> Iterator[Path]:
    """Hold an exclusive lock `<cache>/locks/<name>.lock` so only one process builds `name`.

    Waits up to `timeout` seconds; the error names the lock and who is likely holding it.
    """
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def take() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            return False
        return True

    try:
        if not poll_until(take, timeout, poll):
            holder = path.read_text().strip() or "unknown"
            raise InfrastructureError(
                f"timed out after {timeout:.0f}s waiting for the cache lock {path} "
                f"(held by pid {holder}: another numacert build of {name!r} is running)"
            )
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield path
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
