# PyTorch references for tests/kernels/distill_losses_torch_test.cpp, reproducing the upstream modules (read from
# the public code, written anew here) in float64 autograd. Reads a JSON list of cases from argv[1], prints JSON.
#   dkd:    mdistiller mdistiller/distillers/DKD.py dkd_loss (gt mask, cat_mask, torch.log of the binary masses,
#           kl_div(size_average=False) * T^2 / batch, the non-target part through softmax(x/T - 1000 * gt_mask)),
#           total = CE_WEIGHT * cross_entropy + min(epoch / WARMUP, 1) * dkd_loss; mdistiller's CIFAR-100 defaults
#           CE_WEIGHT 1.0, ALPHA 1.0, BETA 8.0, T 4.0, WARMUP 20 come in with the case.
#   at:     RepDistiller distiller_zoo/AT.py Attention(p=2): at(f) = F.normalize(f.pow(2).mean(1).view(N, -1)),
#           the larger map adaptive_avg_pool2d'ed to the smaller, (at(s) - at(t)).pow(2).mean() per pair; summed and
#           times beta (1000, run_cifar_distill.sh) as train_student.py does.
#   fitnet: RepDistiller models/util.py ConvReg (conv with bias, BatchNorm2d in training mode, ReLU) with the given
#           parameters, distiller_zoo/FitNet.py HintLoss = nn.MSELoss() (mean).
# Gradients: w.r.t. the student logits / features (and the regressor's conv weight for fitnet).
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def dkd_case(c):
    s = torch.tensor(c["student"], dtype=torch.float64, requires_grad=True)
    t = torch.tensor(c["teacher"], dtype=torch.float64)
    y = torch.tensor(c["labels"], dtype=torch.int64)
    T, alpha, beta, ce_w, warm = (float(c[k]) for k in ("T", "alpha", "beta", "ce_weight", "warmup"))
    gt = torch.zeros_like(s).scatter_(1, y.unsqueeze(1), 1).bool()
    other = torch.ones_like(s).scatter_(1, y.unsqueeze(1), 0).bool()

    def cat_mask(p):
        return torch.cat([(p * gt).sum(1, keepdim=True), (p * other).sum(1, keepdim=True)], dim=1)

    ps, pt = cat_mask(F.softmax(s / T, dim=1)), cat_mask(F.softmax(t / T, dim=1))
    tckd = F.kl_div(torch.log(ps), pt, reduction="sum") * T ** 2 / y.shape[0]
    pt2 = F.softmax(t / T - 1000.0 * gt, dim=1)
    ls2 = F.log_softmax(s / T - 1000.0 * gt, dim=1)
    nckd = F.kl_div(ls2, pt2, reduction="sum") * T ** 2 / y.shape[0]
    ce = F.cross_entropy(s, y)
    total = ce_w * ce + warm * (alpha * tckd + beta * nckd)
    total.backward()
    return {"loss": total.item(), "tckd": tckd.item(), "nckd": nckd.item(), "ce": ce.item(),
            "grad": s.grad.flatten().tolist()}


def at_map(f):
    return F.normalize(f.pow(2).mean(1).view(f.size(0), -1))


def at_case(c):
    beta = float(c["beta"])
    ss = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in c["student"]]
    ts = [torch.tensor(x, dtype=torch.float64) for x in c["teacher"]]
    total = 0.0
    for fs, ft in zip(ss, ts):
        sh, th = fs.shape[2], ft.shape[2]
        if sh > th:
            fs = F.adaptive_avg_pool2d(fs, (th, th))
        elif sh < th:
            ft = F.adaptive_avg_pool2d(ft, (sh, sh))
        total = total + (at_map(fs) - at_map(ft)).pow(2).mean()
    total = beta * total
    total.backward()
    return {"loss": total.item(), "grads": [x.grad.flatten().tolist() for x in ss]}


def fitnet_case(c):
    fs = torch.tensor(c["student"], dtype=torch.float64, requires_grad=True)
    ft = torch.tensor(c["teacher"], dtype=torch.float64)
    w = torch.tensor(c["conv_weight"], dtype=torch.float64)
    k, stride, pad = w.shape[2], int(c["stride"]), int(c["pad"])
    conv = nn.Conv2d(w.shape[1], w.shape[0], k, stride, pad).double()
    bn = nn.BatchNorm2d(w.shape[0]).double()
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(torch.tensor(c["conv_bias"], dtype=torch.float64))
        bn.weight.copy_(torch.tensor(c["bn_weight"], dtype=torch.float64))
        bn.bias.copy_(torch.tensor(c["bn_bias"], dtype=torch.float64))
    bn.train()
    loss = nn.MSELoss()(F.relu(bn(conv(fs))), ft)
    loss.backward()
    return {"loss": loss.item(), "grad": fs.grad.flatten().tolist(), "conv_grad": conv.weight.grad.flatten().tolist()}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    run = {"dkd": dkd_case, "at": at_case, "fitnet": fitnet_case}
    print(json.dumps({"torch": torch.__version__, "cases": [run[c["kind"]](c) for c in cases]}))


if __name__ == "__main__":
    main()
