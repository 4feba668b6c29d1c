# aiogw — the two commands a fresh machine needs are `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
AGENTS := .agents
CONFIG ?=
HOST ?=
PORT ?=

.PHONY: install run test bench lint install-agents clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: install
	$(BIN)/aiogw serve $(if $(CONFIG),--config $(CONFIG)) $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

test: install
	PATH="$(CURDIR)/$(AGENTS)/node_modules/.bin:$$PATH" $(BIN)/python -m pytest

# Claude Code and the Codex CLI, for the end-to-end agent tests (offline, local URLs).
install-agents:
	npm install --prefix $(AGENTS) --no-audit --no-fund --loglevel=error @anthropic-ai/claude-code @openai/codex

bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.run

lint: install
	$(BIN)/ruff check aiogw tests bench

clean:
	rm -rf $(VENV) $(AGENTS) build *.egg-info
