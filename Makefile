# All set-up happens here: `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export HF_HUB_OFFLINE ?= 1

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

.PHONY: setup run test test-fast ui serve bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: 2.13.0 is a CPU wheel on disk here; anything else pulls a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# dagster-k8s 0.29.27 pins dagster 1.13.27; with --no-deps it runs on 1.13.28 (see pyproject)
	$(BIN)/pip install --quiet --no-deps dagster-k8s==0.29.27
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

setup: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

run: setup
	RECSYS_PROFILE=cpu $(BIN)/dagster asset materialize -m recsys_pipeline.definitions --select '*'

lint: setup
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
	$(BIN)/python bench/data_pipeline.py

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) data/artifacts
