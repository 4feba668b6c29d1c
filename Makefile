# aiogw — the two commands a fresh machine needs are `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
AGENTS := .agents
CONFIG ?=
HOST ?=
PORT ?=

.PHONY: install system-deps run test demo bench bench-ops bench-peers bench-full bench-postgres bench-scale lint install-agents install-service upgrade-deps clean

# Every package comes at the version constraints.txt names, the build tools too (no build
# isolation, which would fetch the newest setuptools): an upstream release never changes a run.
PIN := -c constraints.txt
install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(PIN) pip setuptools
	$(BIN)/pip install -q --disable-pip-version-check --no-build-isolation $(PIN) -e '.[dev]'
	touch $@

# Newest releases of everything setup.cfg allows, into constraints.txt, then the whole suite on
# them. Run it on purpose (a new SDK, a security fix), read the diff, commit it with the run.
upgrade-deps:
	rm -rf .venv-upgrade
	$(PY) -m venv .venv-upgrade
	.venv-upgrade/bin/pip install -q --disable-pip-version-check --upgrade pip setuptools
	.venv-upgrade/bin/pip install -q --disable-pip-version-check --no-build-isolation -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .venv-upgrade/bin/pip freeze --all --exclude-editable | grep -v '^#' | sort -f; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .venv-upgrade
	rm -f $(VENV)/.installed
	$(MAKE) test

# The servers the tests start for themselves, from Debian's packages: PostgreSQL's binaries
# (tests/pgserver.py runs a throwaway cluster of its own, never the system's service) and
# Redis's. Installed when missing and we are root; otherwise it says what to install and the
# tests that need them skip. Nothing to do when they are there, so `make test` runs it.
# Each entry is program:package; Debian keeps PostgreSQL's programs off PATH, in
# /usr/lib/postgresql/VERSION/bin, where tests/pgserver.py looks too (or in $AIOGW_PG_BIN).
# chromium joins the list with the console's browser tests (DESIGN.md, section 8).
SYSTEM_DEPS := initdb:postgresql redis-server:redis-server
system-deps:
	@missing=; for dep in $(SYSTEM_DEPS); do \
		bin=$${dep%%:*}; \
		command -v $$bin >/dev/null || ls /usr/lib/postgresql/*/bin/$$bin >/dev/null 2>&1 \
			|| { [ -n "$$AIOGW_PG_BIN" ] && [ -x "$$AIOGW_PG_BIN/$$bin" ]; } || missing="$$missing $${dep#*:}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "system-deps: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; \
	else \
		echo "system-deps: missing$$missing: install them (Debian: sudo apt-get install$$missing, or sudo make system-deps); until then the tests that need them are skipped" >&2; \
	fi

run: install
	$(BIN)/aiogw serve $(if $(CONFIG),--config $(CONFIG)) $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

test: install system-deps
	PATH="$(CURDIR)/$(AGENTS)/node_modules/.bin:$$PATH" $(BIN)/python -m pytest

# A tour in a few seconds, offline: a fake provider, the gateway, an agent session, the audit.
demo: install
	$(BIN)/aiogw demo

# Claude Code and the Codex CLI, for the end-to-end agent tests (offline, local URLs).
# Exact versions, like constraints.txt: a new CLI release changes what the agent tests see.
CLAUDE_CODE ?= 2.1.197
CODEX ?= 0.171.0
install-agents:
	npm install --prefix $(AGENTS) --no-audit --no-fund --loglevel=error --save-exact \
		@anthropic-ai/claude-code@$(CLAUDE_CODE) @openai/codex@$(CODEX)

bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.run

# What metrics and the per-exchange log cost (writes bench/RESULTS.md, section bench.ops).
bench-ops: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.ops

# aiogw beside nginx, the LiteLLM proxy and the Portkey gateway on one fake upstream (#7, first
# look); installs the peers into ~/.cache/aiogw-bench (nginx with apt-get, so as root).
bench-peers: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.peers

# The whole comparison of #7: aiogw with everything on and everything off, the pass-through,
# nginx, LiteLLM and Portkey on every workload, then open streams up to 5,000 (writes
# bench/RESULTS.md, section bench.full). Installs the peers as bench-peers does.
bench-full: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.full

# SQLite against PostgreSQL (#18): throughput, loop lag, audit batch time and storage in one
# run (section bench.postgres, ~4 min), then 10 M generated records on PostgreSQL for audit
# list, a conversation and a day's prune (section bench.postgres_queries, ~6 min, ~12 GB of
# disk in /tmp while it runs). Each starts a throwaway PostgreSQL of its own (system-deps).
bench-postgres: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.postgres
	$(BIN)/python -m bench.postgres_queries

# Workers and limits in Redis against one process with limits in memory (#19 item 6): CPU an
# answer over every process, Redis's added p50, limits on against off, 1 worker against 2, in
# one run (section bench.scale, ~4 min). Starts a throwaway redis-server of its own (system-deps).
bench-scale: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.scale

lint: install
	$(BIN)/ruff check aiogw tests bench

# The systemd service: code in $(SERVICE_PREFIX)/.venv, unit in /etc/systemd/system,
# config and provider keys in /etc/aiogw (never overwritten once there). As root; or
# DESTDIR=/tmp/stage to try it into a staging tree (then nothing is reloaded).
DESTDIR ?=
SERVICE_PREFIX ?= /opt/aiogw
# The system's Python, not a pyenv or ~/.local one: ProtectHome= hides /root and /home
# from the service, and a venv only links to its interpreter.
SERVICE_PY ?= /usr/bin/python3
SERVICE_VENV := $(DESTDIR)$(SERVICE_PREFIX)/.venv
ETC := $(DESTDIR)/etc/aiogw

install-service:
	@test "$$(id -u)" = 0 || test -n "$(DESTDIR)" || { echo "install-service: run it as root (sudo make install-service), or try it with DESTDIR=/tmp/stage" >&2; exit 1; }
	@case "$$(readlink -f $(SERVICE_PY))" in /root/*|/home/*) echo "install-service: $(SERVICE_PY) lives under /root or /home, which the service cannot see; set SERVICE_PY=/usr/bin/python3" >&2; exit 1;; esac
	@# umask 022: the service runs as a dynamic user that must be able to read the code.
	umask 022 && install -d -m 0755 $(DESTDIR)$(SERVICE_PREFIX)
	umask 022 && { test -x $(SERVICE_VENV)/bin/python || $(SERVICE_PY) -m venv $(SERVICE_VENV); }
	umask 022 && $(SERVICE_VENV)/bin/pip install -q --disable-pip-version-check --root-user-action=ignore .
	install -d -m 0755 $(DESTDIR)/etc/systemd/system $(ETC)
	@# aiogw@.service too: a template, inert until an instance (aiogw@NAME, /etc/aiogw/NAME.toml) is enabled.
	for unit in aiogw.service aiogw@.service; do \
		sed 's|/opt/aiogw/|$(SERVICE_PREFIX)/|g' systemd/$$unit > $(DESTDIR)/etc/systemd/system/$$unit && \
		chmod 0644 $(DESTDIR)/etc/systemd/system/$$unit || exit 1; \
	done
	test -e $(ETC)/aiogw.toml || install -m 0644 systemd/aiogw.toml $(ETC)/aiogw.toml
	test -e $(ETC)/env || install -m 0600 systemd/env.example $(ETC)/env
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo
	@echo "aiogw is installed in $(DESTDIR)$(SERVICE_PREFIX). Next:"
	@echo "  1. put the provider keys in /etc/aiogw/env (mode 0600) and review /etc/aiogw/aiogw.toml"
	@echo "  2. $(SERVICE_PREFIX)/.venv/bin/aiogw check-config /etc/aiogw/aiogw.toml"
	@echo "  3. systemctl enable --now aiogw && systemctl status aiogw"
	@echo "  4. make a gateway key as the service's own user (it owns /var/lib/aiogw):"
	@echo "     systemd-run --pipe --wait -q -p DynamicUser=yes -p User=aiogw -p StateDirectory=aiogw \\"
	@echo "       -p StateDirectoryMode=0700 -p UMask=0077 \\"
	@echo "       $(SERVICE_PREFIX)/.venv/bin/aiogw keys create USER --config /etc/aiogw/aiogw.toml"
	@echo "Several instances behind a load balancer instead: /etc/aiogw/a.toml, b.toml (systemd/a.toml.example),"
	@echo "  systemctl enable --now aiogw@a aiogw@b (README: Running several instances)"

clean:
	rm -rf $(VENV) $(AGENTS) build *.egg-info
