"""A kind node image built offline, for machines without a container registry.

By default numacert's kind clusters use the official `kindest/node:<version>` image, pulled by
Docker as usual. Where nothing can be pulled (CI here), `numacert kind node-image` builds an
equivalent one from what the machine has:

  1. the Kubernetes binaries the lab builds (numacert.lab.binaries), plus kubeadm and kubectl;
  2. kind's own node files (entrypoint, systemd units and drop-ins, containerd config, helper
     scripts), read from the kind Go module of KIND_VERSION: the image behaves as kind
     expects because it carries kind's files, not copies of them kept here;
  3. a Debian root filesystem from mmdebstrap with systemd, containerd, runc and the CNI
     plugins, set up the way kind's base image Dockerfile sets its own up;
  4. every image kubeadm deploys (apiserver, controller-manager, scheduler, etcd, pause) made
     from the static binaries with `docker import`, preloaded into the node's containerd.
     kube-proxy and coredns are not built: numacert's kind configs turn kube-proxy off, and
     coredns is removed after the cluster starts (numacert.kind.cluster), since pods under
     certification need no DNS.

The result is tagged `numacert.local/kind-node:<version>-<key>`, the key hashing every input;
an image with that tag is the cache (nothing is rebuilt). Intermediate images and containers
are removed, also when a step fails.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from numacert.errors import InfrastructureError
from numacert.kind.docker import docker, image_exists, image_labels, import_files, require_daemon
from numacert.lab import binaries
from numacert.lab.cache import cache_lock, content_key, keyed_dir
from numacert.lab.image import (
    BUILD_ENV,
    SUITE,
    TEST_IMAGE,
    TEST_IMAGE_REQUIRED_APPLETS,
    _busybox_applets,
    _dpkg_version,
    _mirrors,
)
from numacert.proc import run
from numacert.progress import Progress, as_progress

# Bump when the recipe changes in a way the hashed inputs do not capture.
RECIPE_VERSION = 1
KIND_MODULE = "sigs.k8s.io/kind"
KIND_VERSION = "v0.33.0"
IMAGE_REPO = "numacert.local/kind-node"
KEY_LABEL = "io.numacert.node-image-key"
# Intermediate images and containers of a build are named with these prefixes (and the build
# id), so a build, or a later one after a crash, removes exactly its own.
BUILD_REPO = "numacert.local/kind-node-build"
BUILD_CONTAINER = "numacert-kind-node-build"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"  # kind's containerd config.toml names this one

# What kind's base image installs, minus what numacert never uses (rootless fuse-overlayfs,
# NFS and iSCSI clients); plus Debian's containerd, runc and CNI plugins, which kind builds.
NODE_PACKAGES: tuple[str, ...] = (
    "systemd", "dbus", "conntrack", "iptables", "nftables", "iproute2", "ethtool",
    "util-linux", "mount", "kmod", "libseccomp2", "pigz", "bash", "ca-certificates", "curl",
    "jq", "procps", "e2fsprogs", "containerd", "runc", "containernetworking-plugins",
)
MMDEBSTRAP_TIMEOUT_S = 1800.0
CAP_SYS_RESOURCE = 24  # capability number (linux/capability.h)

# The default StorageClass kind applies from /kind/manifests/default-storage.yaml: a class
# only, no provisioner pods (their image could not be pulled here).
DEFAULT_STORAGE = """\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
"""

# Run by mmdebstrap's customize hook: $1 the root filesystem, $2 the staging dir. The steps
# mirror kind's images/base/Dockerfile (same files, same systemd clean-up).
CUSTOMIZE = r"""set -eu
root="$1"; stage="$2"; files="$stage/kind-files"
install -m 0755 "$files"/usr/local/bin/* "$root/usr/local/bin/"
mkdir -p "$root/kind/bin" "$root/kind/manifests" "$root/etc/kubernetes/manifests"
install -m 0644 "$files"/kind/README.txt "$root/kind/" 2>/dev/null || true
install -m 0755 "$files"/kind/bin/* "$root/kind/bin/"
install -m 0644 "$files"/etc/crictl.yaml "$root/etc/"
install -m 0644 "$files"/etc/containerd/config.toml "$root/etc/containerd/"
install -m 0644 "$files"/etc/default/kubelet "$root/etc/default/"
install -m 0644 "$files"/etc/sysctl.d/* "$root/etc/sysctl.d/"
mkdir -p "$root/etc/systemd/system/kubelet.service.d"
for unit in containerd.service kubelet.service kubelet.slice undo-mount-hacks.service; do
    install -m 0644 "$files/etc/systemd/system/$unit" "$root/etc/systemd/system/"
done
install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* \
    "$root/etc/systemd/system/kubelet.service.d/"
find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
      "$root"/lib/systemd/system/local-fs.target.wants/* \
      "$root"/lib/systemd/system/sockets.target.wants/*udev* \
      "$root"/lib/systemd/system/sockets.target.wants/*initctl* \
      "$root"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> "$root/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service
chroot "$root" systemctl mask systemd-binfmt.service
# kind's units run containerd and runc from /usr/local; Debian installs them in /usr.
for b in containerd ctr containerd-shim-runc-v2; do
    ln -sf "/usr/bin/$b" "$root/usr/local/bin/$b"
done
ln -sf /usr/sbin/runc "$root/usr/local/sbin/runc"
mkdir -p "$root/opt/cni/bin"
for p in host-local loopback ptp portmap bridge; do
    cp "$root/usr/lib/cni/$p" "$root/opt/cni/bin/"
done
chroot "$root" ctr oci spec \
    | chroot "$root" jq '.hooks.createContainer[.hooks.createContainer| length] |=
        . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | chroot "$root" jq 'del(.process.rlimits)' > "$root/etc/containerd/cri-base.json"
if [ "$(cat "$stage/restrict-oom-score-adj")" = true ]; then
    sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
        "$root/etc/containerd/config.toml"
fi
install -m 0755 "$stage"/bin/kubeadm "$stage"/bin/kubelet "$stage"/bin/kubectl "$root/usr/bin/"
install -m 0644 "$stage/version" "$root/kind/version"
install -m 0644 "$stage/default-storage.yaml" "$root/kind/manifests/default-storage.yaml"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
"""

ENTRYPOINT = '["/usr/local/bin/entrypoint", "/sbin/init"]'


@dataclass(frozen=True)
class NodeImage:
    ref: str
    key: str
    built: bool  # False: found in Docker's image store (the cache)
    seconds: float
    steps: dict[str, float]


def _kind_files(log: Path) -> Path:
    """kind's node files (images/base/files) from its Go module, fetched by the Go toolchain."""
    info = binaries._mod_download(KIND_MODULE, KIND_VERSION, log.parent, log)
    files = Path(info["Dir"]) / "images" / "base" / "files"
    if not (files / "usr/local/bin/entrypoint").is_file():
        raise InfrastructureError(f"{KIND_MODULE}@{KIND_VERSION} has no images/base/files")
    return files


def host_lacks_cap_sys_resource() -> bool:
    """True where this host's capability bounding set lacks CAP_SYS_RESOURCE, so privileged
    containers cannot get it either (see build_node_image's restrict_oom_score_adj)."""
    with open("/proc/self/status") as f:
        bounding = next(line for line in f if line.startswith("CapBnd:"))
    return not (int(bounding.split()[1], 16) >> CAP_SYS_RESOURCE) & 1


def image_inputs(version: str, paths: dict[str, Path], restrict_oom_score_adj: bool) -> dict:
    mirror, security = _mirrors()
    return {
        "recipe": RECIPE_VERSION,
        "customize": CUSTOMIZE,
        "storage": DEFAULT_STORAGE,
        "kubernetes": version,
        "binaries": {name: binaries.sha256_file(path) for name, path in sorted(paths.items())},
        "kind": KIND_VERSION,
        "suite": SUITE,
        "mirrors": [mirror, security],
        "packages": list(NODE_PACKAGES),
        "busybox-static": _dpkg_version("busybox-static"),
        "restrict_oom_score_adj": restrict_oom_score_adj,
    }


def image_ref(version: str, key: str) -> str:
    return f"{IMAGE_REPO}:{version}-{key}"


def _binaries(version: str, progress: Progress) -> dict[str, Path]:
    found = binaries.resolve(version, progress=progress)
    extra = binaries.build_kubernetes(version, ("kubeadm", "kubectl"), progress=progress)
    return {"kubelet": found.kubelet, "kube-apiserver": found.kube_apiserver,
            "kube-controller-manager": found.kube_controller_manager,
            "kube-scheduler": found.kube_scheduler, "etcd": found.etcd, **extra}


def _kubeadm_images(kubeadm: Path, version: str, log: Path) -> list[str]:
    out = run([kubeadm, "config", "images", "list", "--kubernetes-version", version],
              "kubeadm config images list", 120, log).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def _component_images(refs: list[str], paths: dict[str, Path], build: str,
                      log: Path) -> dict[str, str]:
    """The images kubeadm's static pods and the sandbox need, made from static binaries under
    build-local names (a user's own registry.k8s.io images in Docker are never touched).
    Returns {build-local name: the name kubeadm asks for}; kube-proxy and coredns are left out
    (see the module docstring)."""
    made: dict[str, str] = {}
    for ref in dict.fromkeys([*refs, SANDBOX_IMAGE]):
        repo = ref.rsplit(":", 1)[0].rsplit("/", 1)[-1]
        if repo in ("kube-proxy", "coredns"):
            continue
        local = f"{BUILD_REPO}-{repo}:{build}-{len(made)}"
        if repo == "pause":
            # containerd kills sandboxes with SIGKILL: a sleep is a fine pause (as in the lab).
            import_files(local, [("bin/busybox", Path("/bin/busybox"), 0o755)],
                         ['ENTRYPOINT ["/bin/busybox", "sleep", "2147483647"]'], log)
        elif repo in paths:
            import_files(local, [(f"usr/local/bin/{repo}", paths[repo], 0o755)], [
                "ENV PATH=/usr/local/bin:/usr/bin:/bin", f'ENTRYPOINT ["/usr/local/bin/{repo}"]'],
                log)
        else:
            raise InfrastructureError(f"kubeadm asks for image {ref}, which numacert cannot build")
        made[local] = ref
    return made


def test_image(log: Path | None = None) -> str:
    """numacert's test image (busybox with its applets) in Docker's store, for `kind load`."""
    if image_exists(TEST_IMAGE):
        return TEST_IMAGE
    applets = _busybox_applets()
    lacking = [a for a in TEST_IMAGE_REQUIRED_APPLETS if a not in applets]
    if lacking:
        raise InfrastructureError(f"/bin/busybox lacks applets {lacking}")
    import_files(TEST_IMAGE, [("bin/busybox", Path("/bin/busybox"), 0o755)],
                 ["ENV PATH=/bin", 'CMD ["/bin/sh"]'], log,
                 symlinks=[(f"bin/{a}", "busybox") for a in applets])
    return TEST_IMAGE


def build_node_image(version: str = binaries.DEFAULT_K8S_VERSION, *,
                     restrict_oom_score_adj: bool = False, force: bool = False,
                     progress: bool | Progress = True) -> NodeImage:
    """Build (or find) the offline kind node image for Kubernetes `version`.

    `restrict_oom_score_adj` sets containerd's option of that name in the node: needed where
    the Docker host cannot grant CAP_SYS_RESOURCE to privileged containers (containerd then
    cannot give Guaranteed pods their oom_score_adj); kind itself sets it for rootless Docker.
    """
    steps = as_progress(progress).sub("kind node image: ")
    started = time.monotonic()
    require_daemon()
    if os.geteuid() != 0:
        raise InfrastructureError("building the kind node image needs root (mmdebstrap)")
    with steps.step(f"Kubernetes {version} binaries (with kubeadm, kubectl)"):
        paths = _binaries(version, steps)
    key = content_key(image_inputs(version, paths, restrict_oom_score_adj), 12)
    ref = image_ref(version, key)
    if not force and image_exists(ref) and image_labels(ref).get(KEY_LABEL) == key:
        return NodeImage(ref, key, False, time.monotonic() - started, steps.timings)
    with cache_lock("kind-node-image", timeout=3 * 3600):
        if not force and image_exists(ref):
            return NodeImage(ref, key, False, time.monotonic() - started, steps.timings)
        _remove_build()  # what a killed build left (the lock says none is running)
        work = keyed_dir("kind-node-image", f"{key}.tmp-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        build = f"{key}-{os.getpid()}"
        try:
            _build(work, version, paths, restrict_oom_score_adj, ref, key, build, steps)
        finally:
            _remove_build(build)
            shutil.rmtree(work, ignore_errors=True)
    _prune_other_keys(ref)
    return NodeImage(ref, key, True, time.monotonic() - started, steps.timings)


def _prune_other_keys(ref: str) -> None:
    """Remove numacert's node images built from other inputs: each is about 1 GB."""
    refs = docker("images", IMAGE_REPO, "--format", "{{.Repository}}:{{.Tag}}",
                  what="docker images", check=False).stdout.split()
    stale = [r for r in refs if r != ref]
    if stale:
        docker("rmi", *stale, what="docker rmi (older kind node images)", check=False)


def _remove_build(build: str | None = None) -> None:
    """Remove the containers and images of build `build` (every build's when None: what a
    killed build left behind)."""
    names = docker("ps", "-a", "--format", "{{.Names}}", what="docker ps", check=False).stdout
    ours = [n for n in names.split() if n.startswith(f"{BUILD_CONTAINER}-{build or ''}")]
    if ours:
        docker("rm", "-f", *ours, what="docker rm (build container)", check=False)
    refs = docker("images", "--format", "{{.Repository}}:{{.Tag}}", what="docker images",
                  check=False).stdout.split()
    ours = [r for r in refs if r.startswith(BUILD_REPO)
            and (build is None or r.split(":", 1)[1].startswith(build))]
    if ours:
        docker("rmi", "-f", *ours, what="docker rmi (build images)", check=False)


def _build(work: Path, version: str, paths: dict[str, Path], restrict: bool, ref: str, key: str,
           build: str, steps: Progress) -> None:
    log = work / "build.log"
    stage = work / "stage"
    (stage / "bin").mkdir(parents=True)
    with steps.step(f"kind {KIND_VERSION} node files (Go module)"):
        shutil.copytree(_kind_files(log), stage / "kind-files", symlinks=True)
    for name in ("kubeadm", "kubelet", "kubectl"):
        shutil.copy2(paths[name], stage / "bin" / name)
    (stage / "version").write_text(version + "\n")
    (stage / "default-storage.yaml").write_text(DEFAULT_STORAGE)
    (stage / "restrict-oom-score-adj").write_text("true" if restrict else "false")
    (stage / "customize.sh").write_text(CUSTOMIZE)
    mirror, security = _mirrors()
    base = f"{BUILD_REPO}-base:{build}"
    rootfs = work / "rootfs.tar"
    with steps.step(f"mmdebstrap {SUITE} minbase + {len(NODE_PACKAGES)} packages"):
        run(["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar",
             "--aptopt=Apt::Install-Recommends \"false\"",
             "--include=" + ",".join(NODE_PACKAGES),
             f"--customize-hook=sh {stage}/customize.sh \"$1\" {stage}",
             SUITE, str(rootfs),
             f"deb {mirror} {SUITE} main",
             f"deb {mirror} {SUITE}-updates main",
             f"deb {security} {SUITE}-security main"],
            "mmdebstrap (kind node root filesystem)", MMDEBSTRAP_TIMEOUT_S, log, env=BUILD_ENV)
    with steps.step("docker import (base)"):
        with rootfs.open("rb") as f:
            run(["docker", "import", "--change", "ENV container=docker",
                 "--change", f"ENTRYPOINT {ENTRYPOINT}", "-", base],
                "docker import (kind node base)", 900, log, stdin=f)
        rootfs.unlink()
    with steps.step("component images (apiserver, controller-manager, scheduler, etcd, pause)"):
        refs = _kubeadm_images(paths["kubeadm"], version, log)
        made = _component_images(refs, paths, build, log)
        images_tar = work / "images.tar"
        docker("save", "-o", str(images_tar), *made, what="docker save (component images)",
               log=log)
    container = f"{BUILD_CONTAINER}-{build}"
    with steps.step("preload images into the node's containerd"):
        docker("run", "-d", "--name", container, "--entrypoint", "/usr/bin/containerd", base,
               what="docker run (preload)", log=log)
        _wait_containerd(container, log)
        with images_tar.open("rb") as f:
            run(["docker", "exec", "-i", container, "ctr", "-n", "k8s.io", "images", "import",
                 "--all-platforms", "--no-unpack", "--digests", "-"],
                "ctr images import (preload)", 900, log, stdin=f)
        for local, wanted in made.items():  # the names kubeadm and containerd ask for
            for argv in (["tag", "--force", local, wanted], ["rm", local]):
                docker("exec", container, "ctr", "-n", "k8s.io", "images", *argv,
                       what=f"ctr images {argv[0]} {wanted}", log=log)
        listed = docker("exec", container, "ctr", "-n", "k8s.io", "images", "ls", "-q",
                        what="ctr images ls", log=log).stdout.split()
        missing = [r for r in made.values() if r not in listed]
        if missing:
            raise InfrastructureError(f"preloading the kind node image lost {missing} (log: {log})")
        docker("stop", "-t", "30", container, what="docker stop (preload)", log=log)
        committed = f"{BUILD_REPO}-committed:{build}"
        docker("commit", "--change", f"ENTRYPOINT {ENTRYPOINT}", "--change", "CMD []",
               container, committed, what="docker commit (kind node image)", log=log)
        # STOPSIGNAL (systemd's clean shutdown, as kind's image has it) is not a change
        # `docker import`/`commit` accept: one legacy-builder step adds it, and the key label.
        run(["docker", "build", "-t", ref, "-"], "docker build (kind node image)", 300, log,
            env={"DOCKER_BUILDKIT": "0"},
            input=f"FROM {committed}\nSTOPSIGNAL SIGRTMIN+3\nLABEL {KEY_LABEL}={key}\n")


def _wait_containerd(container: str, log: Path) -> None:
    from numacert.wait import wait_until

    def answers() -> bool:
        return docker("exec", container, "ctr", "version", what="ctr version", check=False,
                      timeout=30).returncode == 0

    wait_until(answers, 60, f"containerd in {container}", 0.5)
