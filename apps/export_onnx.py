#!/usr/bin/python3
"""Exports an islkd checkpoint (or any safetensors of a zoo model) to ONNX for deployment outside the engine.

  export_onnx.py --weights student.safetensors --out student.onnx [--model resnet8] [--size 28] [--opset 13]

Builds the architecture in PyTorch (apps/repdistiller_models.py, whose state-dict names the C++ zoo shares), loads
the weights strictly (optimizer, objective and curriculum entries dropped), and runs torch.onnx.export in eval mode
with a dynamic batch axis: input `input` (N x C x H x W float32, normalised as the training data), output `logits`
(N x K). The model, classes, channels and image size default to what the checkpoint records (--model,
--num-classes, --in-channels, --size override; 32 x 32 when nothing says). The ONNX graph is for that H x W: the
zoo's final pooling depends on the map size. Prints what it wrote. Exit codes as pth_to_safetensors.py (1 an
unreadable file, 2 bad flags, 3 no torch, 4 weights that do not fit the model)."""
import argparse
import json
import os
import sys
import warnings

try:
    import torch
except ImportError as e:  # pragma: no cover - a machine without python3-torch
    print("export_onnx.py: cannot import torch (%s); install python3-torch" % e, file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pth_to_safetensors as conv  # noqa: E402  (checks names and shapes against the replica, lists mismatches)
import repdistiller_models  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="engine checkpoint or safetensors")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--model", help="zoo model (default: the checkpoint's)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--in-channels", type=int)
    p.add_argument("--size", type=int, help="input height = width (default: the checkpoint's images, else 32)")
    p.add_argument("--opset", type=int, default=13)
    a = p.parse_args()
    torch.set_num_threads(1)
    try:
        state, meta = read_safetensors(a.weights)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print("export_onnx.py: error: %s: %s" % (a.weights, e), file=sys.stderr)
        return conv.EXIT_UNREADABLE
    state = {k: v for k, v in state.items() if not k.startswith(conv.ENGINE_EXTRA_PREFIXES)}

    def recorded(key):
        try:
            j = json.loads(meta.get(key, "{}"))
            return j if isinstance(j, dict) else {}
        except ValueError:
            return {}
    config, data = recorded("config"), recorded("data")
    model = a.model or config.get("model")
    if not model:
        p.error("%s records no model; give --model" % a.weights)
    if model not in repdistiller_models.MODELS:
        p.error("unknown --model '%s' (valid names: %s)" % (model, ", ".join(sorted(repdistiller_models.MODELS))))
    k, c = conv.guess_shape_flags(model, state)
    k = a.num_classes or config.get("num_classes") or k
    c = a.in_channels or config.get("in_channels") or c
    shape = data.get("image_shape")
    size = a.size or (shape[1] if isinstance(shape, list) and len(shape) == 3 else 32)
    conv.check_or_exit(state, model, int(k), int(c), a.weights)
    net = repdistiller_models.build(model, int(k), int(c))
    net.load_state_dict({n: state[n].to(t.dtype) for n, t in net.state_dict().items()}, strict=True)
    net.eval()
    dummy = torch.zeros(1, int(c), size, size)
    tmp = "%s.tmp.%d" % (a.out, os.getpid())  # written whole, then renamed
    with torch.no_grad(), warnings.catch_warnings():
        # The zoo's final pooling branches on the map size: traced for this size, which is what --size says.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(net, dummy, tmp, input_names=["input"], output_names=["logits"], opset_version=a.opset,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)
    os.replace(tmp, a.out)
    print("%s: %s (%d classes, %d x %d x %d inputs, opset %d) -> %s (%d bytes)" %
          (a.weights, model, int(k), int(c), size, size, a.opset, a.out, os.path.getsize(a.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
