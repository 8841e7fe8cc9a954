#!/usr/bin/env bash
# On a GPU machine with its own torch (no Rust, no network): install the wheel from dist/
# into a venv that sees the system's torch and numpy, train the spirals from a temp dir,
# and check CUDA tensors crossing the boundary. Writes its log to $OUT (when set).
set -uo pipefail
out=${OUT:-/tmp}/wheel_check.log
exec > >(tee "$out") 2>&1
set -x
nvidia-smi -L
python3 -V
python3 -c "import torch, numpy; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), numpy.__version__)"
# the image's python is a venv holding torch: install the wheel into it (no deps, no index)
PY=$(python3 -c 'import sys; print(sys.executable)')
"$PY" -m pip install -q --no-index --no-deps --force-reinstall dist/ktorch-*.whl
cp examples/spirals.py /tmp/spirals.py
cd /tmp
env -i PATH=/usr/bin:/bin HOME=/tmp "$PY" /tmp/spirals.py --epochs 5
env -i PATH=/usr/bin:/bin HOME=/tmp "$PY" - <<'PY'
import os, sys
import numpy as np, torch
import ktorch as kt
print("ktorch from", kt.__file__)
libs = {l.split()[-1] for l in open("/proc/self/maps") if "libtorch_cpu" in l or "libc10.so" in l}
print("libtorch", libs)
x = torch.arange(6.0, device="cuda").reshape(2, 3)
h = kt.tensor(x)
print("info", kt.info(h)["device"], kt.info(h)["dtype"])
x[0, 0] = 7.0
print("shared", float(kt.tensor(h, "torch")[0, 0]))
print("numpy copy", np.asarray(h))
print("torch.as_tensor", torch.as_tensor(h).device)
c = kt.tensor("randn", [3, 4], "cuda")
print("created", kt.info(c)["device"])
q = kt.module(("linear", 3, 2))
try:
    kt.forward(q, h)
except kt.KtorchError as e:
    print("cuda input, cpu module:", e)
m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
try:
    kt.train(m, torch.zeros(4, 3, device="cuda"), torch.zeros(4, 2, device="cuda"))
    print("run on cuda data:", kt.run(m))
except kt.KtorchError as e:
    print("cuda data, cpu module:", e)
print("cpu run", float(kt.run(m, torch.zeros(4, 3), torch.zeros(4, 2))))
print("wheel check ok")
PY
