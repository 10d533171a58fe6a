#!/usr/bin/python3
"""Data-parallel scaling model (issue 16, item 7): how far N GPUs scale a KD step before the gradient all-reduce
stops being hidden, for the KD literature's students and two ImageNet-sized ones.

  bench/dp_scaling_model.py                      # the README's table (markdown)
  bench/dp_scaling_model.py --rate-tflops 50     # another assumed compute rate

The model (weak scaling: every GPU keeps its per-GPU batch b, the global batch is N x b):

  compute per step   t_c  = b x (3 x student forward FLOPs + teacher forward FLOPs) / R
                            (backward = 2 x forward; the teacher runs forward only; FLOPs = 2 x multiply-adds,
                            counted by hooks on every Conv2d/Linear of the PyTorch replica at the dataset's size)
  all-reduce         t_ar = 2 (N-1)/N x 4 P / B  +  2 (N-1) x alpha
                            (ring all-reduce of P float32 gradients, as NCCL's ring: every GPU sends and receives
                            2 (N-1)/N of the bytes; alpha is the per-hop latency)
  step without overlap      t_c + t_ar                       (islkd today: buckets reduced after the backward)
  step with overlap         t_c + max(0, t_ar - t_bwd),      t_bwd = 2/3 of the student's share of t_c
                            (DDP/llm.c: a bucket is reduced while the backward computes the earlier layers)
  efficiency E = t_c / step: the fraction of linear speed-up kept. Scaling "stops being linear" where E < 0.9.

Assumptions, all flags: R = 100 TFLOP/s achieved (about 20% of an H100 SXM's dense TF32 peak of ~495 TFLOP/s,
convnets of this size in fp32/TF32; the CIFAR students at b = 64 are launch-bound on a real GPU, so their t_c is a
lower bound and their communication share an upper bound); B = 360 GB/s NVLink 4 (of 450 GB/s per direction),
50 GB/s (400 Gb/s InfiniBand/RoCE per GPU) and 12.5 GB/s (100 Gb/s); alpha = 3 us over NVLink, 8 us over a network.
Nothing here was measured on a GPU: the GPU check (docs/gpu) is where t_c gets a measured value.
"""
import argparse
import sys

try:
    import torch
    import torchvision
except ImportError as e:  # pragma: no cover
    print("dp_scaling_model.py: needs python3-torch and python3-torchvision (%s)" % e, file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "apps"))
import repdistiller_models as rm  # noqa: E402

# (student, teacher, dataset side, classes, per-GPU batch)
PAIRS = [
    ("resnet20", "resnet56", 32, 100, 64),
    ("resnet8x4", "resnet32x4", 32, 100, 64),
    ("wrn_16_2", "wrn_40_2", 32, 100, 64),
    ("resnet18", "resnet34", 224, 1000, 32),
    ("resnet50", "resnet101", 224, 1000, 32),
]

LINKS = [("NVLink", 360e9, 3e-6), ("400 Gb/s", 50e9, 8e-6), ("100 Gb/s", 12.5e9, 8e-6)]


def build(name, classes):
    if hasattr(torchvision.models, name) and name.startswith("resnet") and name[6:].isdigit() and int(name[6:]) >= 18:
        return getattr(torchvision.models, name)(num_classes=classes)
    return rm.build(name, classes)


def params_and_macs(name, side, classes):
    model = build(name, classes).eval()
    macs = [0]

    def hook(m, _inp, out):
        if isinstance(m, torch.nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
            macs[0] += out[0].numel() * k
        elif isinstance(m, torch.nn.Linear):
            macs[0] += m.in_features * m.out_features

    for m in model.modules():
        m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, side, side))
    return sum(p.numel() for p in model.parameters()), macs[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate-tflops", type=float, default=100.0, help="achieved compute rate R")
    ap.add_argument("--gpus", type=int, nargs="+", default=[8, 64], help="world sizes N of the table")
    a = ap.parse_args()
    rate = a.rate_tflops * 1e12
    cols = [(name, bw, alpha, n) for name, bw, alpha in LINKS for n in a.gpus if not (name == "NVLink" and n > 8)]
    print("| student (teacher), b/GPU | params | all-reduce MB | t_c ms | "
          + " | ".join("%s N=%d" % (c[0], c[3]) for c in cols) + " |")
    print("|---|---|---|---|" + "---|" * len(cols))
    for s, t, side, classes, b in PAIRS:
        p, s_macs = params_and_macs(s, side, classes)
        _, t_macs = params_and_macs(t, side, classes)
        student_flops = 3 * 2 * s_macs * b
        t_c = (student_flops + 2 * t_macs * b) / rate
        t_bwd = student_flops * (2 / 3) / rate
        cells = []
        for _name, bw, alpha, n in cols:
            t_ar = 2 * (n - 1) / n * 4 * p / bw + 2 * (n - 1) * alpha
            e0 = t_c / (t_c + t_ar)
            e1 = t_c / (t_c + max(0.0, t_ar - t_bwd))
            cells.append("%.2f ms: %.2f / %.2f" % (t_ar * 1e3, e0, e1))
        print("| %s (%s), %d | %.2f M | %.1f | %.2f | %s |" % (s, t, b, p / 1e6, 4 * p / 1e6, t_c * 1e3,
                                                               " | ".join(cells)))
    print("\nCells: all-reduce time t_ar, then efficiency E without overlap / with overlap. R = %g TFLOP/s; NVLink "
          "only within an 8-GPU node." % a.rate_tflops)

if __name__ == "__main__":
    main()
