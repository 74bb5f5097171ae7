#!/usr/bin/env python3
"""Greedy output and logits of lm against llama.cpp on the same model file.

usage: compare-llamacpp.py LLAMA_CPP_DIR MODEL.gguf [MODEL.gguf ...]

LLAMA_CPP_DIR is a llama.cpp source tree built with cmake (build/bin holding
libllama). The reference program scripts/llamacpp-ref.c is compiled against
it into build/llamacpp-ref. For each prompt: the first 64 greedy tokens of
both (where they diverge, llama.cpp's two top logits at that step), and the
max |difference| of the logits after the prompt, and the KL divergence of lm's
next-token distribution there from llama.cpp's.

What counts as a near tie: llama.cpp's own two attention paths (flash
attention on and off) give logits that differ by some amount on the same
prompt; a divergence whose top-2 gap is within that noise (or 0.1, whichever
is larger) is a near tie. The KL divergence is judged the same way: lm's,
averaged over the prompts, must be at most twice llama.cpp's own between its
two attention paths, and the top token after every prompt must be llama.cpp's.
Exit status 1 when a run diverges otherwise or the KL check fails."""
import math
import os
import struct
import subprocess
import sys
import tempfile

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n    ",
    "The three primary colors are",
    "Water boils at a temperature of",
    "List of the planets in the solar system:\n1.",
    "Translate to French: 'Good morning, how are you?'\n",
    "The theory of relativity was developed by",
    "Q: What is 12 times 12?\nA:",
    "In 1492, Christopher Columbus",
]
N_GEN = int(os.environ.get("N_GEN", 64))  # greedy tokens compared after each prompt
TIE = 0.1

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)


def build_ref(llama):
    out = os.path.join(root, "build", "llamacpp-ref")
    src = os.path.join(here, "llamacpp-ref.c")
    if os.path.exists(out) and os.path.getmtime(out) > os.path.getmtime(src):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    lib = os.path.join(llama, "build", "bin")
    subprocess.run(["cc", "-O2", src, "-I" + os.path.join(llama, "include"), "-I" + os.path.join(llama, "ggml", "include"),
                    "-L" + lib, "-lllama", "-lggml", "-lggml-base", "-Wl,-rpath," + lib, "-o", out], check=True)
    return out


def floats(path):
    with open(path, "rb") as f:
        data = f.read()
    return struct.unpack(f"{len(data) // 4}f", data)


def log_softmax(logits):
    top = max(logits)
    log_sum = top + math.log(math.fsum(math.exp(x - top) for x in logits))
    return [x - log_sum for x in logits]


def kl_divergence(p_logits, q_logits):
    """KL(P || Q) of the distributions softmax(p_logits), softmax(q_logits)."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return math.fsum(math.exp(a) * (a - b) for a, b in zip(lp, lq))


def argmax(xs):
    return max(range(len(xs)), key=xs.__getitem__)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ref = build_ref(sys.argv[1])
    lm = os.environ.get("LM_BIN", os.path.join(root, "lm"))
    bad = 0
    tmp = tempfile.mkdtemp()
    for model in sys.argv[2:]:
        print(f"== {model}")
        worst = 0.0
        kls, noise_kls, nofa_kls, top_same = [], [], [], 0
        for i, prompt in enumerate(PROMPTS):
            pf = os.path.join(tmp, "prompt.txt")
            with open(pf, "w") as f:
                f.write(prompt)
            ref_logits, lm_logits = os.path.join(tmp, "ref.bin"), os.path.join(tmp, "lm.bin")
            out = subprocess.run([ref, model, pf, str(N_GEN), ref_logits], check=True, capture_output=True,
                                 text=True).stdout.splitlines()
            nofa_logits = os.path.join(tmp, "nofa.bin")
            subprocess.run([ref, model, pf, "0", nofa_logits, "nofa"], check=True, capture_output=True)
            steps = [line.split() for line in out[1:]]
            want = [int(s[0]) for s in steps]
            res = subprocess.run([lm, "run", "-m", model, "-f", pf, "-n", str(N_GEN), "--temp", "0", "--jsonl", "-q",
                                  "--dump-logits", lm_logits], check=True, capture_output=True, text=True).stdout
            import json
            got = [json.loads(line)["id"] for line in res.splitlines() if '"id"' in line]
            a, b, c = floats(ref_logits), floats(lm_logits), floats(nofa_logits)
            diff = max(abs(x - y) for x, y in zip(a, b))
            noise = max(abs(x - y) for x, y in zip(a, c))
            tie_gap = max(TIE, noise)
            worst = max(worst, diff)
            kls.append(kl_divergence(a, b))
            nofa_kls.append(kl_divergence(c, b))
            noise_kls.append(kl_divergence(a, c))
            top_same += argmax(a) == argmax(b)
            same = 0
            while same < min(len(got), len(want)) and got[same] == want[same]:
                same += 1
            if same == len(want) == len(got):
                verdict = "identical"
            elif same < len(want):
                s = steps[same]
                gap = float(s[1]) - float(s[3])
                tie = gap <= tie_gap
                verdict = (f"diverge at token {same}: llama.cpp top-2 logits {s[0]}:{float(s[1]):.4f} "
                           f"{s[2]}:{float(s[3]):.4f} (gap {gap:.4f}, {'near tie' if tie else 'NOT a tie'}); lm chose {got[same] if same < len(got) else 'end'}")
                bad += not tie
            else:
                verdict = f"lm generated {len(got)} tokens, llama.cpp {len(want)}"
                bad += 1
            print(f"  prompt {i}: {same}/{len(want)} tokens equal, max |logit diff| {diff:.4f} "
                  f"(llama.cpp FA on/off: {noise:.4f}), KL {kls[-1]:.2e} "
                  f"(FA on/off: {noise_kls[-1]:.2e}; lm from FA off: {nofa_kls[-1]:.2e}): {verdict}")
        print(f"  worst max |logit diff| after the prompt: {worst:.4f}")
        kl, noise_kl = sum(kls) / len(kls), sum(noise_kls) / len(noise_kls)
        kl_ok = kl <= 2 * noise_kl and top_same == len(PROMPTS)
        print(f"  KL(llama.cpp || lm) mean {kl:.3e} max {max(kls):.3e}; llama.cpp FA on || off mean {noise_kl:.3e} "
              f"max {max(noise_kls):.3e}; KL(llama.cpp FA off || lm) mean {sum(nofa_kls) / len(nofa_kls):.3e}; ratio {kl / noise_kl if noise_kl else float('inf'):.2f}; "
              f"same top token {top_same}/{len(PROMPTS)}: {'ok' if kl_ok else 'FAIL'}")
        bad += not kl_ok
    sys.exit(1 if bad else 0)


main()
