#!/bin/sh
# lm perplexity against llama.cpp's llama-perplexity, on one text and three
# formats of one model (F16 and Q8_0 made from it with llama-quantize, and
# the model itself), printing a table and checking the acceptance bounds of
# issue 14:
#   - PPL: lm's equals llama-perplexity's within 0.5% (F16, Q8_0; Q4_1 shown)
#   - KL divergence against llama.cpp's F16 base logits: lm on the same F16
#     file has mean KLD <= 3e-4 and the same top token >= 99% of the time;
#     on Q8_0 and Q4_1, lm's mean KLD equals llama.cpp's own within 10%
#   - llama-perplexity reads a base file written by lm (F16) and compares it
#     with its own F16 run
# Wall times of both programs are shown side by side (same threads).
#
# usage: scripts/compare-perplexity.sh -l LLAMA_BIN_DIR [-m MODEL] [-f TEXT] [-c N_CTX]
#                                      [-t THREADS] [-n CHUNKS] [-w WORKDIR]
#   -l  folder holding llama-perplexity and llama-quantize (or $LLAMA_BIN)
#   -m  the model to start from (default models/default.gguf)
#   -f  the text (default /usr/share/common-licenses/GPL-3, Debian's GPL)
#   -c  window (default 512), -t threads (default 2), -n windows (default all)
#   -w  where the made models and logits files go (default $TMPDIR/lm-ppl-compare;
#       kept between runs, so the F16/Q8_0 files are made once)
# Environment: LLAMA_BIN as -l, LM (path of lm; default ./lm).
# Exit status 0 when every check passes, 1 when one fails, 2 on a usage error.
set -eu

llama=${LLAMA_BIN:-} model=models/default.gguf text=/usr/share/common-licenses/GPL-3
ctx=512 threads=2 chunks='' work=${TMPDIR:-/tmp}/lm-ppl-compare
while getopts l:m:f:c:t:n:w: opt; do
    case $opt in
    l) llama=$OPTARG ;;
    m) model=$OPTARG ;;
    f) text=$OPTARG ;;
    c) ctx=$OPTARG ;;
    t) threads=$OPTARG ;;
    n) chunks=$OPTARG ;;
    w) work=$OPTARG ;;
    *) sed -n '2,27p' "$0" >&2; exit 2 ;;
    esac
done
lm=${LM:-./lm}
lp=$llama/llama-perplexity lq=$llama/llama-quantize
[ -n "$llama" ] || { echo "give the llama.cpp binaries' folder with -l or LLAMA_BIN" >&2; exit 2; }
for b in "$lp" "$lq" "$lm"; do [ -x "$b" ] || { echo "$b: not found or not executable" >&2; exit 2; }; done
for f in "$model" "$text"; do [ -f "$f" ] || { echo "$f: not found" >&2; exit 2; }; done
mkdir -p "$work"
common="-c $ctx -t $threads${chunks:+ --chunks $chunks}"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# Runs "$@" with its output (both streams) in $work/$name.log; records the
# wall time in $work/$name.time. A failure is reported with the log's tail.
run() {
    name=$1
    shift
    echo "  $name: $*" >&2
    t0=$(now)
    if ! "$@" >"$work/$name.log" 2>&1; then
        echo "$name failed:" >&2
        tail -n 5 "$work/$name.log" >&2
        return 1
    fi
    secs "$t0" "$(now)" >"$work/$name.time"
}
ppl_of() { sed -n 's/.*Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1/p' "$work/$1.log" | tail -n 1; }
kld_of() { awk '/^Mean +KLD:/ { v = $3 } END { print v }' "$work/$1.log"; }
top_of() { awk '/^Same top p:/ { v = $4 } END { print v }' "$work/$1.log"; }
time_of() { cat "$work/$1.time"; }

echo "making F16 and Q8_0 from $model in $work (once)" >&2
f16=$work/model-f16.gguf q8=$work/model-q8_0.gguf
[ -f "$f16" ] || run quantize-f16 "$lq" --allow-requantize "$model" "$f16" F16
[ -f "$q8" ] || run quantize-q8_0 "$lq" --allow-requantize "$model" "$q8" Q8_0

echo "perplexity (each F16 run also writes its base logits file)" >&2
base_ll=$work/base-llama-f16.logits base_lm=$work/base-lm-f16.logits
# shellcheck disable=SC2086 # $common is a list of flags
{
    run ll-f16 "$lp" -m "$f16" -f "$text" $common --kl-divergence-base "$base_ll"
    run lm-f16 "$lm" perplexity -m "$f16" -f "$text" $common --kl-divergence-base "$base_lm"
    run ll-q8_0 "$lp" -m "$q8" -f "$text" $common
    run lm-q8_0 "$lm" perplexity -m "$q8" -f "$text" $common
    run ll-model "$lp" -m "$model" -f "$text" $common
    run lm-model "$lm" perplexity -m "$model" -f "$text" $common
}
echo "KL divergence against llama.cpp's F16 base" >&2
for m in f16 q8_0 model; do
    case $m in f16) file=$f16 ;; q8_0) file=$q8 ;; model) file=$model ;; esac
    [ "$m" = f16 ] || run ll-kld-$m "$lp" -m "$file" -t "$threads" --kl-divergence-base "$base_ll" --kl-divergence
    run lm-kld-$m "$lm" perplexity -m "$file" -t "$threads" --kl-divergence-base "$base_ll" --kl-divergence
done
echo "llama-perplexity reading lm's F16 base" >&2
run ll-reads-lm "$lp" -m "$f16" -t "$threads" --kl-divergence-base "$base_lm" --kl-divergence

fails=0
label() { # the model's own format for its rows
    case $1 in f16) echo F16 ;; q8_0) echo Q8_0 ;; *) "$lm" info -m "$model" | sed -n 's/^file type: *\([^ ]*\).*/\1 (the model)/p' ;; esac
}
# check DESCRIPTION AWK-CONDITION (over a, b): prints ok/FAIL.
check() {
    if awk -v a="$2" -v b="$3" "BEGIN { exit !($4) }"; then r=ok; else r=FAIL fails=$((fails + 1)); fi
    printf '%-4s %s\n' "$r" "$1"
}
rel() { awk -v a="$1" -v b="$2" 'BEGIN { d = (a - b) / b; printf "%+.3f%%", 100 * d }'; }

echo
echo "Perplexity, -c $ctx, $threads threads, $(basename "$text")"
echo
echo "| model | llama-perplexity PPL | lm PPL | lm - llama.cpp | llama.cpp time | lm time |"
echo "| ----- | -------------------: | -----: | -------------: | -------------: | ------: |"
for m in f16 q8_0 model; do
    a=$(ppl_of ll-$m) b=$(ppl_of lm-$m)
    printf '| %s | %s | %s | %s | %s s | %s s |\n' "$(label $m)" "$a" "$b" "$(rel "$b" "$a")" "$(time_of ll-$m)" "$(time_of lm-$m)"
done
echo
echo "KL divergence against llama.cpp's F16 base logits"
echo
echo "| model | llama.cpp mean KLD | lm mean KLD | lm / llama.cpp | llama.cpp same top | lm same top | llama.cpp time | lm time |"
echo "| ----- | -----------------: | ----------: | -------------: | -----------------: | ----------: | -------------: | ------: |"
for m in f16 q8_0 model; do
    b=$(kld_of lm-kld-$m)
    if [ "$m" = f16 ]; then
        printf '| %s | (the base) | %s | | | %s %% | | %s s |\n' "$(label $m)" "$b" "$(top_of lm-kld-$m)" "$(time_of lm-kld-$m)"
    else
        a=$(kld_of ll-kld-$m)
        printf '| %s | %s | %s | %s | %s %% | %s %% | %s s | %s s |\n' "$(label $m)" "$a" "$b" \
            "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')" "$(top_of ll-kld-$m)" "$(top_of lm-kld-$m)" \
            "$(time_of ll-kld-$m)" "$(time_of lm-kld-$m)"
    fi
done
printf '| F16, llama.cpp reading lm'"'"'s base | %s | | | %s %% | | %s s | |\n' "$(kld_of ll-reads-lm)" \
    "$(top_of ll-reads-lm)" "$(time_of ll-reads-lm)"
echo
check "PPL F16 within 0.5%" "$(ppl_of lm-f16)" "$(ppl_of ll-f16)" 'a > 0 && (a - b) / b <= 0.005 && (b - a) / b <= 0.005'
check "PPL Q8_0 within 0.5%" "$(ppl_of lm-q8_0)" "$(ppl_of ll-q8_0)" 'a > 0 && (a - b) / b <= 0.005 && (b - a) / b <= 0.005'
check "lm F16 vs llama.cpp F16: mean KLD <= 3e-4" "$(kld_of lm-kld-f16)" 0 'a != "" && a <= 3e-4'
check "lm F16 vs llama.cpp F16: same top >= 99%" "$(top_of lm-kld-f16)" 0 'a != "" && a >= 99'
check "Q8_0 mean KLD: lm within 10% of llama.cpp" "$(kld_of lm-kld-q8_0)" "$(kld_of ll-kld-q8_0)" 'b > 0 && a >= 0.9 * b && a <= 1.1 * b'
check "$(label model) mean KLD: lm within 10% of llama.cpp" "$(kld_of lm-kld-model)" "$(kld_of ll-kld-model)" 'b > 0 && a >= 0.9 * b && a <= 1.1 * b'
check "llama-perplexity reads lm's base file" "$(kld_of ll-reads-lm)" 0 'a != "" && a <= 3e-4'
[ "$fails" -eq 0 ]
