#!/usr/bin/env python3
"""Compares two directories of train / train_kd outputs: every checkpoint's tensors byte for byte (and its metadata
but the run config and data description), every metrics line's values but timings (and the config line). Exit 1 on any difference.
The Trainer refactor (issue 14) was checked with it against the binaries before it (tests/apps/golden_runs.sh).

  compare_runs.py DIR_A DIR_B             two folders
  compare_runs.py --digest DIR > FILE     a digest of one folder (sha256 of each tensor, metrics but timings)
  compare_runs.py --check FILE DIR        DIR against a committed digest; skipped (exit 0, "skipped: ...") on a CPU
                                          other than the digest's, whose float rounding differs (oneDNN's ISA)"""
import hashlib, json, os, struct, sys

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
            for key in ("config", "data"):  # the run config and the data description (classes, normalisation)
                ma.pop(key, None), mb.pop(key, None)
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


def cpu():
    model, flags = "?", ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name") and model == "?":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = " ".join(sorted(f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "amx"))))
    return f"{model} [{flags}] block={os.environ.get('ISLKD_CPU_CHANNEL_BLOCK', '')} " \
           f"isa={os.environ.get('ONEDNN_MAX_CPU_ISA', '')}"


def restrict(got, want, added):
    """`got` without the object keys `want` lacks (metrics and metadata added after the digest was made: top-5, the
    best epoch, the data description), whose names go to `added`; every key of the digest must keep its value."""
    if isinstance(got, dict) and isinstance(want, dict):
        added.update(k for k in got if k not in want)
        return {k: restrict(v, want[k], added) for k, v in got.items() if k in want}
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [restrict(g, w, added) for g, w in zip(got, want)]
    return got


def digest(d):
    out = {"cpu": cpu(), "files": {}}
    for f in sorted(os.listdir(d)):
        p = os.path.join(d, f)
        if f.endswith(".safetensors"):
            t, m = safetensors(p)
            m.pop("config", None)
            out["files"][f] = {"tensors": {k: hashlib.sha256(v[2]).hexdigest()[:16] for k, v in sorted(t.items())},
                               "metadata": m}
        elif f.endswith(".jsonl"):
            out["files"][f] = [strip(json.loads(l)) for l in open(p) if "config" not in json.loads(l)]
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--digest":
        print(json.dumps(digest(sys.argv[2]), indent=1, sort_keys=True))
        sys.exit(0)
    if sys.argv[1] == "--check":
        want, got = json.load(open(sys.argv[2])), digest(sys.argv[3])
        if want["cpu"] != got["cpu"]:
            print(f"skipped: the digest was made on {want['cpu']}, this is {got['cpu']}")
            sys.exit(0)
        added = set()
        bad = [f for f in want["files"] if want["files"][f] != restrict(got["files"].get(f), want["files"][f], added)]
        if added:
            print("not in the digest (added since; not compared): " + ", ".join(sorted(added)))
        for f in bad:
            print(f"{f}: differs from the digest")
        print("DIFFERENT" if bad else f"IDENTICAL to the digest ({len(want['files'])} files)")
        sys.exit(1 if bad else 0)
    sys.exit(main(sys.argv[1], sys.argv[2]))
