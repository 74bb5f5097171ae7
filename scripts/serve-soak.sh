#!/usr/bin/env bash
# lm serve under churn: CLIENTS clients for SECONDS seconds, each sending
# chat requests (streamed or not, random lengths) and canceling about a
# third of them at a random moment (closing the connection mid-stream).
# The run is made twice, half the time each: the RSS after the second must
# not exceed the RSS after the first by more than 10% (no leak grows with
# requests). Then the server still answers, no slot is left busy, and
# SIGTERM ends it with exit code 0. All on 127.0.0.1.
#
# usage: scripts/serve-soak.sh [SECONDS] [CLIENTS]     (default 60, 8)
# Environment: LM (default ./lm), MODEL (default models/default.gguf),
#   WRAP (a command to run lm under, e.g. "valgrind --leak-check=full
#   --error-exitcode=99": its exit code then tells leaks and errors).
set -euo pipefail
SECONDS_RUN=${1:-60}
CLIENTS=${2:-8}
LM=${LM:-./lm}
MODEL=${MODEL:-models/default.gguf}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=$(mktemp)
# shellcheck disable=SC2086
${WRAP:-} "$LM" serve -m "$MODEL" --port "$PORT" -np 4 -c 1024 --timeout 10 >/dev/null 2>"$LOG" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1200); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 $PID 2>/dev/null || { cat "$LOG"; exit 1; }
    sleep 0.1
done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }

load() {
python3 - "$PORT" "$1" "$CLIENTS" <<'PY'
import json, random, socket, sys, threading, time
port, seconds, clients = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def one(rng, warm):
    body = json.dumps({"messages": [{"role": "user", "content": rng.choice(["Hi", "Tell me a story.", "List ten animals."])}],
                       "max_tokens": rng.randint(1, 96), "stream": rng.random() < 0.5}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    cancel = not warm and rng.random() < 0.35
    deadline = time.time() + rng.uniform(0, 1.5)
    got = b""
    while True:
        if cancel and time.time() > deadline:
            break
        s.settimeout(0.1 if cancel else 120)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        got += chunk
    s.close()
    return cancel, got.startswith(b"HTTP/1.1 200") or (cancel and not got) or (cancel and got.startswith(b"HTTP/1.1 200"))
one(random.Random(0), True)  # warm-up
stats = {"done": 0, "canceled": 0, "bad": 0}
lock = threading.Lock()
def client(i):
    rng, end = random.Random(i), time.time() + seconds
    while time.time() < end:
        cancel, ok = one(rng, False)
        with lock:
            stats["canceled" if cancel else "done"] += 1
            stats["bad"] += not ok
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print("requests: %(done)d completed, %(canceled)d canceled, %(bad)d failed" % stats)
sys.exit(1 if stats["bad"] else 0)
PY
}
load $((SECONDS_RUN / 2))
sleep 1
first=$(rss)
load $((SECONDS_RUN - SECONDS_RUN / 2))
sleep 1
busy=$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^lm_slots_busy/ {print $2}')
after=$(rss)
curl -sf "http://127.0.0.1:$PORT/v1/chat/completions" -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4}' >/dev/null ||
    { echo "the server no longer answers" >&2; exit 1; }
echo "RSS after the first half $first kB, after the second $after kB; slots busy $busy"
kill -TERM $PID
set +e
wait $PID
rc=$?
set -e
trap - EXIT
echo "exit code on SIGTERM: $rc"
grep -E "ERROR SUMMARY|definitely lost|indirectly lost" "$LOG" || true
rm -f "$LOG"
[ "$busy" = 0 ] && [ "$rc" = 0 ] && [ "$after" -le $((first * 11 / 10)) ]
