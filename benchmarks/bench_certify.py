"""Wall time of one full as-is certification of the lab node, and how it splits.

Runs `numacert run` against the lab as it is (bring it up first: `numacert lab up`; a warm
lab is what this measures), then reads the run's results.json timings and prints:
  total, discovery, pod starts (create -> running with its first report), the checkpoint
  (reconcile re-read, kubelet restart), deletions, and the rest (pytest, reports, waits);
  the ratio of the total to the sum of the pod-start latencies it cannot avoid.

    python benchmarks/bench_certify.py [--runs N] [extra numacert run options...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="numacert-bench-") as tmp:
        start = time.monotonic()
        proc = subprocess.run(
            ["numacert", "run", "--output-dir", tmp, *extra],
            capture_output=True,
            text=True,
            check=False,
        )
        total = time.monotonic() - start
        results = Path(tmp) / "results.json"
        if not results.is_file():
            sys.exit(f"numacert run wrote no results (rc {proc.returncode}):\n{proc.stderr}")
        data = json.loads(results.read_text())
    timings = next(iter(data.get("timings", {}).values()), {})
    starts = timings.get("pod starts", {})
    phases = {k: v for k, v in timings.items() if k.startswith("phase")}
    deletes = sum(v for k, v in phases.items() if k.endswith("deletes"))
    pods = sum(v for k, v in phases.items() if k.endswith("pods"))
    return {
        "rc": proc.returncode,
        "total": total,
        "discovery": timings.get("discovery", 0.0),
        "pod phases": pods,
        "pod starts (sum)": sum(starts.values()),
        "pods": len(starts),
        "checkpoint": timings.get("checkpoint", 0.0),
        "  reconcile re-read": timings.get("checkpoint reconcile re-read", 0.0),
        "  kubelet restart": timings.get("checkpoint kubelet restart", 0.0),
        "deletions": deletes,
        "per pod start": starts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    args, extra = parser.parse_known_args()
    for i in range(args.runs):
        r = one_run(extra)
        accounted = r["discovery"] + r["pod phases"] + r["checkpoint"] + r["deletions"]
        print(f"run {i + 1}: exit {r['rc']}")
        for key in (
            "total",
            "discovery",
            "pod phases",
            "pod starts (sum)",
            "checkpoint",
            "  reconcile re-read",
            "  kubelet restart",
            "deletions",
        ):
            print(f"  {key:<22} {r[key]:7.1f} s")
        print(f"  {'other (pytest, reports)':<22} {r['total'] - accounted:7.1f} s")
        print(f"  pods started           {r['pods']}")
        ratio = r["total"] / r["pod starts (sum)"] if r["pod starts (sum)"] else float("nan")
        print(f"  total / sum of pod starts: {ratio:.2f}")
        slowest = sorted(r["per pod start"].items(), key=lambda kv: -kv[1])[:5]
        print("  slowest pod starts: " + ", ".join(f"{k} {v:.1f}s" for k, v in slowest))


if __name__ == "__main__":
    main()
