#!/usr/bin/env bash
# The GPU check, in two halves.
#
# Here (Rust, network): `make gpu-check` builds the wheel into dist/, then runs this script with
# --prepare: the Rust floor (dist/ktorch-floor) and the CUDA registration tests (dist/cuda-test-*)
# built and copied into dist/ too, and the device command printed.
#
# There (a CUDA machine whose python3 holds torch 2.11.0+cu130; no Rust, no network), from the
# repository root: `bash tools/device/gpu_check.sh`
#   1. installs dist/ktorch-*.whl into that python (no index, no dependencies);
#   2. installs pytest and hypothesis from dist/pywheels where missing, and runs the prebuilt Rust registration tests (a CUDA tensor from a pure-Rust binary);
#   3. runs `pytest -m cuda` over tests/ (the tests marked cuda, see tests/conftest.py), then
#      examples/ddp.py under torchrun, one process per GPU over NCCL;
#   4. runs `bench/bench.py --gpu-only`: the GPU rows (PyTorch loop, ktorch run, and the Rust floor
#      from dist/ktorch-floor, else target/release/ktorch-floor, else none, with a note).
# Everything goes to $OUT/gpu_check.txt (OUT defaults to /tmp/gpu_check), bench/RESULTS.md with
# its new GPU section to $OUT/RESULTS.md. Every step runs even when one before it failed; the
# exit status is 1 when any failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1

print_command() {
  cat <<'TEXT'
dist/ holds the wheel, ktorch-floor and the CUDA registration tests. On the GPU machine, with the
device tool's `run` from this checkout (about 3 minutes; the timeout leaves room for a rerun):

  run  command:   bash tools/device/gpu_check.sh
       carry:     ["dist"]
       timeout_s: 420

Then read gpu_check.txt among the returned files, and copy the returned RESULTS.md to
bench/RESULTS.md to keep its GPU section.
TEXT
}

# cargo's JSON messages on stdin: copies each executable built into dist/, a test named
# cuda-test-<package>-<target>, the floor by its own name
copy_executables() {
  "${PY:-python3}" -c '
import json, pathlib, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    name = m["target"]["name"]
    if m["profile"]["test"]:
        name = "cuda-test-" + pathlib.Path(m["manifest_path"]).parent.name + "-" + name
    shutil.copy2(m["executable"], "dist/" + name)
    print("dist/" + name)
'
}

case "${1:-}" in
--print-command)
  print_command
  exit 0
  ;;
--prepare)
  set -e
  mkdir -p dist
  rm -f dist/ktorch-floor dist/cuda-test-*
  cargo build --release -p ktorch-bench --message-format=json | copy_executables
  cargo test --release -p ktorch-shim --test cuda --test cuda_late --no-run --message-format=json |
    copy_executables
  cargo test --release -p ktorch-core --test cuda --no-run --message-format=json | copy_executables
  # the GPU machine has no network: pytest (and hypothesis, which a test module imports) as
  # wheels for its Python 3.12, installed there only where missing
  rm -rf dist/pywheels
  "${PY:-python3}" -m pip download -q --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 -d dist/pywheels pytest hypothesis
  print_command
  exit 0
  ;;
"") ;;
*)
  echo "usage: bash tools/device/gpu_check.sh [--prepare | --print-command]" >&2
  exit 2
  ;;
esac

out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
exec > >(tee "$out/gpu_check.txt") 2>&1
failed=()
step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "FAILED: $*"
  failed+=("$*")
}

step "machine"
date -Is
nvidia-smi -L || fail "nvidia-smi"
PY=$(command -v python3) || {
  fail "no python3"
  exit 1
}
"$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda",
torch.version.cuda, "available", torch.cuda.is_available(), "devices", torch.cuda.device_count())' || fail "torch"
TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')

step "install the wheel"
whl=$(ls dist/ktorch-*.whl 2>/dev/null | head -n 1)
if [ -z "$whl" ]; then
  fail "no dist/ktorch-*.whl (make gpu-check here, then carry dist)"
else
  "$PY" -m pip install -q --no-index --no-deps --force-reinstall "$whl" || fail "pip install $whl"
  (cd /tmp && "$PY" -c 'import ktorch as kt; print("ktorch", kt.__file__, "device api (kt.to):", hasattr(kt, "to"))') ||
    fail "import ktorch"
fi

step "Rust: CUDA registration tests (prebuilt)"
tests=(dist/cuda-test-*)
if [ ! -e "${tests[0]}" ]; then
  echo "no prebuilt tests in dist/ (make gpu-check builds them): skipped"
else
  for t in "${tests[@]}"; do
    echo "-- $t"
    LD_LIBRARY_PATH=$TORCH_LIB "$t" --nocapture 2>&1 | grep -v '^frame #' || fail "$t"
  done
fi

step "pytest (from dist/pywheels where the image lacks it)"
for mod in pytest hypothesis; do
  if ! "$PY" -c "import $mod" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --find-links dist/pywheels "$mod" || fail "install $mod"
  fi
done

step "pytest -m cuda"
"$PY" -m pytest -m cuda -p no:cacheprovider --continue-on-collection-errors -q tests || fail "pytest -m cuda"

step "examples/ddp.py under torchrun: NCCL, one process per GPU"
gpus=$("$PY" -c 'import torch; print(max(1, torch.cuda.device_count()))' 2>/dev/null || echo 1)
(cd /tmp && "$PY" -m torch.distributed.run --nproc_per_node "$gpus" --master_addr 127.0.0.1 \
  --master_port 29571 "$OLDPWD/examples/ddp.py" --epochs 5) || fail "examples/ddp.py (nccl)"

step "benchmark: GPU rows"
if [ -x dist/ktorch-floor ]; then
  export KTORCH_FLOOR=$PWD/dist/ktorch-floor
fi
PYTHONUNBUFFERED=1 "$PY" bench/bench.py --gpu-only || fail "bench.py --gpu-only"
cp bench/RESULTS.md "$out/RESULTS.md" || fail "copy RESULTS.md"

step "summary"
if [ ${#failed[@]} -eq 0 ]; then
  echo "gpu check ok"
else
  echo "gpu check FAILED:"
  printf '  %s\n' "${failed[@]}"
  exit 1
fi
