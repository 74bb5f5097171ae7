#!/usr/bin/env python3
"""Writes the golden vectors of tests/test_quants.c under tests/data/quants/.

Sources, independent of lm's C code:
  - gguf-py (gguf.quants): dequantization of every format it knows, and
    quantization of q4_0, q4_1, q5_0, q5_1, q8_0 and bf16;
  - numpy: float16 conversion, and q8_1/q8_K dequantization (d * q);
  - with --ggml-src DIR (llama.cpp's ggml/src): ggml's own ggml-quants.c,
    compiled into a temporary library and called through ctypes, for the
    quantizers gguf-py lacks (q8_1, q8_K, q2_K .. q6_K). Where both gguf-py
    and ggml implement something, the script checks they agree.
Without --ggml-src the ggml-made files already committed are left alone.

Files (little-endian, no headers; sizes follow from the file length):
  TYPE.blocks  random raw blocks        TYPE.deq    their float32 dequantization
  quant.f32    inputs for quantizers    TYPE.quant  the expected quantized bytes
  f16.f32      float32 inputs           f16.bits    numpy's float16 of them

Run from the repository root: python3 scripts/gen-quant-vectors.py [--ggml-src DIR]
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = "tests/data/quants"
QK_K = 256

# name, type, elements per block, bytes per block
FORMATS = [
    ("q4_0", T.Q4_0, 32, 18), ("q4_1", T.Q4_1, 32, 20), ("q5_0", T.Q5_0, 32, 22),
    ("q5_1", T.Q5_1, 32, 24), ("q8_0", T.Q8_0, 32, 34), ("q8_1", None, 32, 36),
    ("q2_K", T.Q2_K, 256, 84), ("q3_K", T.Q3_K, 256, 110), ("q4_K", T.Q4_K, 256, 144),
    ("q5_K", T.Q5_K, 256, 176), ("q6_K", T.Q6_K, 256, 210), ("q8_K", None, 256, 292),
    ("f16", T.F16, 1, 2), ("bf16", T.BF16, 1, 2),
]

rng = np.random.default_rng(20240611)


def rand_f16(n, positive=False):
    """Random finite float16 scales across many magnitudes, a few subnormal or zero."""
    mag = np.exp2(rng.uniform(-16, 2, n)).astype(np.float16)
    mag[rng.random(n) < 0.05] = np.float16(0)
    mag[rng.random(n) < 0.05] = np.float16(2.0**-20)  # subnormal
    sign = 1 if positive else rng.choice([-1, 1], n)
    return (mag * sign).astype(np.float16)


def raw_blocks(name, nb):
    """nb random blocks of a format, as an (nb, size) uint8 array with valid scales."""
    size = dict((f[0], f[3]) for f in FORMATS)[name]
    b = rng.integers(0, 256, (nb, size), dtype=np.uint8)

    def put_f16(off, pos=False):
        b[:, off:off + 2] = rand_f16(nb, pos).view(np.uint8).reshape(nb, 2)

    if name in ("q4_0", "q5_0", "q8_0"):
        put_f16(0)
    elif name in ("q4_1", "q5_1", "q8_1"):
        put_f16(0, True)
        put_f16(2)
    elif name in ("q4_K", "q5_K"):
        put_f16(0, True)
        put_f16(2, True)
    elif name == "q2_K":
        put_f16(80, True)
        put_f16(82, True)
    elif name == "q3_K":
        put_f16(108)
    elif name == "q6_K":
        put_f16(208)
    elif name == "q8_K":
        d = (rng.standard_normal(nb) * 1e-2).astype(np.float32)
        qs = rng.integers(-127, 128, (nb, QK_K)).astype(np.int8)
        bsums = qs.reshape(nb, 16, 16).astype(np.int32).sum(-1).astype(np.int16)
        b = np.concatenate([d.view(np.uint8).reshape(nb, 4), qs.view(np.uint8),
                            bsums.view(np.uint8).reshape(nb, 32)], axis=1)
    elif name in ("f16", "bf16"):
        v = (rng.standard_normal(nb * 2) * np.exp2(rng.uniform(-10, 10, nb * 2))).astype(np.float32)
        if name == "f16":
            b = v[:nb].astype(np.float16).view(np.uint8).reshape(nb, 2)
        else:
            b = (v[:nb].view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(nb, 2)
    return np.ascontiguousarray(b)


def dequant(name, blocks):
    nb = blocks.shape[0]
    if name == "q8_1":
        d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
        return (d * blocks[:, 4:].view(np.int8).astype(np.float32)).ravel()
    if name == "q8_K":
        d = blocks[:, 0:4].copy().view(np.float32)
        return (d * blocks[:, 4:260].copy().view(np.int8).astype(np.float32)).ravel()
    qtype = dict((f[0], f[1]) for f in FORMATS)[name]
    return quants.dequantize(blocks.reshape(nb, -1) if name not in ("f16", "bf16") else blocks.ravel(), qtype).ravel().astype(np.float32)


def quant_inputs():
    """16 rows of 256 floats: random rows of many scales, plus edge cases."""
    rows = []
    for k in range(6):
        rows.append(rng.standard_normal(QK_K) * 10.0 ** rng.uniform(-3, 2))
    out = rng.standard_normal(QK_K) * 0.1
    out[rng.integers(0, QK_K, 5)] *= 100  # outliers
    rows.append(out)
    rows.append(rng.uniform(0.5, 3.0, QK_K))  # all positive: min > 0
    rows.append(np.zeros(QK_K))
    rows.append(np.full(QK_K, 0.75))  # constant: zero range
    # exact ties for q8 rounding: each 32-block has max 127 (d = 1, id = 1) and half-integers
    ties = rng.integers(-126, 126, QK_K) + 0.5
    ties[::32] = 127
    rows.append(ties)
    # the largest magnitude is negative, and +a/-a pairs (the first one decides the sign)
    neg = rng.uniform(-1, 1, QK_K)
    neg[3::32] = -2.0
    neg[9::32] = 2.0
    neg[100] = 3.0
    neg[40] = -3.0
    rows.append(neg)
    rows.append(rng.standard_normal(QK_K) * 1e-6)  # tiny: scales round to f16 subnormals or zero
    rows.append(rng.uniform(-6e4, 6e4, QK_K))  # near the f16 range limit
    sparse = np.zeros(QK_K)
    idx = rng.integers(0, QK_K, 12)
    sparse[idx] = rng.standard_normal(12)
    rows.append(sparse)  # mostly zero sub-blocks
    rows.append(rng.uniform(-1, 1, QK_K))
    return np.concatenate(rows).astype(np.float32)


def f16_inputs():
    """Float32 values that exercise float16 conversion: ties, subnormals, overflow."""
    v = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 1e10, -1e10, np.inf, -np.inf,
         2.0**-14, 2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 2.0**-26, 3 * 2.0**-25, 1e-10, 0.1, 1 / 3]
    # exact ties between neighbouring halves (round to even), normal and subnormal
    h = rng.integers(0, 0x7bff, 200, dtype=np.uint16)
    lo = h.view(np.float16).astype(np.float64)
    hi = (h + 1).view(np.float16).astype(np.float64)
    v += list((lo + hi) / 2)
    v += list(rng.standard_normal(400) * np.exp2(rng.uniform(-30, 18, 400)))
    v = np.array(v, dtype=np.float32)
    return np.concatenate([v, -v])


GGML_STUBS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>
void ggml_abort(const char *file, int line, const char *fmt, ...) { fprintf(stderr, "ggml_abort %s:%d\n", file, line); abort(); }
size_t ggml_row_size(int type, int64_t ne) { (void)type; (void)ne; abort(); }
const char *ggml_type_name(int type) { (void)type; return "?"; }
size_t ggml_type_size(int type) { (void)type; abort(); }
"""


def load_ggml(src, tmp):
    stubs = os.path.join(tmp, "stubs.c")
    with open(stubs, "w") as f:
        f.write(GGML_STUBS)
    lib = os.path.join(tmp, "libggmlq.so")
    # plain -O2 for the baseline target: no FMA contraction, like a default build
    cmd = ["cc", "-O2", "-std=c11", "-fPIC", "-shared", "-w", "-I" + os.path.join(src, "../include"), "-I" + src,
           os.path.join(src, "ggml-quants.c"), stubs, "-o", lib, "-lm"]
    subprocess.run(cmd, check=True)
    return ctypes.CDLL(lib)


def ggml_quant(lib, name, x):
    fn = getattr(lib, f"quantize_row_{name}_ref")
    bs, size = dict((f[0], (f[2], f[3])) for f in FORMATS)[name]
    out = np.zeros(len(x) // bs * size, dtype=np.uint8)  # zeroed: q8_K leaves bsums unset for zero blocks
    x = np.ascontiguousarray(x, dtype=np.float32)
    fn(x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(len(x)))
    return out


def ggml_dequant(lib, name, blocks):
    bs = dict((f[0], f[2]) for f in FORMATS)[name]
    n = blocks.shape[0] * bs
    out = np.zeros(n, dtype=np.float32)
    getattr(lib, f"dequantize_row_{name}")(blocks.ctypes.data_as(ctypes.c_void_p),
                                            out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(n))
    return out


def write(name, arr):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(np.ascontiguousarray(arr).tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ggml-src", help="llama.cpp's ggml/src directory, for the k-quant and q8_1/q8_K quantizers")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)

    for name, _, bs, _ in FORMATS:
        nb = {32: 24, 256: 4, 1: 1024}[bs]
        blocks = raw_blocks(name, nb)
        write(f"{name}.blocks", blocks)
        write(f"{name}.deq", dequant(name, blocks))

    x = quant_inputs()
    write("quant.f32", x)
    for name, qtype in [("q4_0", T.Q4_0), ("q4_1", T.Q4_1), ("q5_0", T.Q5_0), ("q5_1", T.Q5_1),
                        ("q8_0", T.Q8_0), ("bf16", T.BF16)]:
        write(f"{name}.quant", quants.quantize(x.reshape(-1, QK_K), qtype).ravel())
    write("f16.quant", x.astype(np.float16))

    v = f16_inputs()
    write("f16.f32", v)
    with np.errstate(over="ignore"):  # the overflow to inf is part of the test
        write("f16.bits", v.astype(np.float16).view(np.uint16))

    if args.ggml_src:
        with tempfile.TemporaryDirectory() as tmp:
            lib = load_ggml(args.ggml_src, tmp)
            for name in ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0"):
                ours = np.fromfile(os.path.join(OUT, f"{name}.quant"), dtype=np.uint8)
                if not np.array_equal(ggml_quant(lib, name, x), ours):
                    sys.exit(f"gguf-py and ggml disagree on quantizing {name}")
            for name in ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K"):
                blocks = np.fromfile(os.path.join(OUT, f"{name}.blocks"), dtype=np.uint8)
                blocks = blocks.reshape(-1, dict((f[0], f[3]) for f in FORMATS)[name])
                deq = np.fromfile(os.path.join(OUT, f"{name}.deq"), dtype=np.float32)
                if not np.array_equal(ggml_dequant(lib, name, blocks), deq):
                    sys.exit(f"gguf-py/numpy and ggml disagree on dequantizing {name}")
            for name in ("q8_1", "q8_K", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"):
                write(f"{name}.quant", ggml_quant(lib, name, x))

    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{OUT}: {len(os.listdir(OUT))} files, {total} bytes")


if __name__ == "__main__":
    main()
