#!/usr/bin/env bash
# Our 4-worker cluster on one Redis vs the same cluster with the channel layer sharded over
# two Redis servers (REDIS_URL="url1,url2"), same harness, interleaved. Writes
# bench/results/sharded-latest.json and prints a table. About 3 minutes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_venv
ensure_redis
ensure_reference
H="$REF_DIR/bench"
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
WORK="$ROOT/.tmp/bench/sharded-$STAMP"
mkdir -p "$WORK"

second_port="$(free_port)"
redis-server --bind 127.0.0.1 --port "$second_port" --save "" --appendonly no \
  --dir "$WORK" >"$WORK/redis2.log" 2>&1 &
second_pid=$!
trap 'kill "$second_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$second_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
one="$BENCH_REDIS_URL"
two="$BENCH_REDIS_URL,redis://127.0.0.1:$second_port/0"

run_config() {  # LABEL URLS ROUND
  local label="$1" urls="$2" round="$3" port prefix pid
  port="$(free_port)"; prefix="bench-sharded-$STAMP-$label-$round"
  pid="$(BENCH_REDIS_URL="$urls" start_ours "$port" "$prefix" "$WORK")"
  wait_ready "http://127.0.0.1:$port" "$pid" || die "$label cluster did not start"
  for size in 10 100 1000; do
    node "$H/roomusers.js" --url "http://127.0.0.1:$port" --sockets "$size" --requests 200 \
      >"$WORK/$label-$round-roster-$size.json"
  done
  node "$H/fanout.js" --url "http://127.0.0.1:$port" --sockets 101 --messages 60 --interval 60 \
    >"$WORK/$label-$round-fanout-100.json"
  stop_cluster "$pid"
  drop_prefix "$prefix"
}

for round in 1 2; do
  if [ "$round" = 1 ]; then run_config one "$one" "$round"; run_config two "$two" "$round"
  else run_config two "$two" "$round"; run_config one "$one" "$round"; fi
done

"$PY" - "$WORK" "$ROOT/bench/results/sharded-latest.json" <<'PY'
import json, pathlib, statistics, sys
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def med(label, name, key):
    vals = []
    for f in sorted(work.glob(f"{label}-*-{name}.json")):
        data = json.loads(f.read_text())
        vals.append(data[key])
    return round(statistics.median(vals), 2)
rows = []
for name, key in [("roster-10", "p50_ms"), ("roster-100", "p50_ms"), ("roster-1000", "p50_ms"),
                  ("roster-10", "p99_ms"), ("roster-1000", "p99_ms"), ("fanout-100", "p50_ms"),
                  ("fanout-100", "p99_ms")]:
    one, two = med("one", name, key), med("two", name, key)
    rows.append({"figure": f"{name} {key}", "one_redis": one, "two_redis": two,
                 "two_over_one": round(two / one, 2)})
out.write_text(json.dumps({"rows": rows, "work": str(work)}, indent=2))
print("| figure (ms) | 1 Redis | 2 Redis (sharded) | 2/1 |\n|---|---:|---:|---:|")
for r in rows:
    print(f"| {r['figure']} | {r['one_redis']} | {r['two_redis']} | {r['two_over_one']} |")
PY
