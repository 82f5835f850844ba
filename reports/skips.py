"""What a skip reason means for the verdict, and how to say it to people.

Skip reasons are machine-readable, `<kind>[:<detail>]` (see suites/catalogue.yaml). Three
classes matter for the verdict:

- not required: the node's policy is outside the check's scope (`not-applicable`), or no
  --require file was given (`needs-require`);
- hardware: the node cannot exercise the check (`needs-numa-nodes`, `needs-smt`,
  `needs-hugepages`, `needs-free-cpus`, `needs-memory`, `not-exercised`): not required either,
  but reported as "not exercised";
- blocking: anything else, `needs-node-access` and unknown kinds included. The check was
  required and did not run, so the node cannot be certified.
"""

from __future__ import annotations

from enum import StrEnum


class SkipClass(StrEnum):
    NOT_REQUIRED = "not-required"
    HARDWARE = "hardware"
    BLOCKING = "blocking"


NOT_REQUIRED_KINDS = frozenset({"not-applicable", "needs-require"})
HARDWARE_KINDS = frozenset(
    {
        "needs-numa-nodes",
        "needs-smt",
        "needs-hugepages",
        "needs-free-cpus",
        "needs-memory",
        # the plan had no pod this check could read on this node and policy (for instance no
        # aligned resource at all under CPU Manager none + Memory Manager None)
        "not-exercised",
    }
)


def skip_kind(reason: str | None) -> str:
    """The kind part of `<kind>[:<detail>]`; empty for a missing reason."""
    return (reason or "").partition(":")[0].strip()


def skip_class(reason: str | None) -> SkipClass:
    kind = skip_kind(reason)
    if kind in NOT_REQUIRED_KINDS:
        return SkipClass.NOT_REQUIRED
    if kind in HARDWARE_KINDS:
        return SkipClass.HARDWARE
    # A skip without a reason, or of a kind this version does not know, must not certify.
    return SkipClass.BLOCKING


def describe_skip(reason: str | None) -> str:
    """A short sentence for people: `needs-numa-nodes:2` -> `needs 2 NUMA nodes`."""
    if not reason:
        return "skipped without a reason"
    kind, _, detail = reason.partition(":")
    template = _PHRASES.get(kind.strip())
    if template is None:
        return reason
    return template.format(detail=detail.strip()) if detail.strip() else _BARE[kind.strip()]


_PHRASES = {
    "not-applicable": "not applicable: {detail}",
    "needs-require": "needs --require: {detail}",
    "needs-numa-nodes": "needs {detail} NUMA nodes",
    "needs-smt": "needs SMT: {detail}",
    "needs-hugepages": "needs {detail} hugepages",
    "needs-free-cpus": "needs {detail} free CPUs",
    "needs-memory": "needs more free memory on NUMA node {detail}",
    "needs-node-access": "needs node access: {detail}",
    "not-exercised": "not exercised: {detail}",
}
_BARE = {
    "not-applicable": "not applicable to this policy",
    "needs-require": "needs --require",
    "needs-numa-nodes": "needs more NUMA nodes",
    "needs-smt": "needs SMT",
    "needs-hugepages": "needs hugepages",
    "needs-free-cpus": "needs more free CPUs",
    "needs-memory": "needs more free memory",
    "needs-node-access": "needs node access",
    "not-exercised": "not exercised by the plan on this node",
}
