"""What a policy matrix run costs on the lab, per combination and in total, against its floor.

Runs `numacert run --matrix FILE` against the lab as it is (bring it up first; `numacert lab
up --nodes 2` to measure two nodes at once), or reads the output folder of an earlier matrix
run (--from DIR), and prints per combination:
  apply     reconfigure to Ready: cordon, evict, stop, state files, write, start, Ready, configz
  certify   the child `numacert run` of that combination, start to end
  floor     what the combination cannot avoid: one kubelet restart to Ready (measured inside
            the certification's checkpoint) plus the pod phases (pod starts on the critical path)
  ratio     (apply + certify) / floor
and where the rest goes: the pod deletions between phases (the kubelet's teardown, on the
critical path too), the checkpoint's re-reads (reconcile period, state files, metrics, the
read after the restart), and the child process itself (pytest, discovery, reports, namespace);
`+del` is the ratio with the deletions counted in the floor.
then the wall time, the sum of per-combination times, the parallel speed-up (sum / wall) and an
estimate for the shipped default matrix on the lab default profile (its runnable combinations
times the mean per-combination time, divided by the nodes).

    python benchmarks/bench_matrix.py [--matrix reduced] [--from DIR] [extra run options...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_matrix(matrix: str, out: Path, extra: list[str]) -> float:
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "numacert.cli.main",
            "run",
            "--matrix",
            matrix,
            "--output-dir",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - start
    if not (out / "matrix.json").is_file():
        sys.exit(f"the matrix run wrote no matrix.json (rc {proc.returncode}):\n{proc.stderr}")
    print(f"numacert run --matrix {matrix}: exit {proc.returncode}")
    return wall


def combination_rows(out: Path) -> list[dict]:
    data = json.loads((out / "matrix.json").read_text())
    rows = []
    for c in data["combinations"]:
        if c["status"] != "run":
            continue
        results = json.loads((out / c["dir"] / "results.json").read_text())
        timings = next(iter(results.get("timings", {}).values()), {})
        pods = sum(v for k, v in timings.items() if k.startswith("phase") and k.endswith("pods"))
        deletes = sum(
            v for k, v in timings.items() if k.startswith("phase") and k.endswith("deletes")
        )
        restart = timings.get("checkpoint kubelet restart", 0.0)
        checkpoint = timings.get("checkpoint", 0.0)
        apply_s = c["timings"].get("apply", 0.0)
        certify_s = c["timings"].get("certify", 0.0)
        runner = timings.get("discovery", 0.0) + pods + deletes + checkpoint
        floor = restart + pods
        total = apply_s + certify_s
        rows.append(
            {
                "id": c["id"],
                "node": c["node"],
                "apply": apply_s,
                "certify": certify_s,
                "restart": restart,
                "pods": pods,
                "deletes": deletes,
                "rereads": checkpoint - restart,
                "child": certify_s - runner,
                "floor": floor,
                "ratio": total / floor if floor else float("nan"),
                "ratio_del": total / (floor + deletes) if floor else float("nan"),
            }
        )
    return rows


def default_matrix_runnable() -> int:
    """Runnable combinations of the shipped default matrix on the lab default profile."""
    from numacert.lab.kubelet_config import lab_kubelet_config
    from numacert.lab.profile import load_lab_profile
    from numacert.matrix.resolve import Status, resolve
    from numacert.matrix.spec import load_matrix

    profile = load_lab_profile("default")
    base = lab_kubelet_config(profile.topology, profile.kubelet)
    resolved = resolve(load_matrix("default"), base, profile.topology, 37)
    return sum(1 for r in resolved if r.status == Status.OK)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", default="reduced")
    parser.add_argument("--from", dest="from_dir", type=Path, default=None)
    args, extra = parser.parse_known_args()
    if args.from_dir is not None:
        out, wall = args.from_dir, None
    else:
        out = Path(tempfile.mkdtemp(prefix="numacert-bench-matrix-"))
        wall = run_matrix(args.matrix, out, extra)
    rows = combination_rows(out)
    if not rows:
        sys.exit(f"no combination was run in {out}")
    print(
        f"{'combination':42} {'node':10} {'apply':>6} {'certify':>8} {'restart':>8} "
        f"{'pods':>6} {'deletes':>8} {'rereads':>8} {'child':>6} {'floor':>6} {'ratio':>6} "
        f"{'+del':>5}"
    )
    for r in rows:
        print(
            f"{r['id']:42} {r['node']:10} {r['apply']:6.1f} {r['certify']:8.1f} "
            f"{r['restart']:8.1f} {r['pods']:6.1f} {r['deletes']:8.1f} {r['rereads']:8.1f} "
            f"{r['child']:6.1f} {r['floor']:6.1f} {r['ratio']:6.2f} {r['ratio_del']:5.2f}"
        )
    per = [r["apply"] + r["certify"] for r in rows]
    nodes = len({r["node"] for r in rows})
    apply_mean = statistics.mean(r["apply"] for r in rows)
    print(
        f"\ncombinations run: {len(rows)} on {nodes} node(s); per combination: mean "
        f"{statistics.mean(per):.0f}s, apply mean {apply_mean:.1f}s, "
        f"ratio to floor mean {statistics.mean(r['ratio'] for r in rows):.2f} "
        f"(with the deletions in the floor {statistics.mean(r['ratio_del'] for r in rows):.2f})"
    )
    for part in ("apply", "deletes", "rereads", "child"):
        print(f"  {part:8} mean {statistics.mean(r[part] for r in rows):5.1f}s")
    print(f"sum of per-combination times: {sum(per):.0f}s")
    if wall is not None:
        print(
            f"wall time (prepare, runs, restore, reports): {wall:.0f}s; "
            f"speed-up from {nodes} node(s): {sum(per) / wall:.2f}x"
        )
    runnable = default_matrix_runnable()
    estimate = runnable * statistics.mean(per) / nodes
    print(
        f"default matrix on the lab default profile: {runnable} runnable combinations, "
        f"estimated {estimate / 60:.0f} min on {nodes} node(s) at this per-combination time"
    )
    print(f"output: {out}")


if __name__ == "__main__":
    main()
