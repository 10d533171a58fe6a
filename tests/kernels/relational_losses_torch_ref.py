# PyTorch references for the relational distillation losses (tests/kernels/relational_losses_torch_test.cpp and the
# objective tests tests/engine/objective_{sp,pkt,rkd}_test.cpp), reproducing RepDistiller's modules (read from the
# public code, written anew here) in float64 autograd. Reads a JSON list of cases from argv[1], prints JSON.
#   sp:  distiller_zoo/SP.py Similarity.similarity_loss: G = f f^T of the flattened features, F.normalize (rows, p 2,
#        eps 1e-12), (G_t - G_s)^2 summed / bsz^2.
#   pkt: distiller_zoo/PKT.py PKT.cosine_similarity_loss(eps=1e-7): f / (|f| + eps) (NaN -> 0), cosine matrix,
#        (M + 1) / 2, divided by its row sums, mean of t * log((t + eps) / (s + eps)).
#   rkd: distiller_zoo/RKD.py RKDLoss(w_d=25, w_a=50): pdist(squared=False, eps=1e-12) via |a|^2 + |b|^2 - 2ab clamped,
#        sqrt, diagonal zeroed, divided by the mean of its positive entries (the teacher's under no_grad);
#        smooth_l1_loss (mean); angles from F.normalize'd differences (unsqueeze(0) - unsqueeze(1)), bmm, smooth_l1.
#   vid (objective): distiller_zoo/VID.py VIDLoss per feature pair with the given parameters: regressor conv1x1
#        (no bias) -> ReLU -> conv1x1 -> ReLU -> conv1x1, pred_var = log(1 + exp(log_scale)) + eps (1e-5),
#        mean of 0.5 ((pred_mean - target)^2 / pred_var + log pred_var), the larger map adaptive_avg_pool2d'ed;
#        total = ce_weight * CE + beta * sum over pairs; gradients w.r.t. the student features, every parameter and
#        the logits.
# A case with "logits" and "labels" adds the objective's total: ce_weight * cross_entropy + beta * loss (the weighted
# sum train_student.py forms with gamma = ce_weight, alpha = 0), and returns the logits' gradient too.
import json
import sys

import torch
import torch.nn.functional as F


def sp(fs, ft):
    n = fs.shape[0]
    gs = F.normalize(fs.reshape(n, -1) @ fs.reshape(n, -1).t())
    gt = F.normalize(ft.reshape(n, -1) @ ft.reshape(n, -1).t())
    d = gt - gs
    return (d * d).view(-1, 1).sum(0)[0] / (n * n)


def pkt(fs, ft, eps=1e-7):
    n = fs.shape[0]
    s, t = fs.reshape(n, -1), ft.reshape(n, -1)
    s = s / (torch.sqrt(torch.sum(s ** 2, dim=1, keepdim=True)) + eps)
    t = t / (torch.sqrt(torch.sum(t ** 2, dim=1, keepdim=True)) + eps)
    s = torch.where(torch.isnan(s), torch.zeros_like(s), s)
    t = torch.where(torch.isnan(t), torch.zeros_like(t), t)
    ms, mt = (s @ s.t() + 1.0) / 2.0, (t @ t.t() + 1.0) / 2.0
    ms = ms / ms.sum(dim=1, keepdim=True)
    mt = mt / mt.sum(dim=1, keepdim=True)
    return torch.mean(mt * torch.log((mt + eps) / (ms + eps)))


def pdist(e, eps=1e-12):
    e_square = e.pow(2).sum(dim=1)
    prod = e @ e.t()
    res = (e_square.unsqueeze(1) + e_square.unsqueeze(0) - 2 * prod).clamp(min=eps).sqrt()
    res = res.clone()
    res[range(len(e)), range(len(e))] = 0
    return res


def rkd(fs, ft, w_d=25.0, w_a=50.0):
    n = fs.shape[0]
    s, t = fs.reshape(n, -1), ft.reshape(n, -1)
    with torch.no_grad():
        t_d = pdist(t)
        t_d = t_d / t_d[t_d > 0].mean()
    d = pdist(s)
    d = d / d[d > 0].mean()
    loss_d = F.smooth_l1_loss(d, t_d)
    with torch.no_grad():
        td = t.unsqueeze(0) - t.unsqueeze(1)
        ntd = F.normalize(td, p=2, dim=2)
        t_angle = torch.bmm(ntd, ntd.transpose(1, 2)).view(-1)
    sd = s.unsqueeze(0) - s.unsqueeze(1)
    nsd = F.normalize(sd, p=2, dim=2)
    s_angle = torch.bmm(nsd, nsd.transpose(1, 2)).view(-1)
    loss_a = F.smooth_l1_loss(s_angle, t_angle)
    return w_d * loss_d + w_a * loss_a


LOSSES = {"sp": sp, "pkt": pkt, "rkd": rkd}


def run(c):
    fs = torch.tensor(c["student"], dtype=torch.float64).reshape(c["student_shape"]).requires_grad_(True)
    ft = torch.tensor(c["teacher"], dtype=torch.float64).reshape(c["teacher_shape"])
    loss = LOSSES[c["kind"]](fs, ft, **c.get("options", {}))
    out = {"loss": loss.item()}
    total = loss
    logits = None
    if "logits" in c:
        logits = torch.tensor(c["logits"], dtype=torch.float64).requires_grad_(True)
        y = torch.tensor(c["labels"], dtype=torch.int64)
        total = float(c["ce_weight"]) * F.cross_entropy(logits, y) + float(c["beta"]) * loss
    total.backward()
    out["total"] = total.item()
    out["grad"] = fs.grad.flatten().tolist()
    if logits is not None:
        out["grad_logits"] = logits.grad.flatten().tolist()
    return out


def vid_objective(c):
    eps = 1e-5
    total = 0.0
    feats, params = [], []
    for p in c["pairs"]:
        fs = torch.tensor(p["student"], dtype=torch.float64).reshape(p["student_shape"]).requires_grad_(True)
        ft = torch.tensor(p["teacher"], dtype=torch.float64).reshape(p["teacher_shape"])
        ws = [torch.tensor(p[k], dtype=torch.float64).reshape(p[k + "_shape"]).requires_grad_(True)
              for k in ("w0", "w2", "w4")]
        ls = torch.tensor(p["log_scale"], dtype=torch.float64).requires_grad_(True)
        feats.append(fs)
        params.append(ws + [ls])
        x, t = fs, ft
        if x.shape[2] > t.shape[2]:
            x = F.adaptive_avg_pool2d(x, (t.shape[2], t.shape[2]))
        elif x.shape[2] < t.shape[2]:
            t = F.adaptive_avg_pool2d(t, (x.shape[2], x.shape[2]))
        mean = F.conv2d(F.relu(F.conv2d(F.relu(F.conv2d(x, ws[0])), ws[1])), ws[2])
        var = (torch.log(1.0 + torch.exp(ls)) + eps).view(1, -1, 1, 1)
        total = total + torch.mean(0.5 * ((mean - t) ** 2 / var + torch.log(var)))
    logits = torch.tensor(c["logits"], dtype=torch.float64).requires_grad_(True)
    y = torch.tensor(c["labels"], dtype=torch.int64)
    total = float(c["ce_weight"]) * F.cross_entropy(logits, y) + float(c["beta"]) * total
    total.backward()
    return {"total": total.item(), "grad_logits": logits.grad.flatten().tolist(),
            "grad_features": [f.grad.flatten().tolist() for f in feats],
            "grad_params": [[q.grad.flatten().tolist() for q in ps] for ps in params]}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    print(json.dumps({"cases": [vid_objective(c) if c["kind"] == "vid_objective" else run(c) for c in cases]}))


if __name__ == "__main__":
    main()
