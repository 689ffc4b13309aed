# The README's two commands:
#   make reproduce   set up .venv, run the embedded default pipeline (reported, bicubic, released,
#                    smoke, mini), `pcl check`, and write the HTML report (reports/report.html)
#   make test        set up .venv and run the test suite
# Also: make report (the HTML report of what has run), make browser (Debian's chromium, for the
# report's browser test; needs root), make bench, make clean.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup reproduce test check study-check report browser bench clean

$(BIN)/pcl: requirements/base.txt requirements/test.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip<27"
	$(BIN)/python -m pip install --quiet -r requirements/test.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

setup: $(BIN)/pcl

reproduce: setup
	$(BIN)/snakemake --cores $(CORES) --printshellcmds
	$(BIN)/pcl check --results results --gains reports/tables/gains.csv --verdict reports/verdict.md
	$(MAKE) report

report: setup
	$(BIN)/snakemake --cores 1 --report reports/report.html
	@echo "open reports/report.html in a browser (e.g. xdg-open reports/report.html)"

# Headless Chromium for the report's browser test (tests/test_report_browser.py); skipped when absent.
browser:
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)

# PYTEST_ARGS narrows the run, e.g. PYTEST_ARGS='-m faults' for the fault-injection suite alone.
test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# One cell of the study of the term's weight trained again (tier study-check, docs/study.md), after
# `make reproduce` (it starts from the committed baseline weights); pcl check compares it with results/study.
study-check: setup
	$(BIN)/snakemake --cores $(CORES) --printshellcmds --configfile config/study_check.yaml
	$(BIN)/pcl check --results results --gains reports/tables/gains.csv --verdict reports/verdict.md

check: setup
	$(BIN)/pcl check --results results --gains reports/tables/gains.csv --verdict reports/verdict.md

bench: setup
	$(BIN)/pcl bench all --out-dir results/bench

# Every GPU path on one GPU in at most 8 minutes (CUDA metrics, training steps with it/s and MFU,
# bf16 vs fp32, kill-and-resume, torchrun/DDP): results/bench/gpu_<device>.csv and .md, which
# `pcl plan` then reads. On a CPU: make gpu-check DEVICE=cpu GPU_CHECK_ARGS=--tiny
.PHONY: gpu-check
DEVICE ?= auto
gpu-check: setup
	$(BIN)/pcl gpu-check --device $(DEVICE) --out-dir results/bench $(GPU_CHECK_ARGS)

clean:
	find results -mindepth 1 -maxdepth 1 ! -name bench ! -name study -exec rm -rf {} +
	rm -rf reports logs benchmarks runs/smoke runs/mini runs/study-check data/prepared data/benchmarks.json .snakemake
