#!/usr/bin/env bash
# `make bench`: our 4-worker cluster and the socket.io reference, side by side, same loads.
#
#   bash bench/run.sh                 # the full run: 3 rounds, ~8-9 minutes on 2 cores
#   ROUNDS=1 bash bench/run.sh        # one round (about 4 minutes)
#
# Then, unless BENCH_LAYERS=0, our cluster on each channel layer it runs on, side by side
# (bench/layers.sh, about 6 minutes more), and unless BENCH_POLLING=0, long-polling clients
# beside WebSocket ones (bench/polling.sh, about 4 minutes more).
#
# Copies shared/anchors/node-reference to .tmp/node-reference and runs `npm ci` there,
# makes sure a local Redis answers, starts both clusters on free ports of 127.0.0.1 (same
# Redis, different prefixes), then runs the reference's own harness (bench/*.js, which
# speaks only the contract) against both, step by step: A B for each step, the order
# flipped every round, so drift on this shared machine hits both alike. Writes
# bench/results/<UTC date-time>.json, bench/results/latest.json and latest.md, and prints
# the table. Raw step outputs and cluster logs stay in .tmp/bench/<UTC date-time>/.
#
# Env knobs: ROUNDS (3), WORKERS (4), BUDGET_S (540: no new round starts if it would end
# past this), STEP_TIMEOUT (150 s per step), BENCH_REDIS_URL (redis://127.0.0.1:6379/0),
# NODE_REFERENCE_SRC (../shared/anchors/node-reference), KEEP_WORK (1: keep the raw outputs
# of the last 5 runs in .tmp/bench/; 0: delete this run's), US_SERVER_TUNING (on: our
# cluster's SERVER_TUNING, e.g. off, or a comma list of patch names; see bench/README.md).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

ROUNDS="${ROUNDS:-3}"
WORKERS="${WORKERS:-4}"
BUDGET_S="${BUDGET_S:-540}"
STEP_TIMEOUT="${STEP_TIMEOUT:-150}"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
WORK="$ROOT/.tmp/bench/$STAMP"
RESULTS="$ROOT/bench/results"
mkdir -p "$WORK/steps" "$RESULTS"
T0=$(date +%s)
LOAD_BEFORE="$(loadavg)"
trap stop_pair EXIT
trap 'exit 130' INT TERM

log "setup (work dir $WORK)"
ensure_venv
ensure_redis
ensure_reference
export REF_DIR

start_pair "$WORK" "bench-$STAMP"

# manifest: one line per step, read by bench/report.py
MANIFEST="$WORK/steps.tsv"
printf 'round\ttarget\tstep\trc\tseconds\tload1_start\tload1_end\tlog_errors\tlog_warnings\tfile\n' > "$MANIFEST"

log_counts() {  # log_counts FILE FROM_LINE -> "errors warnings" among lines after FROM_LINE
  local file="$1" from="$2"
  tail -n +"$((from + 1))" "$file" | awk '
    /Traceback|ERROR|CRITICAL|[Ee]rror:|unhandled/ { e++ }
    /WARNING|[Ww]arn/ { w++ }
    END { printf "%d %d", e, w }'
}

# run_step ROUND TARGET NAME TOOL ARGS...: one harness tool against one cluster
run_step() {
  local round="$1" target="$2" name="$3" tool="$4"; shift 4
  local url pid logf
  if [ "$target" = us ]; then url="$US_URL"; pid="$US_PID"; logf="$WORK/ours.log"
  else url="$REF_URL"; pid="$REF_PID"; logf="$WORK/ref.log"; fi
  local out="$WORK/steps/r$round-$target-$name.json"
  local from; from="$(wc -l < "$logf")"
  local l0; l0="$(cut -d' ' -f1 /proc/loadavg)"
  local t0; t0="$(date +%s.%N)"
  timeout "$STEP_TIMEOUT" node "$tool" --url "$url" --cluster-pid "$pid" "$@" > "$out" 2> "${out%.json}.err"
  local rc=$?
  local secs; secs="$(echo "$(date +%s.%N) - $t0" | bc)"
  local counts; counts="$(log_counts "$logf" "$from")"
  printf '%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$name" "$rc" "$secs" "$l0" \
    "$(cut -d' ' -f1 /proc/loadavg)" "${counts% *}" "${counts#* }" "$(basename "$out")" >> "$MANIFEST"
  log "r$round $target $name: rc=$rc $(printf %.1f "$secs")s, cluster log errors/warnings ${counts/ /\/}"
  # quiet before the next step: no sockets left, cluster CPU under 10 % (at most 10 s)
  node "$REF_DIR/bench/settle.js" --url "$url" --cluster-pid "$pid" --max-s 10 > /dev/null 2>&1
}

# both NAME TOOL ARGS...: the step on both clusters, in this round's order
both() {
  local name="$1"; shift
  for target in "${ORDER[@]}"; do run_step "$ROUND" "$target" "$name" "$@"; done
}

H="$REF_DIR/bench"
ROUND_S=0
for ROUND in $(seq 1 "$ROUNDS"); do
  elapsed=$(( $(date +%s) - T0 ))
  if [ "$ROUND" -gt 1 ] && [ $(( elapsed + ROUND_S )) -gt "$BUDGET_S" ]; then
    log "skipping round $ROUND: ${elapsed}s spent, a round takes ~${ROUND_S}s, budget ${BUDGET_S}s"
    break
  fi
  r0=$(date +%s)
  if [ $((ROUND % 2)) -eq 1 ]; then ORDER=(us ref); else ORDER=(ref us); fi
  log "round $ROUND of $ROUNDS (order: ${ORDER[*]}, load $(loadavg))"
  both http-floor          "$ROOT/bench/http-floor.js" --requests 200
  both roster-10           "$H/roomusers.js" --sockets 10   --requests 200
  both roster-10-hydrate   "$H/roomusers.js" --sockets 10   --requests 200 --hydrate
  # RSS per socket once, on clusters warmed only by the two light steps above (RSS hardly
  # shrinks afterwards, so later before/after deltas would under-count)
  if [ "$ROUND" = 1 ]; then
    x0=$(date +%s)
    both memory-1000 "$H/memory.js" --sockets 1000
    # 1000 sockets each in a room of its own (no announcements), then 1000 into one room
    both connect-rate "$H/connect-rate.js" --sockets 1000 --rounds 1
    FIRST_ONLY_S=$(( $(date +%s) - x0 ))
  fi
  both roster-100          "$H/roomusers.js" --sockets 100  --requests 200
  both roster-100-hydrate  "$H/roomusers.js" --sockets 100  --requests 200 --hydrate
  both roster-1000         "$H/roomusers.js" --sockets 1000 --requests 200
  both roster-1000-hydrate "$H/roomusers.js" --sockets 1000 --requests 200 --hydrate
  run_step "$ROUND" ref roster-10-seed  "$H/roomusers.js" --sockets 10  --requests 50 --algo seed
  run_step "$ROUND" ref roster-100-seed "$H/roomusers.js" --sockets 100 --requests 50 --algo seed
  # one sender, 100 / 1000 receivers; 60 ms apart keeps the sender under our per-socket
  # identity-change limit (20/s, SOCKETIO_IDENTITY_CHANGE_RATE); 200 ms apart at 1000 is the
  # reference's own "fanout-1000-slow" load (20 ms saturates this machine)
  both fanout-100          "$H/fanout.js" --sockets 101  --messages 60 --interval 60
  both fanout-1000         "$H/fanout.js" --sockets 1001 --messages 30 --interval 200
  # the raw pub/sub floor, same Redis, same moment: through redis.asyncio (the targets'
  # floor), then through a lean hiredis client (the nearer bound)
  for client in redis-py hiredis; do
    target=floor; [ "$client" = hiredis ] && target=floor-hiredis
    f0=$(date +%s.%N); l0="$(cut -d' ' -f1 /proc/loadavg)"
    timeout "$STEP_TIMEOUT" "$PY" "$ROOT/bench/floor.py" --redis-url "$BENCH_REDIS_URL" \
      --client "$client" --prefix "$US_PREFIX" --workers "$WORKERS" --rounds 300 \
      --out "$WORK/steps/r$ROUND-$target-floor.json" > /dev/null 2> "$WORK/steps/r$ROUND-$target-floor.err"
    rc=$?
    printf '%s\t%s\tfloor\t%s\t%.1f\t%s\t%s\t0\t0\t%s\n' "$ROUND" "$target" "$rc" \
      "$(echo "$(date +%s.%N) - $f0" | bc)" "$l0" "$(cut -d' ' -f1 /proc/loadavg)" \
      "r$ROUND-$target-floor.json" >> "$MANIFEST"
    log "r$ROUND $target: rc=$rc"
  done
  ROUND_S=$(( $(date +%s) - r0 - ${FIRST_ONLY_S:-0} )); FIRST_ONLY_S=0
done

LOAD_AFTER="$(loadavg)"
stop_pair
US_LOG_TOTAL="$(log_counts "$WORK/ours.log" 0)"; REF_LOG_TOTAL="$(log_counts "$WORK/ref.log" 0)"
# rooms/cluster/node.py logs each bus write it gave up on (a lost event) as a warning
# ("bus write to ... timed out", "bus write failed")
US_DROPPED="$(grep -c 'bus write' "$WORK/ours.log")"

"$PY" "$ROOT/bench/report.py" \
  --work "$WORK" --results "$RESULTS" --stamp "$STAMP" --ref-dir "$REF_DIR" \
  --load-before "$LOAD_BEFORE" --load-after "$LOAD_AFTER" --elapsed-s $(( $(date +%s) - T0 )) \
  --log-totals "us=${US_LOG_TOTAL/ /,}" "ref=${REF_LOG_TOTAL/ /,}" \
  --our-settings "$([ "${BENCH_DEBUG:-0}" = 1 ] && echo 'DEBUG on (development defaults)' || echo 'DEBUG off (production settings over plain HTTP)'), SERVER_TUNING=${US_SERVER_TUNING:-on}" \
  --workers "$WORKERS" --us-dropped-writes "${US_DROPPED:-0}" --redis-version "$(redis_cli info server 2>/dev/null | sed -n 's/^redis_version:\(.*\)\r*$/\1/p' | tr -d '\r')"
rc=$?
if [ "${BENCH_LAYERS:-1}" = 1 ]; then
  bash "$ROOT/bench/layers.sh" || rc=$?
fi
if [ "${BENCH_POLLING:-1}" = 1 ]; then
  bash "$ROOT/bench/polling.sh" || rc=$?
fi
if [ "${KEEP_WORK:-1}" = 1 ]; then
  # keep the raw outputs of the last 5 runs only
  ls -1d "$ROOT"/.tmp/bench/20*/ 2>/dev/null | sort | head -n -5 | while read -r old; do rm -rf "$old"; done
else
  rm -rf "$WORK"
fi
exit $rc
