#!/usr/bin/env bash
# Our 4-worker cluster on each channel layer it runs on (CHANNEL_LAYER_BACKEND: the bus's,
# channels_redis's pub/sub layer, channels_redis's core layer), same harness, 2 rounds in
# flipped order: rosters, fan-out, and a join burst of 1000 sockets into one room with 10
# listeners counting the socket-connected events they hear (bench/join-burst.js). Writes
# bench/results/layers-latest.json and prints a table. About 6 minutes; `make bench` ends
# with it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_venv
ensure_redis
ensure_reference
H="$REF_DIR/bench"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
WORK="$ROOT/.tmp/bench/layers-$STAMP"
mkdir -p "$WORK"

declare -A BACKEND=(
  [bus]=rooms.bus.layer.BusChannelLayer
  [pubsub]=channels_redis.pubsub.RedisPubSubChannelLayer
  [core]=channels_redis.core.RedisChannelLayer
)

run_config() {  # LABEL ROUND
  local label="$1" round="$2" port prefix pid
  port="$(free_port)"; prefix="bench-layers-$STAMP-$label-$round"
  pid="$(OUR_ENV="CHANNEL_LAYER_BACKEND=${BACKEND[$label]}" start_ours "$port" "$prefix" "$WORK")"
  wait_ready "http://127.0.0.1:$port" "$pid" || die "$label cluster did not start"
  for size in 10 100 1000; do
    node "$H/roomusers.js" --url "http://127.0.0.1:$port" --sockets "$size" --requests 200 \
      >"$WORK/$label-$round-roster-$size.json"
  done
  node "$H/fanout.js" --url "http://127.0.0.1:$port" --sockets 101 --messages 60 --interval 60 \
    >"$WORK/$label-$round-fanout-100.json"
  node "$ROOT/bench/join-burst.js" --url "http://127.0.0.1:$port" --sockets 1000 \
    >"$WORK/$label-$round-burst-1000.json"
  stop_cluster "$pid"
  drop_prefix "$prefix"
}

for round in 1 2; do
  if [ "$round" = 1 ]; then order=(bus pubsub core); else order=(core pubsub bus); fi
  for label in "${order[@]}"; do run_config "$label" "$round"; done
done

"$PY" - "$WORK" "$ROOT/bench/results/layers-latest.json" <<'PY'
import json, pathlib, statistics, sys
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def med(label, name, key):
    vals = [json.loads(f.read_text())[key] for f in sorted(work.glob(f"{label}-*-{name}.json"))]
    return round(statistics.median(vals), 2)
rows = []
for name, key in [("roster-10", "p50_ms"), ("roster-100", "p50_ms"), ("roster-1000", "p50_ms"),
                  ("roster-1000", "p99_ms"), ("fanout-100", "p50_ms"), ("fanout-100", "p99_ms"),
                  ("burst-1000", "rate_per_s"), ("burst-1000", "handshake_p99_ms"),
                  ("burst-1000", "events_lost"), ("burst-1000", "events_duplicated")]:
    row = {"figure": f"{name} {key}"}
    row.update({label: med(label, name, key) for label in ("bus", "pubsub", "core")})
    rows.append(row)
out.write_text(json.dumps({"rows": rows, "work": str(work)}, indent=2))
print("| figure | bus | channels_redis pubsub | channels_redis core |\n|---|---:|---:|---:|")
for r in rows:
    print(f"| {r['figure']} | {r['bus']} | {r['pubsub']} | {r['core']} |")
PY
