"""The cluster under test and the nodes in it that numacert may touch.

Either a cluster named by kubeconfig/context, or, with none named, the local lab (brought up
when it is not). Only the nodes the user named (names, or one label selector) are ever used;
every problem with what the user named is an InputError (one line, exit 2) raised before any
pod is created.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from numacert.errors import InfrastructureError, InputError
from numacert.probes.access import NodeAccess

LAB_IMAGE = "numacert.local/busybox:1"
CLUSTER_IMAGE = "busybox:1.37"
API_TIMEOUT = 15


@dataclass
class TargetOptions:
    """What the user said about the target (command-line options, as given)."""

    kubeconfig: str | None = None
    context: str | None = None
    nodes: str | None = None  # "a,b" or "label=value" / "label"
    image: str | None = None
    node_access: str | None = None  # testinfra spec, `{node}` replaced
    keep_lab: bool = False
    progress: bool = True

    @property
    def wants_lab(self) -> bool:
        return not self.kubeconfig and not self.context


@dataclass
class Target:
    kind: str  # "lab" | "cluster"
    core: object  # kubernetes.client.CoreV1Api
    nodes: list[str]
    image: str
    kubeconfig: str | None
    context: str | None
    lab: object | None = None  # numacert.lab.lab.Lab when kind == "lab"
    node_access_spec: str | None = None
    started_lab: bool = False
    _access: dict[str, NodeAccess] = field(default_factory=dict)

    def describe(self) -> dict:
        return {"kind": self.kind, "context": self.context, "kubeconfig": self.kubeconfig}

    def kubelet_get(self, node: str, path: str) -> str:
        """GET a kubelet endpoint (configz, metrics) of `node`."""
        if self.lab is not None:
            return self.lab.kubelet_get(path, node)  # type: ignore[attr-defined]
        resp = self.core.connect_get_node_proxy_with_path(  # type: ignore[attr-defined]
            node, path, _preload_content=False, _request_timeout=API_TIMEOUT
        )
        return resp.data.decode()

    def configz(self, node: str) -> dict:
        return json.loads(self.kubelet_get(node, "configz"))

    def access(self, node: str) -> NodeAccess | None:
        """Node access for `node`, or None when the user gave none."""
        if node in self._access:
            return self._access[node]
        if self.lab is not None:
            access = NodeAccess.connect(self.lab.access_spec(node))  # type: ignore[attr-defined]
        elif self.node_access_spec:
            access = NodeAccess.connect(self.node_access_spec.replace("{node}", node))
        else:
            return None
        self._access[node] = access
        return access

    def close(self, keep_lab: bool) -> None:
        if self.started_lab and not keep_lab and self.lab is not None:
            self.lab.down()  # type: ignore[attr-defined]


def cluster_api(kubeconfig: str | None, context: str | None):
    """A CoreV1Api for the kubeconfig/context; InputError naming what is wrong."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if not Path(path).is_file():
        raise InputError(f"no such kubeconfig file: {path}", "--kubeconfig")
    try:
        api_client = config.new_client_from_config(config_file=path, context=context)
    except ConfigException as exc:
        where = "--context" if context else "--kubeconfig"
        raise InputError(f"{path}: {str(exc).splitlines()[0]}", where) from None
    except Exception as exc:  # noqa: BLE001 - a malformed file raises anything (YAML, KeyError)
        raise InputError(f"cannot read kubeconfig {path}: {exc}", "--kubeconfig") from None
    return client.CoreV1Api(api_client)


def select_nodes(core, selection: str | None, where: str = "--nodes") -> list[str]:
    """Node names matching `selection` (comma-separated names, or a label selector when it
    contains '=' or is a single label key with '/'); InputError when none or a name is
    unknown. An unreachable API server is an InputError too: the address is the user's."""
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    try:
        if selection and ("=" in selection or "/" in selection):
            items = core.list_node(label_selector=selection, _request_timeout=API_TIMEOUT).items
            names = sorted(n.metadata.name for n in items)
            if not names:
                raise InputError(f"no node matches the label selector {selection!r}", where)
            return names
        items = core.list_node(_request_timeout=API_TIMEOUT).items
    except ApiException as exc:
        raise InputError(
            f"the API server refused to list nodes: {exc.status} {exc.reason}", where
        ) from None
    except (HTTPError, OSError) as exc:
        host = core.api_client.configuration.host
        raise InputError(
            f"cannot reach the API server at {host}: {_first_line(exc)}", "--kubeconfig"
        ) from None
    known = sorted(n.metadata.name for n in items)
    if not selection:
        raise InputError(
            "name the nodes to certify (numacert never picks nodes itself); nodes here: "
            + ", ".join(known),
            where,
        )
    wanted = [n.strip() for n in selection.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise InputError(f"no such node: {', '.join(unknown)} (nodes: {', '.join(known)})", where)
    return wanted


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def resolve(options: TargetOptions) -> Target:
    """The target the options name. For the lab, brings it up (with progress) when it is not
    up; the lab's one node is the only node, and --nodes may only name it."""
    if options.wants_lab:
        return _lab_target(options)
    core = cluster_api(options.kubeconfig, options.context)
    nodes = select_nodes(core, options.nodes)
    return Target(
        kind="cluster",
        core=core,
        nodes=nodes,
        image=options.image or CLUSTER_IMAGE,
        kubeconfig=options.kubeconfig,
        context=options.context,
        node_access_spec=options.node_access,
    )


def lab_node_names(options: TargetOptions) -> list[str]:
    """The lab's node names (all of them, or those --nodes names), checked without starting
    anything: a lab that is down has one node, the one `lab up` starts by default."""
    from numacert.lab.lab import Lab

    known = Lab(progress=False).nodes
    if not options.nodes:
        return known
    wanted = [n.strip() for n in options.nodes.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise InputError(
            f"no such node in the lab: {', '.join(unknown)} (the lab's nodes: "
            f"{', '.join(known)})",
            "--nodes",
        )
    return wanted


def lab_api_if_up():
    """The running lab's CoreV1Api, or None when no lab runs (nothing is started)."""
    from numacert.lab.lab import Lab

    lab = Lab(progress=False)
    if lab.record is None or not lab.running():
        return None
    return lab.core_api()


def node_names(options: TargetOptions) -> list[str]:
    """The nodes the options name, checked without creating anything: the lab's (nothing is
    started), or the cluster's (the API server is asked). InputError when wrong."""
    if options.wants_lab:
        return lab_node_names(options)
    return select_nodes(cluster_api(options.kubeconfig, options.context), options.nodes)


def _lab_target(options: TargetOptions) -> Target:
    """The lab: brought up when there is none; used as it is when it runs, whatever state its
    nodes are in (another numacert process may be reconfiguring one); never taken down here.
    A lab whose processes died is the user's to clear (`numacert lab down`)."""
    from numacert.lab.lab import Lab

    nodes = lab_node_names(options)
    lab = Lab(progress=options.progress)
    started = False
    if lab.record is None:
        lab.up()
        started = True
    elif not lab.running():
        raise InfrastructureError(
            f"the lab in {lab.dir} is recorded but not running (a crash, a reboot?); "
            "run `numacert lab down`, then try again"
        )
    try:
        core = lab.core_api()
    except Exception as exc:  # noqa: BLE001
        raise InfrastructureError(f"the lab's API server cannot be used: {exc}") from None
    return Target(
        kind="lab",
        core=core,
        nodes=nodes,
        image=options.image or LAB_IMAGE,
        kubeconfig=str(lab.kubeconfig),
        context=None,
        lab=lab,
        started_lab=started,
    )
