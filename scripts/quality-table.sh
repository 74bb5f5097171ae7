#!/usr/bin/env bash
# What each weight format costs: from one F16 model, lm quantize makes every
# format below, and for each this prints a markdown row of file size,
# perplexity on TEXT, mean KL divergence and same-top-token rate against the
# F16 model's log-probabilities, and lm bench's pp512 / tg128.
#
# usage: scripts/quality-table.sh F16.gguf TEXT [WORKDIR] [TYPES...]
#   WORKDIR holds the quantized files and the F16 base logits (default: a
#   fresh temporary folder); TYPES default to f16 q8_0 q6_k q4_k_m q4_1 q4_0.
#   LM (default ./lm) and THREADS (default 2) come from the environment.
set -euo pipefail
f16=${1:?usage: quality-table.sh F16.gguf TEXT [WORKDIR] [TYPES...]}
text=${2:?usage: quality-table.sh F16.gguf TEXT [WORKDIR] [TYPES...]}
work=${3:-$(mktemp -d)}
shift $(( $# < 3 ? $# : 3 ))
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(f16 q8_0 q6_k q4_k_m q4_1 q4_0)
lm=${LM:-./lm}
threads=${THREADS:-2}
mkdir -p "$work"


base="$work/base-f16.logits"
[ -s "$base" ] || "$lm" perplexity -m "$f16" -f "$text" -t "$threads" --kl-divergence-base "$base" >/dev/null 2>&1

echo "| format | size (MiB) | PPL | mean KLD vs F16 | same top token | pp512 t/s | tg128 t/s |"
echo "| --- | --: | --: | --: | --: | --: | --: |"
for t in "${types[@]}"; do
    m="$work/$t.gguf"
    [ -s "$m" ] || "$lm" quantize "$f16" "$m" "$t" --threads "$threads" --force >/dev/null 2>&1
    kld=$("$lm" perplexity -m "$m" --kl-divergence-base "$base" --kl-divergence -t "$threads" -o json 2>/dev/null)
    bench=$("$lm" bench -m "$m" -p 512 -n 128 -r 3 -t "$threads" -o jsonl 2>/dev/null)
    pp=$(echo "$bench" | python3 -c 'import json,sys; r=[json.loads(l) for l in sys.stdin if l.strip()]; print("%.1f %.1f" % (r[0]["avg_ts"], r[1]["avg_ts"]))')
    python3 - "$t" "$m" "$kld" "$pp" <<'EOF'
import json, os, sys
t, m, kld, pp = sys.argv[1:5]
k = json.loads(kld)
p, g = pp.split()
print("| %s | %.1f | %.4f | %.6f | %.2f%% | %s | %s |" % (t, os.path.getsize(m) / 2**20, k["ppl"], k["kld_mean"],
      100 * k["same_top_p"], p, g))
EOF
done
