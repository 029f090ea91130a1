#!/usr/bin/env bash
# Long-polling beside WebSocket (bench/polling.js): socket.io-client with transports
# ['polling'], its defaults (polling, then the upgrade) and ['websocket'], on our 4-worker
# cluster (no sticky sessions), and ['websocket'] on the reference cluster, which serves
# WebSocket only (its cluster.js has no sticky sessions, so it cannot serve polling). 2
# rounds in flipped order, each cluster fresh. Writes bench/results/polling-latest.json and
# prints a table. About 4 minutes; `make bench` ends with it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ensure_venv
ensure_redis
ensure_reference
STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
WORK="$ROOT/.tmp/bench/polling-$STAMP"
mkdir -p "$WORK"
TOKEN="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"

run_ours() {  # ROUND
  local round="$1" port prefix pid
  port="$(free_port)"; prefix="bench-polling-$STAMP-$round"
  pid="$(OUR_ENV="METRICS_TOKEN=$TOKEN" start_ours "$port" "$prefix" "$WORK")"
  wait_ready "http://127.0.0.1:$port" "$pid" || die "our cluster did not start"
  for transports in polling default websocket; do
    node "$ROOT/bench/polling.js" --url "http://127.0.0.1:$port" --transports "$transports" \
      --metrics "http://ops:$TOKEN@127.0.0.1:$port/metrics" >"$WORK/ours-$transports-$round.json"
  done
  stop_cluster "$pid"
  drop_prefix "$prefix"
}

run_ref() {  # ROUND
  local round="$1" port prefix pid
  port="$(free_port)"; prefix="bench-polling-ref-$STAMP-$round"
  pid="$(start_ref "$port" "$prefix" "$WORK")"
  wait_ready "http://127.0.0.1:$port" "$pid" || die "the reference did not start"
  node "$ROOT/bench/polling.js" --url "http://127.0.0.1:$port" --transports websocket \
    >"$WORK/ref-websocket-$round.json"
  stop_cluster "$pid"
  drop_prefix "$prefix"
}

run_ours 1; run_ref 1; run_ref 2; run_ours 2

"$PY" - "$WORK" "$ROOT/bench/results/polling-latest.json" <<'PY'
import json, pathlib, statistics, sys
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
configs = ["ours-polling", "ours-default", "ours-websocket", "ref-websocket"]
figures = ["connects_per_s", "handshake_p99_ms", "event_p50_ms", "event_p99_ms",
           "events_lost", "events_duplicated", "forwarded_share"]
rows = []
for figure in figures:
    row = {"figure": figure}
    for config in configs:
        values = [json.loads(f.read_text()).get(figure) for f in sorted(work.glob(f"{config}-*.json"))]
        values = [v for v in values if v is not None]
        row[config] = round(statistics.median(values), 3) if values else None
    rows.append(row)
out.write_text(json.dumps({"rows": rows, "work": str(work)}, indent=2) + "\n")
print("| figure | " + " | ".join(configs) + " |")
print("|---|" + "---:|" * len(configs))
for row in rows:
    print(f"| {row['figure']} | " + " | ".join(str(row[c]) for c in configs) + " |")
PY
