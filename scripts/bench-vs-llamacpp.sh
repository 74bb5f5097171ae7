#!/bin/sh
# Speed of lm against llama.cpp's llama-bench, in the same run.
#
# Both tools take the same flags and write the same JSONL records, so each
# side is run with identical arguments and read by one reader. The machine
# may be shared and noisy, so the two alternate for every model and thread
# count, N times, and which goes first switches every run: a disturbance
# that lasts a while hits both sides of a pair alike.
#
# usage: scripts/bench-vs-llamacpp.sh [-l LLAMA_BENCH] [-m MODEL]... [-t THREADS] [-N runs]
#                                     [-p n_prompt] [-n n_gen] [-d depth] [-r reps]
#   -l  path of llama-bench (default: $LLAMA_BENCH)
#   -m  model; repeat or give a comma list for several (default models/default.gguf)
#   -t  thread counts, a comma list (default 2)
#   -N  runs of each side per model and thread count (default 5)
#   -p, -n, -d  passed to both: prompt tokens (default 512), generated tokens
#       (default 128), context depth (default 0); lists work as in llama-bench
#   -r  repetitions inside each call (default 1)
# Environment: LLAMA_BENCH (path of llama-bench), LM (path of lm; default ./lm).
# Prints one line per call on stderr, then a markdown table, a row per
# model, thread count and test: the median t/s of each side (avg_ts of each
# call), and the median of the ratios lm / llama.cpp of the paired runs.
set -eu

lb=${LLAMA_BENCH:-} lm=${LM:-./lm}
models='' threads=2 runs=5 np=512 ng=128 depth=0 reps=1
while getopts l:m:t:N:p:n:d:r: opt; do
    case $opt in
    l) lb=$OPTARG ;;
    m) models=${models:+$models,}$OPTARG ;;
    t) threads=$OPTARG ;;
    N) runs=$OPTARG ;;
    p) np=$OPTARG ;;
    n) ng=$OPTARG ;;
    d) depth=$OPTARG ;;
    r) reps=$OPTARG ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
    esac
done
models=${models:-models/default.gguf}
[ -n "$lb" ] || { echo "no llama-bench: pass -l PATH or set LLAMA_BENCH" >&2; exit 1; }
[ -x "$lb" ] || { echo "llama-bench not found at $lb" >&2; exit 1; }
[ -x "$lm" ] || { echo "lm not found at $lm (run make, or set LM)" >&2; exit 1; }

out=$(mktemp)
trap 'rm -f "$out" "$out.one" "$out.err"' EXIT
# One line per record: "SIDE RUN {jsonl record}".
tool() { # side, then the flags both take
    side=$1
    shift
    if [ "$side" = lm ]; then "$lm" bench "$@"; else "$lb" "$@"; fi
}
bench() { # side run model threads
    if ! tool "$1" -m "$3" -t "$4" -p "$np" -n "$ng" -d "$depth" -r "$reps" -o jsonl >"$out.one" 2>"$out.err"; then
        tail -n 5 "$out.err" >&2
        echo "$1 failed on $3 with $4 threads" >&2
        exit 1
    fi
    sed "s/^/$1 $2 /" "$out.one" >>"$out"
    echo "run $2: $1 $3 -t $4 done" >&2
}
i=1
IFS=, # the lists of models and threads; every other expansion is quoted
while [ "$i" -le "$runs" ]; do
    for m in $models; do
        for t in $threads; do
            if [ $((i % 2)) -eq 1 ]; then bench lm "$i" "$m" "$t"; bench llama "$i" "$m" "$t"
            else bench llama "$i" "$m" "$t"; bench lm "$i" "$m" "$t"; fi
        done
    done
    i=$((i + 1))
done
unset IFS

python3 - "$out" <<'EOF'
import json, statistics, sys

ts = {}  # (model, threads, test) -> {(side, run): t/s}, in the order first seen
for line in open(sys.argv[1]):
    side, run, record = line.split(" ", 2)
    r = json.loads(record)
    if r["n_gen"] == 0:
        test = "pp%d" % r["n_prompt"]
    elif r["n_prompt"] == 0:
        test = "tg%d" % r["n_gen"]
    else:
        test = "pp%d+tg%d" % (r["n_prompt"], r["n_gen"])
    if r["n_depth"] > 0:
        test += " @ d%d" % r["n_depth"]
    ts.setdefault((r["model_filename"], r["n_threads"], test), {})[(side, int(run))] = r["avg_ts"]

print("| model | threads | test | lm t/s | llama.cpp t/s | lm / llama.cpp | pairs |")
print("| ----- | ------: | ---: | -----: | ------------: | -------------: | ----: |")
for (model, threads, test), v in ts.items():
    lm = [x for (s, _), x in v.items() if s == "lm"]
    ll = [x for (s, _), x in v.items() if s == "llama"]
    # each run of lm is paired with the llama.cpp run of the same round
    pairs = [v[("lm", i)] / v[("llama", i)] for (s, i) in v if s == "lm" and ("llama", i) in v]
    print("| %s | %d | %s | %.2f | %.2f | %.3f | %d |" % (
        model, threads, test, statistics.median(lm), statistics.median(ll), statistics.median(pairs), len(pairs)))
EOF
