"""What `numacert plan --matrix` predicts per combination, from the oracle alone (pure).

For each combination that would run: which catalogue checks run and which skip (with the
machine-readable reason the run would give), and, for the pods the certification plan would
start, what a correct kubelet running that combination does with each: admitted on which
CPUs and NUMA nodes, or rejected with which reason. Every check passes exactly when the node
does what is shown here.
"""

from __future__ import annotations

from numacert.certify.applicability import SEPARATOR, RunMeans, skip_reason
from numacert.certify.compare import predict_plan
from numacert.certify.plan import build_plan
from numacert.quantity import to_bytes, to_millis


def _amounts(allocatable: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in allocatable.items():
        if key == "cpu":
            out[key] = to_millis(value)
        elif key == "memory" or key.startswith("hugepages-"):
            out[key] = to_bytes(value)
    return out


def preview_lines(prepared) -> list[str]:
    """Text lines, one block per combination in run order (numacert.matrix.runner.Prepared)."""
    from numacert.reports.catalogue import load_catalogue

    catalogue = load_catalogue()
    lines: list[str] = []
    for assignments in prepared.rounds:
        for a in assignments:
            node = prepared.nodes[a.node]
            config = a.resolved.config
            amounts = _amounts(node.allocatable)
            means = RunMeans(
                node_access=True,
                require=True,  # a matrix run certifies each combination with --require
                allocatable_cpus=amounts.get("cpu", 0) // 1000,
                hugepages_2m_bytes=amounts.get("hugepages-2Mi", 0),
            )
            lines += ["", f"== {a.combination_id} on {a.node}"]
            runs, skips = [], []
            for spec in catalogue:
                reason = skip_reason(spec.applies, spec.needs, config, node.topology, means)
                if reason:
                    skips.append(f"{spec.id} ({reason.split(SEPARATOR)[0]})")
                else:
                    runs.append(spec.id)
            lines.append(f"   checks run ({len(runs)}): {', '.join(runs)}")
            lines.append(f"   checks skip ({len(skips)}): {', '.join(skips) or '-'}")
            plan = build_plan(node.topology, config, amounts, node.k8s_minor)
            prediction = predict_plan(node.topology, config, plan)
            for name, result in prediction.pods.items():
                if result.admitted is False:
                    lines.append(f"   pod {name}: rejected, {result.reason}")
                    continue
                placed = "; ".join(
                    f"{c} cpus {p.cpus}{' (exclusive)' if p.exclusive else ''}"
                    + (f" numa {p.numa_affinity}" if p.numa_affinity else "")
                    + (f" mems {p.mems}" if p.mems else "")
                    for c, p in result.containers.items()
                )
                lines.append(f"   pod {name}: admitted, {placed}")
    return lines
