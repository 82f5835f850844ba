"""The lab's parts on the shared helpers: the cache lock, the control plane's and the guest's
process records (with real `sleep` processes standing in for etcd and qemu)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from numacert.errors import InfrastructureError
from numacert.lab import binaries as b
from numacert.lab.cache import cache_dir, cache_lock
from numacert.lab.controlplane import COMPONENTS, ControlPlane
from numacert.lab.image import NodeImage
from numacert.lab.profile import load_lab_profile
from numacert.lab.qemu import Ports
from numacert.lab.vm import VM
from numacert.proc import ProcessRecord, spawn_detached


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NUMACERT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def sleepers(tmp_path: Path):
    started: list[ProcessRecord] = []

    def start() -> ProcessRecord:
        rec = spawn_detached(["/bin/sleep", "60"], tmp_path / "sleep.log")
        started.append(rec)
        return rec

    yield start
    for rec in started:
        rec.stop(grace=1)


def test_cache_lock_is_exclusive_and_names_its_holder(cache: Path):
    with cache_lock("thing") as path:
        assert path == cache / "locks" / "thing.lock"
        assert path.read_text() == str(os.getpid())
        with pytest.raises(InfrastructureError) as exc, cache_lock("thing", timeout=0.3, poll=0.05):
            pass
        assert f"held by pid {os.getpid()}" in str(exc.value)
        assert str(exc.value).startswith("timed out after 0s waiting for the cache lock")
        with cache_lock("other", timeout=0.3):  # another name is another lock
            pass
    with cache_lock("thing", timeout=0.3):  # released
        pass


def test_binaries_live_under_the_one_cache_root(cache: Path):
    assert b.k8s_build_dir("v1.37.2") == cache_dir() / "k8s-build" / "v1.37.2"
    assert b.etcd_release_dir("v3.7.3") == cache / "etcd-release" / "v3.7.3"


def test_binaries_take_the_cache_lock_of_their_entry(cache: Path, monkeypatch):
    script = b"#!/bin/sh\necho 'Kubernetes v1.37.2'\n"
    base = "http://mirror.invalid"
    url = b.release_url("v1.37.2", "kubelet", base=base)
    files = {url: script, url + ".sha256": hashlib.sha256(script).hexdigest().encode()}

    def fetch(u: str, dest: Path, timeout: float) -> None:
        dest.write_bytes(files[u])

    monkeypatch.setattr(b, "DOWNLOAD_LOCK_TIMEOUT_S", 0.2)
    with cache_lock("k8s-release-v1.37.2"):  # another numacert downloading the same version
        with pytest.raises(InfrastructureError, match="k8s-release-v1.37.2"):
            b.download_kubernetes("v1.37.2", ["kubelet"], fetch=fetch, base=base, progress=False)
    paths = b.download_kubernetes("v1.37.2", ["kubelet"], fetch=fetch, base=base, progress=False)
    assert paths["kubelet"].read_bytes() == script


# ---- control plane records


def _control_plane(tmp_path: Path) -> ControlPlane:
    return ControlPlane(tmp_path / "cp", b.Binaries("v1.37.2", "v3.7.3", "none", {}))


def test_control_plane_reads_its_records(tmp_path: Path, sleepers):
    cp = _control_plane(tmp_path)
    assert not cp.is_running()
    recs = {c: sleepers() for c in COMPONENTS}
    for c, rec in recs.items():
        rec.write(cp._pidfile(c))
    assert cp.is_running()
    assert cp._pid_if_alive("etcd") == recs["etcd"].pid
    # A record whose pid now names another process is not running.
    stale = ProcessRecord(recs["etcd"].pid, recs["etcd"].start_time - 1, "etcd")
    stale.write(cp._pidfile("etcd"))
    assert cp._pid_if_alive("etcd") is None and not cp.is_running()


def test_control_plane_stop_reaches_every_recorded_process(tmp_path: Path, sleepers):
    cp = _control_plane(tmp_path)
    recs = {c: sleepers() for c in COMPONENTS[:2]}
    for c, rec in recs.items():
        rec.write(cp._pidfile(c))
    stopped = cp._stop_components(COMPONENTS, grace=5)
    assert stopped == list(reversed(COMPONENTS[:2]))
    assert not any(rec.alive() for rec in recs.values())
    assert not list((cp.run_dir / "pids").iterdir())


def test_control_plane_wait_reports_a_dead_component(tmp_path: Path, sleepers):
    cp = _control_plane(tmp_path)
    rec = sleepers()
    rec.write(cp._pidfile("etcd"))
    cp._log("etcd").parent.mkdir(parents=True, exist_ok=True)
    cp._log("etcd").write_text("etcd: fatal: no space\n")
    rec.stop(grace=1)
    with pytest.raises(
        InfrastructureError, match=r"(?s)etcd exited while waiting for x;.*no space"
    ):
        cp._wait(lambda: False, "x", 5)
    with pytest.raises(InfrastructureError, match=r"timed out after 0s waiting for y; logs: "):
        _control_plane(tmp_path / "other")._wait(lambda: False, "y", 0.2)


# ---- the guest's record


def _vm(tmp_path: Path) -> VM:
    profile = load_lab_profile("default")
    image = NodeImage(
        "k",
        tmp_path,
        tmp_path / "vmlinuz",
        tmp_path / "initrd",
        tmp_path / "root",
        tmp_path / "key",
    )
    vm = VM(
        tmp_path / "vm", image, profile.topology, profile.memory_per_numa, ports=Ports(ssh=2222)
    )
    vm.run_dir.mkdir()
    return vm


def test_guest_is_running_while_its_recorded_process_runs(tmp_path: Path, sleepers):
    vm = _vm(tmp_path)
    assert not vm.is_running() and vm.pid() is None
    rec = sleepers()
    rec.write(vm.process_file)
    assert vm.is_running() and vm.pid() == rec.pid
    ProcessRecord(rec.pid, rec.start_time + 1, "qemu").write(vm.process_file)
    assert not vm.is_running()  # a reused pid is not the guest


def test_guest_pidfile_alone_counts_only_for_this_guests_qemu(tmp_path: Path, sleepers):
    # A guest started before qemu.process.json existed: the pidfile is trusted only when the
    # process is qemu with this guest's pidfile on its command line; a `sleep` is not.
    vm = _vm(tmp_path)
    rec = sleepers()
    vm.paths.pidfile.write_text(f"{rec.pid}\n")
    assert not vm.is_running()


def test_guest_stop_without_a_process_clears_the_files(tmp_path: Path):
    vm = _vm(tmp_path)
    for f in (vm.paths.pidfile, vm.paths.monitor, vm.process_file):
        f.write_text("{}")
    vm.stop()
    assert not any(f.exists() for f in (vm.paths.pidfile, vm.paths.monitor, vm.process_file))


def test_guest_ssh_argv(tmp_path: Path):
    vm = _vm(tmp_path)
    assert vm.ssh_argv("uptime")[-1] == "uptime"
    assert vm.ssh_argv()[1] == "-t"
    assert json.dumps(vm.ssh_argv())  # plain strings
