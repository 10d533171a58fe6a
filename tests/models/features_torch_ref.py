"""PyTorch side of tests/models/features_test.cpp (run with Debian's /usr/bin/python3): RepDistiller's feature lists
(`model(x, is_feat=True, preact=...)`) of the replicas in apps/repdistiller_models.py.

  shapes OUT:                every replica's feature shapes for preact False and True, as JSON.
  export --model M --out-dir D: random weights and BN statistics (weights.safetensors), an input batch (input.npy),
                             and the features of both preact modes and the logits in eval mode, computed in float64
                             (feat<preact>_<i>.npy, logits.npy)."""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "apps"))
import pytorch_parity  # noqa: E402
import repdistiller_models  # noqa: E402


def cmd_shapes(a):
    out = {}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for name in repdistiller_models.MODELS:
            m = repdistiller_models.build(name, 100).eval()
            out[name] = {str(int(p)): [list(f.shape) for f in m.feats(x, preact=p)[0]] for p in (False, True)}
    with open(a.out, "w") as f:
        json.dump(out, f)


def cmd_export(a):
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    model = repdistiller_models.build(a.model, 100)
    pytorch_parity.randomize(model, gen)
    os.makedirs(a.out_dir, exist_ok=True)
    pytorch_parity.write_safetensors(os.path.join(a.out_dir, "weights.safetensors"), model.state_dict())
    x = torch.randn(3, 3, 32, 32, generator=gen)
    np.save(os.path.join(a.out_dir, "input.npy"), x.numpy().astype(np.float32))
    m64 = model.double().eval()
    with torch.no_grad():
        for p in (0, 1):
            feats, logits = m64.feats(x.double(), preact=bool(p))
            for i, f in enumerate(feats):
                np.save(os.path.join(a.out_dir, "feat%d_%d.npy" % (p, i)), f.numpy().astype(np.float32))
            np.save(os.path.join(a.out_dir, "logits.npy"), logits.numpy().astype(np.float32))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("shapes")
    s.add_argument("out")
    e = sub.add_parser("export")
    e.add_argument("--model", required=True, choices=sorted(repdistiller_models.MODELS))
    e.add_argument("--out-dir", required=True)
    e.add_argument("--seed", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(1)
    {"shapes": cmd_shapes, "export": cmd_export}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
