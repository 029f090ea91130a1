#!/usr/bin/env bash
# `make soak`: 2000 sockets churning over OUR 4-worker cluster for ~5 minutes.
#
#   bash bench/soak.sh               # DURATION=300 s of churn (plus ~1 min of ramp and checks)
#   DURATION=60 bash bench/soak.sh   # a short one
#
# Starts our cluster on a free port of 127.0.0.1 (own SQLite file, own Redis prefix), runs
# bench/soak.js (Node, socket.io-client of the copied reference): connect, join, rename,
# leave, disconnect at a steady rate while rosters are polled; after each churn period it
# checks every roster against the sockets the generator holds open (no ghost sockets),
# samples the workers' RSS every 5 s, counts errors in the cluster log. Prints a summary and
# writes bench/results/soak-latest.json (and soak-<UTC date-time>.json); the cluster log
# stays in .tmp/bench/soak-<UTC date-time>/. Exit code 0 only when every check passed.
#
# Knobs: DURATION (300), SOCKETS (2000), ROOMS (20), OPS (40 operations/s), POLLS (5 roster
# GETs/s), RENAMES (1 PUT /users/<id> per s), PERIOD (30 s: churn then a quiet check),
# MIX (1,1,1,1: weights of reconnect, join, leave, identity-change), WORKERS (4),
# BENCH_REDIS_URL.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
WORK="$ROOT/.tmp/bench/soak-$STAMP"
RESULTS="$ROOT/bench/results"
mkdir -p "$WORK" "$RESULTS"
US_PID=""; PREFIX="bench-soak-$STAMP"
cleanup() { stop_cluster "$US_PID"; drop_prefix "$PREFIX"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_venv; ensure_redis; ensure_reference; export REF_DIR
PORT="$(free_port)"; URL="http://127.0.0.1:$PORT"
US_PID="$(start_ours "$PORT" "$PREFIX" "$WORK")"
wait_ready "$URL" "$US_PID" || { tail -30 "$WORK/ours.log" >&2; die "our cluster did not come up"; }
log "soak: $URL (pid $US_PID), ${SOCKETS:-2000} sockets, ${DURATION:-300}s, load $(loadavg)"

node "$ROOT/bench/soak.js" --url "$URL" --cluster-pid "$US_PID" --log "$WORK/ours.log" \
  --sockets "${SOCKETS:-2000}" --rooms "${ROOMS:-20}" --duration "${DURATION:-300}" \
  --period "${PERIOD:-30}" --ops "${OPS:-40}" --polls "${POLLS:-5}" --renames "${RENAMES:-1}" \
  --mix "${MIX:-1,1,1,1}" \
  > "$WORK/soak.json"
rc=$?
stop_cluster "$US_PID"; US_PID=""
if [ ! -s "$WORK/soak.json" ]; then die "soak.js wrote nothing (rc $rc)"; fi
cp "$WORK/soak.json" "$RESULTS/soak-$STAMP.json"
cp "$WORK/soak.json" "$RESULTS/soak-latest.json"

"$PY" - "$WORK/soak.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
c, r = d["counts"], d["rss"]
print(f"\nsoak {d['duration_s']:.0f}s, {d['cycles']} cycles, {d['sockets']} sockets in {d['rooms']} rooms"
      f" (ramp {d['ramp']['connected']} in {d['ramp']['seconds']}s, {d['ramp']['rate_per_s']}/s)")
print(f"operations: {c['connects']} connects ({c['reconnects']} reconnects), {c['joins']} joins, "
      f"{c['leaves']} leaves, {c['renames_event']} identity-change, {c['renames_http']} PUT renames")
print(f"roster polls: {c['polls']} (p50 {d['poll_latency_ms'].get('p50')} ms, p99 "
      f"{d['poll_latency_ms'].get('p99')} ms), non-200 {c['poll_non_200']}, partial {c['poll_partial']}")
print(f"checks: {len(d['checks'])}, wrong {d['wrong_checks']}, ghost sockets {d['ghost_sockets_total']}, "
      f"missing {d['missing_sockets_total']}, needed a recheck {d['first_attempt_mismatch']}")
print(f"errors: connect {c['connect_failed']}, acks {c['ack_failed']}, unexpected disconnects "
      f"{c['unexpected_disconnects']}, PUT {c['rename_http_failed']}")
print(f"worker RSS: after ramp {r['after_ramp_kb']} KB, after warm-up {r['warm_kb']} KB, end {r['end_kb']} KB "
      f"(growth after warm-up {r['growth_after_warmup_kb']} KB, slope {r['slope_after_warmup_kb_per_min']} KB/min, "
      f"{r.get('slope_second_half_kb_per_min')} KB/min over the second half)")
log = d.get("cluster_log") or {}
print(f"cluster log: {log.get('errors')} errors, {log.get('warnings')} warnings")
for item in log.get("top", [])[:5]:
    print(f"  {item['n']:6d}  {item['line']}")
print("PASS" if d["ok"] else "FAIL", "-> bench/results/soak-latest.json")
EOF
exit $rc
