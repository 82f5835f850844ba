"""Benchmark: how many add/delete steps per second the oracle predicts.

The issue's workload: 10,000 sequential steps of mixed pods (Guaranteed with and without
hugepages, multi-container, Burstable) on 256 CPUs (2 sockets x 4 NUMA nodes x 16 cores x 2
threads), single-numa-node, pod scope, Memory Manager Static. Other policies can be chosen to see
the cost of the non-preferred merge paths.

    python benchmarks/bench_predict.py [--steps 10000] [--policy single-numa-node] [--scope pod]

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import random
import time

from numacert.kubelet.parse import from_dict
from numacert.oracle.node import NodeModel
from numacert.oracle.pod import pod_from_manifest
from numacert.topology.profiles import load_profile


def kubelet_config(policy: str, scope: str):
    return from_dict(
        {
            "cpuManagerPolicy": "static",
            "reservedSystemCPUs": "0,128",
            "topologyManagerPolicy": policy,
            "topologyManagerScope": scope,
            "memoryManagerPolicy": "Static",
            "systemReserved": {"memory": "1Gi"},
            "reservedMemory": [{"numaNode": 0, "limits": {"memory": "1124Mi"}}],
        }
    )


def make_pod(rng: random.Random, index: int) -> dict:
    kind = rng.choice(["guaranteed", "guaranteed-hugepages", "multi", "burstable"])
    name = f"p{index}"

    def container(cname: str, cpu: str, memory: str, hugepages: str | None = None) -> dict:
        limits = {"cpu": cpu, "memory": memory}
        if hugepages:
            limits["hugepages-2Mi"] = hugepages
        return {"name": cname, "resources": {"limits": limits}}

    if kind == "guaranteed":
        containers = [container("c", str(rng.choice([1, 2, 4, 8])), "512Mi")]
    elif kind == "guaranteed-hugepages":
        containers = [container("c", str(rng.choice([2, 4])), "256Mi", "64Mi")]
    elif kind == "multi":
        containers = [
            container("a", str(rng.choice([1, 2])), "256Mi"),
            container("b", "500m", "128Mi"),
            container("c", str(rng.choice([1, 2])), "256Mi", "32Mi"),
        ]
    else:
        containers = [{"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": containers},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--policy", default="single-numa-node")
    parser.add_argument("--scope", default="pod")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--target-pods", type=int, default=40, help="steady-state number of pods on the node"
    )
    args = parser.parse_args()

    topology = load_profile("bench-256")
    rng = random.Random(args.seed)
    # Pods are built before timing: the benchmark measures prediction, not YAML handling.
    plan: list[tuple[str, object]] = []
    active: list[str] = []
    for i in range(args.steps):
        if active and (len(active) >= args.target_pods or rng.random() < 0.4):
            plan.append(("delete", active.pop(rng.randrange(len(active)))))
        else:
            pod = pod_from_manifest(make_pod(rng, i))
            plan.append(("add", pod))
            active.append(pod.name)

    node = NodeModel(topology, kubelet_config(args.policy, args.scope))
    admitted = rejected = 0
    start = time.perf_counter()
    for action, item in plan:
        if action == "add":
            result = node.add(item)
            if result.admitted:
                admitted += 1
            else:
                rejected += 1
        else:
            if item in node.pods:
                node.delete(item)
    elapsed = time.perf_counter() - start
    print(
        f"topology bench-256: {topology.num_cpus} CPUs, {len(topology.numa_nodes)} NUMA nodes; "
        f"policy {args.policy}, scope {args.scope}, Memory Manager Static"
    )
    print(f"steps: {len(plan)} (admitted {admitted}, rejected {rejected})")
    print(f"elapsed: {elapsed:.3f} s")
    print(f"steps per second: {len(plan) / elapsed:,.0f}")


if __name__ == "__main__":
    main()
