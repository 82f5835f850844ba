"""`numacert lab ...`: the local emulated multi-NUMA node (see docs/lab.md)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from numacert.errors import InputError
from numacert.lab.kubelet_config import read_override
from numacert.lab.profile import DEFAULT_PROFILE, list_lab_profiles


def _lab(progress: bool = True, **binaries):
    from numacert.lab.lab import Lab  # heavy imports only when a lab command runs

    return Lab(progress=progress, **binaries)


@click.group()
def lab() -> None:
    """A real kubelet on an emulated multi-NUMA machine (qemu TCG), joined to a local
    control plane."""


@lab.command()
@click.option(
    "--profile",
    "-p",
    default=DEFAULT_PROFILE,
    show_default=True,
    help="lab profile (clusters/lab/NAME.yaml); see `numacert lab profiles`",
)
@click.option(
    "--kubelet",
    "kubelet_file",
    type=click.Path(dir_okay=False),
    help="KubeletConfiguration file (complete or partial) overriding the profile's",
)
@click.option(
    "--nodes",
    "nodes",
    type=int,
    default=1,
    show_default=True,
    help="how many guests (nodes 127.0.0.2, 127.0.0.3, ...), each the profile's machine",
)
@click.option(
    "--kubernetes-version",
    default=None,
    metavar="VERSION",
    help="Kubernetes version of the lab's binaries (default: the pinned v1.37.2)",
)
@click.option(
    "--binaries",
    "binaries_source",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "release", "build", "dir"]),
    help="where the binaries come from: auto = cache, else release download "
    "(unless NUMACERT_OFFLINE=1), else build from the Go module proxy",
)
@click.option(
    "--binaries-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="directory holding kube-apiserver, kube-controller-manager, "
    "kube-scheduler, kubelet and etcd (with --binaries dir)",
)
def up(
    profile: str,
    kubelet_file: str | None,
    nodes: int,
    kubernetes_version: str | None,
    binaries_source: str,
    binaries_dir: str | None,
) -> None:
    """Bring the lab up (a second `up` is harmless)."""
    if binaries_source == "dir" and not binaries_dir:
        raise InputError("--binaries dir needs --binaries-dir DIR", "--binaries-dir")
    override = read_override(kubelet_file) if kubelet_file else None
    options: dict = {"binaries_source": binaries_source}
    if kubernetes_version:
        options["k8s_version"] = kubernetes_version
    if binaries_dir:
        options["binaries_dir"] = Path(binaries_dir)
    record = _lab(**options).up(profile, override, kubelet_file, nodes=nodes)
    click.echo(
        f"lab up: profile {record.profile}, Kubernetes {record.k8s_version}, "
        f"node(s) {', '.join(record.node_names)}"
    )
    click.echo(f"kubeconfig: {_lab(False).kubeconfig}")


@lab.command()
@click.option(
    "--kubelet",
    "kubelet_file",
    type=click.Path(dir_okay=False),
    required=True,
    help="KubeletConfiguration file (complete or partial) applied over the lab's base",
)
def reconfigure(kubelet_file: str) -> None:
    """Restart the lab kubelet with another policy (pods are removed, state files cleared)."""
    override = read_override(kubelet_file)
    record = _lab().reconfigure(override, kubelet_file)
    click.echo(f"kubelet reconfigured from {kubelet_file} (profile {record.profile})")


@lab.command()
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text")
def status(output: str) -> None:
    """Show whether the lab is up, and its parts."""
    st = _lab(False).status()
    if output == "json":
        click.echo(json.dumps(st, indent=2))
        return
    if st["profile"] is None:
        click.echo(f"lab: down (state {st['state_dir']})")
        return
    click.echo(
        f"lab: {'up' if st['up'] else 'NOT up'} (profile {st['profile']}, "
        f"Kubernetes {st['kubernetes']})"
    )
    click.echo(
        f"  control plane: running={st['control_plane']['running']} "
        f"ready={st['control_plane']['ready']}"
    )
    for name, guest in st["guests"].items():
        click.echo(f"  node {name}: ready={st['nodes'][name]} guest={guest}")
    click.echo(f"  kubeconfig: {st['kubeconfig']}")


@lab.command()
def kubeconfig() -> None:
    """Print the path of the lab's admin kubeconfig."""
    click.echo(str(_lab(False).kubeconfig))


@lab.command()
@click.option("--output", "-o", type=click.Choice(["yaml", "json"]), default="yaml")
def configz(output: str) -> None:
    """Print the lab kubelet's effective configuration, as its /configz serves it."""
    import yaml

    lab_ = _lab(False)
    if not lab_.status()["up"]:
        raise InputError("the lab is not up; run `numacert lab up` first", "lab")
    config = lab_.kubelet_configz()
    if output == "json":
        click.echo(json.dumps(config, indent=2, sort_keys=True))
    else:
        click.echo(yaml.safe_dump(config, sort_keys=True), nl=False)


@lab.command(context_settings={"ignore_unknown_options": True})
@click.option("--node", default=None, help="which node's guest (default: the first)")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(node: str | None, command: tuple[str, ...]) -> None:
    """Open a shell in the lab guest, or run COMMAND there."""
    lab_ = _lab(False)
    if node is not None and node not in lab_.nodes:
        raise InputError(f"no such node in the lab: {node} (nodes: {', '.join(lab_.nodes)})",
                         "--node")
    argv = lab_.ssh_argv(" ".join(command) if command else None, node or lab_.nodes[0])
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@lab.command()
def down() -> None:
    """Stop the guest and the control plane; nothing of the lab keeps running."""
    _lab().down()
    click.echo("lab down")


@lab.command()
def profiles() -> None:
    """List the lab profiles."""
    from numacert.lab.profile import load_lab_profile

    for name in list_lab_profiles():
        p = load_lab_profile(name)
        click.echo(f"{name:12} {p.description}")
