"""`numacert topology`: show a topology the way the kubelet sees it, with its fingerprint.

Sources: this machine's sysfs (default), a shipped profile (--profile), or a snapshot file
written by the collector on another machine (--snapshot; `-` reads stdin):

    numacert topology --print-collector | ssh node sh -s > node.snap
    numacert topology --snapshot node.snap --output json
"""

from __future__ import annotations

import json
import sys
import textwrap

import click
import yaml

from numacert.cpuset import format_cpulist
from numacert.errors import InputError
from numacert.quantity import format_bytes
from numacert.topology.model import Topology

OUTPUTS = ("table", "json", "yaml")
_WHERE = "numacert topology"


@click.command()
@click.option("--profile", metavar="NAME", help="A shipped profile instead of this machine.")
@click.option(
    "--snapshot",
    metavar="FILE",
    help="A collector snapshot (see --print-collector) instead of this machine; - is stdin.",
)
@click.option("--sysfs-root", metavar="DIR", help="Read this machine's sysfs under DIR.")
@click.option("--output", "-o", default="table", metavar="table|json|yaml", show_default=True)
@click.option("--list-profiles", is_flag=True, help="List the shipped profiles and exit.")
@click.option(
    "--print-collector", is_flag=True, help="Print the POSIX sh sysfs collector and exit."
)
def topology(
    profile: str | None,
    snapshot: str | None,
    sysfs_root: str | None,
    output: str,
    list_profiles: bool,
    print_collector: bool,
) -> None:
    """Print a node topology (this machine by default) and its fingerprint."""
    if output not in OUTPUTS:
        raise InputError(f"unknown output {output!r}; use one of {', '.join(OUTPUTS)}", "--output")
    chosen = [
        flag
        for flag, value in (
            ("--profile", profile),
            ("--snapshot", snapshot),
            ("--sysfs-root", sysfs_root),
            ("--list-profiles", list_profiles),
            ("--print-collector", print_collector),
        )
        if value
    ]
    if len(chosen) > 1:
        raise InputError(f"use only one of {', '.join(chosen)}", _WHERE)

    if print_collector:
        from numacert.topology.sysfs import collector_script

        click.echo(collector_script(), nl=False)
        return
    if list_profiles:
        _list_profiles(output)
        return

    source, topo = _load(profile, snapshot, sysfs_root)
    if output == "table":
        click.echo(render_table(topo, source))
        return
    data = {"source": source, "fingerprint": topo.fingerprint(), **topo.to_dict()}
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


def _load(profile: str | None, snapshot: str | None, root: str | None) -> tuple[str, Topology]:
    if profile is not None:
        from numacert.topology.profiles import load_profile

        return f"profile {profile}", load_profile(profile, where="--profile")
    from numacert.topology.sysfs import collect_local, parse_snapshot

    if snapshot is not None:
        try:
            if snapshot == "-":
                text = sys.stdin.read()
            else:
                with open(snapshot, encoding="utf-8") as fh:
                    text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise InputError(f"cannot read the snapshot: {reason}", snapshot) from None
        where = "stdin" if snapshot == "-" else snapshot
        return f"snapshot {where}", parse_snapshot(text, where)
    return ("local sysfs" if root is None else f"sysfs under {root}"), collect_local(root)


def _list_profiles(output: str) -> None:
    from numacert.topology.profiles import list_profiles, load_profile, profile_description

    rows = []
    for name in list_profiles():
        topo = load_profile(name)
        rows.append(
            {
                "name": name,
                "cpus": topo.num_cpus,
                "numa_nodes": len(topo.numa_nodes),
                "fingerprint": topo.fingerprint(),
                "description": profile_description(name),
            }
        )
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(rows, sort_keys=False), nl=False)
    else:
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            head = f"{r['name']:<{width}}  {r['cpus']:>3} CPUs  {r['numa_nodes']} NUMA  "
            desc = textwrap.shorten(r["description"], 100 - len(head))
            click.echo(f"{head}{desc}")


def _human(amount: int) -> str:
    """Exact quantity when short ("4Gi"), else rounded ("9.59Gi") for kernel MemTotal values."""
    exact = format_bytes(amount)
    if len(exact) <= 6:
        return exact
    for suffix, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if amount >= factor:
            return f"{amount / factor:.2f}{suffix}"
    return exact


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip()] + [fmt.format(*r).rstrip() for r in rows]


def render_table(topo: Topology, source: str) -> str:
    """A human-readable summary: counts, NUMA nodes, sockets, cores."""
    lines = [
        f"source:       {source}",
        f"fingerprint:  {topo.fingerprint()}",
        f"CPUs {topo.num_cpus}, cores {topo.num_cores} ({topo.cpus_per_core} threads per core), "
        f"sockets {topo.num_sockets}, NUMA nodes {len(topo.numa_nodes)}, "
        f"uncore caches {topo.num_uncore_caches}",
        "",
    ]
    numa_rows = []
    for node in topo.numa_nodes:
        cpus = topo.cpus_by_numa[node.id]
        sockets = sorted({topo.cpu_by_id[c].socket for c in cpus})
        uncores = sorted({topo.cpu_by_id[c].uncore for c in cpus})
        pages = ", ".join(f"{format_bytes(s)}: {n}" for s, n in sorted(node.hugepages.items()))
        numa_rows.append(
            [
                str(node.id),
                str(cpus) or "-",
                format_cpulist(sockets) or "-",
                format_cpulist(uncores) or "-",
                _human(node.memory),
                pages or "-",
                " ".join(str(d) for d in node.distances) if node.distances else "-",
            ]
        )
    header = ["NUMA", "CPUs", "socket", "uncore", "memory", "hugepages", "distances"]
    lines += _table(header, numa_rows)
    lines.append("")
    socket_rows = []
    for socket, cpus in topo.cpus_by_socket.items():
        nodes = sorted({topo.cpu_by_id[c].numa for c in cpus})
        socket_rows.append([str(socket), str(cpus), format_cpulist(nodes)])
    lines += _table(["socket", "CPUs", "NUMA nodes"], socket_rows)
    lines.append("")
    # A core's id is its lowest thread (the kubelet's numbering), so listing threads suffices.
    cores = " ".join(str(threads) for threads in topo.cores.values())
    lines.append("cores (the threads of each physical core):")
    lines += textwrap.wrap(cores, 96, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(lines)
