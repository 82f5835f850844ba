"""Providers: who may change a node's kubelet configuration, and how numacert reaches it.

  lab  the local emulated multi-NUMA node(s): reached over real SSH, laid out like a kubeadm
       node (systemd unit, drop-in, /var/lib/kubelet/config.yaml), so the procedure proven
       here is the one real nodes get;
  ssh  real nodes of a cluster named by --kubeconfig/--context, reached with --node-access (a
       testinfra host spec such as `ssh://root@{node}`).
Both run numacert.providers.procedure; they differ only in how a node is reached, which is
what this module builds (a NodeHandle) from a numacert.target.Target, or again from a journal
entry after a crash.
"""

from __future__ import annotations

import json
import os

from numacert.errors import InputError
from numacert.providers.procedure import NodeHandle

PROVIDERS = ("lab", "ssh")


def provider_for(target) -> str:
    return "lab" if target.kind == "lab" else "ssh"


def node_handle(target, node: str) -> NodeHandle:
    """A handle on `node` of `target` (numacert.target.Target); InputError when the target
    gives no way onto the node."""
    access = target.access(node)
    if access is None:
        raise InputError(
            "reconfiguring real nodes needs node access: give --node-access, e.g. "
            "'ssh://root@{node}' (a testinfra host spec)",
            "--node-access",
        )
    if target.kind == "lab":
        where = {"kind": "lab"}
    else:
        where = {
            "kind": "cluster",
            # absolute: `numacert restore` may run from another directory
            "kubeconfig": os.path.abspath(target.kubeconfig) if target.kubeconfig else None,
            "context": target.context,
            "node_access": target.node_access_spec,
        }
    return NodeHandle(
        name=node,
        core=target.core,
        access=access,
        configz=lambda: json.loads(target.kubelet_get(node, "configz"))["kubeletconfig"],
        target=where,
    )


def reopen(where: dict, node: str):
    """The Target a journal entry names, to restore `node` after the run that changed it is
    gone; None when that was a lab that is no longer up (its guest, and every change made to
    it, went with it)."""
    from numacert.target import Target, TargetOptions, cluster_api

    if where.get("kind") == "lab":
        from numacert.lab.lab import Lab
        from numacert.target import LAB_IMAGE

        lab = Lab(progress=False)
        if not lab.running() or node not in lab.nodes:
            return None
        return Target(kind="lab", core=lab.core_api(), nodes=[node], image=LAB_IMAGE,
                      kubeconfig=str(lab.kubeconfig), context=None, lab=lab)
    options = TargetOptions(kubeconfig=where.get("kubeconfig"), context=where.get("context"))
    core = cluster_api(options.kubeconfig, options.context)
    return Target(kind="cluster", core=core, nodes=[node], image="", kubeconfig=options.kubeconfig,
                  context=options.context, node_access_spec=where.get("node_access"))
