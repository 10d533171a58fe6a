#!/usr/bin/python3
"""Writes dataset fixtures in each official on-disk format with independent tools (numpy, gzip, scipy.io.savemat,
PIL), so the C++ readers are not only checked against the C++ writers in the tests, which could share their
mistakes. Pixel and label values follow the formulas of tests/data/fixtures.h.

usage: make_fixtures.py OUT_DIR cifar10|cifar100|idx|svhn|imagefolder|mixed_imagefolder

mixed_imagefolder also writes torchvision's own results (Resize + CenterCrop through torchvision.datasets.ImageFolder,
and PIL crop + resize for fixed boxes) as the reference the C++ reader must match.
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


# (file, width, height, PIL mode) of the mixed-size ImageFolder: RGB, grey and RGBA PNGs, and one JPEG.
MIXED = {
    "train": [("a/1_rgb.png", 20, 30, "RGB"), ("a/2_grey.png", 47, 33, "L"), ("a/3_rgba.png", 64, 64, "RGBA"),
              ("b/1_rgb.png", 9, 50, "RGB"), ("b/2_photo.jpg", 64, 48, "RGB"), ("b/3_rgb.png", 33, 47, "RGB")],
    "test": [("a/1_rgb.png", 40, 28, "RGB"), ("a/2_grey.png", 25, 25, "L"), ("b/1_rgb.png", 31, 60, "RGB"),
             ("b/2_big.png", 300, 200, "RGB")],
}
MIXED_SIZES = (24, 32)


def crop_boxes(w, h):
    """(x, y, w, h) boxes shared with image_folder_test.cpp: the whole image, an inner box, a right-hand strip."""
    return [(0, 0, w, h), (w // 4, h // 5, max(1, w // 2), max(1, h // 2)), (w - 1 - w // 3, 0, w // 3 + 1, h)]


def mixed_imagefolder(out):
    import torchvision
    from PIL import Image
    from torchvision import transforms

    rng = np.random.RandomState(17)
    for split, files in MIXED.items():
        for name, w, h, mode in files:
            path = os.path.join(out, split, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            c = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
            # Noise on a gradient: noise is the hardest case for a resampler, the gradient keeps a JPEG close.
            y, x = np.indices((h, w))
            base = (x * 255 // max(1, w - 1) + y * 3)[..., None] + np.arange(c) * 40
            arr = ((base + rng.randint(0, 60, (h, w, c))) % 256).astype(np.uint8)
            img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode)
            if name.endswith(".jpg"):
                img.save(path, quality=95, subsampling=0)
            else:
                img.save(path)
    # A separate folder with a truncated PNG (its header intact) and garbage bytes named .jpg.
    good = os.path.join(out, "corrupt", "train", "a", "a_ok.png")
    os.makedirs(os.path.dirname(good))
    Image.fromarray(rng.randint(0, 256, (10, 12, 3)).astype(np.uint8), "RGB").save(good)
    data = open(good, "rb").read()
    open(os.path.join(out, "corrupt", "train", "a", "b_truncated.png"), "wb").write(data[: len(data) // 2])
    os.makedirs(os.path.join(out, "corrupt", "train", "b"))
    open(os.path.join(out, "corrupt", "train", "b", "c_garbage.jpg"), "wb").write(rng.bytes(300))

    for split in MIXED:
        for size in MIXED_SIZES:
            t = transforms.Compose([transforms.Resize(round(size / 0.875)), transforms.CenterCrop(size)])
            ds = torchvision.datasets.ImageFolder(os.path.join(out, split), transform=t)
            with open(os.path.join(out, "ref_eval_%s_%d.bin" % (split, size)), "wb") as f:
                for img, _ in ds:
                    f.write(np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1)).tobytes())
        ds = torchvision.datasets.ImageFolder(os.path.join(out, split))
        with open(os.path.join(out, "ref_files_%s.txt" % split), "w") as f:
            for p, label in ds.samples:
                f.write("%s %d\n" % (os.path.relpath(p, out), label))
        # Crop then resize (RandomResizedCrop's F.resized_crop on a PIL image) for the fixed boxes, size 24.
        with open(os.path.join(out, "ref_crops_%s.bin" % split), "wb") as f:
            for p, _ in ds.samples:
                img = Image.open(p).convert("RGB")
                for x, y, w, h in crop_boxes(*img.size):
                    r = transforms.functional.resized_crop(img, y, x, h, w, [24, 24])
                    f.write(np.ascontiguousarray(np.asarray(r).transpose(2, 0, 1)).tobytes())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    globals()[sys.argv[2]](sys.argv[1])
