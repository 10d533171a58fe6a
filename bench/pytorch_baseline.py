#!/usr/bin/python3
"""The PyTorch baseline for bench/kd_step_bench: the same KD training step (teacher eval() under no_grad, student
forward+backward, KL*T^2*alpha + CE*(1-alpha), SGD lr 0.05 momentum 0.9 wd 5e-4) on the same models and batches,
pinned for a fair comparison (set threads, default NCHW, 3 warm-up steps, median of the timed steps).

Prints one JSON line per pair, with the same fields as kd_step_bench's `"kind": "kd_step"` lines:
  {"kind": "kd_step", "impl": "pytorch", "pair": "resnet56->resnet20", "batch": 128, "images_per_s": ..., ...}
Run with Debian's interpreter (/usr/bin/python3) so python3-torch is found."""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "apps"))
import repdistiller_models  # noqa: E402  (the replicas the parity tests check against the C++ zoo)

# Same table as kd_step_bench.cpp: teacher, student, batch.
PAIRS = [("resnet56", "resnet20", 128), ("resnet32x4", "resnet8x4", 64), ("wrn_40_2", "wrn_16_2", 64)]
SMOKE_PAIRS = [("resnet8", "resnet8", 8)]


def kd_loss(student, teacher, labels, T, alpha):
    kd = F.kl_div(F.log_softmax(student / T, dim=1), F.softmax(teacher / T, dim=1), reduction="batchmean") * T * T
    ce = F.cross_entropy(student, labels)
    return alpha * kd + (1.0 - alpha) * ce


def bench_pair(tname, sname, batch, args, device):
    torch.manual_seed(0)
    teacher = repdistiller_models.build(tname, args.classes).to(device).eval()
    student = repdistiller_models.build(sname, args.classes).to(device).train()
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, args.size, args.size, generator=g).to(device)
    y = torch.randint(0, args.classes, (batch,), generator=g).to(device)

    def step():
        with torch.no_grad():
            t_logits = teacher(x)
        s_logits = student(x)
        loss = kd_loss(s_logits, t_logits, y, args.temperature, args.alpha)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rec = {"kind": "kd_step", "impl": "pytorch", "pair": "%s->%s" % (tname, sname), "batch": batch,
           "device": device.type, "threads": torch.get_num_threads(), "steps": args.steps,
           "median_s": med, "min_s": min(times), "images_per_s": batch / med, "loss": float(loss),
           "torch": torch.__version__, "aten_cpu_capability": aten_cpu_capability()}
    if device.type == "cuda":
        rec["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    return rec


def aten_cpu_capability():
    """The vector ISA of ATen's own CPU kernels (its convolutions run in oneDNN, which dispatches on its own)."""
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage" in line:
            return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--pair", action="append", default=[], help="teacher->student (repeatable); default: all")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--math", default="strict", choices=["strict", "tf32"],
                    help="CUDA: strict FP32 (TF32 off in cuDNN and cuBLAS, islkd's default) or TF32 allowed "
                         "(islkd's kd_step_bench --tf32); AMP is never used")
    ap.add_argument("--smoke", action="store_true", help="1 warm-up + 2 steps of a tiny pair (CI)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = args.math == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = args.math == "tf32"
    dev = args.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(dev)

    pairs = PAIRS
    if args.smoke:
        args.warmup, args.steps = 1, 2
        pairs = SMOKE_PAIRS
    if args.pair:
        by_name = {"%s->%s" % (t, s): (t, s, b) for t, s, b in PAIRS + SMOKE_PAIRS}
        unknown = [p for p in args.pair if p not in by_name]
        if unknown:
            sys.exit("pytorch_baseline: unknown pair %s (known: %s)" % (unknown, ", ".join(by_name)))
        pairs = [by_name[p] for p in args.pair]
    for t, s, b in pairs:
        rec = bench_pair(t, s, b, args, device)
        rec["math"] = args.math if device.type == "cuda" else "fp32"
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
