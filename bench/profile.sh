#!/usr/bin/env bash
# Profiles OUR workers with py-spy while one load of the bench runs (ours only).
#
#   bash bench/profile.sh roster    # GET /<room>/users with 1000 sockets in the room
#   bash bench/profile.sh hydrate   # the same with ?hydrate=1
#   bash bench/profile.sh fanout    # identity-change to 1000 receivers, 5 per second
#   bash bench/profile.sh connect   # 1000 sockets into one room, then 1000 into distinct rooms
#
# py-spy is a profiling tool, not a dependency: `.venv/bin/pip install py-spy` first (it
# is deliberately in no requirements file). Records every worker for PROFILE_S (10) seconds
# at 100 Hz, without pausing them (--nonblocking), only during the measured phase (after
# the sockets are connected). Writes .tmp/bench/profile-<mode>-<UTC>/w<pid>.txt (collapsed
# stacks: flamegraph.pl and https://www.speedscope.app both read them) and prints the
# summary of bench/pyspy_top.py. SOCKETS (1000) sets the room size.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
MODE="${1:-roster}"
PROFILE_S="${PROFILE_S:-10}"
SOCKETS="${SOCKETS:-1000}"
# --gil: only samples where the worker runs Python (holds the GIL). Without it py-spy also
# counts time blocked or preempted inside a syscall, which on this 2-core VM put a fifth
# of the samples on socket writes that `perf` showed cost a few microseconds of CPU.
# PYSPY_GIL= (empty) records wall-clock samples instead.
PYSPY_GIL="${PYSPY_GIL---gil}"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
WORK="$ROOT/.tmp/bench/profile-$MODE-$STAMP"
mkdir -p "$WORK"
PYSPY="$ROOT/.venv/bin/py-spy"
[ -x "$PYSPY" ] || die "py-spy is not installed: $ROOT/.venv/bin/pip install py-spy"
US_PID=""; LOAD_PID=""; PREFIX="bench-prof-$STAMP"
cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
  stop_cluster "$US_PID"; drop_prefix "$PREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_venv; ensure_redis; ensure_reference; export REF_DIR
PORT="$(free_port)"; URL="http://127.0.0.1:$PORT"
US_PID="$(start_ours "$PORT" "$PREFIX" "$WORK")"
wait_ready "$URL" "$US_PID" || die "our cluster did not come up"
H="$REF_DIR/bench"

open_sockets() {
  curl -s -m 2 "$URL/workers" | "$PY" -c 'import json,sys
try: print(sum(int(w.get("sockets", 0)) for w in json.load(sys.stdin)))
except Exception: print(0)'
}
wait_sockets() {  # until at least $1 sockets are open (at most 120 s)
  for _ in $(seq 1 600); do [ "$(open_sockets)" -ge "$1" ] && return 0; sleep 0.2; done
  die "sockets did not reach $1"
}

case "$MODE" in
  roster|hydrate)
    extra=(); [ "$MODE" = hydrate ] && extra=(--hydrate)
    node "$H/roomusers.js" --url "$URL" --sockets "$SOCKETS" --requests 100000 --max-seconds 200 "${extra[@]}" \
      > "$WORK/load.json" 2> "$WORK/load.err" &
    LOAD_PID=$!
    wait_sockets "$SOCKETS"; sleep 3 ;;  # room converged, settle (1 s) and warm-up GETs done
  fanout)
    node "$H/fanout.js" --url "$URL" --sockets $((SOCKETS + 1)) --messages 100000 --interval 200 \
      > "$WORK/load.json" 2> "$WORK/load.err" &
    LOAD_PID=$!
    wait_sockets $((SOCKETS + 1)); sleep 3 ;;
  connect)
    node "$H/connect-rate.js" --url "$URL" --sockets "$SOCKETS" --rounds 1 > "$WORK/load.json" 2> "$WORK/load.err" &
    LOAD_PID=$!
    sleep 0.5 ;;
  *) die "mode must be roster, hydrate, fanout or connect" ;;
esac

log "recording $(pgrep -P "$US_PID" | wc -l) workers for ${PROFILE_S}s ($MODE, load $(loadavg))"
pids=()
for w in $(pgrep -P "$US_PID"); do
  "$PYSPY" record --pid "$w" --duration "$PROFILE_S" --rate 100 --nonblocking $PYSPY_GIL --format raw \
    --output "$WORK/w$w.txt" > "$WORK/pyspy-$w.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; LOAD_PID=""
"$PY" "$ROOT/bench/pyspy_top.py" "$WORK"/w*.txt --top 45 | tee "$WORK/summary.txt"
log "profiles in $WORK"
