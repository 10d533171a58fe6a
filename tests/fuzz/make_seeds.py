#!/usr/bin/python3
"""Small seed corpora for the fuzzers (valid files of each format, a few bytes to a few KB).
usage: make_seeds.py OUT_DIR   -> OUT_DIR/{idx,cifar,mat,image,safetensors,toml}/seed_*"""
import gzip
import io
import os
import sys

import numpy as np
import scipy.io

out = sys.argv[1]
for d in ("idx", "cifar", "mat", "image", "safetensors", "toml"):
    os.makedirs(os.path.join(out, d), exist_ok=True)
rng = np.random.default_rng(0)


def idx_bytes(arr):
    return bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape) + arr.tobytes()


imgs = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
labs = np.array([1, 9, 0], dtype=np.uint8)
for k, (a, b) in enumerate([(idx_bytes(imgs), idx_bytes(labs)),
                            (gzip.compress(idx_bytes(imgs)), gzip.compress(idx_bytes(labs)))]):
    with open(os.path.join(out, "idx", "seed_%d" % k), "wb") as f:
        f.write(len(a).to_bytes(2, "little") + a + b)

rec10 = np.concatenate([np.array([[3], [9]], np.uint8), rng.integers(0, 256, (2, 3072), dtype=np.uint8)], axis=1)
rec100 = np.concatenate([np.array([[19, 99]], np.uint8), rng.integers(0, 256, (1, 3072), dtype=np.uint8)], axis=1)
rec10.tofile(os.path.join(out, "cifar", "seed_10"))
rec100.tofile(os.path.join(out, "cifar", "seed_100"))

for k, (compress, ydtype) in enumerate([(True, np.float64), (False, np.uint8), (True, np.int16)]):
    buf = io.BytesIO()
    X = rng.integers(0, 256, (4, 3, 3, 2), dtype=np.uint8)
    y = np.array([[10], [3]], dtype=ydtype)
    scipy.io.savemat(buf, {"X": X, "y": y, "note": np.ones((1, 2))}, do_compression=compress)
    with open(os.path.join(out, "mat", "seed_%d" % k), "wb") as f:
        f.write(buf.getvalue())


def safetensors_bytes(tensors, metadata=None):
    """The safetensors layout by hand (Debian has no safetensors package): u64 header length, JSON, data."""
    import json
    header, data = {}, b""
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr).tobytes()
        dtype = {"float32": "F32", "int64": "I64"}[str(arr.dtype)]
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h + data


for k, tensors in enumerate([
        {"fc.weight": rng.standard_normal((3, 4)).astype(np.float32), "fc.bias": np.zeros(3, np.float32)},
        {"bn1.num_batches_tracked": np.array(7, dtype=np.int64), "bn1.running_mean": np.ones(2, np.float32)}]):
    with open(os.path.join(out, "safetensors", "seed_%d" % k), "wb") as f:
        f.write(safetensors_bytes(tensors, {"epoch": "3"} if k else None))


# Images: PNG (RGB and grey+alpha, written by hand with zlib), BMP (24-bit) and a baseline JPEG (Pillow).
import struct
import zlib


def png_bytes(w, h, color_type, channels):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + rng.integers(0, 256, w * channels, dtype=np.uint8).tobytes() for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def bmp_bytes(w, h):
    row = (w * 3 + 3) // 4 * 4
    pixels = b"".join(rng.integers(0, 256, w * 3, dtype=np.uint8).tobytes() + b"\x00" * (row - w * 3)
                      for _ in range(h))
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(pixels), 0, 0, 54) + info + pixels


seeds = {"png_rgb": png_bytes(5, 3, 2, 3), "png_ga": png_bytes(2, 4, 4, 2), "bmp": bmp_bytes(3, 2)}
try:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=80)
    seeds["jpeg"] = buf.getvalue()
except ImportError:  # python3-pil is a test package; the PNG and BMP seeds still run
    pass
for name, b in seeds.items():
    with open(os.path.join(out, "image", "seed_" + name), "wb") as f:
        f.write(b)

# TOML configs: train_kd's keys, a section, arrays, a flag, nested tables.
for k, text in enumerate([
        'method = "isl"\nlr = 0.05\nmilestones = [2, 3]\nnesterov = true\n',
        '[optimizer]\nlr = 1e-3\n[curriculum]\nstart_fraction = 0.5\npacing = "root"\n',
        'a = { b = [1, 2.5, "x"], c = false }\n"quoted key" = 1979-05-27T07:32:00Z\n',
        # non-ASCII in strings, comments and a line-ending backslash; and the two inputs that once reached
        # toml++'s __builtin_unreachable (refused by the config's check before toml++ sees them)
        '"\u041c" = \'\u00e9\' # \u00e9\nw = """x\\\n  y\u041c"""\n',
        'a = { b =\u0424\u07d7quy" = 20\n',
        "a = { b.5= 19'9-02-27T97:32:0\u041c\n"]):
    with open(os.path.join(out, "toml", "seed_%d" % k), "w", encoding="utf-8") as f:
        f.write(text)
