"""numacert.lab.binaries: wrapper module generation, release URLs and checksums, the dir
source, and the cache's reuse rules. Nothing here touches the network or builds anything:
downloads go through an injected fetcher that reads local files."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from numacert.errors import InputError
from numacert.lab import binaries as b

# The shape of k8s.io/kubernetes' go.mod: require block with v0.0.0 staging modules, a
# replace block mapping them to ./staging, plus one unrelated replace that must be ignored.
SAMPLE_GOMOD = """\
// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/spf13/cobra v1.10.0
\tk8s.io/api v0.0.0
\tk8s.io/apimachinery v0.0.0
\tk8s.io/cri-streaming v0.0.0
\tk8s.io/kubelet v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apimachinery => ./staging/src/k8s.io/apimachinery
\tk8s.io/cri-streaming => ./staging/src/k8s.io/cri-streaming
\tk8s.io/kubelet => ./staging/src/k8s.io/kubelet // trailing comment
\tgithub.com/example/fork => github.com/example/fork v1.2.3
)

replace k8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
"""


def test_parse_version() -> None:
    assert b.parse_version("v1.37.2") == (1, 37, 2)
    assert b.staging_version("v1.37.2") == "v0.37.2"
    assert b.staging_version("v1.34.0") == "v0.34.0"
    for bad in ("1.37.2", "v1.37", "v1.37.0-rc.1", "latest"):
        with pytest.raises(InputError):
            b.parse_version(bad)


def test_staging_modules_from_gomod() -> None:
    assert b.staging_modules(SAMPLE_GOMOD) == [
        "k8s.io/api", "k8s.io/apimachinery", "k8s.io/cri-streaming", "k8s.io/kubelet",
        "k8s.io/sample-controller",
    ]
    assert b.go_directive(SAMPLE_GOMOD) == "1.26.0"


def test_wrapper_gomod_pins_every_staging_module() -> None:
    text = b.wrapper_gomod(SAMPLE_GOMOD, "v1.37.2")
    lines = [ln.strip() for ln in text.splitlines()]
    assert lines[0] == "module numacert.local/k8sbuild"
    assert "go 1.26.0" in lines
    assert "require k8s.io/kubernetes v1.37.2" in lines
    for mod in ("api", "apimachinery", "cri-streaming", "kubelet", "sample-controller"):
        assert f"k8s.io/{mod} => k8s.io/{mod} v0.37.2" in lines
    assert not any("./staging" in ln for ln in lines)
    assert not any("github.com/example/fork" in ln for ln in lines)
    # The godebug line of a dependency has no effect; it must not be copied.
    assert "godebug" not in text


def test_wrapper_gomod_refuses_gomod_without_staging() -> None:
    with pytest.raises(b.BuildError, match="staging"):
        b.wrapper_gomod("module k8s.io/kubernetes\n\ngo 1.26.0\n", "v1.37.2")


def test_tools_go_and_ldflags() -> None:
    tools = b.tools_go(["kubelet", "kube-apiserver"])
    assert tools.startswith("//go:build tools\n")
    assert '_ "k8s.io/kubernetes/cmd/kubelet"' in tools
    assert '_ "k8s.io/kubernetes/cmd/kube-apiserver"' in tools
    ld = b.version_ldflags("v1.37.2")
    assert "-X k8s.io/component-base/version.gitVersion=v1.37.2" in ld
    assert "-X k8s.io/component-base/version.gitMajor=1" in ld
    assert "-X k8s.io/component-base/version.gitMinor=37" in ld
    assert "-X k8s.io/component-base/version.gitTreeState=clean" in ld


def test_etcd_wrapper() -> None:
    gomod = b.etcd_wrapper_gomod("v3.7.3", "1.26.0")
    assert "require go.etcd.io/etcd/server/v3 v3.7.3" in gomod
    assert "etcdmain.Main(os.Args)" in b.ETCD_MAIN_GO
    assert b.etcd_version_for("v1.37.2") == "v3.7.3"
    assert b.etcd_version_for("v1.35.0").startswith("v3.6.")


@pytest.mark.parametrize(
    ("output", "module", "version"),
    [
        ("go: downloading k8s.io/api v0.37.2\n"
         "go: k8s.io/cri-streaming@v0.37.9: reading https://proxy.golang.org/k8s.io/cri-streaming/"
         "@v/v0.37.9.mod: 404 Not Found\n", "k8s.io/cri-streaming", "v0.37.9"),
        ("go: k8s.io/kubernetes@v1.37.2 requires\n\tk8s.io/foo@v0.0.0: reading k8s.io/foo/go.mod "
         "at revision v0.0.0: unknown revision v0.0.0\n", "k8s.io/foo", "v0.0.0"),
        ("go: module go.etcd.io/etcd/server/v3@v3.9.0: reading https://proxy.golang.org/...: "
         "410 Gone\n", "go.etcd.io/etcd/server/v3", "v3.9.0"),
    ],
)
def test_find_module_refusal(output: str, module: str, version: str) -> None:
    err = b.find_module_refusal(output)
    assert err is not None
    assert (err.module, err.version) == (module, version)
    assert f"{module}@{version}" in str(err)


def test_no_refusal_in_ordinary_output() -> None:
    assert b.find_module_refusal("go: downloading k8s.io/api v0.37.2\n") is None


# ---- release URLs and checksums


def test_release_urls() -> None:
    assert b.release_url("v1.37.2", "kube-apiserver") == \
        "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kube-apiserver"
    assert b.release_checksum_url("v1.37.2", "kubelet", arch="arm64") == \
        "https://dl.k8s.io/release/v1.37.2/bin/linux/arm64/kubelet.sha256"
    assert b.etcd_release_url("v3.7.3") == ("https://github.com/etcd-io/etcd/releases/download/"
                                            "v3.7.3/etcd-v3.7.3-linux-amd64.tar.gz")
    assert b.etcd_checksum_url("v3.7.3").endswith("/v3.7.3/SHA256SUMS")
    assert b.release_url("v1.37.2", "kubelet", base="http://127.0.0.1:1/r/") == \
        "http://127.0.0.1:1/r/v1.37.2/bin/linux/amd64/kubelet"


def test_parse_sha256_forms() -> None:
    d1, d2 = "a" * 64, "b" * 64
    assert b.parse_sha256(f"{d1}\n") == d1  # dl.k8s.io: bare digest
    assert b.parse_sha256(f"{d1.upper()}\n") == d1
    sums = f"{d1}  etcd-v3.7.3-linux-amd64.tar.gz\n{d2} *etcd-v3.7.3-linux-arm64.tar.gz\n"
    assert b.parse_sha256(sums, "etcd-v3.7.3-linux-arm64.tar.gz") == d2
    assert b.parse_sha256(f"{d1}\n", "kubelet") == d1  # bare digest, any file name
    with pytest.raises(b.DownloadError):
        b.parse_sha256(sums, "etcd-v3.7.3-darwin-amd64.zip")
    with pytest.raises(b.DownloadError):
        b.parse_sha256("<html>not found</html>")


def test_verify_sha256(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"hello")
    b.verify_sha256(f, hashlib.sha256(b"hello").hexdigest(), "x")
    with pytest.raises(b.DownloadError, match="sha256 mismatch for x"):
        b.verify_sha256(f, "0" * 64, "x")


def _fake_binary(path: Path, version_line: str) -> Path:
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(0o755)
    return path


def _local_fetcher(files: dict[str, bytes], seen: list[str]) -> b.Fetcher:
    def fetch(url: str, dest: Path, timeout: float) -> None:
        seen.append(url)
        if url not in files:
            raise b.DownloadError(f"download of {url} failed: 404")
        dest.write_bytes(files[url])
    return fetch


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NUMACERT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_download_kubernetes_checks_sha256(cache: Path, tmp_path: Path) -> None:
    base = "http://mirror.invalid/release"
    script = b"#!/bin/sh\necho 'Kubernetes v1.37.2'\n"
    files = {}
    for c in ("kubelet", "kube-apiserver"):
        url = b.release_url("v1.37.2", c, base=base)
        files[url] = script
        files[url + ".sha256"] = hashlib.sha256(script).hexdigest().encode()
    seen: list[str] = []
    paths = b.download_kubernetes("v1.37.2", ["kubelet", "kube-apiserver"],
                                  fetch=_local_fetcher(files, seen), base=base, progress=False)
    assert paths["kubelet"] == cache / "k8s-release" / "v1.37.2" / "bin" / "kubelet"
    assert paths["kubelet"].read_bytes() == script
    assert len(seen) == 4
    # Second call: served from the cache, nothing fetched.
    b.download_kubernetes("v1.37.2", ["kubelet", "kube-apiserver"],
                          fetch=_local_fetcher(files, seen), base=base, progress=False)
    assert len(seen) == 4


def test_download_kubernetes_rejects_tampered_binary(cache: Path) -> None:
    base = "http://mirror.invalid/release"
    url = b.release_url("v1.37.2", "kubelet", base=base)
    files = {url: b"evil", url + ".sha256": hashlib.sha256(b"good").hexdigest().encode()}
    with pytest.raises(b.DownloadError, match="sha256 mismatch"):
        b.download_kubernetes("v1.37.2", ["kubelet"], fetch=_local_fetcher(files, []),
                              base=base, progress=False)
    assert not (cache / "k8s-release" / "v1.37.2" / "bin" / "kubelet").exists()


def test_download_etcd_from_tarball(cache: Path) -> None:
    base = "http://mirror.invalid/etcd"
    script = b"#!/bin/sh\necho 'etcd Version: 3.7.3'\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("etcd-v3.7.3-linux-amd64/etcd")
        info.size, info.mode = len(script), 0o755
        tf.addfile(info, io.BytesIO(script))
    tgz = buf.getvalue()
    files = {
        b.etcd_release_url("v3.7.3", base=base): tgz,
        b.etcd_checksum_url("v3.7.3", base=base):
            f"{hashlib.sha256(tgz).hexdigest()}  etcd-v3.7.3-linux-amd64.tar.gz\n".encode(),
    }
    path = b.download_etcd("v3.7.3", fetch=_local_fetcher(files, []), base=base, progress=False)
    assert path.read_bytes() == script


def test_auto_falls_back_to_build_when_download_fails(cache: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*a: object, **k: object) -> dict[str, Path]:
        raise b.DownloadError("download of https://dl.k8s.io/... failed: name resolution")

    built: list[str] = []

    def fake_build(version: str, comps: list[str], progress: bool = True) -> dict[str, Path]:
        built.append(version)
        return {c: Path(f"/built/{c}") for c in comps}

    monkeypatch.setattr(b, "download_kubernetes", no_network)
    monkeypatch.setattr(b, "build_kubernetes", fake_build)
    monkeypatch.setattr(b, "build_etcd", lambda v, progress=True: Path("/built/etcd"))
    monkeypatch.setattr(b, "_system_kubectl", lambda: None)
    bins = b.resolve("v1.37.2", source="auto", offline=False, progress=False)
    assert bins.source == "build" and built == ["v1.37.2"]
    assert bins.etcd == Path("/built/etcd") and bins.kubelet == Path("/built/kubelet")
    # Explicit release does not fall back.
    with pytest.raises(b.DownloadError):
        b.resolve("v1.37.2", source="release", progress=False)


def test_auto_offline_never_downloads(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*a: object, **k: object) -> dict[str, Path]:
        raise AssertionError("must not download when offline")

    monkeypatch.setattr(b, "download_kubernetes", forbidden)
    monkeypatch.setattr(b, "build_kubernetes",
                        lambda v, comps, progress=True: {c: Path(f"/b/{c}") for c in comps})
    monkeypatch.setattr(b, "build_etcd", lambda v, progress=True: Path("/b/etcd"))
    monkeypatch.setenv("NUMACERT_OFFLINE", "1")
    assert b.resolve("v1.37.2", progress=False).source == "build"


def test_auto_uses_complete_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = cache / "k8s-build" / "v1.37.2" / "bin"
    bindir.mkdir(parents=True)
    for c in b.K8S_COMPONENTS:
        _fake_binary(bindir / c, "Kubernetes v1.37.2")
    etcd_dir = cache / "etcd-build" / "v3.7.3" / "bin"
    etcd_dir.mkdir(parents=True)
    _fake_binary(etcd_dir / "etcd", "etcd Version: 3.7.3")
    monkeypatch.setattr(b, "build_kubernetes", lambda *a, **k: pytest.fail("rebuilt"))
    bins = b.resolve("v1.37.2", progress=False, offline=True)
    assert bins.source == "cache"
    assert bins.kube_apiserver == bindir / "kube-apiserver"
    assert bins.etcd == etcd_dir / "etcd"
    assert (bindir / "manifest.json").exists()  # verified once, recorded


def test_cache_ignores_binary_of_wrong_version(cache: Path) -> None:
    bindir = cache / "k8s-build" / "v1.37.2" / "bin"
    bindir.mkdir(parents=True)
    _fake_binary(bindir / "kubelet", "Kubernetes v0.0.0-master+$Format:%H$")
    assert not b._cached_ok(bindir, "kubelet", "v1.37.2")


# ---- dir source


def _fill_dir(d: Path, version: str = "v1.37.2", etcd: str = "3.7.3") -> None:
    d.mkdir(parents=True, exist_ok=True)
    for c in b.K8S_COMPONENTS:
        _fake_binary(d / c, f"Kubernetes {version}")
    _fake_binary(d / "etcd", f"etcd Version: {etcd}\nGit SHA: x")


def test_dir_source_accepts_complete_dir(tmp_path: Path) -> None:
    _fill_dir(tmp_path / "bins")
    bins = b.resolve("v1.37.2", source="dir", directory=tmp_path / "bins", progress=False)
    assert bins.source == "dir"
    assert bins.kubelet == (tmp_path / "bins" / "kubelet").resolve()
    assert bins.etcd_version == "v3.7.3"


def test_dir_source_names_missing_binary(tmp_path: Path) -> None:
    _fill_dir(tmp_path / "bins")
    (tmp_path / "bins" / "kube-scheduler").unlink()
    with pytest.raises(InputError, match="kube-scheduler not found") as exc:
        b.resolve("v1.37.2", source="dir", directory=tmp_path / "bins", progress=False)
    assert "kube-scheduler" in str(exc.value.where)


def test_dir_source_rejects_non_executable_and_wrong_version(tmp_path: Path) -> None:
    _fill_dir(tmp_path / "a")
    (tmp_path / "a" / "kubelet").chmod(0o644)
    with pytest.raises(InputError, match="kubelet is not executable"):
        b.from_directory(tmp_path / "a", "v1.37.2", "v3.7.3")
    _fill_dir(tmp_path / "b", version="v1.36.0")
    with pytest.raises(InputError, match="reports version 'v1.36.0', expected v1.37.2"):
        b.from_directory(tmp_path / "b", "v1.37.2", "v3.7.3")


def test_dir_source_rejects_binary_that_cannot_run(tmp_path: Path) -> None:
    _fill_dir(tmp_path / "c")
    (tmp_path / "c" / "etcd").write_text("#!/bin/sh\nexit 3\n")
    with pytest.raises(Exception, match="exited 3"):
        b.from_directory(tmp_path / "c", "v1.37.2", "v3.7.3")


def test_dir_source_needs_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="needs a directory"):
        b.resolve("v1.37.2", source="dir", progress=False)
    with pytest.raises(InputError, match="not a directory"):
        b.resolve("v1.37.2", source="dir", directory=tmp_path / "nope", progress=False)


def test_unknown_source() -> None:
    with pytest.raises(InputError, match="unknown binaries source 'docker'"):
        b.resolve("v1.37.2", source="docker")
