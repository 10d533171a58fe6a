# PyTorch reference values for tests/kernels/kd_loss_test.cpp: reads a JSON list of cases (student, teacher,
# labels, T, alpha) from the file named by argv[1] and prints, per case, Hinton's KD loss as the KD codebases write it
#   kd = F.kl_div(F.log_softmax(s/T), F.softmax(t/T), reduction='batchmean') * T*T,   ce = F.cross_entropy(s, y)
# with the total alpha*kd + (1-alpha)*ce and its gradient with respect to s (float64 autograd), as JSON.
import json
import sys

import torch
import torch.nn.functional as F


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    out = []
    for c in cases:
        s = torch.tensor(c["student"], dtype=torch.float64, requires_grad=True)
        t = torch.tensor(c["teacher"], dtype=torch.float64)
        y = torch.tensor(c["labels"], dtype=torch.int64)
        T, alpha = float(c["T"]), float(c["alpha"])
        kd = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean") * T * T
        ce = F.cross_entropy(s, y)
        total = alpha * kd + (1.0 - alpha) * ce
        total.backward()
        out.append({"kd": kd.item(), "ce": ce.item(), "total": total.item(), "grad": s.grad.tolist()})
    print(json.dumps({"torch": torch.__version__, "cases": out}))


if __name__ == "__main__":
    main()
