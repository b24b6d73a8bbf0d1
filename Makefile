# make run    set up, then run the daemon on the default microphone with config/recorder.toml
#             (written once to ~/.config/recorder/recorder.toml, which every command then finds)
# make test   set up, then the checks (ruff, format, mypy) and every test
# make setup  .venv with the recorder installed, PortAudio present, models fetched and verified
# make demo   run the daemon on the recording that comes with the package (no microphone needed)
#             and list what it kept
# PYTHON and VENV select the interpreter and the venv, e.g. make test PYTHON=python3.13 VENV=.venv313
# In a checkout the models live in ./models (see recorder/models.py: models_dir).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# make run writes the commented configuration (config/recorder.toml) here once with `recorder
# config init` (never over an existing file) and runs with it, so that every later `recorder`
# command finds the same configuration.
USER_CONFIG := $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/recorder/recorder.toml
CONFIG ?= $(USER_CONFIG)

DEMO_DIR := demo-recordings

.PHONY: setup run test test-fast lint models portaudio demo clean bytecode

setup: $(BIN)/recorder portaudio models bytecode

# Compiled once here, so that each start of the daemon does not compile the package again
# (a service's checkout may be read-only, and PYTHONDONTWRITEBYTECODE stops the import from
# writing the cache): about 60 ms of a 0.2 s start.
bytecode: $(BIN)/recorder
	@$(BIN)/python -m compileall -q recorder

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip

# The distribution is wakeword-recorder; a venv made when it was called recorder loses that one.
$(BIN)/recorder: pyproject.toml | $(BIN)/python
	@$(BIN)/python -m pip uninstall -q -y recorder 2>/dev/null
	$(BIN)/python -m pip install -q --disable-pip-version-check -e .
	@touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/recorder
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

portaudio:
	@sh scripts/ensure-portaudio.sh

models: $(BIN)/recorder
	@$(BIN)/recorder models fetch

run: setup
	@if [ "$(CONFIG)" = "$(USER_CONFIG)" ] && [ ! -e "$(USER_CONFIG)" ]; then \
	  $(BIN)/recorder config init --config "$(USER_CONFIG)"; fi
	$(BIN)/recorder run --config "$(CONFIG)"

test: setup $(VENV)/.test-deps lint
	$(BIN)/python -m pytest

# The fast inner loop: everything but the end-to-end scenes (tests/e2e/) and the fuzz budgets.
test-fast: setup $(VENV)/.test-deps lint
	$(BIN)/python -m pytest -m "not e2e and not fuzz"

lint: $(VENV)/.test-deps
	$(BIN)/ruff check recorder tests scripts
	$(BIN)/ruff format --check recorder tests scripts
	$(BIN)/mypy

# The daemon, listening for "hey jarvis", on the recording that comes with the package
# (`--source sample`): talk without the wake word (not kept), then "Hey Jarvis" and a request
# (kept). Recordings go to ./demo-recordings, which is emptied first; nothing else is touched.
# The same two commands work wherever the package is installed.
demo: $(BIN)/recorder models
	@rm -rf $(DEMO_DIR)
	$(BIN)/recorder run --source sample --model hey_jarvis --recordings $(DEMO_DIR) \
	  --state-dir $(DEMO_DIR)/.state
	$(BIN)/recorder list --recordings $(DEMO_DIR)

clean:
	rm -rf $(VENV) models $(DEMO_DIR)
