"""Runs an ONNX file in onnxruntime on a .npy batch and compares its logits with the engine's (`infer --output`):
prints the max relative error, exit 0 within --tolerance, 1 beyond, 3 without onnxruntime. Run by the venv's python
that tests/apps/onnx_test.cpp makes in the build folder (onnxruntime comes from PyPI; Debian packages none)."""
import argparse
import sys

import numpy as np

try:
    import onnxruntime
except ImportError as e:
    print("onnx_check.py: cannot import onnxruntime (%s)" % e, file=sys.stderr)
    sys.exit(3)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--onnx", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--logits", required=True, help="the engine's logits for --input")
    p.add_argument("--tolerance", type=float, default=1e-4)
    a = p.parse_args()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(a.onnx, options, providers=["CPUExecutionProvider"])
    x = np.load(a.input).astype(np.float32)
    (got,) = session.run(["logits"], {"input": x})
    ref = np.load(a.logits).astype(np.float64)
    if got.shape != ref.shape:
        print("onnxruntime gives %s, the engine %s" % (got.shape, ref.shape), file=sys.stderr)
        return 1
    rel = float(np.abs(got.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))
    print("onnxruntime %s: max_rel_error %.3e over %d x %d logits" % (onnxruntime.__version__, rel, *got.shape))
    return 0 if rel <= a.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
