#!/bin/sh
# Speed of lm against llama.cpp's llama-bench on one model, in the same run.
#
# The machine may be shared and noisy, so the two benches alternate (lm,
# llama-bench, lm, ...) N times each: a disturbance that lasts a while hits
# both sides alike.
#
# usage: scripts/bench-vs-llamacpp.sh [-m MODEL] [-N runs] [-t threads] [-p n_prompt] [-n n_gen] [-r reps]
#   -m  model (default models/default.gguf)
#   -N  alternations (default 5)
#   -t  threads (default 2)
#   -p  prompt tokens of the pp test (default 512), -n generated tokens (default 128)
#   -r  repetitions inside each bench call (default 1)
# Environment: LLAMA_BENCH (path of llama-bench; default: the reference build
# under /work/ref), LM (path of lm; default ./lm).
# Prints each run's t/s, then the medians and the ratios lm / llama.cpp:
# the ratio of the medians, and the median of the ratios of runs side by
# side (the steadier of the two on a busy machine).
set -eu

model=models/default.gguf runs=5 threads=2 np=512 ng=128 reps=1
while getopts m:N:t:p:n:r: opt; do
    case $opt in
    m) model=$OPTARG ;;
    N) runs=$OPTARG ;;
    t) threads=$OPTARG ;;
    p) np=$OPTARG ;;
    n) ng=$OPTARG ;;
    r) reps=$OPTARG ;;
    *) sed -n '2,18p' "$0" >&2; exit 2 ;;
    esac
done
lb=${LLAMA_BENCH:-/work/ref/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-bench}
lm=${LM:-./lm}
[ -x "$lb" ] || { echo "llama-bench not found at $lb (set LLAMA_BENCH)" >&2; exit 1; }
[ -x "$lm" ] || { echo "lm not found at $lm (run make, or set LM)" >&2; exit 1; }
[ -f "$model" ] || { echo "model $model not found" >&2; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=1
while [ "$i" -le "$runs" ]; do
    # One JSON line per side and run: "lm|llama <test> <t/s>".
    "$lm" bench -m "$model" -p "$np" -n "$ng" -r "$reps" -t "$threads" -o json |
        python3 -c 'import json,sys; [print("lm", r["test"], r["t/s"]) for r in json.load(sys.stdin)]' >>"$out"
    "$lb" -m "$model" -p "$np" -n "$ng" -r "$reps" -t "$threads" -o json 2>/dev/null |
        python3 -c 'import json,sys
for r in json.load(sys.stdin):
    test = ("pp%d" % r["n_prompt"]) if r["n_gen"] == 0 else ("tg%d" % r["n_gen"])
    print("llama", test, r["avg_ts"])' >>"$out"
    tail -n 4 "$out" | sed "s/^/run $i: /"
    i=$((i + 1))
done
python3 - "$out" "$model" "$threads" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
tests = sorted({t for _, t, _ in rows}, key=lambda t: (t[:2] != "pp", t))
print(f"model {sys.argv[2]}, {sys.argv[3]} threads (t/s; ratio = lm / llama.cpp):")
for t in tests:
    runs = {side: [float(v) for s, tt, v in rows if s == side and tt == t] for side in ("lm", "llama")}
    med = {side: statistics.median(v) for side, v in runs.items()}
    # each run of lm is paired with the llama.cpp run right after it, so a
    # slow spell of the machine hits both sides of a ratio
    paired = statistics.median(a / b for a, b in zip(runs["lm"], runs["llama"]))
    print(f"  {t:>6}  lm {med['lm']:8.2f}  llama.cpp {med['llama']:8.2f}  (medians of {len(runs['lm'])} runs)  "
          f"ratio of medians {med['lm'] / med['llama']:.3f}  median of paired ratios {paired:.3f}")
EOF
