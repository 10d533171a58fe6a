"""PyTorch side of islkd's parity tests (run with Debian's /usr/bin/python3, which has torch and numpy).

  export: build a RepDistiller replica with random weights and random BN statistics, write its state_dict as
          safetensors (by hand: Debian packages no safetensors), a random input batch as .npy and the reference
          logits (computed in float64) as .npy.
  check:  load a safetensors file written by islkd into the replica with load_state_dict(strict=True) and compare
          its logits on an input with the logits islkd computed; prints the max relative error.
A missing torch is an error (exit 3), never a skip: CI must run this test."""
import argparse
import json
import os
import struct
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover - exercised only on a broken machine
    print("pytorch_parity.py: cannot import torch/numpy (%s); install python3-torch and python3-numpy" % e,
          file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import repdistiller_models  # noqa: E402

DTYPES = {torch.float32: ("F32", np.float32), torch.int64: ("I64", np.int64)}
NP_OF = {"F32": np.float32, "I64": np.int64}


def write_safetensors(path, state, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        code, npdt = DTYPES[t.dtype]
        raw = np.ascontiguousarray(t.detach().cpu().numpy().astype(npdt)).astype("<" + np.dtype(npdt).str[1:]).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype=np.dtype(NP_OF[info["dtype"]]).newbyteorder("<"))
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out, header.get("__metadata__", {})


def randomize(model, gen):
    """Random weights, and BN affine/running statistics far from their init so eval-mode BN is exercised."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.num_batches_tracked.fill_(int(torch.randint(0, 1000, (1,), generator=gen)))


def logits64(model, x):
    m64 = model.double().eval()
    with torch.no_grad():
        y = m64(torch.from_numpy(x).double()).numpy()
    model.float()
    return y


def cmd_export(a):
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    model = repdistiller_models.build(a.model, a.num_classes, a.in_channels)
    randomize(model, gen)
    os.makedirs(a.out_dir, exist_ok=True)
    write_safetensors(os.path.join(a.out_dir, "weights.safetensors"), model.state_dict(),
                      {"source": "pytorch_parity.py", "model": a.model})
    x = torch.randn(a.batch, a.in_channels, a.size, a.size, generator=gen).numpy().astype(np.float32)
    np.save(os.path.join(a.out_dir, "input.npy"), x)
    np.save(os.path.join(a.out_dir, "logits.npy"), logits64(model, x).astype(np.float32))
    print("exported %s: %d tensors, %d parameters" %
          (a.model, len(model.state_dict()), sum(p.numel() for p in model.parameters())))


def cmd_check(a):
    model = repdistiller_models.build(a.model, a.num_classes, a.in_channels)
    state, _ = read_safetensors(a.weights)
    expected = model.state_dict()
    for name, t in expected.items():
        if name in state and state[name].dtype != t.dtype:
            print("tensor %s: dtype %s, PyTorch expects %s" % (name, state[name].dtype, t.dtype), file=sys.stderr)
            return 1
    model.load_state_dict(state, strict=True)  # raises on any missing/unexpected name or wrong shape
    x = np.load(a.input)
    ref = logits64(model, x)
    got = np.load(a.logits).astype(np.float64)
    if got.shape != ref.shape:
        print("logits shape %s, PyTorch gives %s" % (got.shape, ref.shape), file=sys.stderr)
        return 1
    rel = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
    print("max_rel_error %.3e" % rel)
    return 0 if rel <= a.tolerance else 1


def cmd_count(a):
    for name in repdistiller_models.MODELS:
        m = repdistiller_models.build(name, a.num_classes, a.in_channels)
        print(name, sum(p.numel() for p in m.parameters()), len(m.state_dict()))


def cmd_names(a):
    for name in repdistiller_models.MODELS:
        m = repdistiller_models.build(name, a.num_classes, a.in_channels)
        for k, t in m.state_dict().items():
            print("%s %s %s [%s]" % (name, k, DTYPES[t.dtype][0], ", ".join(str(d) for d in t.shape)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("export", "check", "count", "names"):
        s = sub.add_parser(name)
        s.add_argument("--num-classes", type=int, default=100)
        s.add_argument("--in-channels", type=int, default=3)
        if name not in ("count", "names"):
            s.add_argument("--model", required=True, choices=sorted(repdistiller_models.MODELS))
    e = sub.choices["export"]
    e.add_argument("--out-dir", required=True)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--batch", type=int, default=4)
    e.add_argument("--size", type=int, default=32)
    c = sub.choices["check"]
    c.add_argument("--weights", required=True)
    c.add_argument("--input", required=True)
    c.add_argument("--logits", required=True)
    c.add_argument("--tolerance", type=float, default=1e-4)
    a = p.parse_args()
    torch.set_num_threads(1)
    return {"export": cmd_export, "check": cmd_check, "count": cmd_count, "names": cmd_names}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
