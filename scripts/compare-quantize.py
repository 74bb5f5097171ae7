#!/usr/bin/env python3
"""lm quantize against llama.cpp's llama-quantize: the same input, tensor by
tensor, and the wall time of both.

usage: compare-quantize.py [--llama-quantize PATH] [--input F16.gguf] [--lm PATH]
                           [--types q8_0,q4_0,...] [--threads N] [--runs N] [--keep DIR]
                           [--flags="--pure --leave-output-tensor"]

PATH of llama-quantize: --llama-quantize, else $LLAMA_QUANTIZE. The input:
--input, else $LM_QUANTIZE_INPUT (an F16 or F32 model; llama-quantize makes
one from any model: llama-quantize --allow-requantize IN.gguf F16.gguf F16).
For each type both tools write a file (threads N each, default 2; the time
is the best of --runs, default 1, the two taking turns; wall and CPU
seconds, the latter steadier on a shared machine), and the files are
compared with gguf-py: the tensors (same names, order, types, shapes and
data bytes), the metadata (same keys, types and values), and the whole
files byte for byte. --flags go to both tools (they spell --pure and
--leave-output-tensor alike; give them as --flags=--pure). One row per
type; exit status 1 when any tensor or key differs.
"""
import argparse
import filecmp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from gguf import GGUFReader

DEFAULT_TYPES = ("q8_0,q6_k,q5_0,q5_1,q4_0,q4_1,q5_k_m,q5_k_s,q4_k_m,q4_k_s,q3_k_l,q3_k_m,q3_k_s,q2_k,"
                 "f16,bf16,f32")
here = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    """Wall and CPU (user + system) seconds of cmd; its output is shown only when it fails."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.stdout.write(p.stdout.decode(errors="replace")[-4000:])
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def best_of(cmds, runs):
    """The best wall and CPU seconds of each command, run in turns so that
    both see the same load on a shared machine."""
    best = [(float("inf"), float("inf")) for _ in cmds]
    for _ in range(runs):
        for k, (cmd, out) in enumerate(cmds):
            if os.path.exists(out):
                os.remove(out)
            wall, cpu = run(cmd)
            best[k] = (min(best[k][0], wall), min(best[k][1], cpu))
    return best


def field_value(f):
    """A metadata value as comparable Python data."""
    return f.types, [bytes(np.asarray(f.parts[i]).tobytes()) for i in f.data]


def compare(lm_path, ref_path):
    """(tensors, identical tensors, list of differences)."""
    a, b = GGUFReader(lm_path), GGUFReader(ref_path)
    diffs = []
    ka = {k: f for k, f in a.fields.items() if not k.startswith("GGUF.")}
    kb = {k: f for k, f in b.fields.items() if not k.startswith("GGUF.")}
    for k in sorted(set(ka) | set(kb)):
        if k not in ka or k not in kb:
            diffs.append(f"key {k}: only in {'llama.cpp' if k in kb else 'lm'}")
        elif field_value(ka[k]) != field_value(kb[k]):
            diffs.append(f"key {k}: values differ")
    if a.alignment != b.alignment:
        diffs.append(f"alignment {a.alignment} != {b.alignment}")
    names_a = [t.name for t in a.tensors]
    names_b = [t.name for t in b.tensors]
    if names_a != names_b:
        diffs.append("tensor order differs" if sorted(names_a) == sorted(names_b) else "tensor names differ")
    tb = {t.name: t for t in b.tensors}
    same = 0
    for t in a.tensors:
        r = tb.get(t.name)
        if r is None:
            continue
        if t.tensor_type != r.tensor_type or list(t.shape) != list(r.shape):
            diffs.append(f"{t.name}: {t.tensor_type.name} {list(t.shape)} vs {r.tensor_type.name} {list(r.shape)}")
            continue
        da = np.asarray(t.data).view(np.uint8).reshape(-1)
        db = np.asarray(r.data).view(np.uint8).reshape(-1)
        if da.shape == db.shape and np.array_equal(da, db):
            same += 1
        else:
            n = int(np.count_nonzero(da != db)) if da.shape == db.shape else -1
            diffs.append(f"{t.name} ({t.tensor_type.name}): {n} bytes differ")
    return len(b.tensors), same, diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-quantize", default=os.environ.get("LLAMA_QUANTIZE"))
    ap.add_argument("--input", default=os.environ.get("LM_QUANTIZE_INPUT"))
    ap.add_argument("--lm", default=os.path.join(os.path.dirname(here), "lm"))
    ap.add_argument("--types", default=DEFAULT_TYPES)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--keep", help="write the files here and keep them (default: a temporary folder)")
    ap.add_argument("--flags", default="", help="more flags for both tools")
    args = ap.parse_args()
    if not args.llama_quantize or not args.input:
        ap.error("needs llama-quantize (--llama-quantize or $LLAMA_QUANTIZE) and an input (--input or $LM_QUANTIZE_INPUT)")
    work = args.keep or tempfile.mkdtemp(prefix="compare-quantize-")
    os.makedirs(work, exist_ok=True)
    flags = args.flags.split()
    print(f"input: {args.input}, {args.threads} threads, best of {args.runs} run(s){', ' if flags else ''}"
          f"{' '.join(flags)}\n")
    print(f"| {'type':8} | {'tensors':>7} | {'identical':>9} | {'metadata':8} | {'file':4} | {'lm MiB':>7} | "
          f"{'lm s':>6} | {'llama.cpp s':>11} | {'lm cpu s':>8} | {'llama.cpp cpu s':>15} |")
    print(f"|{'-' * 10}|{'-' * 8}:|{'-' * 10}:|{'-' * 10}|{'-' * 6}|{'-' * 8}:|{'-' * 7}:|{'-' * 12}:|{'-' * 9}:|"
          f"{'-' * 16}:|")
    failed = False
    for ty in args.types.split(","):
        out_lm = os.path.join(work, f"lm-{ty}.gguf")
        out_ref = os.path.join(work, f"llama-{ty}.gguf")
        lm_cmd = [args.lm, "quantize", args.input, out_lm, ty, "--threads", str(args.threads), "--force"] + flags
        ref_cmd = [args.llama_quantize, "--allow-requantize"] + flags + [args.input, out_ref, ty.upper(),
                                                                           str(args.threads)]
        (t_lm, c_lm), (t_ref, c_ref) = best_of([(lm_cmd, out_lm), (ref_cmd, out_ref)], args.runs)
        n, same, diffs = compare(out_lm, out_ref)
        meta = "same" if not any(d.startswith("key ") for d in diffs) else "DIFFERS"
        whole = "same" if filecmp.cmp(out_lm, out_ref, shallow=False) else "differs"
        print(f"| {ty:8} | {n:7} | {same:9} | {meta:8} | {whole:4} | {os.path.getsize(out_lm) / 2**20:7.1f} | "
              f"{t_lm:6.2f} | {t_ref:11.2f} | {c_lm:8.2f} | {c_ref:15.2f} |", flush=True)
        for d in diffs[:10]:
            print(f"    {d}")
        failed = failed or bool(diffs)
    if not args.keep:
        shutil.rmtree(work)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
