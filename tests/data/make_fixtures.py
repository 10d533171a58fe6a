#!/usr/bin/python3
"""Writes dataset fixtures in each official on-disk format with independent tools (numpy, gzip, scipy.io.savemat,
PIL), so the C++ readers are not only checked against the C++ writers in the tests, which could share their
mistakes. Pixel and label values follow the formulas of tests/data/fixtures.h.

usage: make_fixtures.py OUT_DIR cifar10|cifar100|idx|svhn|imagefolder
"""
import gzip
import os
import sys

import numpy as np


def pixels(first, n, c, h, w):
    """Array [n, c, h, w] of fixture_pixel(first + i, c, y, x)."""
    i, ch, y, x = np.indices((n, c, h, w), dtype=np.int64)
    i = i + first
    return ((i * 37 + ch * 101 + y * 7 + x * 3 + y * x) % 256).astype(np.uint8)


def labels(first, n, classes):
    return ((np.arange(first, first + n, dtype=np.int64) * 7 + 3) % classes).astype(np.uint8)


def cifar10(out):
    d = os.path.join(out, "cifar-10-batches-bin")
    os.makedirs(d)
    splits = [("data_batch_%d.bin" % b, (b - 1) * 4, 4) for b in range(1, 6)] + [("test_batch.bin", 0, 3)]
    for name, first, n in splits:
        rec = np.concatenate([labels(first, n, 10)[:, None], pixels(first, n, 3, 32, 32).reshape(n, -1)], axis=1)
        rec.astype(np.uint8).tofile(os.path.join(d, name))


def cifar100(out):
    d = os.path.join(out, "cifar-100-binary")
    os.makedirs(d)
    for name, n in (("train.bin", 6), ("test.bin", 2)):
        fine = labels(0, n, 100)
        rec = np.concatenate([(fine % 20)[:, None], fine[:, None], pixels(0, n, 3, 32, 32).reshape(n, -1)], axis=1)
        rec.astype(np.uint8).tofile(os.path.join(d, name))


def idx_file(path, arr, compress):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path + ".gz", "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def idx(out):
    d = os.path.join(out, "fashion")
    os.makedirs(d)
    # train gzip-compressed (as distributed), test raw (as after gunzip)
    idx_file(os.path.join(d, "train-images-idx3-ubyte"), pixels(0, 9, 1, 28, 28)[:, 0], True)
    idx_file(os.path.join(d, "train-labels-idx1-ubyte"), labels(0, 9, 10), True)
    idx_file(os.path.join(d, "t10k-images-idx3-ubyte"), pixels(0, 4, 1, 28, 28)[:, 0], False)
    idx_file(os.path.join(d, "t10k-labels-idx1-ubyte"), labels(0, 4, 10), False)


def svhn(out):
    import scipy.io

    d = os.path.join(out, "svhn")
    os.makedirs(d)
    for split, n, compress, ydtype in (("train", 7, True, np.float64), ("test", 5, False, np.uint8),
                                       ("extra", 3, True, np.int32)):
        X = np.ascontiguousarray(pixels(0, n, 3, 32, 32).transpose(2, 3, 1, 0))  # [h, w, c, n] as in SVHN
        digit = labels(0, n, 10).astype(np.int64)
        y = np.where(digit == 0, 10, digit).astype(ydtype).reshape(n, 1)
        scipy.io.savemat(os.path.join(d, split + "_32x32.mat"), {"X": X, "y": y}, do_compression=compress,
                         format="5")


def imagefolder(out):
    from PIL import Image

    n = 0
    for cls in ("cat", "airplane", "dog"):
        cd = os.path.join(out, "train", cls)
        os.makedirs(cd)
        for k in range(3):
            hwc = pixels(n, 1, 3, 12, 10)[0].transpose(1, 2, 0)
            img = Image.fromarray(np.ascontiguousarray(hwc), "RGB")
            if k == 2:  # JPEG, full chroma resolution: lossy, so compare with PIL's own decode
                path = os.path.join(cd, "img%d.jpg" % n)
                img.save(path, quality=95, subsampling=0)
                dec = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
                np.ascontiguousarray(dec).tofile(os.path.join(out, "decoded_%s_%d.bin" % (cls, n)))
            else:
                img.save(os.path.join(cd, "img%d.png" % n))
            n += 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    globals()[sys.argv[2]](sys.argv[1])
