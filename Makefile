# The targets double as documentation: `make run` and `make test` work on a fresh machine.
VENV    := .venv
PY      := $(VENV)/bin/python
PORT    ?= 8000
WORKERS ?= 4

.PHONY: setup run test check format bench bench-layers bench-polling soak faults clean FORCE

## setup: create .venv (runtime and development requirements) and node_modules (idempotent)
setup: $(VENV)/.installed-dev node_modules/.installed

# The interpreter .venv is built with: scripts/pick-python says which and why (PYTHON=...
# overrides). A .venv built with another interpreter is built again.
PYTHON_BIN := $(shell PYTHON="$(PYTHON)" scripts/pick-python)

$(VENV)/.python: FORCE
	@test -n "$(PYTHON_BIN)"
	@if [ "$$(cat $@ 2>/dev/null)" != "$(PYTHON_BIN)" ]; then \
	  rm -rf $(VENV) && $(PYTHON_BIN) -m venv $(VENV) && echo "$(PYTHON_BIN)" > $@; fi

# Two stamps: `make run` needs only the runtime set; the development set (test, lint and
# type tools) is installed on top of it by the targets that use it, in the same .venv.
$(VENV)/.installed-runtime: requirements.txt $(VENV)/.python
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed-runtime
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# socket.io-client (pinned in package-lock.json): interop tests and the room page's client
node_modules/.installed: package.json package-lock.json
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	npm ci --silent --no-audit --no-fund
	touch $@

## run: runtime requirements only; migrate, seed the users if there are none, start a 4-worker cluster on PORT
##      (DEBUG=on unless set: settings default to production)
run: $(VENV)/.installed-runtime node_modules/.installed
	DEBUG=$${DEBUG:-on} $(PY) manage.py reset_db --if-empty
	DEBUG=$${DEBUG:-on} $(PY) manage.py runcluster --workers $(WORKERS) --port $(PORT)

PG_URL  ?= postgres://postgres@127.0.0.1:5432/identity_playground

## test: everything CI runs (scripts/test-passes, which prints each pass's wall time): lint and
##       types, every test (real Redis, daphne, Chromium) on SQLite, the tests through daphne
##       again with the server tuning off, the database's tests on PostgreSQL when a server answers
test: setup
	bash scripts/ensure-redis
	bash scripts/ensure-chromium
	bash scripts/ensure-postgres
	PY=$(PY) PG_URL=$(PG_URL) bash scripts/test-passes

## check: the fast loop: lint, format, types, layer contracts, unit tests
check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest tests/unit -q

## bench: our 4-worker cluster and the socket.io reference side by side, then our cluster on
## each channel layer, then long-polling clients (about 20 minutes; BENCH_LAYERS=0 and
## BENCH_POLLING=0 leave those out)
bench: setup
	bash bench/run.sh

## bench-layers: our cluster on the bus's layer and on channels_redis's two (about 6 minutes)
bench-layers: setup
	bash bench/layers.sh

## bench-polling: long-polling clients beside WebSocket ones, ours and the reference's (about 4 minutes)
bench-polling: setup
	bash bench/polling.sh

## soak: 2000 churning sockets over 4 workers for about 5 minutes (DURATION=60 shortens it)
soak: setup
	bash bench/soak.sh

## faults: a killed and a hung worker, ours and the reference side by side (about 3 minutes)
faults: setup
	bash bench/faults.sh

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules staticfiles .pytest_cache .mypy_cache .ruff_cache

FORCE:
