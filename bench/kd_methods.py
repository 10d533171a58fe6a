#!/usr/bin/env python3
"""ce vs kd vs isl over several seeds at equal iterations: runs `train_kd --method ce,kd,isl` once per seed (each
with its metrics files and test evaluations every --eval-every steps), then prints the final test accuracy of each
method as mean +- sd over the seeds, and the iterations ISL needs to reach KD's final mean accuracy (from the mean
curve over the seeds, at the evaluation points).

  bench/kd_methods.py --seeds 0 1 2 --out runs/kd_methods            # run and summarise
  bench/kd_methods.py --seeds 0 1 2 --out runs/kd_methods --summary-only
  bench/kd_methods.py ... -- --start-fraction 0.7 --epochs 3         # extra train_kd flags after --

--parallel 2 runs two seeds at once with --threads 1 each (on 2 cores about the throughput of one run with 2
threads, and the per-seed results do not depend on the thread count beyond float rounding).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_metrics(path):
    """(config, [(step, test_accuracy, is_epoch_end)]) from a train_kd JSON-lines metrics file."""
    config, points = None, []
    with open(path) as f:
        for line in f:
            j = json.loads(line)
            if "config" in j:
                config = j["config"]
                continue
            if j.get("final"):  # train_kd's closing line (per-class test accuracy): the last epoch's point again
                continue
            points.append((j["step"], j["test_accuracy"], "epoch_step" not in j))
    return config, sorted(points)


def run_seed(args, seed, threads):
    d = os.path.join(args.out, f"seed{seed}")
    os.makedirs(d, exist_ok=True)
    cmd = [args.train_kd, "--method", ",".join(args.methods), "--seed", str(seed), "--threads", str(threads),
           "--eval-every", str(args.eval_every), "--metrics", os.path.join(d, "metrics.jsonl"),
           "--out", os.path.join(d, "student.safetensors")] + args.extra
    log = open(os.path.join(d, "log.txt"), "w")
    print("+", " ".join(cmd), flush=True)
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def summarise(args):
    finals = {m: [] for m in args.methods}
    curves = {m: {} for m in args.methods}  # step -> [accuracy per seed]
    fine_curves = {m: {} for m in args.methods}  # the same over the seeds run with mid-epoch evaluations
    for seed in args.seeds:
        for m in args.methods:
            # train_kd adds _<method> to the metrics file's name only when it runs several methods
            name = f"metrics_{m}.jsonl" if len(args.methods) > 1 else "metrics.jsonl"
            path = os.path.join(args.out, f"seed{seed}", name)
            if not os.path.exists(path):
                sys.exit(f"kd_methods: missing {path} (run without --summary-only first)")
            _, points = read_metrics(path)
            finals[m].append(points[-1][1])
            fine = any(not end for _, _, end in points)
            for step, acc, _ in points:
                curves[m].setdefault(step, []).append(acc)
                if fine:
                    fine_curves[m].setdefault(step, []).append(acc)
    n = len(args.seeds)
    print(f"test accuracy (%) after the full run, mean +- sd over {n} seeds {args.seeds}:")
    for m in args.methods:
        v = finals[m]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        print(f"  {m:4s} {statistics.mean(v):6.2f} +- {sd:4.2f}   ({', '.join(f'{x:.2f}' for x in v)})")
    if "kd" in finals and "isl" in finals:
        target = statistics.mean(finals["kd"])
        print(f"  iterations isl needs to reach kd's final mean accuracy {target:.2f}%:")
        # On the evaluation points every seed has (the epoch ends at least), then on the finer points of the seeds
        # that were run with --eval-every (a run made without it only has the epoch ends).
        fine_seeds = max((len(a) for a in fine_curves["isl"].values()), default=0)
        for label, source, need in (("all seeds", curves, n), (f"the {fine_seeds} seed(s) with mid-epoch evaluations",
                                                               fine_curves, fine_seeds)):
            if need == 0:
                continue
            curve = sorted((s, statistics.mean(a)) for s, a in source["isl"].items() if len(a) == need)
            kd = dict((s, statistics.mean(a)) for s, a in source["kd"].items() if len(a) == need)
            total = curve[-1][0]
            reach = next((s for s, a in curve if a >= target), None)
            if reach is None:
                print(f"    {label}: not reached within {total} iterations (isl's final mean {curve[-1][1]:.2f}%)")
            else:
                print(f"    {label}: after {reach} of {total} iterations ({100.0 * reach / total:.0f}%)")
            print("      step: kd / isl  " + ", ".join(f"{s}: {kd.get(s, float('nan')):.2f}/{a:.2f}" for s, a in curve))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=["ce", "kd", "isl"])
    p.add_argument("--out", default="runs/kd_methods")
    p.add_argument("--eval-every", type=int, default=94, help="steps between test evaluations")
    p.add_argument("--parallel", type=int, default=1, help="seeds run at once (threads split between them)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads in all")
    p.add_argument("--train-kd", default=os.path.join(ROOT, "build", "apps", "train_kd"))
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="-- then flags passed to train_kd")
    args = p.parse_args()
    args.extra = [a for a in args.extra if a != "--"]
    if not args.summary_only:
        start = time.time()
        pending, running = list(args.seeds), []
        threads = max(1, args.threads // args.parallel)
        while pending or running:
            while pending and len(running) < args.parallel:
                s = pending.pop(0)
                running.append((s, run_seed(args, s, threads)))
            time.sleep(2)
            for s, proc in list(running):
                if proc.poll() is not None:
                    running.remove((s, proc))
                    if proc.returncode != 0:
                        sys.exit(f"kd_methods: seed {s} failed (exit {proc.returncode}); see "
                                 f"{os.path.join(args.out, f'seed{s}', 'log.txt')}")
        print(f"kd_methods: {len(args.seeds)} seeds in {time.time() - start:.0f}s", flush=True)
    summarise(args)


if __name__ == "__main__":
    main()
