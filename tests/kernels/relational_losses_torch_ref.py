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
#   crd (objective): crd/criterion.py CRDLoss + crd/memory.py ContrastMemory over consecutive steps with the given
#        Embed weights, memories and contrast indices (the C++ sampler's, so both sides see the same negatives):
#        Embed = Linear then x / x.pow(2).sum(1).pow(0.5); out_v2 = exp(bmm(memory_v1[idx], v2) / T), out_v1 the same
#        with memory_v2 and v1 (rows detached); Z_v1 / Z_v2 set once as mean(out) * n_data; ContrastLoss(n_data) on
#        each (eps 1e-7); the momentum update of memory_v1 / memory_v2 at y; total = ce_weight * CE + beta * CRD.
#        Per step: the total, gradients w.r.t. the logits, the student feature and the four Embed parameters, the
#        memories after the update and Z.
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


def crd_objective(c):
    eps = 1e-7
    T, mom = float(c["nce_t"]), float(c["nce_m"])
    t64 = lambda k: torch.tensor(c[k], dtype=torch.float64).reshape(c[k + "_shape"])
    mem1, mem2 = t64("memory_v1"), t64("memory_v2")
    n_data = mem1.shape[0]
    params = [t64(k).requires_grad_(True) for k in ("ws", "bs", "wt", "bt")]
    z = [-1.0, -1.0]

    def embed(x, w, b):
        x = F.linear(x.view(x.shape[0], -1), w, b)
        return x.div(x.pow(2).sum(1, keepdim=True).pow(0.5))

    def contrast_loss(x):
        bsz, m = x.shape[0], x.size(1) - 1
        pn = 1 / float(n_data)
        p_pos = x.select(1, 0)
        log_d1 = torch.div(p_pos, p_pos.add(m * pn + eps)).log()
        p_neg = x.narrow(1, 1, m)
        log_d0 = torch.div(p_neg.clone().fill_(m * pn), p_neg.add(m * pn + eps)).log()
        return -(log_d1.sum(0) + log_d0.view(-1, 1).sum(0)) / bsz

    out = []
    for st in c["steps"]:
        for q in params:
            q.grad = None
        fs = torch.tensor(st["fs"], dtype=torch.float64).reshape(st["fs_shape"]).requires_grad_(True)
        ft = torch.tensor(st["ft"], dtype=torch.float64).reshape(st["ft_shape"])
        logits = torch.tensor(st["logits"], dtype=torch.float64).requires_grad_(True)
        y = torch.tensor(st["y"], dtype=torch.int64)
        idx = torch.tensor(st["idx"], dtype=torch.int64).view(len(st["y"]), -1)
        v1, v2 = embed(fs, params[0], params[1]), embed(ft, params[2], params[3])
        bsz, k1, d = v1.shape[0], idx.shape[1], v1.shape[1]
        w1 = torch.index_select(mem1, 0, idx.view(-1)).detach().view(bsz, k1, d)
        out_v2 = torch.exp(torch.div(torch.bmm(w1, v2.view(bsz, d, 1)), T))
        w2 = torch.index_select(mem2, 0, idx.view(-1)).detach().view(bsz, k1, d)
        out_v1 = torch.exp(torch.div(torch.bmm(w2, v1.view(bsz, d, 1)), T))
        if z[0] < 0:
            z[0] = (out_v1.mean() * n_data).item()
        if z[1] < 0:
            z[1] = (out_v2.mean() * n_data).item()
        out_v1, out_v2 = torch.div(out_v1, z[0]), torch.div(out_v2, z[1])
        with torch.no_grad():
            for mem, v in ((mem1, v1), (mem2, v2)):
                pos = torch.index_select(mem, 0, y.view(-1)) * mom + v * (1 - mom)
                mem.index_copy_(0, y, pos.div(pos.pow(2).sum(1, keepdim=True).pow(0.5)))
        crd = contrast_loss(out_v1) + contrast_loss(out_v2)
        total = float(c["ce_weight"]) * F.cross_entropy(logits, torch.tensor(st["labels"], dtype=torch.int64)) + \
            float(c["beta"]) * crd
        total.sum().backward()
        out.append({"total": total.sum().item(), "grad_logits": logits.grad.flatten().tolist(),
                    "grad_fs": fs.grad.flatten().tolist(),
                    "grad_params": [q.grad.flatten().tolist() for q in params],
                    "memory_v1": mem1.flatten().tolist(), "memory_v2": mem2.flatten().tolist(), "z": list(z)})
    return {"steps": out}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    kinds = {"vid_objective": vid_objective, "crd_objective": crd_objective}
    print(json.dumps({"cases": [kinds.get(c["kind"], run)(c) for c in cases]}))


if __name__ == "__main__":
    main()
