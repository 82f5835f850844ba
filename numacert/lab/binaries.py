"""Kubernetes control-plane and node binaries (and etcd) for the local lab.

One entry point, `resolve()`, returns a `Binaries` record with an absolute path per component
for a pinned Kubernetes version. Where the binaries come from is the `source`:

- ``release``: official binaries from dl.k8s.io (etcd from its GitHub release), each checked
  against the published sha256 before it is made executable.
- ``build``: built from the Go module proxy. k8s.io/kubernetes cannot be `go install`ed (its
  go.mod maps the staging modules to ./staging with replace directives, which consumers ignore),
  so a small wrapper module is generated whose replace block pins every staging module to the
  matching v0.MINOR.PATCH tag; etcd gets a three-line main calling etcdmain.Main.
- ``dir``: binaries the user already has, in one directory; each must run ``--version``.
- ``auto``: a complete cache first, then ``release`` (unless offline), then ``build``.

Everything lands under the numacert cache dir (numacert.lab.cache), keyed by version, and a
second call reuses it; one process at a time builds or downloads each entry (cache_lock):
    <cache>/k8s-build/<version>/{go.mod,tools.go,go.sum,build.log,bin/}
    <cache>/k8s-release/<version>/bin/
    <cache>/etcd-build/<etcd version>/{go.mod,main.go,build.log,bin/etcd}
    <cache>/etcd-release/<etcd version>/bin/etcd
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from numacert.errors import InfrastructureError, InputError
from numacert.lab.cache import cache_lock, keyed_dir
from numacert.proc import CommandTimedOut, run, tail
from numacert.progress import Progress, as_progress

DEFAULT_K8S_VERSION = "v1.37.2"
# k8s.io/kubernetes v1.37.x requires the go.etcd.io/etcd v3.7 client; the newest v3.7 patch
# the Go module proxy serves is the server we pair with it.
DEFAULT_ETCD_VERSION = "v3.7.3"
# Kubernetes minor -> etcd server release used by upstream CI for that minor (or the nearest
# one the proxy serves). Minors not listed use DEFAULT_ETCD_VERSION.
ETCD_FOR_K8S_MINOR: dict[int, str] = {34: "v3.6.16", 35: "v3.6.16", 36: "v3.6.16", 37: "v3.7.3"}

CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE = ("kubelet",)
K8S_COMPONENTS = CONTROL_PLANE + NODE
OPTIONAL_COMPONENTS = ("kubectl",)
SOURCES = ("auto", "release", "build", "dir")

RELEASE_BASE_URL = "https://dl.k8s.io/release"
ETCD_RELEASE_BASE_URL = "https://github.com/etcd-io/etcd/releases/download"

# Generous: a cold kube-apiserver link on 2 cores takes several minutes, more with a busy host.
BUILD_TIMEOUT_S = 3600.0
TIDY_TIMEOUT_S = 1800.0
DOWNLOAD_CONNECT_TIMEOUT_S = 10.0
VERSION_TIMEOUT_S = 60.0
# How long a second numacert waits for another one building (or downloading) the same entry.
BUILD_LOCK_TIMEOUT_S = 6 * 3600.0
DOWNLOAD_LOCK_TIMEOUT_S = 3600.0

_VERSION_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
_STAGING_RE = re.compile(
    r"^\s*(?:replace\s+)?(k8s\.io/[A-Za-z0-9._-]+)\s*=>\s*\./staging/src/(k8s\.io/[A-Za-z0-9._-]+)\s*$"
)
_GO_LINE_RE = re.compile(r"^go\s+(\d+\.\d+(?:\.\d+)?)\s*$", re.M)


# --------------------------------------------------------------------------------------------
# errors


class ModuleFetchError(InfrastructureError):
    """The Go module proxy (or `go`) refused a module: names exactly which module and version."""

    def __init__(self, module: str, version: str, detail: str) -> None:
        self.module = module
        self.version = version
        self.detail = detail
        super().__init__(f"the Go module proxy refused {module}@{version}: {detail}")


class DownloadError(InfrastructureError):
    """A release download failed (network, HTTP status, or checksum mismatch)."""


class BuildError(InfrastructureError):
    """A build step failed; the message names the step and its log file."""


# --------------------------------------------------------------------------------------------
# the result


@dataclass(frozen=True)
class Binaries:
    """Where each lab binary is. `paths` maps a component name (kube-apiserver, kubelet, etcd,
    and kubectl when present) to an absolute path of an executable file."""

    version: str
    etcd_version: str
    source: str  # how they were obtained this time: release | build | dir | cache
    paths: dict[str, Path] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        try:
            return self.paths[name]
        except KeyError:
            raise InfrastructureError(
                f"no {name} binary in this set (have: {', '.join(sorted(self.paths))})"
            ) from None

    @property
    def kube_apiserver(self) -> Path:
        return self.path("kube-apiserver")

    @property
    def kube_controller_manager(self) -> Path:
        return self.path("kube-controller-manager")

    @property
    def kube_scheduler(self) -> Path:
        return self.path("kube-scheduler")

    @property
    def kubelet(self) -> Path:
        return self.path("kubelet")

    @property
    def etcd(self) -> Path:
        return self.path("etcd")

    @property
    def kubectl(self) -> Path | None:
        return self.paths.get("kubectl")


# --------------------------------------------------------------------------------------------
# pure helpers (unit-tested)


def parse_version(version: str) -> tuple[int, int, int]:
    """'v1.37.2' -> (1, 37, 2). Pre-releases are refused: staging tags exist for them, but the
    release bucket layout and etcd pairing here assume a GA patch release."""
    m = _VERSION_RE.match(version.strip())
    if not m:
        raise InputError(f"not a Kubernetes release version: {version!r} (want vMAJOR.MINOR.PATCH)",
                         "kubernetes version")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def staging_version(version: str) -> str:
    """The staging modules' tag for a Kubernetes version: v1.37.2 -> v0.37.2."""
    _, minor, patch = parse_version(version)
    return f"v0.{minor}.{patch}"


def etcd_version_for(version: str) -> str:
    _, minor, _ = parse_version(version)
    return ETCD_FOR_K8S_MINOR.get(minor, DEFAULT_ETCD_VERSION)


def staging_modules(gomod_text: str) -> list[str]:
    """Every module that k8s.io/kubernetes' go.mod maps to ./staging/src/<same path>, in order."""
    found: list[str] = []
    for line in gomod_text.splitlines():
        line = line.split("//", 1)[0]
        m = _STAGING_RE.match(line)
        if m and m.group(1) == m.group(2) and m.group(1) not in found:
            found.append(m.group(1))
    return found


def go_directive(gomod_text: str) -> str | None:
    m = _GO_LINE_RE.search(gomod_text)
    return m.group(1) if m else None


def wrapper_gomod(kubernetes_gomod: str, version: str,
                  module: str = "numacert.local/k8sbuild") -> str:
    """The wrapper module's go.mod: require k8s.io/kubernetes at `version` and pin every staging
    module it maps to ./staging to the published v0.MINOR.PATCH tag (what the local replaces
    would have given it). `go mod tidy` fills in the rest."""
    mods = staging_modules(kubernetes_gomod)
    if not mods:
        raise BuildError(
            f"k8s.io/kubernetes@{version} go.mod has no './staging/src/k8s.io/...' replace lines; "
            "the wrapper module cannot be generated"
        )
    sv = staging_version(version)
    go = go_directive(kubernetes_gomod) or "1.22"
    lines = [
        f"module {module}",
        "",
        f"go {go}",
        "",
        f"require k8s.io/kubernetes {version}",
        "",
        "replace (",
        *(f"\t{m} => {m} {sv}" for m in mods),
        ")",
        "",
    ]
    return "\n".join(lines)


def tools_go(components: Sequence[str]) -> str:
    imports = "\n".join(f'\t_ "k8s.io/kubernetes/cmd/{c}"' for c in components)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def version_ldflags(version: str) -> str:
    """-X flags so that the binaries report the real version (the default is v0.0.0-master)."""
    major, minor, _ = parse_version(version)
    pkg = "k8s.io/component-base/version"
    return " ".join([
        "-s", "-w",
        f"-X {pkg}.gitVersion={version}",
        f"-X {pkg}.gitMajor={major}",
        f"-X {pkg}.gitMinor={minor}",
        f"-X {pkg}.gitTreeState=clean",
    ])


def etcd_wrapper_gomod(etcd_version: str, go: str = "1.26.0") -> str:
    return (
        "module numacert.local/etcdbuild\n\n"
        f"go {go}\n\n"
        f"require go.etcd.io/etcd/server/v3 {etcd_version}\n"
    )


ETCD_MAIN_GO = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def release_url(version: str, component: str, arch: str = "amd64", os_name: str = "linux",
                base: str = RELEASE_BASE_URL) -> str:
    parse_version(version)
    return f"{base.rstrip('/')}/{version}/bin/{os_name}/{arch}/{component}"


def release_checksum_url(version: str, component: str, arch: str = "amd64",
                         os_name: str = "linux", base: str = RELEASE_BASE_URL) -> str:
    # dl.k8s.io publishes one <binary>.sha256 next to each binary: the bare hex digest.
    return release_url(version, component, arch, os_name, base) + ".sha256"


def etcd_release_url(etcd_version: str, arch: str = "amd64",
                     base: str = ETCD_RELEASE_BASE_URL) -> str:
    return f"{base.rstrip('/')}/{etcd_version}/etcd-{etcd_version}-linux-{arch}.tar.gz"


def etcd_checksum_url(etcd_version: str, base: str = ETCD_RELEASE_BASE_URL) -> str:
    return f"{base.rstrip('/')}/{etcd_version}/SHA256SUMS"


def parse_sha256(text: str, filename: str | None = None) -> str:
    """The digest from a checksum file: either a bare digest (dl.k8s.io's *.sha256) or
    `sha256sum` lines (`<hex>  <name>`), in which case the line for `filename` is taken."""
    entries: list[tuple[str, str | None]] = []
    for raw in text.splitlines():
        parts = raw.strip().split()
        if not parts:
            continue
        digest = parts[0].lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            continue
        name = parts[1].lstrip("*") if len(parts) > 1 else None
        entries.append((digest, name))
    if filename is not None:
        for digest, name in entries:
            if name is not None and Path(name).name == filename:
                return digest
        if len(entries) == 1 and entries[0][1] is None:
            return entries[0][0]
        raise DownloadError(f"no sha256 for {filename} in the checksum file")
    if len(entries) != 1:
        raise DownloadError(f"expected exactly one sha256 digest, found {len(entries)}")
    return entries[0][0]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected.lower():
        raise DownloadError(f"sha256 mismatch for {what}: expected {expected}, got {actual}")


_REFUSAL_RES = [
    # go: k8s.io/foo@v0.37.2: reading https://proxy.golang.org/...: 404 Not Found
    re.compile(r"(?P<mod>[A-Za-z0-9._~/-]+)@(?P<ver>v[0-9][A-Za-z0-9.+-]*): (?P<detail>.+)"),
    # go: module k8s.io/foo: reading ...  /  k8s.io/foo: unknown revision v0.0.0
    re.compile(r"module (?P<mod>[A-Za-z0-9._~/-]+)@(?P<ver>v[0-9][A-Za-z0-9.+-]*)[:,] "
               r"(?P<detail>.+)"),
    re.compile(r"(?P<mod>[A-Za-z0-9._~-]+\.[A-Za-z0-9._~/-]+): "
               r"(?P<detail>unknown revision (?P<ver>v[0-9][A-Za-z0-9.+-]*))"),
]


def find_module_refusal(output: str) -> ModuleFetchError | None:
    """The first 'module@version: <why>' that the go command printed, as an error, if any."""
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("go: downloading") or line.startswith("go: finding"):
            continue
        for rx in _REFUSAL_RES:
            m = rx.search(line)
            if m:
                return ModuleFetchError(m.group("mod"), m.group("ver"), m.group("detail").strip())
    return None


# --------------------------------------------------------------------------------------------
# cache and environment


def is_offline() -> bool:
    return os.environ.get("NUMACERT_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def go_binary() -> str:
    go = shutil.which("go")
    if not go and Path("/usr/local/go/bin/go").exists():
        go = "/usr/local/go/bin/go"
    if not go:
        raise BuildError("the 'go' command is not on PATH; it is needed to build from the "
                         "Go module proxy")
    return go


@contextlib.contextmanager
def _entry(kind: str, version: str, timeout: float) -> Iterator[Path]:
    """`<cache>/<kind>/<version>`, created, held by this process only (a second numacert
    waits for the first instead of building twice)."""
    directory = keyed_dir(kind, version)
    with cache_lock(f"{kind}-{version}", timeout=timeout):
        directory.mkdir(parents=True, exist_ok=True)
        yield directory


# --------------------------------------------------------------------------------------------
# running go


def _run_logged(argv: Sequence[str], cwd: Path, log: Path, what: str, timeout: float,
                env: dict[str, str] | None = None) -> tuple[str, float]:
    """Run a command, append its output to `log`, return (output, seconds). A timeout or a
    failure raises an error naming `what` and the log; a proxy refusal names module@version."""
    try:
        result = run(argv, what, timeout, log=log, cwd=cwd, env=env, check=False)
    except CommandTimedOut as exc:
        raise BuildError(str(exc)) from None
    if result.returncode != 0:
        refusal = find_module_refusal(result.output)
        if refusal is not None:
            refusal.args = (f"{refusal.args[0]} (during {what}; log: {log})",)
            raise refusal
        raise BuildError(f"{what} failed with exit status {result.returncode} (log: {log}):\n"
                         f"{tail(result.output, 15)}")
    return result.output, result.seconds


def _go_env() -> dict[str, str]:
    # Set on top of the inherited GOFLAGS, GOMODCACHE, GOCACHE, GOPROXY...: a static build.
    return {"CGO_ENABLED": "0"}


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def _check_go_version(required: str, go: str, log: Path) -> None:
    out = run([go, "env", "GOVERSION"], "`go env GOVERSION`", VERSION_TIMEOUT_S,
              check=False).stdout.strip()
    have = out.removeprefix("go")
    toolchain = os.environ.get("GOTOOLCHAIN", "")
    if have and _version_tuple(have) < _version_tuple(required) and toolchain in ("", "local"):
        raise BuildError(
            f"k8s.io/kubernetes needs Go {required} but the go command is {have}; "
            f"set GOTOOLCHAIN=go{required} (or newer) to let go fetch that toolchain (log: {log})"
        )


def _mod_download(module: str, version: str, cwd: Path, log: Path) -> dict[str, str]:
    """`go mod download -json module@version` -> its JSON record; an Error is a refusal."""
    go = go_binary()
    argv = [go, "mod", "download", "-json", f"{module}@{version}"]
    try:
        proc = run(argv, f"`go mod download {module}@{version}`", TIDY_TIMEOUT_S, log=log,
                   cwd=cwd, env=_go_env(), check=False)
    except CommandTimedOut as exc:
        raise BuildError(str(exc)) from None
    try:
        info = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        info = {}
    if info.get("Error") or proc.returncode != 0:
        detail = info.get("Error") or proc.stderr.strip() or f"exit status {proc.returncode}"
        refusal = find_module_refusal(detail)
        if refusal is not None and (refusal.module, refusal.version) != (module, version):
            raise refusal
        raise ModuleFetchError(module, version, detail)
    return info


# --------------------------------------------------------------------------------------------
# verifying a set of binaries


def version_output(path: Path, timeout: float = VERSION_TIMEOUT_S) -> str:
    """What `<binary> --version` prints; an error names the binary if it cannot run."""
    proc = run([path, "--version"], f"`{path} --version`", timeout, check=False)
    out = proc.output.strip()
    if proc.returncode != 0:
        raise InfrastructureError(f"`{path} --version` exited {proc.returncode}: {out[-300:]}")
    return out


def _reported_version(name: str, out: str) -> str | None:
    if name == "etcd":
        m = re.search(r"etcd Version:\s*(\S+)", out)
        return f"v{m.group(1)}" if m else None
    m = re.search(r"v\d+\.\d+\.\d+\S*", out)
    return m.group(0) if m else None


def check_binary(path: Path, name: str, want_version: str | None) -> str:
    """Exists, executable, runs --version, and (if asked) reports `want_version`."""
    if not path.is_file():
        raise InputError(f"{name} not found", str(path))
    if not os.access(path, os.X_OK):
        raise InputError(f"{name} is not executable", str(path))
    out = version_output(path)
    got = _reported_version(name, out)
    if want_version is not None and got != want_version:
        raise InputError(f"{name} reports version {got or out[:80]!r}, expected {want_version}",
                         str(path))
    return out


_MANIFEST = "manifest.json"


def _load_manifest(bindir: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads((bindir / _MANIFEST).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _cached_ok(bindir: Path, name: str, want_version: str) -> bool:
    """True if bin/<name> is there and already verified (manifest matches size and mtime);
    verifies and records binaries that a previous or external build left without a record."""
    path = bindir / name
    if not path.is_file() or not os.access(path, os.X_OK):
        return False
    st = path.stat()
    entry = _load_manifest(bindir).get(name)
    if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns \
            and entry.get("version") == want_version:
        return True
    try:
        check_binary(path, name, want_version)
    except (InputError, InfrastructureError):
        return False
    _record(bindir, name, want_version)
    return True


def _record(bindir: Path, name: str, version: str) -> None:
    manifest = _load_manifest(bindir)
    st = (bindir / name).stat()
    manifest[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "version": version}
    tmp = bindir / f".{_MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(bindir / _MANIFEST)


# --------------------------------------------------------------------------------------------
# build from the Go module proxy


def k8s_build_dir(version: str) -> Path:
    return keyed_dir("k8s-build", version)


def etcd_build_dir(etcd_version: str) -> Path:
    return keyed_dir("etcd-build", etcd_version)


def build_kubernetes(version: str, components: Sequence[str] = K8S_COMPONENTS,
                     progress: bool | Progress = True) -> dict[str, Path]:
    """Build `components` of Kubernetes `version` in the wrapper module under the cache dir.
    Components already built there are reused; returns {component: path}."""
    parse_version(version)
    wdir = k8s_build_dir(version)
    bindir = wdir / "bin"
    log = wdir / "build.log"
    with _entry("k8s-build", version, BUILD_LOCK_TIMEOUT_S):
        bindir.mkdir(exist_ok=True)
        missing = [c for c in components if not _cached_ok(bindir, c, version)]
        if not missing:
            return {c: bindir / c for c in components}
        go = go_binary()
        env = _go_env()
        prog = as_progress(progress)
        gomod = wdir / "go.mod"
        tools = wdir / "tools.go"
        # Every component any build in this dir may want, so that tidy runs once.
        wanted = list(dict.fromkeys([*K8S_COMPONENTS, *components]))
        existing_tools = tools.read_text() if tools.exists() else ""
        need_tools = any(f"/cmd/{c}\"" not in existing_tools for c in wanted)
        if not gomod.exists() or not (wdir / "go.sum").exists() or need_tools:
            with prog.step(f"k8s.io/kubernetes@{version}: fetch go.mod"):
                info = _mod_download("k8s.io/kubernetes", version, wdir, log)
                k8s_gomod = Path(info["GoMod"]).read_text()
                required_go = go_directive(k8s_gomod)
                if required_go:
                    _check_go_version(required_go, go, log)
                if not gomod.exists() or need_tools:
                    gomod.write_text(wrapper_gomod(k8s_gomod, version))
                tools.write_text(tools_go(wanted))
            with prog.step(f"k8s.io/kubernetes@{version}: go mod tidy"):
                _run_logged([go, "mod", "tidy"], wdir, log,
                            f"`go mod tidy` for k8s.io/kubernetes@{version}",
                            TIDY_TIMEOUT_S, env)
        ldflags = version_ldflags(version)
        for c in missing:
            with prog.step(f"build {c} {version}"):
                tmp = bindir / f".{c}.tmp"
                _, took = _run_logged(
                    [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp),
                     f"k8s.io/kubernetes/cmd/{c}"],
                    wdir, log, f"`go build` of {c} {version}", BUILD_TIMEOUT_S, env)
                tmp.replace(bindir / c)  # appears only when complete
                with log.open("a") as lf:
                    lf.write(f"{c} done {took:.0f}s\n")
                _record(bindir, c, version)
    return {c: bindir / c for c in components}


def build_etcd(etcd_version: str, progress: bool | Progress = True) -> Path:
    """Build etcd `etcd_version` from the Go module proxy (wrapper main calling etcdmain.Main)."""
    wdir = etcd_build_dir(etcd_version)
    bindir = wdir / "bin"
    log = wdir / "build.log"
    with _entry("etcd-build", etcd_version, BUILD_LOCK_TIMEOUT_S):
        bindir.mkdir(exist_ok=True)
        if _cached_ok(bindir, "etcd", etcd_version):
            return bindir / "etcd"
        go = go_binary()
        env = _go_env()
        prog = as_progress(progress)
        with prog.step(f"go.etcd.io/etcd/server/v3@{etcd_version}: fetch and tidy"):
            info = _mod_download("go.etcd.io/etcd/server/v3", etcd_version, wdir, log)
            gov = go_directive(Path(info["GoMod"]).read_text()) or "1.22"
            _check_go_version(gov, go, log)
            (wdir / "go.mod").write_text(etcd_wrapper_gomod(etcd_version, gov))
            (wdir / "main.go").write_text(ETCD_MAIN_GO)
            _run_logged([go, "mod", "tidy"], wdir, log,
                        f"`go mod tidy` for etcd {etcd_version}", TIDY_TIMEOUT_S, env)
        with prog.step(f"build etcd {etcd_version}"):
            tmp = bindir / ".etcd.tmp"
            ldflags = f"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-{etcd_version}"
            _, took = _run_logged(
                [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp), "."],
                wdir, log, f"`go build` of etcd {etcd_version}", BUILD_TIMEOUT_S, env)
            tmp.replace(bindir / "etcd")
            with log.open("a") as lf:
                lf.write(f"etcd done {took:.0f}s\n")
        got = _reported_version("etcd", version_output(bindir / "etcd"))
        if got != etcd_version:
            raise BuildError(f"built etcd reports {got}, expected {etcd_version} (log: {log})")
        _record(bindir, "etcd", etcd_version)
    return bindir / "etcd"


# --------------------------------------------------------------------------------------------
# release downloads


Fetcher = Callable[[str, Path, float], None]


def _urlopen_fetch(url: str, dest: Path, timeout: float) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "numacert"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, dest.open("wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(f"download of {url} failed: {exc}") from None


def k8s_release_dir(version: str) -> Path:
    return keyed_dir("k8s-release", version)


def etcd_release_dir(etcd_version: str) -> Path:
    return keyed_dir("etcd-release", etcd_version)


def download_kubernetes(version: str, components: Sequence[str] = K8S_COMPONENTS,
                        fetch: Fetcher = _urlopen_fetch, base: str = RELEASE_BASE_URL,
                        arch: str = "amd64", progress: bool | Progress = True,
                        timeout: float = DOWNLOAD_CONNECT_TIMEOUT_S) -> dict[str, Path]:
    """Download release binaries and check each against its published .sha256."""
    parse_version(version)
    rdir = k8s_release_dir(version)
    bindir = rdir / "bin"
    with _entry("k8s-release", version, DOWNLOAD_LOCK_TIMEOUT_S):
        bindir.mkdir(exist_ok=True)
        prog = as_progress(progress)
        for c in components:
            if _cached_ok(bindir, c, version):
                continue
            with prog.step(f"download {c} {version}"), \
                    tempfile.TemporaryDirectory(dir=rdir) as td:
                sumfile = Path(td) / f"{c}.sha256"
                fetch(release_checksum_url(version, c, arch, base=base), sumfile, timeout)
                expected = parse_sha256(sumfile.read_text(), c)
                tmp = Path(td) / c
                fetch(release_url(version, c, arch, base=base), tmp, timeout)
                verify_sha256(tmp, expected, f"{c} {version}")
                tmp.chmod(0o755)
                tmp.replace(bindir / c)
            check_binary(bindir / c, c, version)
            _record(bindir, c, version)
    return {c: bindir / c for c in components}


def download_etcd(etcd_version: str, fetch: Fetcher = _urlopen_fetch,
                  base: str = ETCD_RELEASE_BASE_URL, arch: str = "amd64",
                  progress: bool | Progress = True,
                  timeout: float = DOWNLOAD_CONNECT_TIMEOUT_S) -> Path:
    """Download etcd's release tarball, check it against SHA256SUMS, extract the etcd binary."""
    rdir = etcd_release_dir(etcd_version)
    bindir = rdir / "bin"
    with _entry("etcd-release", etcd_version, DOWNLOAD_LOCK_TIMEOUT_S):
        bindir.mkdir(exist_ok=True)
        if _cached_ok(bindir, "etcd", etcd_version):
            return bindir / "etcd"
        tarname = f"etcd-{etcd_version}-linux-{arch}.tar.gz"
        prog = as_progress(progress)
        with prog.step(f"download etcd {etcd_version}"), \
                tempfile.TemporaryDirectory(dir=rdir) as td:
            sums = Path(td) / "SHA256SUMS"
            fetch(etcd_checksum_url(etcd_version, base), sums, timeout)
            expected = parse_sha256(sums.read_text(), tarname)
            tgz = Path(td) / tarname
            fetch(etcd_release_url(etcd_version, arch, base), tgz, timeout)
            verify_sha256(tgz, expected, tarname)
            extract_member(tgz, f"etcd-{etcd_version}-linux-{arch}/etcd", bindir / "etcd")
        check_binary(bindir / "etcd", "etcd", etcd_version)
        _record(bindir, "etcd", etcd_version)
    return bindir / "etcd"


def extract_member(tgz: Path, member: str, dest: Path) -> None:
    """Extract one regular file from a tarball (no path from the archive is trusted)."""
    with tarfile.open(tgz, "r:gz") as tf:
        try:
            info = tf.getmember(member)
        except KeyError:
            raise DownloadError(f"{tgz.name} has no {member}") from None
        if not info.isfile():
            raise DownloadError(f"{member} in {tgz.name} is not a regular file")
        src = tf.extractfile(info)
        assert src is not None
        tmp = dest.with_name(f".{dest.name}.tmp")
        with tmp.open("wb") as out:
            shutil.copyfileobj(src, out)
    tmp.chmod(0o755)
    tmp.replace(dest)


# --------------------------------------------------------------------------------------------
# dir source


def from_directory(directory: Path, version: str | None, etcd_version: str | None,
                   components: Sequence[str] = (*K8S_COMPONENTS, "etcd")) -> dict[str, Path]:
    """Take binaries from a user's directory: each must exist, be executable, and run
    `--version` (and report the expected version when one is given)."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise InputError("not a directory", str(directory))
    paths: dict[str, Path] = {}
    for c in components:
        want = etcd_version if c == "etcd" else version
        path = (directory / c).resolve()
        check_binary(path, c, want)
        paths[c] = path
    kubectl = directory / "kubectl"
    if kubectl.is_file() and os.access(kubectl, os.X_OK):
        paths["kubectl"] = kubectl.resolve()
    return paths


# --------------------------------------------------------------------------------------------
# the entry point


def _complete_cache(version: str, etcd_version: str,
                    components: Sequence[str]) -> dict[str, Path] | None:
    """A full set already in the cache (release or build), or None."""
    paths: dict[str, Path] = {}
    for c in components:
        for d in (k8s_release_dir(version) / "bin", k8s_build_dir(version) / "bin"):
            if _cached_ok(d, c, version):
                paths[c] = d / c
                break
        else:
            return None
    for d in (etcd_release_dir(etcd_version) / "bin", etcd_build_dir(etcd_version) / "bin"):
        if _cached_ok(d, "etcd", etcd_version):
            paths["etcd"] = d / "etcd"
            return paths
    return None


def find_cached(version: str = DEFAULT_K8S_VERSION,
                etcd_version: str | None = None) -> Binaries | None:
    """The complete set already in the cache, without building or downloading anything."""
    etcd_v = etcd_version or etcd_version_for(version)
    paths = _complete_cache(version, etcd_v, K8S_COMPONENTS)
    if paths is None:
        return None
    for d in (k8s_release_dir(version) / "bin", k8s_build_dir(version) / "bin"):
        if _cached_ok(d, "kubectl", version):
            paths["kubectl"] = d / "kubectl"
            break
    else:
        k = _system_kubectl()
        if k is not None:
            paths["kubectl"] = k
    return Binaries(version=version, etcd_version=etcd_v, source="cache", paths=paths)


def _system_kubectl() -> Path | None:
    found = shutil.which("kubectl")
    return Path(found) if found else None


def resolve(version: str = DEFAULT_K8S_VERSION, source: str = "auto",
            directory: Path | str | None = None, etcd_version: str | None = None,
            with_kubectl: bool = False, offline: bool | None = None,
            progress: bool | Progress = True) -> Binaries:
    """Return a complete set of lab binaries for `version`.

    source: auto | release | build | dir (see the module docstring). `directory` is required
    for `dir`. `etcd_version` defaults to the pairing for the Kubernetes minor. `with_kubectl`
    also builds/downloads a matching kubectl; otherwise a kubectl on PATH is reported if any
    (old ones are fine for `get`). `offline` (default: env NUMACERT_OFFLINE) keeps `auto`
    from trying dl.k8s.io at all.
    """
    if source not in SOURCES:
        raise InputError(f"unknown binaries source {source!r} (one of: {', '.join(SOURCES)})",
                         "source")
    parse_version(version)
    etcd_v = etcd_version or etcd_version_for(version)
    offline = is_offline() if offline is None else offline
    comps: list[str] = list(K8S_COMPONENTS) + (["kubectl"] if with_kubectl else [])

    def done(paths: dict[str, Path], how: str) -> Binaries:
        if "kubectl" not in paths and how in ("cache", "build"):
            built = k8s_build_dir(version) / "bin"
            if _cached_ok(built, "kubectl", version):
                paths["kubectl"] = built / "kubectl"
        if "kubectl" not in paths:
            k = _system_kubectl()
            if k is not None:
                paths["kubectl"] = k
        return Binaries(version=version, etcd_version=etcd_v, source=how, paths=paths)

    if source == "dir":
        if directory is None:
            raise InputError("source 'dir' needs a directory of binaries", "source")
        return done(from_directory(Path(directory), version, etcd_v), "dir")

    if source == "auto":
        cached = _complete_cache(version, etcd_v, comps)
        if cached is not None:
            return done(cached, "cache")

    if source == "release" or (source == "auto" and not offline):
        try:
            paths = download_kubernetes(version, comps, progress=progress)
            paths["etcd"] = download_etcd(etcd_v, progress=progress)
            return done(paths, "release")
        except DownloadError:
            if source == "release":
                raise
            # auto: no reachable release server (an offline CI machine); build instead

    paths = build_kubernetes(version, comps, progress=progress)
    paths["etcd"] = build_etcd(etcd_v, progress=progress)
    return done(paths, "build")
