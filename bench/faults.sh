#!/usr/bin/env bash
# `make faults`: what a dead or hung worker costs, ours and the socket.io reference side by
# side, measured only from outside by the reference's own tools (about 3 minutes).
#
#   bash bench/faults.sh              # KILL_TRIALS=8 STOP_TRIALS=2
#
# Starts both 4-worker clusters on free ports of 127.0.0.1 (same Redis, own prefixes) and
# runs against each, ours first: `verify.js` (the contract's checks by hand, scripted,
# including a SIGKILL and a SIGSTOP of one worker) and `faults.js` (8 parallel rosters right
# after each SIGKILL of a worker, and during each SIGSTOP; signals go only to the cluster's
# own children). Writes bench/results/faults-latest.json and prints a summary; raw outputs
# and cluster logs stay in .tmp/bench/faults-<UTC date-time>/. Exit code 0 when both tools
# passed on our cluster.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

KILL_TRIALS="${KILL_TRIALS:-8}"; STOP_TRIALS="${STOP_TRIALS:-2}"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
WORK="$ROOT/.tmp/bench/faults-$STAMP"
US_PID=""; REF_PID=""
US_PREFIX="bench-faults-$STAMP-us"; REF_PREFIX="bench-faults-$STAMP-ref"
cleanup() {
  stop_cluster "$US_PID"; stop_cluster "$REF_PID"
  drop_prefix "$US_PREFIX"; drop_prefix "$REF_PREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK"
ensure_venv; ensure_redis; ensure_reference
US_PORT="$(free_port)"; REF_PORT="$(free_port)"
while [ "$REF_PORT" = "$US_PORT" ]; do REF_PORT="$(free_port)"; done
US_PID="$(start_ours "$US_PORT" "$US_PREFIX" "$WORK")"
REF_PID="$(start_ref "$REF_PORT" "$REF_PREFIX" "$WORK")"
wait_ready "http://127.0.0.1:$US_PORT" "$US_PID" || { tail -30 "$WORK/ours.log" >&2; die "our cluster did not come up"; }
wait_ready "http://127.0.0.1:$REF_PORT" "$REF_PID" || { tail -30 "$WORK/ref.log" >&2; die "the reference did not come up"; }
log "ours: port $US_PORT (pid $US_PID), reference: port $REF_PORT (pid $REF_PID), load $(loadavg)"

rc_us=0
for target in us ref; do
  if [ "$target" = us ]; then port="$US_PORT"; pid="$US_PID"; else port="$REF_PORT"; pid="$REF_PID"; fi
  url="http://127.0.0.1:$port"
  node "$REF_DIR/bench/verify.js" --url "$url" --cluster-pid "$pid" \
    > "$WORK/$target-verify.json" 2> "$WORK/$target-verify.err"
  rc=$?; log "$target verify.js: rc=$rc"; [ "$target" = us ] && [ "$rc" != 0 ] && rc_us=1
  wait_ready "$url" "$pid" || die "$target: workers did not come back after verify.js"
  node "$REF_DIR/bench/faults.js" --url "$url" --cluster-pid "$pid" \
    --kill-trials "$KILL_TRIALS" --stop-trials "$STOP_TRIALS" \
    > "$WORK/$target-faults.json" 2> "$WORK/$target-faults.err"
  rc=$?; log "$target faults.js: rc=$rc"; [ "$target" = us ] && [ "$rc" != 0 ] && rc_us=1
done
"$PY" "$ROOT/bench/faults_report.py" --work "$WORK" --stamp "$STAMP" \
  --out "$ROOT/bench/results/faults-latest.json" || rc_us=1
exit "$rc_us"
