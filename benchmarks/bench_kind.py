"""What the kind provider costs here: the offline node image, a cluster, a matrix both ways.

Prints:
  node image  cold (rebuilt with --force; the Kubernetes binaries already built) and warm (found
              by its tag in Docker's store)
  cluster     creating and deleting numacert's one-worker cluster (the base worker)
  matrix      `numacert run --provider kind --matrix kind --run-unsupported` through one
              cluster in place and through a cluster per combination: per combination the
              apply (in place: the reconfiguration; per cluster: the creation) and certify
              seconds, and the wall time of the whole run

    python benchmarks/bench_kind.py [--kind-bin PATH] [--skip-image] [--matrix kind]
                                    [--from DIR]   # read the matrix.json of earlier runs

Needs root, Docker and kind (as the kind tests do). Nothing of it is left running afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from numacert.kind.cluster import KindClusters, cgroup_v1, find_kind, image_kubernetes_version
from numacert.kind.config import KindClusterSpec
from numacert.kind.node_image import build_node_image, host_lacks_cap_sys_resource
from numacert.lab.binaries import parse_version

WAYS = ("in-place", "cluster")


def bench_image() -> str:
    restrict = host_lacks_cap_sys_resource()
    cold = build_node_image(restrict_oom_score_adj=restrict, force=True, progress=False)
    warm = build_node_image(restrict_oom_score_adj=restrict, progress=False)
    print(f"node image  cold {cold.seconds:6.1f}s  (steps: "
          + ", ".join(f"{k} {v}s" for k, v in cold.steps.items()) + ")")
    print(f"node image  warm {warm.seconds:6.1f}s  ({warm.ref})")
    return warm.ref


def bench_cluster(kind_path: Path, image: str) -> None:
    minor = parse_version(image_kubernetes_version(image))[1]
    spec = KindClusterSpec(image=image, k8s_minor=minor, workers=({},), cgroup_v1=cgroup_v1())
    with KindClusters(kind_path, echo=lambda line: None) as clusters:
        cluster = clusters.create(spec)
        start = time.monotonic()
        clusters.delete(cluster)
        print(f"cluster     create {cluster.created_s:5.1f}s  delete "
              f"{time.monotonic() - start:5.1f}s")


def run_way(kind_path: Path, image: str, matrix: str, way: str, out: Path) -> float:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "numacert.cli.main", "run", "--provider", "kind",
         "--kind-bin", str(kind_path), "--kind-image", image, "--matrix", matrix,
         "--run-unsupported", "--kind-way", way, "--output-dir", str(out)],
        capture_output=True, text=True, check=False)
    if not (out / "matrix.json").is_file():
        sys.exit(f"{way}: no matrix.json (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.monotonic() - start


def report_way(way: str, out: Path, wall: float | None) -> None:
    record = json.loads((out / "matrix.json").read_text())
    rows = [(c["id"], c["timings"].get("apply", 0.0), c["timings"].get("certify", 0.0))
            for c in record["combinations"] if c["timings"]]
    for cid, apply_s, certify_s in rows:
        print(f"  {way:9} {cid:28} apply {apply_s:5.1f}s  certify {certify_s:5.1f}s  "
              f"total {apply_s + certify_s:5.1f}s")
    if rows:
        mean = sum(a + c for _, a, c in rows) / len(rows)
        print(f"  {way:9} mean per combination {mean:5.1f}s"
              + (f"; whole run {wall:5.1f}s (cluster creation and deletion included)"
                 if wall is not None else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind-bin")
    parser.add_argument("--kind-image", help="skip the image figures and use this image")
    parser.add_argument("--skip-image", action="store_true",
                        help="use the cached offline image without rebuilding it")
    parser.add_argument("--matrix", default="kind")
    parser.add_argument("--from", dest="from_dir", type=Path,
                        help="a folder with in-place/ and cluster/ outputs of earlier runs")
    args = parser.parse_args()
    if args.from_dir:
        for way in WAYS:
            report_way(way, args.from_dir / way, None)
        return
    kind_path = find_kind(args.kind_bin)
    if args.kind_image:
        image = args.kind_image
    elif args.skip_image:
        image = build_node_image(restrict_oom_score_adj=host_lacks_cap_sys_resource(),
                                 progress=False).ref
    else:
        image = bench_image()
    bench_cluster(kind_path, image)
    out = Path(tempfile.mkdtemp(prefix="numacert-bench-kind-"))
    print(f"matrix {args.matrix} (outputs in {out})")
    for way in WAYS:
        wall = run_way(kind_path, image, args.matrix, way, out / way)
        report_way(way, out / way, wall)


if __name__ == "__main__":
    main()
