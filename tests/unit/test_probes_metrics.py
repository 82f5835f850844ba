"""admission_counters on the kubelet's /metrics text."""

from __future__ import annotations

from pathlib import Path

import pytest

from numacert.probes.metrics import (
    COUNTERS,
    CPU_PINNING_ERRORS,
    MEMORY_PINNING_ERRORS,
    TM_ERRORS,
    TM_REQUESTS,
    admission_counters,
)

DATA = Path(__file__).parent / "data" / "certify"


@pytest.fixture(scope="module")
def kubelet_metrics() -> str:
    """A kubelet 1.37 /metrics answer cut down to the families around the counters (HELP and
    TYPE lines, labelled and unlabelled series, a histogram, gauges, other counters)."""
    return (DATA / "kubelet-metrics.txt").read_text()


def test_realistic_metrics_text(kubelet_metrics):
    assert admission_counters(kubelet_metrics) == {
        TM_REQUESTS: 17.0,
        TM_ERRORS: 4.0,
        "kubelet_cpu_manager_pinning_requests_total": 12.0,
        CPU_PINNING_ERRORS: 1.0,
        "kubelet_memory_manager_pinning_requests_total": 14.0,
        MEMORY_PINNING_ERRORS: 2.0,
    }


def test_other_metrics_are_left_out(kubelet_metrics):
    counters = admission_counters(kubelet_metrics)
    assert set(counters) == set(COUNTERS)
    # neighbours with similar names: a gauge, a histogram, other counters
    for other in (
        "kubelet_cpu_manager_exclusive_cpu_allocation_count",
        "kubelet_topology_manager_admission_duration_ms_count",
        "kubelet_admission_rejections_total",
    ):
        assert not any(key.startswith(other) for key in counters)


def test_absent_counters_are_left_out():
    text = (
        "# HELP kubelet_topology_manager_admission_requests_total [ALPHA] requests\n"
        "# TYPE kubelet_topology_manager_admission_requests_total counter\n"
        "kubelet_topology_manager_admission_requests_total 2\n"
        "# HELP go_goroutines Number of goroutines.\n"
        "# TYPE go_goroutines gauge\n"
        "go_goroutines 10\n"
    )
    assert admission_counters(text) == {TM_REQUESTS: 2.0}
    assert admission_counters("") == {}


def test_a_freshly_restarted_kubelet_reports_zero():
    text = (
        "# TYPE kubelet_topology_manager_admission_errors_total counter\n"
        "kubelet_topology_manager_admission_errors_total 0\n"
    )
    assert admission_counters(text) == {TM_ERRORS: 0.0}


def test_labelled_series_are_keyed_with_sorted_labels():
    text = (
        "# HELP kubelet_memory_manager_pinning_errors_total errors\n"
        "# TYPE kubelet_memory_manager_pinning_errors_total counter\n"
        'kubelet_memory_manager_pinning_errors_total{type="memory",numa="1"} 3\n'
        'kubelet_memory_manager_pinning_errors_total{numa="0",type="hugepages-2Mi"} 1\n'
    )
    assert admission_counters(text) == {
        f'{MEMORY_PINNING_ERRORS}{{numa="1",type="memory"}}': 3.0,
        f'{MEMORY_PINNING_ERRORS}{{numa="0",type="hugepages-2Mi"}}': 1.0,
    }


def test_untyped_counter_lines_are_read_too():
    # Some exporters (and hand-made test servers) omit HELP and TYPE.
    assert admission_counters(f"{TM_ERRORS} 7\n{TM_REQUESTS} 9\n") == {
        TM_ERRORS: 7.0,
        TM_REQUESTS: 9.0,
    }


def test_large_and_float_values(kubelet_metrics):
    text = kubelet_metrics.replace(f"{TM_REQUESTS} 17", f"{TM_REQUESTS} 1.2345e+06")
    assert admission_counters(text)[TM_REQUESTS] == 1234500.0
