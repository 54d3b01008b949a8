# Every target sets up its own virtual environment (.venv) from setup.cfg.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

FASHION_DIR := /usr/share/datasets/fashion-mnist

.PHONY: demo test test-fast bench bench-gpu venv data clean reproduce-cpu docs check-install

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## Real data for the main job: Debian's Fashion-MNIST (needs root or sudo once).
data:
	@test -d $(FASHION_DIR) || apt-get install -y -q dataset-fashion-mnist \
	  || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist) \
	  || (echo "error: install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) or pass --data_dir to scripts/demo.py" >&2; exit 2)

## Main job: train a small SCE and a small MMC model on Fashion-MNIST and compare them.
demo: $(STAMP) data
	$(PY) scripts/demo.py

## CPU-scale reproduction of 002 Tables 1-2 on Fashion-MNIST (5 models; ~50 min measured on 2 cores,
## resumable: reruns skip what is done). Records and report in reports/cpu_repro/, checkpoints in
## runs/cpu_repro/. Paper 000's analyses too: make reproduce-cpu REPRO_ARGS=--stages=train,eval,report,analyses
reproduce-cpu: $(STAMP) data
	$(PY) scripts/reproduce_cpu.py $(REPRO_ARGS)

## Test suite (what CI runs), on TEST_WORKERS processes (pytest-xdist; files kept whole, so
## a module's shared fixture is built once). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) tests

## Fast tier while you work (<= 90 s on 2 cores): everything not marked slow, on the same
## TEST_WORKERS processes as make test.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) tests

## The package as users get it: a fresh virtual environment in a temporary directory, a
## non-editable pip install (pip's cache reused; a cold cache downloads TensorFlow), then the
## console scripts from another directory: mmt-train --helpshort, import mmt, a tiny
## mmt-train, a 2-step mmt-advtest-iterative and mmt-export (scripts/check_install.sh).
check-install:
	PYTHON=$(PYTHON) bash scripts/check_install.sh

## Benchmarks (by hand; results go to bench/results/).
bench: $(STAMP)
	$(PY) bench/train_step.py
	$(PY) bench/attack_throughput.py

## GPU suite (<= 8 min on one GPU): bench/results/gpu_*.json. DRY_RUN=1: tiny, CPU.
bench-gpu: $(STAMP) data
	PYTHON=$(PY) DATA_DIR=$${DATA_DIR:-$(FASHION_DIR)} bench/gpu_suite.sh

## Documentation site (docs/, mkdocs.yml) into build/site; --strict fails on any warning,
## including broken links and docstrings that disagree with their signatures.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir build/site

clean:
	rm -rf $(VENV) *.egg-info build .pytest_cache
