#!/usr/bin/python3
"""Data-parallel on one machine (issue 16, item 7): 2 CPU ranks x 1 thread (mpirun, loopback) against 1 rank x 2
threads, the same train_kd run (same global batch, same data): images/s of the training epoch and the share of
rank 0's training time spent in the gradient all-reduce (`comm_seconds` in the metrics: packing, starting and
waiting for the sums, unpacking: with the overlap, what the backward did not hide). A third arm runs the 2 ranks
with `--overlap-allreduce off` (every bucket after the backward), to show what the overlap hides.

  bench/dp_bench.py                         # resnet8 <- the shipped resnet20 teacher, Fashion-MNIST, 3 pairs of runs
  bench/dp_bench.py --limit 6400 --repeats 1 --json out.json

The runs of the arms alternate (A B C A B C ...) so drift of a shared machine falls on both; the table gives each
arm's median. Needs mpirun (openmpi-bin) and a built build/apps/train_kd. On 2 cores the comparison is between two
ways of using the same 2 cores: 1 x 2 threads pays oneDNN's per-layer threading cost on small layers, 2 x 1 pays the
all-reduce and duplicated work (each rank runs its own loader and the per-step host work)."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ARMS = {"1x2": "1 rank x 2 threads", "2x1": "2 ranks x 1 thread (mpirun), all-reduce overlapped with the backward",
        "2x1-after": "2 ranks x 1 thread (mpirun), all-reduce after the backward"}


def run(arm, a, work):
    out = os.path.join(work, arm)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    metrics = os.path.join(out, "metrics.jsonl")
    args = [a.train_kd, "--method", "kd", "--epochs", "1", "--limit", str(a.limit), "--test-limit", "100",
            "--batch-size", str(a.batch_size), "--seed", "0", "--device", "cpu", "--metrics", metrics,
            "--out", os.path.join(out, "student.safetensors")]
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    if arm == "1x2":
        cmd = args + ["--threads", "2"]
    else:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        cmd = ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "core", "--mca", "btl", "self,vader,tcp",
               "-x", "OMP_NUM_THREADS=1", "-x", "OMP_WAIT_POLICY=passive"] + args + ["--threads", "2"]
        cmd += ["--overlap-allreduce", "off" if arm == "2x1-after" else "on"]
        if a.bucket_mb > 0:
            cmd += ["--bucket-mb", str(a.bucket_mb)]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("dp_bench: %s failed (exit %d): %s" % (arm, p.returncode, (p.stderr or p.stdout).strip()[-400:]))
    epoch = [json.loads(line) for line in open(metrics) if '"epoch"' in line and '"final"' not in line][-1]
    ips = a.limit / epoch["train_seconds"]  # train_kd's epoch line: the epoch's training wall time on rank 0
    comm = epoch.get("comm_seconds", 0.0)
    return {"arm": arm, "images_per_second": ips, "train_seconds": epoch["train_seconds"],
            "comm_seconds": comm, "comm_share": comm / epoch["train_seconds"] if epoch["train_seconds"] else 0.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-kd", default=os.path.join(ROOT, "build", "apps", "train_kd"))
    ap.add_argument("--limit", type=int, default=12800, help="training instances (one epoch)")
    ap.add_argument("--batch-size", type=int, default=128, help="global batch")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of runs (one of each arm per round)")
    ap.add_argument("--bucket-mb", type=float, default=0,
                    help="train_kd's --bucket-mb for the 2-rank arms (0: its default, 25 with a first bucket of 1 MiB: "
                         "resnet8's 0.3 MB of gradients are then one bucket, which can start only after the backward)")
    ap.add_argument("--json", help="also write every run here")
    a = ap.parse_args()
    if shutil.which("mpirun") is None:
        sys.exit("dp_bench: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)")
    work = tempfile.mkdtemp(prefix="dp_bench_")
    rows = []
    for i in range(a.repeats):
        for arm in ARMS:
            r = run(arm, a, work)
            r["repeat"] = i
            rows.append(r)
            print("%s run %d: %.0f img/s, all-reduce %.2f s of %.2f s (%.1f%%)" % (
                arm, i, r["images_per_second"], r["comm_seconds"], r["train_seconds"], 100 * r["comm_share"]),
                flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print("\n| arm | img/s (median of %d) | all-reduce share of rank 0's epoch |" % a.repeats)
    print("|---|---|---|")
    for arm, label in ARMS.items():
        rs = [r for r in rows if r["arm"] == arm]
        print("| %s | %.0f | %.1f%% |" % (label, statistics.median(r["images_per_second"] for r in rs),
                                          100 * statistics.median(r["comm_share"] for r in rs)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
