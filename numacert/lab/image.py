"""The lab's node image: Debian kernel, a small initrd and an ext4 root filesystem, built once.

The result lives in `<cache>/image/<key>/` (see numacert.lab.cache); the key hashes the package
list, the Debian suite and mirrors, every file the image carries (init, kubelet helper,
containerd and CNI config), the OCI images and the SSH public key. Same inputs, same
directory: no rebuild. The image does not contain the kubelet, so it does not depend on the
Kubernetes version: `lab up` installs the kubelet from a seed disk.

Build steps (root only: mmdebstrap --mode=root, umoci unpack and mke2fs -d need it):
  1. SSH keypair in `<cache>/ssh/` (generated once, its public key goes into the image).
  2. OCI images with umoci from the host's busybox-static: the pause image and a test image.
  3. mmdebstrap bookworm minbase + packages; a customize hook copies the lab files in and
     builds a MODULES=list initrd with mkinitramfs.
  4. mke2fs -d turns the tree into rootfs.img (sparse); vmlinuz and the initrd are copied out.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from numacert.errors import InfrastructureError
from numacert.lab import hostdeps
from numacert.lab.cache import cache_dir, cache_lock, content_key, keyed_dir
from numacert.proc import run
from numacert.progress import Progress, as_progress

# Bump when the build recipe changes in a way the hashed inputs below do not capture.
RECIPE_VERSION = 3

SUITE = "bookworm"
ENV_MIRROR = "NUMACERT_DEBIAN_MIRROR"
ENV_SECURITY_MIRROR = "NUMACERT_DEBIAN_SECURITY_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"

# What the guest runs. systemd is PID 1, as on a real node: the kubelet is a systemd unit laid
# out as kubeadm's packages lay it out, so node access and the providers meet what they meet in
# production (systemctl, a drop-in, /var/lib/kubelet/config.yaml, a flags file).
GUEST_PACKAGES: tuple[str, ...] = (
    "linux-image-amd64",
    "systemd",
    "systemd-sysv",
    "dbus",  # runc's and the kubelet's systemd cgroup driver talk to systemd over D-Bus
    "initramfs-tools",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "openssh-server",
    "iproute2",
    "iptables",
    "procps",
    "kmod",
    "busybox-static",
    "numactl",
    "util-linux",
)

ROOTFS_SIZE = "4G"  # sparse: only what is written takes host disk

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
TEST_IMAGE = "numacert.local/busybox:1"

# Applets the test image must have as commands; the build checks busybox offers them.
TEST_IMAGE_REQUIRED_APPLETS = ("sh", "cat", "grep", "sleep", "head", "awk")

_ASSETS = ("lab-setup", "lab-setup.service", "lab-images", "lab-images.service",
           "kubelet.service", "10-kubeadm.conf", "containerd-config.toml",
           "10-lab-bridge.conflist", "initramfs-modules", "customize.sh")


@dataclass(frozen=True)
class OCIImage:
    """One offline OCI image: the tar inside the guest and the name it is imported under."""

    tar: str  # file name under /var/lib/lab/images in the guest
    base_name: str  # ctr import --base-name; the tar's ref name is the tag
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.base_name}:{self.tag}"


OCI_IMAGES: tuple[OCIImage, ...] = (
    OCIImage("pause.tar", "registry.k8s.io/pause", "3.10"),
    OCIImage("busybox.tar", "numacert.local/busybox", "1"),
)


@dataclass(frozen=True)
class NodeImage:
    """A built node image. Paths are inside the cache; never write to them (VMs use overlays)."""

    key: str
    dir: Path
    kernel: Path
    initrd: Path
    rootfs: Path
    ssh_key: Path  # private key; the public key is in the guest's /root/.ssh/authorized_keys
    manifest: dict = field(default_factory=dict, compare=False)

    @property
    def images(self) -> tuple[OCIImage, ...]:
        return OCI_IMAGES


# ---- small helpers ---------------------------------------------------------------------


def _asset(name: str) -> bytes:
    return resources.files("numacert.lab").joinpath("assets", name).read_bytes()


# Every build command runs with these on top of the environment.
BUILD_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}


def _steps(progress: bool | Progress) -> Progress:
    """The build's reporter: its lines read "lab image: <step>"."""
    return as_progress(progress).sub("lab image: ")


def _dpkg_version(package: str, admindir: Path | None = None) -> str:
    argv = ["dpkg-query", "-W", "-f=${Version}", package]
    if admindir is not None:
        argv.insert(1, f"--admindir={admindir}")
    proc = run(argv, f"dpkg-query of {package}", 60, env=BUILD_ENV, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "absent"


def _mirrors() -> tuple[str, str]:
    return (os.environ.get(ENV_MIRROR, DEFAULT_MIRROR).rstrip("/"),
            os.environ.get(ENV_SECURITY_MIRROR, DEFAULT_SECURITY_MIRROR).rstrip("/"))


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise InfrastructureError(f"building the lab {what} needs root (mmdebstrap, umoci, mke2fs)")


# ---- SSH key -----------------------------------------------------------------------------


def ssh_key_path() -> Path:
    return cache_dir() / "ssh" / "id_ed25519"


def ensure_ssh_key() -> Path:
    """The lab's SSH private key (ed25519, no passphrase), generated once into the cache."""
    key = ssh_key_path()
    if key.exists() and key.with_suffix(".pub").exists():
        return key
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with cache_lock("ssh-key", timeout=120):
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "numacert-lab",
                 "-f", str(key)], "ssh-keygen (lab key)", 60, env=BUILD_ENV)
    return key


# ---- OCI images --------------------------------------------------------------------------


def _busybox_applets() -> list[str]:
    out = run(["/bin/busybox", "--list"], "busybox --list", 30, env=BUILD_ENV).stdout
    return sorted(a for a in out.split() if a and a != "busybox" and "/" not in a)


def oci_key() -> str:
    return content_key({
        "recipe": RECIPE_VERSION,
        "images": [(i.tar, i.base_name, i.tag) for i in OCI_IMAGES],
        "busybox-static": _dpkg_version("busybox-static"),
        "umoci": _dpkg_version("umoci"),
    })


def _umoci_image(work: Path, image: OCIImage, applets: list[str], config: list[str],
                 log: Path, out: Path) -> None:
    layout = work / f"{image.tar}.layout"
    bundle = work / f"{image.tar}.bundle"
    ref = f"{layout}:{image.tag}"

    def step(argv: list[str], what: str, timeout: float) -> None:
        run(argv, f"{what} {image.ref}", timeout, log, env=BUILD_ENV)

    step(["umoci", "init", "--layout", str(layout)], "umoci init for", 120)
    step(["umoci", "new", "--image", ref], "umoci new for", 120)
    step(["umoci", "unpack", "--image", ref, str(bundle)], "umoci unpack", 300)
    bindir = bundle / "rootfs" / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", bindir / "busybox")
    for applet in applets:
        (bindir / applet).symlink_to("busybox")
    step(["umoci", "repack", "--image", ref, str(bundle)], "umoci repack", 300)
    step(["umoci", "config", "--image", ref, "--architecture", "amd64", "--os", "linux",
          "--config.env", "PATH=/bin", *config], "umoci config", 120)
    step(["umoci", "gc", "--layout", str(layout)], "umoci gc", 120)
    step(["tar", "-C", str(layout), "-cf", str(out), "."], "tar of", 120)


def build_oci_images(progress: bool | Progress = True) -> Path:
    """Build the pause and test images as OCI layout tars; returns the cache dir holding them.

    pause: busybox only, entrypoint `busybox sleep 2147483647` (containerd kills sandboxes
    with SIGKILL, so a sleep is a fine pause). test: busybox with every applet linked in /bin.
    """
    key = oci_key()
    final = keyed_dir("oci", key)
    if (final / "done").exists():
        return final
    _require_root("OCI images")
    with cache_lock("oci", timeout=1800):
        if (final / "done").exists():
            return final
        steps = _steps(progress)
        work = final.with_name(f"{key}.tmp-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        log = work / "build.log"
        with steps.step("OCI images (umoci)"):
            applets = _busybox_applets()
            lacking = [a for a in TEST_IMAGE_REQUIRED_APPLETS if a not in applets]
            if lacking:
                raise InfrastructureError(f"/bin/busybox lacks applets {lacking}")
            pause, test = OCI_IMAGES
            _umoci_image(work, pause, [], [
                "--config.entrypoint", "/bin/busybox", "--config.entrypoint", "sleep",
                "--config.entrypoint", "2147483647"], log, work / pause.tar)
            _umoci_image(work, test, applets, ["--config.cmd", "/bin/sh"], log, work / test.tar)
            for image in OCI_IMAGES:
                shutil.rmtree(work / f"{image.tar}.layout")
                shutil.rmtree(work / f"{image.tar}.bundle")
            (work / "done").write_text(json.dumps([i.ref for i in OCI_IMAGES]) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
    return final


# ---- node image --------------------------------------------------------------------------


def image_inputs(ssh_public_key: bytes, oci: str) -> dict:
    """Everything that shapes the node image; its hash is the image key."""
    mirror, security = _mirrors()
    return {
        "recipe": RECIPE_VERSION,
        "suite": SUITE,
        "mirrors": [mirror, security],
        "packages": sorted(GUEST_PACKAGES),
        "rootfs_size": ROOTFS_SIZE,
        "assets": {name: _asset(name) for name in _ASSETS},
        "ssh_public_key": ssh_public_key,
        "oci": oci,
    }


def image_key() -> str:
    """The key of the image the current inputs describe (generates the SSH key if needed)."""
    key = ensure_ssh_key()
    return content_key(image_inputs(key.with_suffix(".pub").read_bytes(), oci_key()))


def _load(dir_: Path, key: str, ssh_key: Path) -> NodeImage | None:
    manifest_path = dir_ / "manifest.json"
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    image = NodeImage(key=key, dir=dir_, kernel=dir_ / "vmlinuz", initrd=dir_ / "initrd.img",
                      rootfs=dir_ / "rootfs.img", ssh_key=ssh_key, manifest=manifest)
    if all(p.exists() for p in (image.kernel, image.initrd, image.rootfs)):
        return image
    return None


def cached_image() -> NodeImage | None:
    """The image for the current inputs if it is already built, else None (no building)."""
    key = image_key()
    return _load(keyed_dir("image", key), key, ssh_key_path())


def _stage(stage: Path, oci_dir: Path, pubkey: bytes) -> None:
    """Lay out the files the customize hook copies over the root filesystem."""
    ov = stage / "overlay"
    files: dict[str, bytes] = {
        "usr/local/sbin/lab-setup": _asset("lab-setup"),
        "usr/local/sbin/lab-images": _asset("lab-images"),
        "etc/systemd/system/lab-setup.service": _asset("lab-setup.service"),
        "etc/systemd/system/lab-images.service": _asset("lab-images.service"),
        # Where kubeadm's deb packages put the kubelet unit and its drop-in.
        "usr/lib/systemd/system/kubelet.service": _asset("kubelet.service"),
        "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": _asset("10-kubeadm.conf"),
        "etc/containerd/config.toml": _asset("containerd-config.toml"),
        "etc/cni/net.d/10-lab-bridge.conflist": _asset("10-lab-bridge.conflist"),
        "etc/lab/images.list": "".join(f"{i.tar} {i.base_name}\n" for i in OCI_IMAGES).encode(),
        "etc/ssh/sshd_config.d/lab.conf":
            b"PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n",
        "root/.ssh/authorized_keys": pubkey,
    }
    for rel, data in files.items():
        path = ov / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    images = ov / "var/lib/lab/images"
    images.mkdir(parents=True)
    for image in OCI_IMAGES:
        shutil.copy2(oci_dir / image.tar, images / image.tar)
    (ov / "usr/local/bin").mkdir(parents=True, exist_ok=True)
    (stage / "initramfs-modules").write_bytes(_asset("initramfs-modules"))
    (stage / "customize.sh").write_bytes(_asset("customize.sh"))


def build_image(force: bool = False, progress: bool | Progress = True,
                allow_install: bool | None = None, timeout: float = 3600.0) -> NodeImage:
    """Return the node image for the current inputs, building it if it is not cached.

    `force` rebuilds even on a cache hit. `allow_install` is passed to hostdeps.ensure().
    `timeout` bounds the slowest step (mmdebstrap). Raises InfrastructureError on failure.
    """
    hostdeps.ensure(allow_install)
    ssh_key = ensure_ssh_key()
    oci_dir = build_oci_images(progress)
    pubkey = ssh_key.with_suffix(".pub").read_bytes()
    key = content_key(image_inputs(pubkey, oci_key()))
    final = keyed_dir("image", key)
    if not force and (found := _load(final, key, ssh_key)) is not None:
        return found
    _require_root("node image")
    with cache_lock("image", timeout=timeout):
        if not force and (found := _load(final, key, ssh_key)) is not None:
            return found  # built by another process while we waited
        work = final.with_name(f"{key}.tmp-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            image = _build(work, final, key, ssh_key, oci_dir, pubkey, progress, timeout)
        except BaseException:
            # Keep the log for the post-mortem, drop the big tree.
            shutil.rmtree(work / "rootfs", ignore_errors=True)
            raise
    return image


def _build(work: Path, final: Path, key: str, ssh_key: Path, oci_dir: Path, pubkey: bytes,
           progress: bool | Progress, timeout: float) -> NodeImage:
    steps = _steps(progress)
    log = work / "build.log"
    stage = work / "stage"
    rootdir = work / "rootfs"
    started = time.monotonic()
    _stage(stage, oci_dir, pubkey)
    mirror, security = _mirrors()
    with steps.step(f"mmdebstrap {SUITE} minbase + {len(GUEST_PACKAGES)} packages, initrd"):
        run([
            "mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory",
            "--aptopt=Apt::Install-Recommends \"false\"",
            "--include=" + ",".join(GUEST_PACKAGES),
            # Before the kernel is installed: its postinst then builds a small initrd, not
            # MODULES=most (saves a minute on a busy 2-core host); the stock one is dropped.
            "--essential-hook=mkdir -p \"$1/etc/initramfs-tools/conf.d\" && printf "
            "'MODULES=list\\nCOMPRESS=gzip\\n' > \"$1/etc/initramfs-tools/conf.d/lab.conf\"",
            f"--customize-hook=sh {stage}/customize.sh \"$1\" {stage}",
            SUITE, str(rootdir),
            f"deb {mirror} {SUITE} main",
            f"deb {mirror} {SUITE}-updates main",
            f"deb {security} {SUITE}-security main",
        ], "mmdebstrap (guest root filesystem)", timeout, log, env=BUILD_ENV)
    kver = (rootdir / "etc/lab/kernel-version").read_text().strip()
    versions = {p: _dpkg_version(p, rootdir / "var/lib/dpkg")
                for p in ("linux-image-amd64", "containerd", "runc", "containernetworking-plugins",
                          "openssh-server")}
    with steps.step(f"mke2fs -d ({ROOTFS_SIZE} sparse ext4)"):
        shutil.copy2(rootdir / "boot" / f"vmlinuz-{kver}", work / "vmlinuz")
        shutil.copy2(rootdir / "boot" / "lab-initrd.img", work / "initrd.img")
        run(["mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", str(rootdir),
             str(work / "rootfs.img"), ROOTFS_SIZE], "mke2fs -d (rootfs.img)", 900, log,
            env=BUILD_ENV)
    shutil.rmtree(rootdir)
    shutil.rmtree(stage)
    manifest = {
        "key": key,
        "suite": SUITE,
        "kernel": kver,
        "packages": versions,
        "images": [i.ref for i in OCI_IMAGES],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.monotonic() - started, 1),
        "steps": steps.timings,
        "rootfs_bytes_allocated": (work / "rootfs.img").stat().st_blocks * 512,
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    image = _load(final, key, ssh_key)
    assert image is not None
    return image


def prune(keep: str | None = None) -> list[Path]:
    """Remove cached node images other than `keep` (default: the current key). Returns them."""
    keep = keep or image_key()
    removed = []
    root = cache_dir() / "image"
    if root.exists():
        for d in root.iterdir():
            if d.name != keep:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
    return removed
