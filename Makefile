# oile_jax: every target builds its own virtual environment from pyproject.toml first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
OUT    ?= results
STAMP  := $(VENV)/.installed

.PHONY: install run test test-all test-long lint bench figures gpu-check gpu-check-deps clean docs docs-serve docs-check dist-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,docs]'
	touch $(DOCS_STAMP)

## The documentation site, built offline into site/ (the tutorials are executed: a few minutes).
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

## The built site in the system's headless Chromium: pages render, links hold (tests/test_site.py).
docs-check: docs
	$(PY) -m pytest -p no:xdist -m docs tests/test_site.py

## python -m build: the sdist and the wheel, each installed into a clean virtual environment.
dist-check: $(STAMP)
	$(PY) -m pytest -p no:xdist -m dist tests/test_dist.py

## The main job: the foreground-neutrino experiment at its small default size (figure + HDF5).
run: $(STAMP)
	$(PY) experiments/foreground.py --out $(OUT) --force

## Every poster panel at its default size (about 5 minutes on 2 CPU cores) -> $(OUT)/.
figures: $(STAMP)
	$(PY) experiments/foreground.py --out $(OUT) --force
	$(PY) experiments/two_groups.py --out $(OUT) --force
	$(PY) experiments/miscidynamics.py --out $(OUT) --from $(OUT)/two_groups.h5 --force
	$(PY) experiments/different_approaches.py --out $(OUT) --force
	$(PY) experiments/meanfield_limit.py --out $(OUT) --force
	$(PY) experiments/standard_problems.py --out $(OUT) --force
	$(PY) experiments/three_flavours.py --out $(OUT) --force
	$(PY) experiments/fit_gamma.py --out $(OUT) --force
	$(PY) experiments/collisional_instability.py --out $(OUT) --force

## The default test suite (excludes tests marked slow), on every core (pytest-xdist).
test: $(STAMP)
	$(PY) -m pytest -n auto

## The tests marked long (the experiment scripts at smoke size, multi-device runs): a CI step.
test-long: $(STAMP)
	$(PY) -m pytest -n auto -m 'long and not slow'

test-all: $(STAMP)
	$(PY) -m pytest -n auto -m 'not docs and not dist'

lint: $(STAMP)
	$(PY) -m ruff check oile_jax tests experiments
	$(PY) -m ruff format --check oile_jax tests experiments

bench: $(STAMP)
	$(PY) experiments/benchmark_encounter.py
	$(PY) experiments/benchmark_gas.py

## The accelerator check: engine tests + benchmarks -> $(OUT)/gpu-check/gpu_check.{json,md}.
## Uses this checkout's virtual environment where there is one, else the machine's python3 (a
## GPU machine with JAX installed and no network); `gpu-check-deps` puts pytest beside it.
CHECK_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
gpu-check:
	PYTHONPATH=. $(CHECK_PY) experiments/gpu_check.py --out $(OUT)/gpu-check

gpu-check-deps:
	$(PYTHON) -m pip install --quiet --target .gpu-check-deps 'pytest>=8'

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache site site-screenshots dist .dist-check
