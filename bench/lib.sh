# Shared by bench/run.sh, bench/soak.sh and bench/profile.sh (sourced, not run).
# Everything here only ever starts, signals and cleans up what it started itself:
# clusters by the pid it recorded, Redis keys under its own prefixes.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
# The Node reference is copied out of the read-only shared folder into a git-ignored one.
NODE_REFERENCE_SRC="${NODE_REFERENCE_SRC:-$ROOT/../shared/anchors/node-reference}"
REF_DIR="${REF_DIR:-$ROOT/.tmp/node-reference}"
BENCH_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}"
STARTED_PIDS=()

log() { echo "[bench $(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# Only 127.0.0.1 is ever targeted.
redis_hostport() {
  local hp="${BENCH_REDIS_URL#*://}"; hp="${hp#*@}"; hp="${hp%%/*}"
  echo "$hp"
}
check_local_redis_url() {
  local host; host="$(redis_hostport)"; host="${host%%:*}"
  case "$host" in 127.0.0.1|localhost) ;; *) die "BENCH_REDIS_URL must point at 127.0.0.1, not $host" ;; esac
}
redis_cli() {
  local hp; hp="$(redis_hostport)"
  local port="${hp##*:}"; [ "$port" = "$hp" ] && port=6379
  local db="${BENCH_REDIS_URL##*/}"; case "$db" in ''|*[!0-9]*) db=0 ;; esac
  redis-cli -h 127.0.0.1 -p "$port" -n "$db" "$@"
}

ensure_venv() {
  [ -x "$PY" ] || (cd "$ROOT" && make setup) || die "no .venv and 'make setup' failed"
}

ensure_redis() {
  check_local_redis_url
  REDIS_URL="$BENCH_REDIS_URL" bash "$ROOT/scripts/ensure-redis" >&2 || die "no Redis at $BENCH_REDIS_URL"
}

# Copy the reference (and its harness) out of shared/ and `npm ci` there, once per lockfile.
ensure_reference() {
  command -v node >/dev/null || die "node is not installed (apt-get install nodejs npm)"
  [ -f "$NODE_REFERENCE_SRC/cluster.js" ] || die "no node reference at $NODE_REFERENCE_SRC (set NODE_REFERENCE_SRC)"
  mkdir -p "$REF_DIR"
  # refresh the sources (not node_modules); shared/ files are read-only, the copy is not
  (cd "$NODE_REFERENCE_SRC" && tar --exclude=node_modules -cf - .) | (cd "$REF_DIR" && tar -xf - --no-same-permissions)
  chmod -R u+w "$REF_DIR"
  local stamp="$REF_DIR/node_modules/.bench-lock.sha"
  local want; want="$(sha256sum "$REF_DIR/package-lock.json" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "npm ci in $REF_DIR"
    (cd "$REF_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed in $REF_DIR"
    echo "$want" > "$stamp"
  fi
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_ours PORT PREFIX WORKDIR -> prints the runcluster pid; log in WORKDIR/ours.log
# Production settings (DEBUG off: Django does not record every SQL query, as it does with
# DEBUG on) over plain HTTP on 127.0.0.1; BENCH_DEBUG=1 measures the development defaults
# instead. US_SERVER_TUNING (on) is the cluster's SERVER_TUNING: on, off, or a comma list of
# patch names (rooms/server/tuning.py; `tuning_without NAME` gives all but one). OUR_ENV adds
# VAR=value words to our cluster's environment.
start_ours() {
  local port="$1" prefix="$2" work="$3"
  local mode=(DEBUG=off SECRET_KEY="bench-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
              ALLOWED_HOSTS=127.0.0.1,localhost SECURE_SSL_REDIRECT=off SECURE_PROXY_SSL_HEADER=off)
  [ "${BENCH_DEBUG:-0}" = 1 ] && mode=(DEBUG=on)
  local env=(env DATABASE_URL="sqlite:///$work/db.sqlite3" REDIS_URL="$BENCH_REDIS_URL"
             CHANNEL_PREFIX="$prefix" DJANGO_SETTINGS_MODULE=identity_playground.settings
             STATIC_ROOT="$work/static" PYTHONUNBUFFERED=1 SERVER_TUNING="${US_SERVER_TUNING:-on}"
             "${mode[@]}" ${OUR_ENV:-})
  # As on Heroku, production settings serve collected static files: without them whitenoise
  # warns once per worker (a fresh checkout has no staticfiles/).
  (cd "$ROOT" && "${env[@]}" "$PY" manage.py reset_db >"$work/reset_db.log" 2>&1 \
     && "${env[@]}" "$PY" manage.py collectstatic --noinput -v0 >>"$work/reset_db.log" 2>&1) \
    || { cat "$work/reset_db.log" >&2; die "reset_db or collectstatic failed"; }
  (cd "$ROOT" && exec "${env[@]}" "$PY" manage.py runcluster --workers "${WORKERS:-4}" --port "$port" \
    >"$work/ours.log" 2>&1) &
  echo $!
}

# tuning_without NAME -> the SERVER_TUNING value naming every patch but NAME (fails for a
# name rooms/server/tuning.py does not know)
tuning_without() {
  (cd "$ROOT" && "$PY" -c 'import sys
from rooms.server import tuning
tuning.wanted(sys.argv[1])
print(",".join(name for name in tuning.PATCHES if name != sys.argv[1]))' "$1")
}

# start_ref PORT PREFIX WORKDIR -> prints the cluster.js pid; log in WORKDIR/ref.log
start_ref() {
  local port="$1" prefix="$2" work="$3"
  (cd "$REF_DIR" && exec env REDIS_URL="$BENCH_REDIS_URL" node cluster.js --workers "${WORKERS:-4}" \
    --port "$port" --prefix "$prefix" --reset-users --quiet >"$work/ref.log" 2>&1) &
  echo $!
}

# wait_ready URL PID: until GET /workers lists WORKERS workers (at most 60 s)
wait_ready() {
  local url="$1" pid="$2" n=0
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || return 1
    n="$(curl -s -m 2 "$url/workers" 2>/dev/null | "$PY" -c 'import json,sys
try: print(len(json.load(sys.stdin)))
except Exception: print(0)')"
    [ "${n:-0}" -ge "${WORKERS:-4}" ] && return 0
    sleep 0.1
  done
  return 1
}

# stop_cluster PID: SIGTERM the parent (it stops its workers); SIGKILL it and its direct
# children if still there after 15 s.
stop_cluster() {
  local pid="$1"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  local kids; kids="$(pgrep -P "$pid" || true)"
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "cluster $pid ignored SIGTERM: killing it and its workers"
    for k in $kids; do kill -KILL "$k" 2>/dev/null; done
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
}

# Remove the keys this run created (only under its own prefixes).
drop_prefix() {
  local prefix="$1"
  redis_cli --scan --pattern "$prefix:*" 2>/dev/null | while read -r key; do
    redis_cli del "$key" >/dev/null 2>&1
  done
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# start_pair WORKDIR PREFIX: our cluster and the reference on two free ports, same Redis,
# keys under PREFIX-us and PREFIX-ref, both up with every worker listed. Sets US_PID,
# REF_PID, US_URL, REF_URL, US_PREFIX and REF_PREFIX; the caller's EXIT trap runs stop_pair.
start_pair() {
  local work="$1"
  US_PREFIX="$2-us"; REF_PREFIX="$2-ref"
  local us_port ref_port; us_port="$(free_port)"; ref_port="$(free_port)"
  while [ "$ref_port" = "$us_port" ]; do ref_port="$(free_port)"; done
  US_URL="http://127.0.0.1:$us_port"; REF_URL="http://127.0.0.1:$ref_port"
  US_PID="$(start_ours "$us_port" "$US_PREFIX" "$work")"
  REF_PID="$(start_ref "$ref_port" "$REF_PREFIX" "$work")"
  wait_ready "$US_URL" "$US_PID" || { tail -30 "$work/ours.log" >&2; die "our cluster did not come up"; }
  wait_ready "$REF_URL" "$REF_PID" || { tail -30 "$work/ref.log" >&2; die "the reference did not come up"; }
  log "ours: $US_URL (pid $US_PID)   reference: $REF_URL (pid $REF_PID)   load $(loadavg)"
}

# stop_pair: stop what start_pair started (if still running) and drop its Redis keys.
stop_pair() {
  stop_cluster "${US_PID:-}"; stop_cluster "${REF_PID:-}"
  [ -n "${US_PREFIX:-}" ] && drop_prefix "$US_PREFIX"
  [ -n "${REF_PREFIX:-}" ] && drop_prefix "$REF_PREFIX"
  US_PID=""; REF_PID=""
}
