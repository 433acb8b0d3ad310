# All set-up happens here: `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export HF_HUB_OFFLINE ?= 1
# exact versions of every dependency (make lock writes it from pyproject.toml's ranges)
LOCK := requirements/cpu-lock.txt
TORCH := requirements/torch-cpu.txt

# Without an explicit input, use the shared real data when it sits beside the repo (and the data
# dir has no CSV of its own); otherwise raw_csv downloads the public Amazon dump.
DATA_DIR := $(or $(RECSYS_DATA_DIR),data)
SHARED_CSV := $(wildcard $(CURDIR)/../shared/data/amazon-games/sequences.csv)
ifeq ($(RECSYS_RAW_CSV)$(wildcard $(DATA_DIR)/raw/sequences.csv),)
export RECSYS_RAW_CSV := $(SHARED_CSV)
endif
SHARED_STEAM := $(wildcard $(CURDIR)/../shared/data/steam/steam.csv)
ifeq ($(RECSYS_STEAM_CSV)$(wildcard $(DATA_DIR)/raw/steam.csv),)
export RECSYS_STEAM_CSV := $(SHARED_STEAM)
endif

.PHONY: setup lock run test test-fast ui serve bench lint clean

$(VENV)/.installed: pyproject.toml $(LOCK) $(TORCH)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(TORCH)
	# the project and its extras at exactly the lock file's versions (k8s: the tests build the
	# Kubernetes executor's pod specs)
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[cpu,k8s,dev]'
	$(BIN)/pip check
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

setup: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

run: setup
	RECSYS_PROFILE=cpu $(BIN)/dagster asset materialize -m recsys_pipeline.definitions --select '*'

# After a change of pyproject.toml's ranges: every pin the ranges still allow is kept
# (UPGRADE=1: the newest releases they allow instead). torch stays the CPU wheel installed first.
lock: setup
	$(BIN)/pip-compile --quiet --extra cpu --extra k8s --extra dev --strip-extras --no-emit-index-url \
		--no-emit-find-links --constraint $(TORCH) $(if $(UPGRADE),--upgrade) \
		--output-file $(LOCK) pyproject.toml

lint: setup
	$(BIN)/pip check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

test-fast: lint
	$(BIN)/python -m pytest -m "not slow"

ui: setup
	$(BIN)/dagster dev -h 127.0.0.1 -p $(or $(PORT),3000)

# The online API over the artifacts `make run` built (HOST=... PORT=... to change)
serve: setup
	HOST=$(or $(HOST),127.0.0.1) PORT=$(or $(PORT),8000) $(BIN)/python -m recsys_pipeline.serving

bench: setup
	$(BIN)/python -m bench.data_pipeline

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) data/artifacts
