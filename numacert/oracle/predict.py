"""oracle.predict: a scenario's steps replayed on a NodeModel, in the scenario contract's shape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from numacert.kubelet.config import KubeletConfig
from numacert.oracle.admission import NotModelledError
from numacert.oracle.node import DuplicatePodError, NodeModel, UnknownPodError
from numacert.topology.model import Topology


class StepError(ValueError):
    """A step the node cannot carry out (adding a pod twice, deleting an unknown pod)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


def predict(
    topology: Topology,
    config: KubeletConfig,
    steps: Iterable,
    cpu_state: dict | None = None,
    memory_state: dict | None = None,
    *,
    allocatable: Mapping[str, int] | None = None,
    k8s_minor: int | None = None,
) -> dict:
    """{"steps": [...], "state": {"cpu": ..., "memory": ...}} (design.md, "Scenario file").

    `steps` holds scenario.AddStep / DeleteStep objects. `allocatable` and `k8s_minor` are
    NodeModel's (allocatable overrides, resource by resource, the one derived from topology
    and config; k8s_minor None = the newest release numacert models). Raises KubeletStartError
    when the kubelet would not start with this configuration and state, and StepError for a
    step that names a pod wrongly or asks for behaviour numacert does not model.
    """
    from numacert.scenario import AddStep  # the scenario module owns the step types

    node = NodeModel(
        topology, config, cpu_state, memory_state, allocatable=allocatable, k8s_minor=k8s_minor
    )
    results = []
    for index, step in enumerate(steps):
        try:
            result = node.add(step.pod) if isinstance(step, AddStep) else node.delete(step.name)
        except DuplicatePodError as exc:
            raise StepError(index, exc.args[0]) from None
        except UnknownPodError as exc:
            raise StepError(index, f"pod {exc.args[0]!r} is not on the node") from None
        except NotModelledError as exc:
            raise StepError(index, str(exc)) from None
        results.append(result.to_dict())
    return {"steps": results, "state": node.state()}


def predict_manifests(topology: Topology, config: KubeletConfig, manifests: list[dict]) -> list:
    """The oracle's steps for pod manifests added in order (each a Pod dict)."""
    from numacert.oracle.pod import pod_from_manifest
    from numacert.scenario import AddStep

    return predict(topology, config, [AddStep(pod_from_manifest(m)) for m in manifests])["steps"]
