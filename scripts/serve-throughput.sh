#!/usr/bin/env bash
# Total generation speed of lm serve with 1, 2, 4 and 8 concurrent clients,
# beside llama-server's on the same model, measured alternately in one run
# (the machine's load changes; ratios measured together are what count).
#
# usage: scripts/serve-throughput.sh [LLAMA_SERVER] [MODEL]
#   LLAMA_SERVER: llama.cpp's llama-server binary (or $LLAMA_SERVER; none: lm alone)
#   MODEL: default models/default.gguf
# Environment: LM (default ./lm), SLOTS (default 4, both servers' -np),
#   THREADS (both servers' -t, default: the number of CPUs),
#   TOKENS (per request, default 128), ROUNDS (default 2), CLIENTS ("1 2 4 8").
# Each client sends the OpenAI chat request of the README with the official
# openai Python client (pip install openai), max_tokens TOKENS, ignore_eos
# so every reply is TOKENS long; t/s = all clients' completion tokens / the
# time from their common start to the last reply (see measure), best of
# ROUNDS rounds (each round: every client count,
# on each server in turn). "vs 1 client" is the best t/s over the best one
# client's; "median" is the median over the rounds of the same ratio within
# each round: on a shared machine whose speed drifts from minute to minute,
# the steadier figure (the first client count stands for "1 client").
set -euo pipefail
LLAMA_SERVER=${1:-${LLAMA_SERVER:-}}
MODEL=${2:-models/default.gguf}
LM=${LM:-./lm}
SLOTS=${SLOTS:-4}
TOKENS=${TOKENS:-128}
ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-1 2 4 8}
THREADS=${THREADS:-$(nproc)}
python3 -c 'import openai' 2>/dev/null || { echo "needs the openai Python package (pip install openai)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() { # port pid
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Prints the total t/s of one round of N clients against PORT, after an
# unmeasured round of the same requests from the same process: the slots'
# prompts are cached, and the client's connections and its lazy set-up on
# the first request (tens of ms for four threads at once, which counted
# against many clients more than one) are made. The clients start together
# at a barrier; the round's time runs from there to the last reply.
measure() { # port n
    python3 - "$1" "$2" "$TOKENS" <<'PY'
import sys, threading, time
import openai
port, n, tokens = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=600)
topics = ["the sea", "a city at night", "mountains", "a library", "the first snow", "trains", "a garden", "the moon"]
def one(i, go, out, done):
    go.wait()
    r = client.chat.completions.create(model="default", max_tokens=tokens, temperature=0.8, seed=i,
        messages=[{"role": "user", "content": f"Write a long story about {topics[i % len(topics)]}."}],
        extra_body={"ignore_eos": True})
    out[i], done[i] = r.usage.completion_tokens, time.time()
def round_tps():
    out, done, go = [0] * n, [0.0] * n, threading.Barrier(n + 1)
    th = [threading.Thread(target=one, args=(i, go, out, done)) for i in range(n)]
    for t in th: t.start()
    go.wait()
    t0 = time.time()
    for t in th: t.join()
    return sum(out) / (max(done) - t0)
round_tps()
print(f"{round_tps():.1f}")
PY
}

start() { # name: sets PID and PORT
    PORT=$(free_port)
    if [ "$1" = lm ]; then
        "$LM" serve -m "$MODEL" --port "$PORT" -np "$SLOTS" -t "$THREADS" -c 1024 >/dev/null 2>/tmp/serve-throughput-lm.log &
    else
        "$LLAMA_SERVER" -m "$MODEL" --port "$PORT" -np "$SLOTS" -t "$THREADS" -c $((1024 * SLOTS)) >/dev/null 2>/tmp/serve-throughput-llama.log &
    fi
    PID=$!
    wait_ready "$PORT" "$PID" || { echo "$1 did not start" >&2; exit 1; }
}

servers=(lm)
[ -n "$LLAMA_SERVER" ] && servers+=(llama-server)
# A round measures every client count on each server in turn, so that the
# ratios compare figures taken within a minute or two of each other; the
# best round of each counts. measure sends each count's requests once
# unmeasured first: both servers keep a slot's prompt for a request that
# starts the same way, so every measured request, of one client or of 8,
# finds its prompt cached alike (a lone warm-up request gave the single
# client a cached prompt and the others none).
declare -A result ratios
for _ in $(seq "$ROUNDS"); do
    for s in "${servers[@]}"; do
        start "$s"
        for n in $CLIENTS; do
            t=$(measure "$PORT" "$n")
            if python3 -c "import sys; sys.exit(not $t > ${result[$s,$n]:-0})"; then result[$s,$n]=$t; fi
            [ "$n" = "${CLIENTS%% *}" ] && one=$t
            ratios[$s,$n]+="$(python3 -c "print($t / $one)") "
        done
        kill "$PID"; wait "$PID" 2>/dev/null || true
    done
done
printf '| clients |'; for s in "${servers[@]}"; do printf ' %s t/s | vs 1 client | median |' "$s"; done; echo
printf '| ---: |'; for s in "${servers[@]}"; do printf ' ---: | ---: | ---: |'; done; echo
first=${CLIENTS%% *}
for n in $CLIENTS; do
    printf '| %s |' "$n"
    for s in "${servers[@]}"; do
        printf ' %s | %.2fx | %.2fx |' "${result[$s,$n]}" "$(python3 -c "print(${result[$s,$n]} / ${result[$s,$first]})")" \
            "$(python3 -c "import statistics, sys; print(statistics.median(map(float, sys.argv[1:])))" ${ratios[$s,$n]})"
    done
    echo
done
echo "(-np $SLOTS, -t $THREADS, $TOKENS tokens a request, best of $ROUNDS rounds; model $MODEL)"
