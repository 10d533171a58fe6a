#!/usr/bin/python3
"""Moves weights between PyTorch .pth files and islkd's safetensors, checked against the zoo model's state dict.

  pth_to_safetensors.py teacher.pth teacher.safetensors --model resnet56 [--num-classes 100] [--in-channels 3]
  pth_to_safetensors.py --reverse student.safetensors student.pth [--model resnet8] [--wrap model]

Forward: the .pth may hold a bare state dict or one under 'model', 'state_dict' or 'net' (RepDistiller, mdistiller
and most CIFAR repositories save one of these); `module.` prefixes (DataParallel) are stripped. The names and shapes
must equal the state dict of the PyTorch replica of --model (apps/repdistiller_models.py, whose names the C++ zoo
shares); floating tensors are written as F32, integer ones as I64, with the model in the metadata so `infer` needs
no shape flags. Reverse: an engine checkpoint (from `train`, `train_kd` or this tool) loses its optimizer, objective
and curriculum entries and is saved with torch.save as a state dict (or wrapped, --wrap) that load_state_dict
accepts strictly; --model defaults to the one recorded in the checkpoint.

--num-classes and --in-channels default to the file's own classifier and first convolution.
Exit codes: 0 written; 1 an unreadable input; 2 bad flags; 3 no torch; 4 the weights do not fit the model (the
missing, unexpected and mismatched entries are listed on stderr; nothing is written)."""
import argparse
import collections
import json
import os
import pickle
import sys

try:
    import torch
except ImportError as e:  # pragma: no cover - a machine without python3-torch
    print("pth_to_safetensors.py: cannot import torch (%s); install python3-torch" % e, file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import repdistiller_models  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

EXIT_UNREADABLE, EXIT_MISMATCH = 1, 4
WRAPPERS = ("model", "state_dict", "net")
ENGINE_EXTRA_PREFIXES = ("optimizer.", "curriculum.", "train.", "objective.")  # engine/checkpoint.cpp
LIST_AT_MOST = 25


class Unreadable(Exception):
    pass


def unwrap(obj, path):
    """The state dict inside what torch.load returned, and how it was wrapped."""
    how = "a bare state dict"
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict(), "a pickled model"
    if isinstance(obj, dict):
        for key in WRAPPERS:
            if key in obj and isinstance(obj[key], (dict, torch.nn.Module)):
                inner = obj[key]
                return (inner.state_dict() if isinstance(inner, torch.nn.Module) else inner), "under '%s'" % key
        tensors = {k: v for k, v in obj.items() if torch.is_tensor(v)}
        if tensors and len(tensors) == len(obj):
            return obj, how
        raise Unreadable("%s: no state dict found (top-level keys: %s; expected tensors, or a dict under %s)" %
                         (path, ", ".join(map(str, list(obj)[:8])), " / ".join("'%s'" % w for w in WRAPPERS)))
    raise Unreadable("%s: torch.load gave a %s, not a state dict" % (path, type(obj).__name__))


def strip_module(state):
    out, stripped = collections.OrderedDict(), 0
    for k, v in state.items():
        name = k
        while name.startswith("module."):
            name = name[len("module."):]
        stripped += name != k
        if name in out:
            raise Unreadable("two entries become '%s' once 'module.' is stripped" % name)
        out[name] = v
    return out, stripped


def guess_shape_flags(model_name, state):
    """(num_classes, in_channels) from the file: its classifier's rows and its first convolution's input channels,
    found by the names those tensors have in the replica."""
    ref = repdistiller_models.build(model_name, 100, 3).state_dict()
    conv = next(k for k, v in ref.items() if v.dim() == 4)
    fc = [k for k, v in ref.items() if v.dim() == 2][-1]
    k = state[fc].shape[0] if fc in state and state[fc].dim() == 2 else 100
    c = state[conv].shape[1] if conv in state and state[conv].dim() == 4 else 3
    return int(k), int(c)


def compare(state, expected):
    """Lines naming every missing, unexpected and mismatched entry (empty: the state fits)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = ["%s: file %s, model %s" % (k, list(state[k].shape), list(expected[k].shape))
              for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    kinds = ["%s: file %s, model %s" % (k, state[k].dtype, expected[k].dtype) for k in expected
             if k in state and state[k].dtype.is_floating_point != expected[k].dtype.is_floating_point]
    lines = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes),
                         ("dtype mismatch", kinds)):
        if items:
            lines.append("%s (%d):" % (title, len(items)))
            lines += ["  " + s for s in items[:LIST_AT_MOST]]
            if len(items) > LIST_AT_MOST:
                lines.append("  ... and %d more" % (len(items) - LIST_AT_MOST))
    return lines


def model_state(model_name, num_classes, in_channels):
    if model_name not in repdistiller_models.MODELS:
        raise Unreadable("unknown --model '%s' (valid names: %s)" %
                         (model_name, ", ".join(sorted(repdistiller_models.MODELS))))
    return repdistiller_models.build(model_name, num_classes, in_channels).state_dict()


def check_or_exit(state, model_name, num_classes, in_channels, source):
    expected = model_state(model_name, num_classes, in_channels)
    problems = compare(state, expected)
    if problems:
        print("pth_to_safetensors.py: %s does not fit %s (%d classes, %d input channels):" %
              (source, model_name, num_classes, in_channels), file=sys.stderr)
        for line in problems:
            print(line, file=sys.stderr)
        sys.exit(EXIT_MISMATCH)
    return expected


def forward(a):
    try:
        obj = torch.load(a.input, map_location="cpu", weights_only=not a.unsafe_pickle)
    except pickle.UnpicklingError as e:
        # torch 1.13's safe unpickler takes tensors, dicts, lists and ints only: a pickled model, or a float beside
        # the state dict (RepDistiller's 'best_acc'), needs the full one.
        why = str(e).split("WeightsUnpickler error: ")[-1].strip() or "not a safe pickle"
        raise Unreadable("%s: torch.load(weights_only=True) refused it (%s): the file holds more than tensors, "
                         "dicts, lists and ints (a float such as RepDistiller's best_acc, or a whole model); "
                         "give --unsafe-pickle if you trust the file" % (a.input, why))
    except Exception as e:  # not a torch file, truncated, ...
        raise Unreadable("%s: torch.load failed: %s" % (a.input, str(e).splitlines()[0] if str(e) else repr(e)))
    state, how = unwrap(obj, a.input)
    state, stripped = strip_module(state)
    k, c = guess_shape_flags(a.model, state) if a.model in repdistiller_models.MODELS else (100, 3)
    k = a.num_classes or k
    c = a.in_channels or c
    expected = check_or_exit(state, a.model, k, c, a.input)
    out, converted = collections.OrderedDict(), 0
    for name, ref in expected.items():  # the replica's order, which is the engine's
        t = state[name].detach().cpu()
        want = torch.float32 if ref.dtype.is_floating_point else torch.int64
        converted += t.dtype != want
        out[name] = t.to(want).contiguous()
    config = {"model": a.model, "num_classes": k, "in_channels": c}
    write_safetensors(a.output, out, {"source": "pth_to_safetensors.py " + os.path.basename(a.input),
                                      "config": json.dumps(config)})
    print("%s: %d tensors (%s, %d 'module.' prefixes stripped%s) fit %s (%d classes, %d input channels) -> %s" %
          (a.input, len(out), how, stripped, ", %d cast to F32/I64" % converted if converted else "", a.model, k, c,
           a.output))


def reverse(a):
    try:
        state, meta = read_safetensors(a.input)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Unreadable("%s: %s" % (a.input, e))
    dropped = [k for k in state if k.startswith(ENGINE_EXTRA_PREFIXES)]
    state = collections.OrderedDict((k, v) for k, v in state.items() if not k.startswith(ENGINE_EXTRA_PREFIXES))
    try:
        config = json.loads(meta.get("config", "{}"))
    except ValueError:
        config = {}
    config = config if isinstance(config, dict) else {}
    model = a.model or config.get("model")
    if not model:
        raise Unreadable("%s: no model recorded in its metadata; give --model" % a.input)
    k, c = guess_shape_flags(model, state) if model in repdistiller_models.MODELS else (100, 3)
    k = a.num_classes or config.get("num_classes") or k
    c = a.in_channels or config.get("in_channels") or c
    expected = check_or_exit(state, model, int(k), int(c), a.input)
    out = collections.OrderedDict((name, state[name].to(ref.dtype).contiguous()) for name, ref in expected.items())
    tmp = "%s.tmp.%d" % (a.output, os.getpid())  # written whole, then renamed (the engine's rule for its files)
    torch.save(out if a.wrap == "none" else {a.wrap: out}, tmp)
    os.replace(tmp, a.output)
    print("%s: %d tensors of %s (%d classes, %d input channels; %d optimizer/objective/curriculum entries dropped) "
          "-> %s (%s)" % (a.input, len(out), model, int(k), int(c), len(dropped), a.output,
                          "a bare state dict" if a.wrap == "none" else "under '%s'" % a.wrap))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help=".pth (forward) or .safetensors (with --reverse)")
    p.add_argument("output", help=".safetensors (forward) or .pth (with --reverse)")
    p.add_argument("--model", help="zoo model name (required forward; reverse: default from the checkpoint)")
    p.add_argument("--num-classes", type=int, help="classes (default: the file's classifier)")
    p.add_argument("--in-channels", type=int, help="input channels (default: the file's first convolution)")
    p.add_argument("--reverse", action="store_true", help="engine safetensors/checkpoint -> .pth state dict")
    p.add_argument("--wrap", choices=("none",) + WRAPPERS, default="none",
                   help="reverse: save the state dict bare (default) or under this key")
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="forward: let torch.load unpickle arbitrary objects (a whole saved model); trusted files only")
    a = p.parse_args()
    if not a.reverse and not a.model:
        p.error("--model is required (the .pth does not name its architecture)")
    for flag in ("num_classes", "in_channels"):
        if getattr(a, flag) is not None and getattr(a, flag) <= 0:
            p.error("--%s must be positive" % flag.replace("_", "-"))
    if os.path.abspath(a.input) == os.path.abspath(a.output):
        p.error("the input and the output are the same file")
    torch.set_num_threads(1)
    try:
        (reverse if a.reverse else forward)(a)
    except Unreadable as e:
        print("pth_to_safetensors.py: error: %s" % e, file=sys.stderr)
        return EXIT_UNREADABLE
    except OSError as e:
        print("pth_to_safetensors.py: error: %s" % e, file=sys.stderr)
        return EXIT_UNREADABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())
