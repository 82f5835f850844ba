"""The Docker CLI, as numacert uses it for kind: one runner, one clear error when no daemon.

numacert never installs or starts a Docker daemon: kind needs one the user already runs. Every
docker call goes through `docker()` so a missing CLI or daemon reads the same everywhere (an
InfrastructureError: exit 3, never a verdict on a node).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from numacert.errors import InfrastructureError
from numacert.proc import Completed, run

DOCKER_TIMEOUT_S = 600.0


def docker_cli() -> str:
    found = shutil.which("docker")
    if not found:
        raise InfrastructureError("kind needs Docker: no `docker` command on PATH")
    return found


def docker(*args: str | os.PathLike[str], what: str | None = None,
           timeout: float = DOCKER_TIMEOUT_S, log: Path | None = None, check: bool = True,
           input: bytes | str | None = None) -> Completed:
    return run([docker_cli(), *args], what or f"docker {args[0]}", timeout, log, check=check,
               input=input)


def require_daemon() -> dict:
    """`docker info` as JSON; InfrastructureError naming the daemon when it does not answer."""
    proc = docker("info", "--format", "{{json .}}", what="docker info", timeout=60, check=False)
    if proc.returncode != 0:
        raise InfrastructureError(
            "kind needs a running Docker daemon; `docker info` failed: "
            + (proc.output.strip().splitlines() or ["no output"])[-1])
    return json.loads(proc.stdout)


def image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, what=f"docker image inspect {ref}", timeout=60,
                  check=False).returncode == 0


def ensure_image(ref: str) -> None:
    """Have `ref` in Docker's store: pulled, as Docker would, when it is not there yet."""
    if not image_exists(ref):
        docker("pull", ref, what=f"docker pull {ref}", timeout=1800)


def image_labels(ref: str) -> dict[str, str]:
    out = docker("image", "inspect", "--format", "{{json .Config.Labels}}", ref,
                 what=f"docker image inspect {ref}", timeout=60).stdout
    return json.loads(out) or {}


def containers(label: str) -> list[str]:
    """Names of every container (running or not) carrying `label` (key or key=value)."""
    out = docker("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}",
                 what="docker ps", timeout=60).stdout
    return [line for line in out.splitlines() if line]


def import_files(ref: str, files: Iterable[tuple[str, Path | bytes, int]],
                 changes: Sequence[str], log: Path | None = None,
                 symlinks: Iterable[tuple[str, str]] = ()) -> None:
    """`docker import` a one-layer image made of `files` (path in image, source file or bytes,
    mode) and `symlinks` (path, target), with Dockerfile-style `changes` (ENTRYPOINT, ENV...).
    For images of static binaries: no base image, no registry."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs: set[str] = set()

        def parents(path: str) -> None:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d and d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)

        for path, source, mode in files:
            parents(path)
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        for path, target in symlinks:
            parents(path)
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(info)
    argv: list[str] = ["import"]
    for change in changes:
        argv += ["--change", change]
    docker(*argv, "-", ref, what=f"docker import {ref}", log=log, input=buf.getvalue())
