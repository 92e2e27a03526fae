# Two commands matter (see README): `make run` starts the app, `make test` runs every test.
# Both set up what they need on a fresh machine: venvs, packages, Debian's chromium.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
GRADIO_VENVS := .venv-gradio4 .venv-gradio5 .venv-gradio6
PORT ?= 8501

.PHONY: run test bench lint setup chromium postgres clean

$(VENV)/.app-ok: requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-ok: $(VENV)/.app-ok requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

.venv-gradio%/.ok: tests/replicas/requirements-gradio%.txt
	test -x .venv-gradio$*/bin/python || $(PY) -m venv .venv-gradio$*
	.venv-gradio$*/bin/pip install -q -r $<
	touch $@

chromium:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# PostgreSQL 15 for the store's tests (they start their own cluster in a temp dir)
postgres:
	@test -x /usr/lib/postgresql/15/bin/initdb || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq postgresql-15 postgresql-contrib >/dev/null; }

setup: $(VENV)/.dev-ok $(addsuffix /.ok,$(GRADIO_VENVS)) chromium postgres

run: $(VENV)/.app-ok
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

lint: $(VENV)/.dev-ok
	$(BIN)/ruff check .
	$(BIN)/mypy --strict qwen_core

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy --strict qwen_core
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(GRADIO_VENVS) .pytest_cache .ruff_cache
