#!/usr/bin/env python3
"""Compares two directories of train / train_kd outputs: every checkpoint's tensors byte for byte (and its metadata
but the run config), every metrics line's values but timings (and the config line). Exit 1 on any difference.
The Trainer refactor (issue 14) was checked with it against the binaries before it (tests/apps/golden_runs.sh)."""
import json, os, struct, sys

TIMINGS = {"train_seconds", "eval_seconds", "images_per_second", "score_seconds", "sort_seconds",
           "teacher_cache_seconds", "boundary_share_of_epoch"}


def safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}
    return tensors, meta


def strip(j):
    if isinstance(j, dict):
        return {k: strip(v) for k, v in j.items() if k not in TIMINGS}
    return j


def main(a, b):
    bad = 0
    files = sorted(f for f in os.listdir(a) if f.endswith((".safetensors", ".jsonl")))
    for f in files:
        pa, pb = os.path.join(a, f), os.path.join(b, f)
        if not os.path.exists(pb):
            print(f"{f}: missing in {b}"); bad += 1; continue
        if f.endswith(".safetensors"):
            ta, ma = safetensors(pa)
            tb, mb = safetensors(pb)
            if ta.keys() != tb.keys():
                print(f"{f}: tensor names differ: {sorted(set(ta) ^ set(tb))}"); bad += 1
            diff = [k for k in ta if k in tb and ta[k] != tb[k]]
            if diff:
                print(f"{f}: {len(diff)} tensors differ, e.g. {diff[:3]}"); bad += 1
            ma.pop("config", None), mb.pop("config", None)
            if ma != mb:
                print(f"{f}: metadata differs: {ma} vs {mb}"); bad += 1
            print(f"{f}: {len(ta)} tensors {'identical' if not diff else 'DIFFER'}")
        else:
            la = [json.loads(l) for l in open(pa)]
            lb = [json.loads(l) for l in open(pb)]
            ca = [strip(l) for l in la if "config" not in l]
            cb = [strip(l) for l in lb if "config" not in l]
            if ca != cb:
                print(f"{f}: metrics differ:\n  {ca}\n  {cb}"); bad += 1
            else:
                last = ca[-1] if ca else {}
                print(f"{f}: {len(ca)} metric lines identical; last: " +
                      json.dumps({k: last[k] for k in last if "accuracy" in k or "loss" in k}))
    print("DIFFERENT" if bad else "IDENTICAL")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
