"""`numacert kind`: the offline node image, and numacert's own kind clusters.

node-image  build (or find in Docker's store) a kind node image from the Kubernetes binaries
            the lab builds, for machines that cannot pull kindest/node (numacert.kind.node_image)
clusters    list the kind clusters numacert made (left by --keep-cluster or a killed run)
delete      delete them (only numacert's: names numacert-<hash>)
"""

from __future__ import annotations

import click

from numacert.errors import InputError


@click.group()
def kind() -> None:
    """kind support: the offline node image and numacert's clusters."""


@kind.command("node-image")
@click.option("--k8s-version", default=None, help="Kubernetes version (default: the lab's)")
@click.option("--restrict-oom-score-adj", is_flag=True,
              help="set containerd's restrict_oom_score_adj in the node: for Docker hosts that "
              "cannot grant privileged containers CAP_SYS_RESOURCE")
@click.option("--force", is_flag=True, help="rebuild even when the image exists")
def node_image(k8s_version: str | None, restrict_oom_score_adj: bool, force: bool) -> None:
    """Build the offline kind node image; prints its reference (for --kind-image)."""
    from numacert.kind.node_image import build_node_image
    from numacert.lab.binaries import DEFAULT_K8S_VERSION
    from numacert.progress import Progress

    # stdout carries only the image reference: IMAGE=$(numacert kind node-image) works.
    image = build_node_image(k8s_version or DEFAULT_K8S_VERSION,
                             restrict_oom_score_adj=restrict_oom_score_adj, force=force,
                             progress=Progress(echo=lambda line: click.echo(line, err=True)))
    state = "built" if image.built else "found"
    click.echo(f"{state} in {image.seconds:.0f}s: {image.ref}", err=True)
    click.echo(image.ref)


@kind.command("clusters")
@click.option("--kind-bin", type=click.Path(dir_okay=False), help="default: kind on PATH")
def clusters(kind_bin: str | None) -> None:
    """List the kind clusters numacert made."""
    from numacert.kind.cluster import find_kind, own_clusters

    for name in own_clusters(find_kind(kind_bin)):
        click.echo(name)


@kind.command("delete")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="every cluster numacert made")
@click.option("--kind-bin", type=click.Path(dir_okay=False), help="default: kind on PATH")
def delete(names: tuple[str, ...], all_: bool, kind_bin: str | None) -> None:
    """Delete numacert's kind clusters (by name, or --all)."""
    from numacert.kind.cluster import delete_cluster, find_kind, own_clusters

    kind_path = find_kind(kind_bin)
    own = own_clusters(kind_path)
    if all_ == bool(names):
        raise InputError("name clusters or give --all, not both or neither", "kind delete")
    for name in names:
        if name not in own:
            raise InputError(f"no kind cluster {name} of numacert's (see `numacert kind "
                             "clusters`)", name)
    for name in own if all_ else names:
        delete_cluster(kind_path, name)
        click.echo(f"deleted {name}")
