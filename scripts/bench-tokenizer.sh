#!/bin/bash
# Tokenizer benchmark (not a test): lm tokenize against llama.cpp's
# llama-tokenize on the same large text and vocabulary. Checks that the ids
# are identical and prints the throughput of both, load time excluded.
#
#   scripts/bench-tokenizer.sh [MODEL.gguf] [TEXT]
#
# MODEL defaults to $LM_MODEL, else models/default.gguf. TEXT defaults to
# ~5 MB of English prose: the *.md files under $LLAMA_CPP (llama.cpp's
# docs), repeated. llama-tokenize is $LLAMA_TOKENIZE, else found in PATH or
# in $LLAMA_CPP/build/bin. Each program runs $RUNS times (default 3); the
# fastest run counts.
set -euo pipefail
cd "$(dirname "$0")/.."

model=${1:-${LM_MODEL:-models/default.gguf}}
text=${2:-}
runs=${RUNS:-3}
llama_cpp=${LLAMA_CPP:-}
tok=${LLAMA_TOKENIZE:-$(command -v llama-tokenize || true)}
if [ -z "$tok" ] && [ -n "$llama_cpp" ]; then tok=$llama_cpp/build/bin/llama-tokenize; fi

[ -f "$model" ] || { echo "no model: $model (pass one, or set LM_MODEL)" >&2; exit 1; }
[ -x "$tok" ] || { echo "llama-tokenize not found: set LLAMA_TOKENIZE or LLAMA_CPP" >&2; exit 1; }
make -s lm

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$text" ]; then
    [ -d "$llama_cpp" ] || { echo "no text: pass one, or set LLAMA_CPP to a llama.cpp checkout" >&2; exit 1; }
    find "$llama_cpp" -name '*.md' -not -path '*/build/*' | sort | xargs cat > "$tmp/prose"
    # ~5 MB, cut after a newline so no character is split
    while [ "$(stat -c %s "$tmp/prose.big" 2>/dev/null || echo 0)" -lt 5000000 ]; do cat "$tmp/prose" >> "$tmp/prose.big"; done
    head -c 5000000 "$tmp/prose.big" | sed '$d' > "$tmp/text"
    text=$tmp/text
fi
printf 'x' > "$tmp/tiny"
bytes=$(stat -c %s "$text")

# best_time OUT CMD...: runs CMD (stdout to OUT) $runs times, prints the best wall time in seconds
best_time() {
    local out=$1 best="" t0 t1 t
    shift
    for _ in $(seq "$runs"); do
        t0=$(date +%s.%N)
        "$@" > "$out" 2>/dev/null
        t1=$(date +%s.%N)
        t=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
    done
    echo "$best"
}

lm_args=(tokenize -m "$model" --ids -f)
ref_args=(-m "$model" --ids --no-escape --no-parse-special --no-bos --log-disable -f)
lm_load=$(best_time "$tmp/x" ./lm "${lm_args[@]}" "$tmp/tiny")
lm_all=$(best_time "$tmp/lm.ids" ./lm "${lm_args[@]}" "$text")
ref_load=$(best_time "$tmp/x" "$tok" "${ref_args[@]}" "$tmp/tiny")
ref_all=$(best_time "$tmp/ref.ids" "$tok" "${ref_args[@]}" "$text")

# llama-tokenize prints [1, 2, 3]; lm prints 1 2 3
tr -d '[],' < "$tmp/ref.ids" | tr -s ' \n' '\n\n' | sed '/^$/d' > "$tmp/ref.list"
tr -s ' \n' '\n\n' < "$tmp/lm.ids" | sed '/^$/d' > "$tmp/lm.list"
n_lm=$(wc -l < "$tmp/lm.list")
n_ref=$(wc -l < "$tmp/ref.list")
if cmp -s "$tmp/lm.list" "$tmp/ref.list"; then same="identical"; else same="DIFFERENT"; fi

rate() { echo "scale=2; $bytes / 1000000 / ($2 - $1)" | bc -l; }
echo "text: $bytes bytes; model: $model"
echo "ids: lm $n_lm tokens, llama.cpp $n_ref tokens: $same"
printf 'lm:        %6.3f s total, %6.3f s load, %6s MB/s\n' "$lm_all" "$lm_load" "$(rate "$lm_load" "$lm_all")"
printf 'llama.cpp: %6.3f s total, %6.3f s load, %6s MB/s\n' "$ref_all" "$ref_load" "$(rate "$ref_load" "$ref_all")"
[ "$same" = identical ]
