"""Shared vocabulary of the oracle's managers: topology hints, provider results, admission errors.

NUMA masks are plain ints (bit i set = NUMA node i), None is the kubelet's nil mask ("any").

A hint provider's answer for one container (or pod) follows the kubelet's conventions, which the
merge must tell apart (kubelet-algorithms.md §2.2):

    None or {}                 no preference at all
    {"cpu": None}              no preference for that resource
    {"cpu": []}                that resource cannot be satisfied
    {"cpu": [Hint, ...]}       the hints, in IterateBitMasks order
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from numacert.oracle.pod import Container, Pod


class Hint(NamedTuple):
    mask: int | None  # None = nil affinity (don't care)
    preferred: bool


ProviderHints = dict[str, list[Hint] | None] | None


class AdmissionError(Exception):
    """The kubelet rejects the pod: `reason` and `message` are the kubelet's own strings
    (the message without the "Pod was rejected: " prefix the pod status gets)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class AllocationError(Exception):
    """An error a provider's Allocate returns. `reason` is set for typed errors
    (SMTAlignmentError); others become UnexpectedAdmissionError (see to_admission_error)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    def to_admission_error(self) -> AdmissionError:
        if self.reason:
            return AdmissionError(self.reason, self.message)
        return AdmissionError(
            "UnexpectedAdmissionError",
            f"Allocate failed due to {self.message}, which is unexpected",
        )


TOPOLOGY_AFFINITY_ERROR = AdmissionError(
    "TopologyAffinityError", "Resources cannot be allocated with Topology locality"
)


class HintProvider(Protocol):
    """What the Topology Manager calls, in provider order (devices, CPU, memory)."""

    def get_topology_hints(self, pod: Pod, container: Container) -> ProviderHints: ...

    def get_pod_topology_hints(self, pod: Pod) -> ProviderHints: ...

    def allocate(self, pod: Pod, container: Container, hint: Hint) -> None:
        """Raise AllocationError to reject. `hint` is what the Topology Manager stored."""

    def remove_pod(self, pod_uid: str) -> None:
        """Release everything the pod holds (garbage collection of an inactive pod)."""


class KubeletStartError(Exception):
    """The kubelet would refuse to start with this configuration or state file; the message is
    the kubelet's own where the reference gives it (e.g. a stale cpu_manager_state)."""
