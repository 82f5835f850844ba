"""Node access: one small face over a testinfra host, for what only the node itself can show.

A spec is a pytest-testinfra host spec (`paramiko://root@node?ssh_config=...`, `ssh://node`,
`docker://container` for kind nodes); `{node}` in a spec given by the user is replaced by the
node's name. The lab guest is reached over paramiko with the lab's own ssh config.

What is read or done through it: the kubelet's state files, and a kubelet restart (the one
thing the suites do to a node besides running pods; it changes no configuration).
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass

from numacert.errors import InfrastructureError

KUBELET_DIR = "/var/lib/kubelet"
STATE_FILES = {"cpu": "cpu_manager_state", "memory": "memory_manager_state"}


@dataclass
class NodeAccess:
    """A testinfra host on a node whose kubelet is the systemd unit `kubelet` (kubeadm's and
    most distributions' layout; the lab guest is laid out the same way)."""

    host: object  # testinfra.host.Host
    spec: str

    @classmethod
    def connect(cls, spec: str) -> NodeAccess:
        import testinfra

        return cls(testinfra.get_host(spec), spec)

    def run(self, command: str, check: bool = True) -> str:
        result = self._run_once_more_on_a_dropped_connection(command)
        if check and result.rc != 0:
            raise InfrastructureError(
                f"on {self.spec}: `{command}` exited {result.rc}: {result.stderr.strip()[:300]}"
            )
        return result.stdout

    def _run_once_more_on_a_dropped_connection(self, command: str):
        """A node under load (the lab under TCG) can drop or refuse an idle ssh session; the
        command is read-only or idempotent (cat, restart), so one fresh connection and one
        more try are safe. A second failure is infrastructure: it raises."""
        import testinfra

        for attempt in (1, 2):
            try:
                return self.host.run(command)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - paramiko/ssh raise many types
                if attempt == 2:
                    raise InfrastructureError(
                        f"node access {self.spec}: `{command}` failed: {exc}"
                    ) from None
                self.host = testinfra.get_host(self.spec)

    def state_files(self) -> dict[str, dict | None]:
        """cpu_manager_state and memory_manager_state as JSON (None where a file is absent)."""
        out: dict[str, dict | None] = {}
        for key, name in STATE_FILES.items():
            path = f"{KUBELET_DIR}/{name}"
            text = self.run(f"cat {shlex.quote(path)} 2>/dev/null || true")
            if not text.strip():
                out[key] = None
                continue
            try:
                out[key] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InfrastructureError(f"{path} on {self.spec} is not JSON: {exc}") from None
        return out

    # ---- files (the providers' backups and writes) -----------------------------------------
    def exists(self, path: str) -> bool:
        return self.run(f"test -f {shlex.quote(path)} && echo yes || true").strip() == "yes"

    def read_bytes(self, path: str) -> bytes:
        """A file's exact bytes (base64 on the wire: configuration files are small)."""
        return base64.b64decode(self.run(f"base64 -w0 {shlex.quote(path)}"))

    def file_mode(self, path: str) -> int:
        return int(self.run(f"stat -c %a {shlex.quote(path)}").strip(), 8)

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write `data` to `path` atomically (a temporary file renamed over it), creating the
        directory: a crash mid-write leaves the old file or the new one, never half of one."""
        q = shlex.quote(path)
        tmp = shlex.quote(f"{path}.numacert-tmp")
        blob = base64.b64encode(data).decode()
        self.run(
            f"mkdir -p \"$(dirname {q})\" && printf %s {blob} | base64 -d > {tmp} && "
            f"chmod {mode:o} {tmp} && mv -f {tmp} {q}"
        )

    def remove(self, *paths: str) -> None:
        self.run("rm -f " + " ".join(shlex.quote(p) for p in paths))

    def restart_kubelet(self) -> None:
        self.run("systemctl restart kubelet")
