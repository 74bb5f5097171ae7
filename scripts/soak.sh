#!/usr/bin/env bash
# Soak test: does lm's memory stay flat over a long conversation and a long
# generation? Not part of `make test` (about an hour and a half on one
# thread): `make soak` runs it, `make soak-valgrind` the short version under
# valgrind.
#
#   scripts/soak.sh [--valgrind] [SECTION...]     SECTION: chat, session, run (default: all)
#
# Sections, and what "growth" means in each (a section fails when its growth
# reaches 1 MiB):
#
#   chat     A 300-turn conversation through `lm chat --messages` in a
#            512-token context. `--messages FILE` answers the conversation in
#            FILE with one reply and exits, so each turn appends a question to
#            the file, runs lm once, and appends its reply: 300 processes, the
#            last reading 599 messages and dropping the oldest until the rest
#            fits. What can grow is what one turn costs as the history grows.
#            Measure: each process's peak RSS (ru_maxrss, from GNU time);
#            start = median of the 20 turns after turn 50 (turns are dropped
#            from turn 10 on), end = median of the last 20. Every token in
#            context costs ~30 KiB (KV cache, prefill buffers), so questions
#            and replies have a fixed length (zero-padded numbers; -n 24
#            --ignore-eos) and both windows' token counts are printed.
#   session  The same conversation in ONE interactive `lm chat` process,
#            driven through a pseudo-terminal by script(1): the only path
#            where turns pile up in one process. Measure: VmHWM (peak RSS)
#            and VmData (memory allocated, resident or not) from
#            /proc/PID/status, polled each second; start = when question 50
#            is read, end = the last poll before exit.
#   run      One `lm run` generating 20,000 tokens in a 20,480-token context,
#            with --ignore-eos so that an end-of-text token does not stop it
#            early (checked: it must stop for length). Measure: VmHWM and
#            VmData as above, at the first token and at the last poll. The KV
#            cache is allocated whole at the start but its pages become
#            resident as positions fill: 2 x layers x KV heads x head size x
#            2 bytes per token (22.5 KiB on the default model; the head size
#            is taken as embedding / heads, set KV_BYTES_PER_TOKEN for models
#            where it is not). That growth is by design and is subtracted
#            from VmHWM's; the rest counts, including the attention scores
#            (4 bytes per position for each query head of one KV group, per
#            thread: ~240 KiB at 20,000 tokens) and up to a page per layer of
#            rounding. VmData's growth counts whole.
#
# --valgrind: shortened versions under `valgrind --error-exitcode=1
# --leak-check=full`: 8 turns through --messages and a 6-turn session, both
# in a 128-token context with -n 8 (turns are dropped from turn 4 on), and
# `lm run -n 200`; any error or leak fails. Under valgrind lm runs some 170
# times slower (about 0.5 s a prompt token, 2 s a generated one), hence the
# small context: the paths are the same. LM must be a build valgrind can
# run, so no AVX-512: `make soak-valgrind` builds one into build-valgrind/
# (with AVX2, as most machines run it).
#
# Environment: LM (default ./lm), LM_MODEL (default models/default.gguf),
# THREADS (-t, default 1), TURNS (default 300, or 8/6 with --valgrind),
# RUN_TOKENS (default 20000, or 200), VALGRIND (default valgrind), GNU_TIME
# (default the `time` program in PATH), SCRIPT (util-linux script(1), default
# script), SOAK_DIR (keep conversations, outputs and samples there; default a
# temporary directory, removed at the end).
set -euo pipefail

valgrind_mode=0
sections=()
for a in "$@"; do
    case $a in
    --valgrind) valgrind_mode=1 ;;
    chat | session | run) sections+=("$a") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown argument '$a' (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#sections[@]} -gt 0 ] || sections=(chat session run)

lm=${LM:-./lm}
model=${LM_MODEL:-models/default.gguf}
threads=${THREADS:-1}
vg=${VALGRIND:-valgrind}
gnu_time=${GNU_TIME:-$(type -P time || true)}
script_bin=${SCRIPT:-script}
if [ $valgrind_mode = 1 ]; then
    turns=${TURNS:-8} session_turns=${TURNS:-6} run_tokens=${RUN_TOKENS:-200} chat_ctx=128 run_ctx=256 reply_n=8
else
    turns=${TURNS:-300} session_turns=${TURNS:-300} run_tokens=${RUN_TOKENS:-20000} chat_ctx=512 reply_n=24
    run_ctx=$((run_tokens + 480))
fi
limit_kib=1024

die() { echo "soak: $*" >&2; exit 2; }
[ -x "$lm" ] || die "lm not found at $lm (run make, or set LM)"
[ -f "$model" ] || die "no model at $model (scripts/get-model.sh, or set LM_MODEL)"
if [ $valgrind_mode = 1 ]; then
    command -v "$vg" > /dev/null || die "valgrind not found (set VALGRIND)"
else
    if [ -z "$gnu_time" ] || ! "$gnu_time" -f %M true > /dev/null 2>&1; then die "GNU time not found (set GNU_TIME)"; fi
fi
for s in "${sections[@]}"; do
    if [ "$s" = session ]; then
        "$script_bin" --version 2>/dev/null | grep -q util-linux || die "util-linux script(1) not found (set SCRIPT)"
    fi
done

if [ -n "${SOAK_DIR:-}" ]; then
    dir=$SOAK_DIR
    mkdir -p "$dir"
else
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
fi
export LM_MODEL=$model
failed=0

# pre=(the command that runs a section's programs): valgrind, one log per
# process named by $1, or nothing.
pre=()
set_pre() {
    pre=()
    if [ $valgrind_mode = 1 ]; then pre=("$vg" --error-exitcode=1 --leak-check=full --log-file="$dir/$1.vg"); fi
}

# The two lines of a valgrind log that matter.
vg_summary() {
    local log=$1 in_use errors
    in_use=$(grep -o 'in use at exit: .*' "$log" | head -n1 || true)
    errors=$(grep -o 'ERROR SUMMARY: [0-9]* errors' "$log" | tail -n1 || true)
    echo "${errors:-no ERROR SUMMARY}; ${in_use:-in use at exit: ?}"
}

vg_clean() { grep -q 'ERROR SUMMARY: 0 errors' "$1"; }

# proc_mem PID: "VmHWM VmRSS VmData" in KiB; fails once PID has exited.
proc_mem() {
    local k v _ hwm="" rss="" data=""
    while read -r k v _; do
        case $k in
        VmHWM:) hwm=$v ;;
        VmRSS:) rss=$v ;;
        VmData:) data=$v ;;
        esac
    done 2>/dev/null < "/proc/$1/status" || return 1
    [ -n "$hwm" ] && echo "$hwm $rss $data"
}

# poll_mem PID PROBE: each second until PID exits, a line "P HWM RSS DATA"
# where P is what the function PROBE prints (progress: tokens, turns).
poll_mem() {
    local pid=$1 probe=$2 mem p
    while mem=$(proc_mem "$pid"); do
        p=$($probe)
        echo "${p:-0} $mem"
        sleep 1
    done
}

median() { sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : 0 }'; }

elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

question() { printf "Question %03d: tell me one fact about the sea, in a sentence.\n" "$1"; } # one length: equal token counts

verdict() { # verdict TEXT GROWTH_KIB...: prints TEXT, then ok when every growth is under the limit
    local text=$1 g
    shift
    for g in "$@"; do
        if [ "$g" -ge $limit_kib ]; then
            echo "$text: FAIL (the limit is $limit_kib KiB)"
            failed=1
            return
        fi
    done
    echo "$text: ok"
}

# ---- chat: one lm chat --messages process per turn --------------------------

section_chat() {
    local t0=$SECONDS conv=$dir/chat.json msgs reply content rc t kib p c drop
    msgs='[{"role":"system","content":"You are a helpful assistant."}'
    : > "$dir/chat.turns"
    echo "chat: $turns turns through lm chat --messages, -c $chat_ctx, -n $reply_n" >&2
    for t in $(seq 1 "$turns"); do
        msgs+=",{\"role\":\"user\",\"content\":\"$(question "$t")\"}"
        printf '%s]\n' "$msgs" > "$conv"
        rc=0
        if [ $valgrind_mode = 1 ]; then
            set_pre "chat-$t"
            "${pre[@]}" "$lm" chat -t "$threads" -c "$chat_ctx" -n "$reply_n" --ignore-eos -s "$t" --json \
                --messages "$conv" > "$dir/chat.out" 2> "$dir/chat.err" || rc=$?
            kib=0
            echo "  turn $t: $(vg_summary "$dir/chat-$t.vg")" >&2
            vg_clean "$dir/chat-$t.vg" || rc=1
        else
            "$gnu_time" -f %M -o "$dir/chat.maxrss" "$lm" chat -t "$threads" -c "$chat_ctx" -n "$reply_n" --ignore-eos \
                -s "$t" --json --messages "$conv" > "$dir/chat.out" 2> "$dir/chat.err" || rc=$?
            kib=$(tail -n1 "$dir/chat.maxrss")
        fi
        if [ $rc != 0 ]; then
            cat "$dir/chat.err" >&2
            echo "chat: turn $t failed (exit $rc)"
            failed=1
            return
        fi
        reply=$(< "$dir/chat.out")
        content=${reply#'{"role":"assistant","content":'}
        content=${content%%',"finish_reason":'*} # a JSON string: its own quotes are escaped
        msgs+=",{\"role\":\"assistant\",\"content\":$content}"
        [[ $reply =~ \"prompt_tokens\":([0-9]+),\"completion_tokens\":([0-9]+) ]] || die "turn $t: no usage in $reply"
        p=${BASH_REMATCH[1]} c=${BASH_REMATCH[2]}
        grep -q 'context full' "$dir/chat.err" && drop=dropped || drop=-
        echo "$t $kib $p $c $drop" >> "$dir/chat.turns"
        if [ $((t % 25)) = 0 ] && [ $valgrind_mode = 0 ]; then
            echo "  turn $t: peak RSS $kib KiB, $p + $c tokens, $(elapsed $((SECONDS - t0)))" >&2
        fi
    done
    local first_drop
    first_drop=$(awk '$5 == "dropped" { print $1; exit }' "$dir/chat.turns")
    [ -n "$first_drop" ] || { echo "chat: the conversation never outgrew the context"; failed=1; return; }
    if [ $valgrind_mode = 1 ]; then
        echo "chat: $turns turns (-c $chat_ctx; turns dropped from turn $first_drop on) clean under valgrind, $(elapsed $((SECONDS - t0)))"
        return
    fi
    local w=20 s0 s1 e0 e1 start end start_tok end_tok
    s0=$((turns / 6 + 1)) s1=$((turns / 6 + w)) e0=$((turns - w + 1)) e1=$turns
    if [ "$e0" -le "$s1" ]; then
        echo "chat: $turns turns are too few for two windows of $w turns to compare (try TURNS=100 or more)"
        failed=1
        return
    fi
    start=$(awk -v a=$s0 -v b=$s1 '$1 >= a && $1 <= b { print $2 }' "$dir/chat.turns" | median)
    end=$(awk -v a=$e0 -v b="$e1" '$1 >= a && $1 <= b { print $2 }' "$dir/chat.turns" | median)
    start_tok=$(awk -v a=$s0 -v b=$s1 '$1 >= a && $1 <= b { print $3 + $4 }' "$dir/chat.turns" | median)
    end_tok=$(awk -v a=$e0 -v b="$e1" '$1 >= a && $1 <= b { print $3 + $4 }' "$dir/chat.turns" | median)
    echo "chat: $turns turns through lm chat --messages (-c $chat_ctx, turns dropped from turn $first_drop on), $(elapsed $((SECONDS - t0)))"
    echo "  peak RSS per turn, median: turns $s0-$s1 $start KiB ($start_tok tokens in context), turns $e0-$e1 $end KiB ($end_tok tokens)"
    echo "  over all turns from $s0: $(awk -v a=$s0 '$1 >= a { print $2 }' "$dir/chat.turns" | sort -n | sed -n '1p;$p' | paste -sd- -) KiB"
    verdict "  growth: $((end - start)) KiB" $((end - start))
}

# ---- session: one interactive lm chat through a pseudo-terminal -------------

session_progress() { grep -ao '> Question [0-9]*' "$dir/session.tty" | tail -n1 | grep -o '[1-9][0-9]*$' || true; }

section_session() {
    local t0=$SECONDS t cmd spid pid="" rc=0
    for t in $(seq 1 "$session_turns"); do question "$t"; done > "$dir/session.in"
    echo /exit >> "$dir/session.in"
    echo "session: $session_turns turns in one interactive lm chat, -c $chat_ctx, -n $reply_n" >&2
    set_pre session
    cmd="exec $(printf '%q ' "${pre[@]}" "$lm" chat -t "$threads" -c "$chat_ctx" -n "$reply_n" --ignore-eos -s 1)"
    "$script_bin" -qfec "$cmd" /dev/null < "$dir/session.in" > "$dir/session.tty" 2>&1 &
    spid=$!
    for _ in $(seq 100); do # script(1) starts lm (through exec) as its child
        pid=$(pgrep -P "$spid" || true)
        [ -n "$pid" ] && break
        sleep 0.1
    done
    [ -n "$pid" ] || die "session: lm did not start"
    poll_mem "$pid" session_progress > "$dir/session.samples"
    wait "$spid" || rc=$?
    local turns_done
    turns_done=$(grep -ao '> Question [0-9]*' "$dir/session.tty" | sort -u | wc -l)
    if [ $rc != 0 ] || [ "$turns_done" != "$session_turns" ]; then
        tail -n 20 "$dir/session.tty" >&2
        echo "session: exit $rc after $turns_done of $session_turns questions"
        failed=1
        return
    fi
    local dropped=no
    grep -aq 'context full: dropped' "$dir/session.tty" && dropped=yes
    if [ $valgrind_mode = 1 ]; then
        vg_clean "$dir/session.vg" || failed=1
        echo "session: $session_turns turns in one lm chat (-c $chat_ctx, turns dropped: $dropped) under valgrind: $(vg_summary "$dir/session.vg"), $(elapsed $((SECONDS - t0)))"
        return
    fi
    local s e sp sh sr sd ep eh er ed from=$((session_turns / 6))
    s=$(awk -v a=$from '$1 >= a { print; exit }' "$dir/session.samples")
    e=$(tail -n1 "$dir/session.samples")
    [ -n "$s" ] || die "session: no sample after turn $from"
    read -r sp sh sr sd <<< "$s"
    read -r ep eh er ed <<< "$e"
    echo "session: $session_turns turns in one interactive lm chat (-c $chat_ctx, turns dropped: $dropped), $(elapsed $((SECONDS - t0)))"
    echo "  at turn $sp: VmHWM $sh KiB, VmRSS $sr KiB, VmData $sd KiB"
    echo "  at turn $ep (last poll): VmHWM $eh KiB, VmRSS $er KiB, VmData $ed KiB"
    verdict "  growth: VmHWM $((eh - sh)) KiB, VmData $((ed - sd)) KiB" $((eh - sh)) $((ed - sd))
}

# ---- run: one long lm run ---------------------------------------------------

# KV cache bytes per token: 2 (K, V) x layers x KV heads x head size x 2 (f16).
kv_bytes_per_token() {
    if [ -n "${KV_BYTES_PER_TOKEN:-}" ]; then
        echo "$KV_BYTES_PER_TOKEN"
        return
    fi
    local info key
    local -A v
    info=$("$lm" info --json)
    for key in block_count head_count_kv embedding_length head_count; do
        [[ $info =~ \"$key\":([0-9]+) ]] || die "lm info --json: no $key"
        v[$key]=${BASH_REMATCH[1]}
    done
    echo $((2 * v[block_count] * v[head_count_kv] * (v[embedding_length] / v[head_count]) * 2))
}

run_progress() { wc -l < "$dir/run.jsonl"; }

section_run() {
    local t0=$SECONDS pid rc=0 last
    echo "run: lm run -n $run_tokens -c $run_ctx --ignore-eos" >&2
    set_pre run
    "${pre[@]}" "$lm" run -t "$threads" -c "$run_ctx" -n "$run_tokens" --ignore-eos -s 1 --jsonl \
        -p "Once upon a time" > "$dir/run.jsonl" 2> "$dir/run.err" &
    pid=$!
    poll_mem "$pid" run_progress > "$dir/run.samples"
    wait "$pid" || rc=$?
    last=$(tail -n1 "$dir/run.jsonl")
    if [ $rc != 0 ] || [[ $last != *'"stop":"length"'* ]] || [[ $last != *"\"generated_tokens\":$run_tokens,"* ]]; then
        tail -n 5 "$dir/run.err" >&2
        echo "run: exit $rc, expected $run_tokens tokens and a stop for length: $last"
        failed=1
        return
    fi
    if [ $valgrind_mode = 1 ]; then
        vg_clean "$dir/run.vg" || failed=1
        echo "run: $run_tokens tokens under valgrind: $(vg_summary "$dir/run.vg"), $(elapsed $((SECONDS - t0)))"
        return
    fi
    local kvb s e sp sh sr sd ep eh er ed
    kvb=$(kv_bytes_per_token)
    s=$(awk '$1 >= 1 { print; exit }' "$dir/run.samples")
    e=$(tail -n1 "$dir/run.samples")
    [ -n "$s" ] || die "run: it ended before a poll after its first token (RUN_TOKENS too small?)"
    read -r sp sh sr sd <<< "$s"
    read -r ep eh er ed <<< "$e"
    local kv=$(((ep - sp) * kvb / 1024)) grown=$((eh - sh))
    echo "run: $run_tokens tokens from one lm run (-c $run_ctx), $(elapsed $((SECONDS - t0)))"
    echo "  lm: $(grep -o 'generated [0-9]* tokens [0-9.]* s ([0-9.]* t/s)' "$dir/run.err" || true)"
    echo "  at token $sp: VmHWM $sh KiB, VmRSS $sr KiB, VmData $sd KiB"
    echo "  at token $ep (last poll): VmHWM $eh KiB, VmRSS $er KiB, VmData $ed KiB"
    echo "  KV cache pages filled in between: $((ep - sp)) tokens x $kvb bytes = $kv KiB"
    verdict "  growth: VmHWM $grown KiB, less the KV cache $((grown - kv)) KiB; VmData $((ed - sd)) KiB" \
        $((grown - kv)) $((ed - sd))
}

for s in "${sections[@]}"; do "section_$s"; done
[ $failed = 0 ] || { echo "soak: FAILED" >&2; exit 1; }
