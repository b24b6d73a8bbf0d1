# make run    set up, then run the daemon on the default microphone with config/recorder.toml
#             (copied once to ~/.config/recorder/recorder.toml, which every command then finds)
# make test   set up, then the checks (ruff, format, mypy) and every test
# make setup  .venv with the recorder installed, PortAudio present, models fetched and verified
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# make run copies config/recorder.toml here once (never over an existing file) and runs with it,
# so that every later `recorder` command finds the same configuration.
USER_CONFIG := $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/recorder/recorder.toml
CONFIG ?= $(USER_CONFIG)

.PHONY: setup run test test-fast lint models portaudio clean

setup: $(BIN)/recorder portaudio models

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip

$(BIN)/recorder: pyproject.toml | $(BIN)/python
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
	  mkdir -p "$(dir $(USER_CONFIG))" && cp config/recorder.toml "$(USER_CONFIG)" && \
	  echo "wrote $(USER_CONFIG): edit it to pick the microphone and the wake word"; fi
	$(BIN)/recorder run --config "$(CONFIG)"

test: setup $(VENV)/.test-deps lint
	$(BIN)/python -m pytest

# The fast inner loop: everything but the end-to-end scenes (tests/e2e/).
test-fast: setup $(VENV)/.test-deps lint
	$(BIN)/python -m pytest -m "not e2e"

lint: $(VENV)/.test-deps
	$(BIN)/ruff check recorder tests scripts
	$(BIN)/ruff format --check recorder tests scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) models/*.onnx
