"""The safetensors reader and writer of islkd's Python tools (pth_to_safetensors.py, export_onnx.py, the parity tests):
Debian packages no `safetensors`, and the format is 8 bytes of header length, a JSON header and raw little-endian
data. Only the dtypes the engine reads (F32, I64) are written; F64/F16/BF16/I32 are read too (a .pth may hold them)."""
import json
import os
import struct

import numpy as np
import torch

# torch dtype -> (safetensors code, numpy dtype) for what the engine reads.
WRITE_DTYPES = {torch.float32: ("F32", np.float32), torch.int64: ("I64", np.int64)}
READ_DTYPES = {"F32": np.float32, "I64": np.int64, "F64": np.float64, "F16": np.float16, "I32": np.int32}


def write_safetensors(path, state, metadata=None):
    """state: name -> tensor (float32 or int64); metadata: str -> str (the engine's __metadata__)."""
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        code, npdt = WRITE_DTYPES[t.dtype]
        raw = np.ascontiguousarray(t.detach().cpu().numpy().astype(npdt)).astype("<" + np.dtype(npdt).str[1:]).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = "%s.tmp.%d" % (path, os.getpid())  # the engine's rule: a temporary name, flushed, then renamed
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_safetensors(path):
    """Returns (name -> tensor in file order, metadata dict). Raises ValueError on a malformed file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: %d bytes, too short for a safetensors file" % (path, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("%s: header length %d exceeds the file (%d bytes)" % (path, n, len(data)))
    try:
        header = json.loads(data[8:8 + n])
    except ValueError as e:
        raise ValueError("%s: the header is not JSON (%s)" % (path, e))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info.get("dtype") not in READ_DTYPES:
            raise ValueError("%s: tensor %s has dtype %s (readable: %s)" %
                             (path, name, info.get("dtype"), ", ".join(READ_DTYPES)))
        b, e = info["data_offsets"]
        if not 0 <= b <= e <= len(data) - base:
            raise ValueError("%s: tensor %s lies outside the file" % (path, name))
        arr = np.frombuffer(data[base + b:base + e], dtype=np.dtype(READ_DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).astype(arr.dtype.newbyteorder("=")))
    return out, header.get("__metadata__", {}) or {}
