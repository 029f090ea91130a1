#!/usr/bin/env bash
# A/B of two commits: our cluster at BASE (A, a temporary git worktree) and at the working
# tree (B), both up at once on the same Redis, the reference harness's steps interleaved
# A B / B A per round so drift hits both alike. Prints one line per step and cluster.
#
#   bash bench/ab.sh BASE                         # ROUNDS=4 STEPS="roster-10 roster-100 roster-1000"
#   ROUNDS=6 STEPS="fanout-1000 connect" bash bench/ab.sh HEAD~1
#
# Steps: roster-10, roster-100, roster-1000, hydrate-10, hydrate-100, hydrate-1000 (the
# rosters with ?hydrate=1), fanout-100, fanout-1000, connect (1000 sockets
# in rooms of their own, then 1000 into one room). Compare `cpu` (the harness's server CPU,
# steadier than latency here) and latencies across rounds, never one pair. The cluster started
# first showed a higher 1000-socket roster p99 even with identical code: read p99 across the
# swapped orders only. A_VENV uses another virtualenv for A (e.g. to A/B a dependency).
#
# Server tuning (rooms/server/tuning.py): A_SERVER_TUNING and B_SERVER_TUNING (both on) are
# each side's SERVER_TUNING; WITHOUT=NAME sets B's to every patch but NAME. One patch against
# the rest, same code on both sides (a clean working tree):
#   WITHOUT=tcp_writes STEPS="fanout-1000 connect" bash bench/ab.sh HEAD
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BASE="${1:?usage: bash bench/ab.sh BASE-COMMIT}"
ROUNDS="${ROUNDS:-4}"; STEPS="${STEPS:-roster-10 roster-100 roster-1000}"
A_SERVER_TUNING="${A_SERVER_TUNING:-on}"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
WORK="$ROOT/.tmp/bench/ab-$STAMP"; A_DIR="$WORK/base"
A_PID=""; B_PID=""; A_PREFIX="bench-aba-$STAMP"; B_PREFIX="bench-abb-$STAMP"
cleanup() {
  stop_cluster "$A_PID"; stop_cluster "$B_PID"
  drop_prefix "$A_PREFIX"; drop_prefix "$B_PREFIX"
  git -C "$ROOT" worktree remove --force "$A_DIR" 2>/dev/null; git -C "$ROOT" worktree prune
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for step in $STEPS; do  # before anything starts: a typo would otherwise run node without a tool
  case "$step" in roster-10|roster-100|roster-1000|hydrate-10|hydrate-100|hydrate-1000) ;;
    fanout-100|fanout-1000|connect) ;; *) die "unknown step $step" ;; esac
done
ensure_venv
if [ -n "${WITHOUT:-}" ]; then
  B_SERVER_TUNING="$(tuning_without "$WITHOUT")" || die "WITHOUT=$WITHOUT: not a patch name"
fi
B_SERVER_TUNING="${B_SERVER_TUNING:-on}"
ensure_redis; ensure_reference
mkdir -p "$WORK/a" "$WORK/b"
git -C "$ROOT" worktree add --detach -q "$A_DIR" "$BASE" || die "no commit $BASE"
ln -s "${A_VENV:-$ROOT/.venv}" "$A_DIR/.venv"
ln -s "$ROOT/node_modules" "$A_DIR/node_modules"
A_PORT="$(free_port)"; B_PORT="$(free_port)"
# each cluster is started by its own checkout's bench/lib.sh, so A runs A's code (a lib.sh
# that does not know US_SERVER_TUNING passes the exported SERVER_TUNING through)
A_PID="$(export US_SERVER_TUNING="$A_SERVER_TUNING" SERVER_TUNING="$A_SERVER_TUNING"
         source "$A_DIR/bench/lib.sh"; start_ours "$A_PORT" "$A_PREFIX" "$WORK/a")"
B_PID="$(US_SERVER_TUNING="$B_SERVER_TUNING" start_ours "$B_PORT" "$B_PREFIX" "$WORK/b")"
wait_ready "http://127.0.0.1:$A_PORT" "$A_PID" || { tail -20 "$WORK/a/ours.log" >&2; die "A did not come up"; }
wait_ready "http://127.0.0.1:$B_PORT" "$B_PID" || { tail -20 "$WORK/b/ours.log" >&2; die "B did not come up"; }
log "A = $BASE ($(git -C "$A_DIR" log -1 --format=%h), SERVER_TUNING=$A_SERVER_TUNING)," \
  "B = working tree (SERVER_TUNING=$B_SERVER_TUNING); load $(loadavg)"

H="$REF_DIR/bench"
step_args() {
  case "$1" in
    roster-10|roster-100|roster-1000) echo "$H/roomusers.js --sockets ${1#roster-} --requests 200" ;;
    hydrate-*) echo "$H/roomusers.js --sockets ${1#hydrate-} --requests 200 --hydrate" ;;
    fanout-100) echo "$H/fanout.js --sockets 101 --messages 60 --interval 60" ;;
    fanout-1000) echo "$H/fanout.js --sockets 1001 --messages 30 --interval 200" ;;
    connect) echo "$H/connect-rate.js --sockets 1000 --rounds 1" ;;
  esac
}
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="a b"; else order="b a"; fi
  for step in $STEPS; do
    for target in $order; do
      if [ "$target" = a ]; then port="$A_PORT"; pid="$A_PID"; else port="$B_PORT"; pid="$B_PID"; fi
      out="$WORK/$target/r$round-$step.json"
      # shellcheck disable=SC2046
      timeout 300 node $(step_args "$step") --url "http://127.0.0.1:$port" --cluster-pid "$pid" \
        > "$out" 2> "${out%.json}.err"
      echo "r$round $step $target: $("$PY" "$ROOT/bench/ab_summary.py" "$out")"
      node "$H/settle.js" --url "http://127.0.0.1:$port" --cluster-pid "$pid" --max-s 10 > /dev/null 2>&1
    done
  done
done
log "cluster log errors: A $(grep -c -E 'Traceback|ERROR' "$WORK/a/ours.log"), B $(grep -c -E 'Traceback|ERROR' "$WORK/b/ours.log")"
