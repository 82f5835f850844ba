"""Which nodes a provider may reconfigure: only nodes the user named AND that opted in.

A node opts in by carrying the label `numacert.io/certify=true` (its owner sets it:
`kubectl label node N numacert.io/certify=true`). `--ignore-opt-in-label` lifts that for a
run; it is for nodes the user owns outright (a throwaway lab), and is documented as such.
"""

from __future__ import annotations

from numacert.errors import InputError

OPT_IN_LABEL = "numacert.io/certify=true"
OVERRIDE_FLAG = "--ignore-opt-in-label"


def opted_in(labels: dict[str, str] | None) -> bool:
    key, value = OPT_IN_LABEL.split("=")
    return (labels or {}).get(key) == value


def check_opt_in(core, nodes: list[str], override: bool) -> None:
    """InputError naming the first named node without the opt-in label (unless overridden)."""
    if override:
        return
    for name in nodes:
        node = core.read_node(name)
        if not opted_in(node.metadata.labels):
            raise InputError(
                f"node {name} does not carry the label {OPT_IN_LABEL}; numacert reconfigures "
                f"only nodes that opt in (kubectl label node {name} {OPT_IN_LABEL}), or pass "
                f"{OVERRIDE_FLAG} for a node you own outright",
                "--nodes",
            )
