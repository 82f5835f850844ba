"""The kubelet's admission counters, read from its Prometheus /metrics text.

Only the counters numacert compares before and after a run: the Topology Manager's admission
requests and errors, the CPU and Memory Managers' pinning requests and errors. Parsing is the
prometheus-client library's; series are keyed `name{label="v",...}` with sorted labels.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

TM_REQUESTS = "kubelet_topology_manager_admission_requests_total"
TM_ERRORS = "kubelet_topology_manager_admission_errors_total"
CPU_PINNING_ERRORS = "kubelet_cpu_manager_pinning_errors_total"
MEMORY_PINNING_ERRORS = "kubelet_memory_manager_pinning_errors_total"
COUNTERS = (
    TM_REQUESTS,
    TM_ERRORS,
    "kubelet_cpu_manager_pinning_requests_total",
    CPU_PINNING_ERRORS,
    "kubelet_memory_manager_pinning_requests_total",
    MEMORY_PINNING_ERRORS,
)


def _key(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def admission_counters(text: str) -> dict[str, float]:
    """The admission counters present in a /metrics answer (absent ones are left out)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in COUNTERS:
                out[_key(sample.name, sample.labels)] = sample.value
    return out
