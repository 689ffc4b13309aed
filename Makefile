# The README's two commands:
#   make reproduce   set up .venv and run the embedded default pipeline (reported, bicubic, released, smoke)
#   make test        set up .venv and run the test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup reproduce test check bench clean

$(BIN)/pcl: requirements/base.txt requirements/test.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip<27"
	$(BIN)/python -m pip install --quiet -r requirements/test.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

setup: $(BIN)/pcl

reproduce: setup
	$(BIN)/snakemake --cores $(CORES) --printshellcmds
	$(BIN)/pcl check --results results

test: setup
	$(BIN)/python -m pytest -q

check: setup
	$(BIN)/pcl check --results results

bench: setup
	$(BIN)/pcl bench all --out-dir results/bench

clean:
	find results -mindepth 1 -maxdepth 1 ! -name bench -exec rm -rf {} +
	rm -rf reports logs runs/smoke data/prepared data/benchmarks.json .snakemake
