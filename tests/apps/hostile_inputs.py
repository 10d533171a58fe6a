#!/usr/bin/python3
"""The hostile-input table: every reproduction of the hardening issue, run against the real app binaries.

Each case builds its input files (in a fresh temporary folder), runs one app under a memory and time bound
(`ulimit -v` 2 GiB and 20 s; under the Sanitize build, whose shadow memory needs terabytes of address space,
ASan's own hard_rss_limit_mb / max_allocation_size_mb instead), and expects what a user should get: a non-zero exit
with exactly one stderr line naming the problem (no control bytes, a bounded length), or for the cases that used to
hang, a clean finish. A hang, a crash or an allocation bomb fails the case instead of the machine.

usage: hostile_inputs.py --bin-dir BUILD/apps --source-dir REPO [--sanitize] [-k SUBSTRING] [-v]
"""
import argparse
import gzip
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

MEM_BYTES = 2 << 30
TIMEOUT_S = 20
COMMON = ["--device", "cpu", "--threads", "1", "--workers", "1"]


# ---- file builders (the formats' own specs, written here so the test needs nothing but Python) ----------------
def idx_images(n, h=28, w=28, seed=1):
    rows = bytes((i * 37 + seed * 11) & 0xFF for i in range(n * h * w))
    return struct.pack(">BBBBIII", 0, 0, 8, 3, n, h, w) + rows


def idx_labels(n):
    return struct.pack(">BBBBI", 0, 0, 8, 1, n) + bytes(i % 10 for i in range(n))


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def idx_dir(root, n_train=64, n_test=32):
    write(os.path.join(root, "train-images-idx3-ubyte"), idx_images(n_train))
    write(os.path.join(root, "train-labels-idx1-ubyte"), idx_labels(n_train))
    write(os.path.join(root, "t10k-images-idx3-ubyte"), idx_images(n_test, seed=2))
    write(os.path.join(root, "t10k-labels-idx1-ubyte"), idx_labels(n_test))
    return root


def png(w, h, rgb=b"\x80\x40\x20"):
    """A valid RGB PNG (filter 0 on every row) of w x h, or only its header when huge (stb's info reads IHDR)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + rgb * w for _ in range(h)) if w * h <= 1 << 16 else b"\x00" * 64
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def mat_svhn(path, n):
    """A MATLAB level-5 MAT file with X (32x32x3xN uint8) and y (Nx1 double), uncompressed, as SVHN's."""
    def tag(t, nbytes):
        return struct.pack("<II", t, nbytes)

    def pad(b):
        return b + b"\x00" * (-len(b) % 8)

    def matrix(name, mx_class, dims, mi_type, data):
        body = tag(6, 8) + struct.pack("<II", mx_class, 0)
        body += tag(5, 4 * len(dims)) + pad(struct.pack("<%di" % len(dims), *dims))
        body += tag(1, len(name)) + pad(name)
        body += tag(mi_type, len(data)) + pad(data)
        return tag(14, len(body)) + body

    header = b"MATLAB 5.0 MAT-file, islkd hostile-input test".ljust(116, b" ") + b"\x00" * 8
    header += struct.pack("<H", 0x0100) + b"IM"
    x = bytes((i * 7) & 0xFF for i in range(32 * 32 * 3 * n))
    y = struct.pack("<%dd" % n, *[float(1 + i % 10) for i in range(n)])
    write(path, header + matrix(b"X", 9, [32, 32, 3, n], 2, x) + matrix(b"y", 6, [n, 1], 9, y))
    return path


def mat_compressed_claim(path, claimed):
    """The issue's 152-byte SVHN file: one miCOMPRESSED element whose inflated tag claims `claimed` bytes."""
    header = b"MATLAB 5.0 MAT-file".ljust(116, b" ") + b"\x00" * 8 + struct.pack("<H", 0x0100) + b"IM"
    inner = zlib.compress(struct.pack("<II", 14, claimed) + b"\x00" * 8)
    write(path, header + struct.pack("<II", 15, len(inner)) + inner)
    return path


def npy(path, shape):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join("%d, " % d for d in shape)
    header = header.ljust(118) + "\n"
    n = 1
    for d in shape:
        n *= d
    write(path, b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\x00" * (4 * n))
    return path


def st_read(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), bytearray(b[8 + n:])


def st_write(path, header, data):
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    write(path, struct.pack("<Q", len(hb)) + hb + bytes(data))
    return path


def st_set_f32(header, data, name, index, value):
    start = header[name]["data_offsets"][0]
    struct.pack_into("<f", data, start + 4 * index, value)


# ---- the table ---------------------------------------------------------------------------------------------------
CASES = []


def case(name, must=(), ok=False):
    """Registers fn(ctx) -> (app, args). must: substrings of the one error line (all required); ok: expect exit 0."""
    def register(fn):
        CASES.append((name, fn, tuple(must), ok))
        return fn
    return register


def with_flags(base, extra):
    """base with the (flag, value) pairs of extra: a flag already in base gets the new value, others are added."""
    args = list(base)
    for flag, value in zip(extra[0::2], extra[1::2]):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return args


class Ctx:
    def __init__(self, bin_dir, source_dir, tmp):
        self.bin_dir, self.source_dir, self.tmp = bin_dir, source_dir, tmp
        self.teacher = os.path.join(source_dir, "teachers", "resnet20_fashion-mnist.safetensors")
        self.data = idx_dir(os.path.join(tmp, "idx"))
        self._checkpoint = None
        self.background = []  # processes a case started; killed after it

    def path(self, *parts):
        p = os.path.join(self.tmp, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def train_args(self, *extra):
        return with_flags(["--dataset", "idx", "--data-path", self.data, "--model", "resnet8", "--batch-size", "32",
                           "--epochs", "1"] + COMMON, extra)

    def kd_args(self, *extra):
        return with_flags(["--dataset", "idx", "--data-path", self.data, "--model", "resnet8", "--teacher",
                           self.teacher, "--teacher-model", "resnet20", "--batch-size", "32", "--epochs", "1"] +
                          COMMON, extra)

    def checkpoint(self):
        """A good 1-epoch `train` checkpoint of resnet8 (made once, copied by the cases that tamper with it)."""
        if self._checkpoint is None:
            out = self.path("good", "ck.safetensors")
            r = run(self, "train", self.train_args("--out", out))
            assert r.returncode == 0, "could not make the resume fixture: " + r.stderr
            self._checkpoint = out
        return self._checkpoint

    def tampered(self, name, edit):
        header, data = st_read(self.checkpoint())
        edit(header, data)
        return st_write(self.path("tampered", name + ".safetensors"), header, data)

    def teacher_with(self, name, edit):
        header, data = st_read(self.teacher)
        edit(header, data)
        return st_write(self.path("teachers", name + ".safetensors"), header, data)


# 1. Outputs onto something that is not a regular file are refused (the atomic rename used to replace it).
@case("out onto a FIFO is refused", must=["--out", "not a regular file"])
def _(c):
    p = c.path("out", "fifo")
    os.mkfifo(p)
    return "train", c.train_args("--out", p)


@case("out onto a symlink to /dev/null is refused", must=["--out", "character device"])
def _(c):
    p = c.path("out", "null-link")
    os.symlink("/dev/null", p)
    return "train", c.train_args("--out", p)


# 2. Element counts that overflow are errors, not out-of-bounds writes.
@case("infer with --num-classes 2^62 overflows cleanly", must=["overflows a 64-bit integer"])
def _(c):
    x = npy(c.path("infer", "x.npy"), (1, 1, 28, 28))
    return "infer", ["--model", "resnet20", "--in-channels", "1", "--num-classes", "4611686018427387904",
                     "--weights", c.teacher, "--input", x, "--output", c.path("infer", "o.npy"), "--device", "cpu"]


# 3. What used to hang: a huge --batch-size (one step on the whole split), a FIFO as a data file.
@case("train with --batch-size near INT64_MAX finishes", ok=True)
def _(c):
    a = c.train_args("--out", c.path("bs", "a.safetensors"))
    a[a.index("--batch-size") + 1] = "9223372036854775608"
    return "train", a


@case("train_kd --method ce with --batch-size INT64_MAX finishes", ok=True)
def _(c):
    a = c.kd_args("--method", "ce", "--out", c.path("bs", "b.safetensors"))
    a[a.index("--batch-size") + 1] = "9223372036854775807"
    return "train_kd", a


@case("a FIFO as a data file is refused without blocking", must=["FIFO", "not a regular file"])
def _(c):
    d = idx_dir(c.path("fifo-data", "x"))
    os.remove(os.path.join(d, "train-images-idx3-ubyte"))
    os.mkfifo(os.path.join(d, "train-images-idx3-ubyte"))
    return "train", c.train_args("--data-path", d, "--out", c.path("fifo-data", "o.safetensors"))


@case("a FIFO as the TOML config is refused without blocking", must=["TOML config", "FIFO"])
def _(c):
    p = c.path("cfg", "fifo.toml")
    os.mkfifo(p)
    return "train_kd", c.kd_args("--config", p, "--out", c.path("cfg", "o.safetensors"))


# 4. Memory sized by a file's claim before the check.
@case("a 152-byte SVHN .mat claiming 4 GiB is refused before allocating", must=["deflate expands at most"])
def _(c):
    d = c.path("svhn-claim", "d", "x")
    d = os.path.dirname(d)
    mat_compressed_claim(os.path.join(d, "train_32x32.mat"), 0xFFFFFFF0)
    mat_compressed_claim(os.path.join(d, "test_32x32.mat"), 0xFFFFFFF0)
    return "train", c.train_args("--dataset", "svhn", "--data-path", d, "--out", c.path("svhn-claim", "o"))


@case("a gzip IDX inflating far beyond its header's 7,856 bytes is refused at the claim",
      must=["inflates to more than the 7856 bytes its IDX header describes"])
def _(c):
    d = idx_dir(c.path("gz", "x"))
    raw = idx_images(10) + b"\x00" * (64 << 20)  # header: 10 images; the stream: 64 MiB more
    os.remove(os.path.join(d, "train-images-idx3-ubyte"))
    write(os.path.join(d, "train-images-idx3-ubyte.gz"), gzip.compress(raw, 6))
    write(os.path.join(d, "train-labels-idx1-ubyte"), idx_labels(10))
    return "train", c.train_args("--data-path", d, "--out", c.path("gz", "o.safetensors"))


@case("a 16000x16000 PNG is refused by its header before decoding", must=["16000x16000", "over the limit of"])
def _(c):
    root = c.path("bigpng", "r")
    for split in ("train", "test"):
        write(os.path.join(root, split, "a", "0.png"), png(16000, 16000))
        write(os.path.join(root, split, "b", "0.png"), png(8, 8))
    return "train", c.train_args("--dataset", "imagefolder", "--data-path", root, "--out", c.path("bigpng", "o"))


@case("--image-size: a 16000x16000 PNG among small ones is refused by its header in the loader",
      must=["1.png", "16000x16000", "over the limit of", "(entry 1)"])
def _(c):
    root = c.path("bigpng-sized", "r")
    for split in ("train", "test"):
        write(os.path.join(root, split, "a", "0.png"), png(9, 7))
        write(os.path.join(root, split, "a", "1.png"), png(16000, 16000))
    return "train", c.train_args("--dataset", "imagefolder", "--data-path", root, "--image-size", "8",
                                 "--out", c.path("bigpng-sized", "o"))


@case("--image-size: a truncated PNG is one error line naming the file and the instance",
      must=["1.png", "cannot decode image", "(entry 1)"])
def _(c):
    root = c.path("cut-png", "r")
    for split in ("train", "test"):
        write(os.path.join(root, split, "a", "0.png"), png(12, 10))
        write(os.path.join(root, split, "a", "1.png"), png(30, 20)[:60])
    return "train", c.train_args("--dataset", "imagefolder", "--data-path", root, "--image-size", "8",
                                 "--out", c.path("cut-png", "o"))


@case("a symlink to /dev/zero as an IDX file is refused", must=["character device", "not a regular file"])
def _(c):
    d = idx_dir(c.path("zero-idx", "x"))
    os.remove(os.path.join(d, "train-images-idx3-ubyte"))
    os.symlink("/dev/zero", os.path.join(d, "train-images-idx3-ubyte"))
    return "train", c.train_args("--data-path", d, "--out", c.path("zero-idx", "o.safetensors"))


@case("a symlink to /dev/zero as --weights is refused", must=["character device", "not a regular file"])
def _(c):
    w = c.path("zero-w", "w.safetensors")
    os.symlink("/dev/zero", w)
    x = npy(c.path("zero-w", "x.npy"), (1, 1, 28, 28))
    return "infer", ["--model", "resnet20", "--in-channels", "1", "--num-classes", "10", "--weights", w,
                     "--input", x, "--output", c.path("zero-w", "o.npy"), "--device", "cpu"]


@case("a symlink to /dev/zero as --teacher is refused", must=["character device", "not a regular file"])
def _(c):
    t = c.path("zero-t", "t.safetensors")
    os.symlink("/dev/zero", t)
    a = c.kd_args("--out", c.path("zero-t", "o.safetensors"))
    a[a.index("--teacher") + 1] = t
    return "train_kd", a


# 5. Silently wrong before.
@case("ImageFolder train and test classes that differ are an error", must=["test split's classes", "differ"])
def _(c):
    root = c.path("classes", "r")
    for split, classes in (("train", ("cat", "dog")), ("test", ("dog", "zebra"))):
        for k in classes:
            write(os.path.join(root, split, k, "0.png"), png(8, 8))
    return "train", c.train_args("--dataset", "imagefolder", "--data-path", root, "--out", c.path("classes", "o"))


def lr_diverges(c):
    out = c.path("diverge", "ck.safetensors")
    shutil.copy(c.checkpoint(), out)
    return "train", c.train_args("--lr", "1e30", "--out", out)


def checkpoint_kept(c):
    with open(c.path("diverge", "ck.safetensors"), "rb") as a, open(c.checkpoint(), "rb") as b:
        return a.read() == b.read(), "the good checkpoint under --out was overwritten"


case("train --lr 1e30 ends in an error and keeps the good checkpoint", must=["not written", "nan or inf"])(lr_diverges)


def resume_case(name, edit, must):
    """A `train --resume` of the good checkpoint after edit(header, data) must be refused before training."""
    @case(name, must=must)
    def _(c):
        return "train", c.train_args("--epochs", "3", "--resume", c.tampered(name.replace(" ", "_"), edit), "--out",
                                     c.path("resume", name.replace(" ", "_") + ".safetensors"))


def set_meta(key, value):
    def edit(h, d):
        h["__metadata__"][key] = value
    return edit


def reverse_shape(name):
    def edit(h, d):
        h[name]["shape"] = list(reversed(h[name]["shape"]))
    return edit


resume_case("resume from a checkpoint claiming epoch -3 is refused", set_meta("epoch", "-3"),
            ["'epoch'", "-3 is negative"])
resume_case("resume from a checkpoint claiming a negative step is refused", set_meta("step", "-1"),
            ["'step'", "is negative"])
resume_case("resume from a checkpoint whose step disagrees with its epoch is refused", set_meta("step", "5"),
            ["inconsistent counts"])
resume_case("resume with a momentum of the same size but another shape is refused",
            reverse_shape("optimizer.momentum.conv1.weight"), ["has shape", "expected"])


@case("--start-fraction 7.5 is refused", must=["--start-fraction", "7.5"])
def _(c):
    return "train_kd", c.kd_args("--method", "isl", "--start-fraction", "7.5", "--out", c.path("f", "a"))


@case("--start-fraction -1 is refused", must=["--start-fraction", "-1"])
def _(c):
    return "train_kd", c.kd_args("--method", "isl", "--start-fraction", "-1", "--out", c.path("f", "b"))


@case("--objective-options that is not a JSON object is refused", must=["--objective-options", "JSON object"])
def _(c):
    return "train_kd", c.kd_args("--objective", "kd", "--objective-options", "[1, 2", "--out", c.path("o", "a"))


@case("--objective-options with a bad kd temperature is refused", must=["temperature", "-3"])
def _(c):
    return "train_kd", c.kd_args("--objective", "kd", "--objective-options", '{"temperature": -3}',
                                 "--out", c.path("o", "b"))


@case("--curriculum with an unknown name is refused", must=["--curriculum", "sideways"])
def _(c):
    return "train_kd", c.kd_args("--objective", "ce", "--curriculum", "sideways", "--out", c.path("o", "c"))


@case("a teacher with a negative running_var is refused", must=["teacher", "negative variance"])
def _(c):
    t = c.teacher_with("negvar", lambda h, d: st_set_f32(h, d, "layer1.0.bn1.running_var", 0, -2.0))
    a = c.kd_args("--out", c.path("negvar", "o.safetensors"))
    a[a.index("--teacher") + 1] = t
    return "train_kd", a


@case("a teacher with nan weights is refused as such, not as a diverged student",
      must=["teacher", "nan or inf", "conv1.weight"])
def _(c):
    t = c.teacher_with("nan", lambda h, d: st_set_f32(h, d, "conv1.weight", 0, float("nan")))
    a = c.kd_args("--out", c.path("nanteacher", "o.safetensors"))
    a[a.index("--teacher") + 1] = t
    return "train_kd", a


@case("--data-path at one SVHN .mat file is not used as both splits", must=["same file"])
def _(c):
    m = mat_svhn(c.path("svhn1", "train_32x32.mat"), 4)
    return "train", c.train_args("--dataset", "svhn", "--data-path", m, "--out", c.path("svhn1", "o"))


def toml_case(name, text, must):
    @case(name, must=must)
    def _(c):
        p = write(c.path("toml", name.replace(" ", "_") + ".toml"), text.encode())
        return "train_kd", c.kd_args("--config", p, "--out", c.path("toml", name.replace(" ", "_") + ".st"))


toml_case("TOML nesterov = \"yes\" is refused", 'nesterov = "yes"\n', ["'nesterov' is a flag", "a string"])
toml_case("TOML nesterov = 7 is refused", "nesterov = 7\n", ["'nesterov' is a flag", "an integer"])
toml_case("TOML unknown key is named", "bogus-key = 1\n", ["unknown key 'bogus-key'"])


@case("--workers -3 is refused", must=["--workers", "-3"])
def _(c):
    a = c.train_args("--out", c.path("w", "o"))
    a[a.index("--workers") + 1] = "-3"
    return "train", a


@case("an ISL schedule longer than --epochs is refused", must=["do not fit in --epochs 2"])
def _(c):
    return "train_kd", c.kd_args("--method", "isl", "--epochs", "2", "--isl-warmup", "1", "--phases", "3",
                                 "--out", c.path("isl", "o"))


# 6. Early and readable messages.
@case("an empty test split is reported before training", must=["test split is empty"])
def _(c):
    d = idx_dir(c.path("empty-test", "x"), n_test=0)
    return "train", c.train_args("--data-path", d, "--out", c.path("empty-test", "o"))


@case("an --out in a missing directory is reported before training", must=["--out", "does not exist"])
def _(c):
    return "train", c.train_args("--out", c.path("x") + "/no/such/dir/o.safetensors")


@case("a --metrics in a missing directory is reported before training", must=["--metrics", "does not exist"])
def _(c):
    return "train", c.train_args("--out", c.path("m", "o"), "--metrics", c.path("x") + "/no/such/m.jsonl")


@case("a range error prints its bound compactly", must=["--lr", "-1 is not a finite number >= 0"])
def _(c):
    return "train", c.train_args("--lr", "-1", "--out", c.path("lr", "o"))


@case("control bytes from a file are escaped in the error line", must=["\\x1b"])
def _(c):
    header, data = st_read(c.teacher)
    header["conv1.weight"]["dtype"] = "F\x1b[2J32"
    w = st_write(c.path("esc", "w.safetensors"), header, data)
    x = npy(c.path("esc", "x.npy"), (1, 1, 28, 28))
    return "infer", ["--model", "resnet20", "--in-channels", "1", "--num-classes", "10", "--weights", w,
                     "--input", x, "--output", c.path("esc", "o.npy"), "--device", "cpu"]


@case("a second run writing the same --out is refused while the first runs", must=["being written by another process"])
def _(c):
    out = c.path("race", "o.safetensors")
    first = subprocess.Popen([os.path.join(c.bin_dir, "train")] + c.train_args("--epochs", "500", "--out", out),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=c.tmp, preexec_fn=os.setsid)
    c.background.append(first)
    deadline = time.monotonic() + 10
    while not os.path.exists(out + ".lock") and time.monotonic() < deadline:
        time.sleep(0.02)
    return "train", c.train_args("--out", out)


# ---- the runner --------------------------------------------------------------------------------------------------
class Result:
    def __init__(self, returncode, stdout, stderr, seconds):
        self.returncode, self.stdout, self.stderr, self.seconds = returncode, stdout, stderr, seconds


SANITIZE = False


def limits():
    if not SANITIZE:
        resource.setrlimit(resource.RLIMIT_AS, (MEM_BYTES, MEM_BYTES))
    os.setsid()


def run(c, app, args):
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive")
    if SANITIZE:  # ASan's shadow needs terabytes of address space: bound the RSS and each allocation instead
        env["ASAN_OPTIONS"] = "hard_rss_limit_mb=%d:max_allocation_size_mb=%d:allocator_may_return_null=1:" \
                              "detect_leaks=0" % (MEM_BYTES >> 20, MEM_BYTES >> 20)
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(c.bin_dir, app)] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=limits, env=env, cwd=c.tmp)
    try:
        out, err = p.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return Result(None, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), time.monotonic() - t0)
    return Result(p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                  time.monotonic() - t0)


def check(name, fn, must, ok, c):
    app, args = fn(c)
    try:
        r = run(c, app, args)
    finally:
        for p in c.background:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        c.background.clear()
    if r.returncode is None:
        return "timed out after %d s (a hang)" % TIMEOUT_S, r
    if r.returncode < 0:
        return "killed by signal %d (a crash)" % -r.returncode, r
    if ok:
        return (None if r.returncode == 0 else "exit %d, expected 0" % r.returncode), r
    if r.returncode == 0:
        return "exit 0, expected an error", r
    lines = r.stderr.rstrip("\n").split("\n")
    if len(lines) != 1:
        return "%d stderr lines, expected one" % len(lines), r
    line = lines[0]
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in line):
        return "control bytes in the error line", r
    if len(line) > 600:
        return "error line of %d characters" % len(line), r
    missing = [m for m in must if m not in line]
    if missing:
        return "error line lacks %s" % missing, r
    if fn is not lr_diverges and "epoch 1" in r.stdout:
        return "reported only after training started", r
    if fn is lr_diverges:
        kept, why = checkpoint_kept(c)
        if not kept:
            return why, r
    return None, r


def main():
    global SANITIZE
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--sanitize", action="store_true")
    ap.add_argument("-k", default="", help="run only the cases whose name contains this")
    ap.add_argument("-v", action="store_true", help="print every case's error line")
    o = ap.parse_args()
    SANITIZE = o.sanitize
    tmp = tempfile.mkdtemp(prefix="islkd_hostile_")
    failures = 0
    try:
        c = Ctx(os.path.abspath(o.bin_dir), os.path.abspath(o.source_dir), tmp)
        cases = [x for x in CASES if o.k in x[0]]
        for name, fn, must, ok in cases:
            why, r = check(name, fn, must, ok, c)
            status = "ok  " if why is None else "FAIL"
            print("%s %-75s %5.1f s  %s" % (status, name, r.seconds, "" if why is None else why))
            if why is not None or o.v:
                print("     stderr: " + r.stderr.strip().replace("\n", "\n             ")[:2000])
            if why is not None:
                failures += 1
        print("%d of %d cases passed (bound: %s, %d s each)" %
              (len(cases) - failures, len(cases),
               "ASan hard_rss_limit_mb=2048" if SANITIZE else "ulimit -v 2 GiB", TIMEOUT_S))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
