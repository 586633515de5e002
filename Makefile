# The two set-up commands of the README. Both work on a fresh machine with Python 3.11.
VENV ?= .venv
PY := $(VENV)/bin/python
TL := $(VENV)/bin/taskledger
export TASKLEDGER_HOME ?= ./var
export TASKLEDGER_TEST_BACKENDS ?= sqlite,postgres

.PHONY: install demo test bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Main job on embedded defaults: install, dev PKI, load a year of demo data, list tasks, then run the
# whole stack until Ctrl-C: dev Kafka-API broker, relay publishing every event to taskledger.events.v1,
# stream worker projecting into ClickHouse (chdb under $TASKLEDGER_HOME/olap; `taskledger sql` reads
# through it while it runs). UP_ARGS=--until-caught-up stops once every stored event is on the topic
# and in ClickHouse.
UP_ARGS ?=
demo: install
	$(TL) pki init
	$(TL) demo
	$(TL) stats
	$(TL) task list --limit 25
	$(TL) up $(UP_ARGS)

# The whole test suite, on SQLite and on the local PostgreSQL (127.0.0.1:5432, database test).
test: install
	$(PY) -m pytest -q

bench: install
	$(PY) -m bench.bench_commands
	$(PY) -m bench.bench_relay
	$(PY) -m bench.bench_audit
	$(PY) -m bench.bench_streams
