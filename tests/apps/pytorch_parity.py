"""PyTorch side of islkd's parity tests (run with Debian's /usr/bin/python3, which has torch and numpy).

  export: build a RepDistiller replica with random weights and random BN statistics, write its state_dict as
          safetensors (apps/safetensors_io.py: Debian packages no safetensors), a random input batch as .npy and the reference
          logits (computed in float64) as .npy.
  check:  load a safetensors file written by islkd (or a .pth state dict, bare or under one key) into the replica
          with load_state_dict(strict=True) and compare its logits on an input with the logits islkd computed;
          prints the max relative error.
  export-pth: as export, but the state dict is saved with torch.save, every name prefixed with `module.`
          (DataParallel), bare or under a key (--wrap model|state_dict|net, beside other entries as training
          scripts save them): the inputs of apps/pth_to_safetensors.py's tests.
  rewrap: a .pth state dict saved again with `module.` prefixes under --wrap.
  fashion: a .pth's replica on the first --limit Fashion-MNIST test images, normalised as islkd does: writes them
          (input.npy), the float64 logits (logits.npy) and prints "accuracy <percent>".
A missing torch is an error (exit 3), never a skip: CI must run this test."""
import argparse
import collections
import gzip
import os
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover - exercised only on a broken machine
    print("pytorch_parity.py: cannot import torch/numpy (%s); install python3-torch and python3-numpy" % e,
          file=sys.stderr)
    sys.exit(3)

# The model replicas and the safetensors writer live beside the tools that use them (apps/): one copy of each.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "apps"))
import repdistiller_models  # noqa: E402
from safetensors_io import WRITE_DTYPES as DTYPES, read_safetensors, write_safetensors  # noqa: E402,F401


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


WRAPPERS = ("model", "state_dict", "net")


def load_pth(path):
    """A state dict from a .pth (bare or wrapped, `module.` prefixes) or an engine safetensors (model state only)."""
    if path.endswith(".safetensors"):
        state, _ = read_safetensors(path)
        return collections.OrderedDict((k, v) for k, v in state.items()
                                       if not k.startswith(("optimizer.", "curriculum.", "train.", "objective.")))
    obj = torch.load(path, map_location="cpu")  # the test's own files
    for key in WRAPPERS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    return collections.OrderedDict((k[len("module."):] if k.startswith("module.") else k, v) for k, v in obj.items())


def wrapped(state, wrap):
    """RepDistiller saves {'epoch', 'model', 'best_acc', ...}: its float needs torch.load's full unpickler (1.13's
    weights_only one refuses floats), which the converter allows only with --unsafe-pickle."""
    state = collections.OrderedDict(("module." + k, v) for k, v in state.items())
    if wrap == "none":
        return state
    return {"epoch": 240, wrap: state, "best_acc": 73.5} if wrap == "model" else {"epoch": 240, wrap: state}


def cmd_export_pth(a):
    gen = torch.Generator().manual_seed(a.seed)
    model = repdistiller_models.build(a.model, a.num_classes, a.in_channels)
    randomize(model, gen)
    os.makedirs(a.out_dir, exist_ok=True)
    torch.save(wrapped(model.state_dict(), a.wrap), os.path.join(a.out_dir, "weights.pth"))
    x = torch.randn(a.batch, a.in_channels, a.size, a.size, generator=gen).numpy().astype(np.float32)
    np.save(os.path.join(a.out_dir, "input.npy"), x)
    np.save(os.path.join(a.out_dir, "logits.npy"), logits64(model, x).astype(np.float32))
    print("exported %s as weights.pth (wrap %s, module. prefixes)" % (a.model, a.wrap))


def cmd_rewrap(a):
    torch.save(wrapped(load_pth(a.input), a.wrap), a.output)


FASHION_MEAN, FASHION_STD = 0.2860, 0.3530  # data/dataset.cpp standard_normalization("fashion-mnist")


def cmd_fashion(a):
    with gzip.open(os.path.join(a.data_path, "t10k-images-idx3-ubyte.gz")) as f:
        pixels = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)[:a.limit]
    with gzip.open(os.path.join(a.data_path, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)[:a.limit]
    x = ((pixels.astype(np.float32) / 255.0 - FASHION_MEAN) / FASHION_STD).astype(np.float32)
    model = repdistiller_models.build(a.model, a.num_classes, a.in_channels)
    model.load_state_dict(load_pth(a.weights), strict=True)
    y = logits64(model, x)
    os.makedirs(a.out_dir, exist_ok=True)
    np.save(os.path.join(a.out_dir, "input.npy"), x)
    np.save(os.path.join(a.out_dir, "logits.npy"), y.astype(np.float32))
    print("accuracy %.2f" % (100.0 * float((y.argmax(1) == labels).mean())))


def cmd_check(a):
    model = repdistiller_models.build(a.model, a.num_classes, a.in_channels)
    state = load_pth(a.weights) if a.weights.endswith(".pth") else read_safetensors(a.weights)[0]
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
    for name in ("export", "check", "count", "names", "export-pth", "rewrap", "fashion"):
        s = sub.add_parser(name)
        s.add_argument("--num-classes", type=int, default=100)
        s.add_argument("--in-channels", type=int, default=3)
        if name not in ("count", "names", "rewrap"):
            s.add_argument("--model", required=True, choices=sorted(repdistiller_models.MODELS))
    e = sub.choices["export"]
    e.add_argument("--out-dir", required=True)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--batch", type=int, default=4)
    e.add_argument("--size", type=int, default=32)
    e = sub.choices["export-pth"]
    e.add_argument("--out-dir", required=True)
    e.add_argument("--wrap", choices=("none",) + WRAPPERS, default="none")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--batch", type=int, default=4)
    e.add_argument("--size", type=int, default=32)
    r = sub.choices["rewrap"]
    r.add_argument("--input", required=True)
    r.add_argument("--output", required=True)
    r.add_argument("--wrap", choices=("none",) + WRAPPERS, default="none")
    f = sub.choices["fashion"]
    f.add_argument("--weights", required=True)
    f.add_argument("--data-path", default="/usr/share/datasets/fashion-mnist")
    f.add_argument("--limit", type=int, default=500)
    f.add_argument("--out-dir", required=True)
    c = sub.choices["check"]
    c.add_argument("--weights", required=True)
    c.add_argument("--input", required=True)
    c.add_argument("--logits", required=True)
    c.add_argument("--tolerance", type=float, default=1e-4)
    a = p.parse_args()
    torch.set_num_threads(1)
    return {"export": cmd_export, "check": cmd_check, "count": cmd_count, "names": cmd_names,
            "export-pth": cmd_export_pth, "rewrap": cmd_rewrap, "fashion": cmd_fashion}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
