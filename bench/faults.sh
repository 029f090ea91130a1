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
#
# Our cluster runs production settings (DEBUG off), where /workers shows pids only to an
# operator: the tools map each worker's procid to a process through them, so the cluster
# gets a fresh WORKERS_TOKEN and the tools a URL carrying it as a Basic password
# (http://bench:<token>@127.0.0.1:P), which Node's http client sends as Authorization.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

KILL_TRIALS="${KILL_TRIALS:-8}"; STOP_TRIALS="${STOP_TRIALS:-2}"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
WORK="$ROOT/.tmp/bench/faults-$STAMP"
trap stop_pair EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK"
ensure_venv; ensure_redis; ensure_reference
WORKERS_TOKEN="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
OUR_ENV="${OUR_ENV:-} WORKERS_TOKEN=$WORKERS_TOKEN"
start_pair "$WORK" "bench-faults-$STAMP"

rc_us=0
for target in us ref; do
  if [ "$target" = us ]; then url="${US_URL/http:\/\//http://bench:$WORKERS_TOKEN@}"; pid="$US_PID"
  else url="$REF_URL"; pid="$REF_PID"; fi
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
