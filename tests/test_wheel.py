"""The installable wheel: `make wheel` builds it, and it trains the spiral example in a new venv.

The new venv holds only torch==2.11.0, numpy and the wheel; the example runs from a temporary
folder under `env -i` (no LD_LIBRARY_PATH, no build tree on sys.path), so the extension finds
libtorch only through the installed torch package. The wheel must be small (it carries none of
torch's or CUDA's libraries), abi3 and manylinux_2_28 or older (torch 2.11.0's own floor), with
no symbol versions newer than that (tools/wheel/check.py reads them with objdump).
A first run builds the wheel from scratch and downloads torch (a few minutes); later runs reuse
target/wheel and pip's cache.
"""

import glob
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the wheel route (zig's glibc 2.28 stubs, manylinux_2_28_x86_64) is for x86_64 Linux",
)

PROBE = """
import os, sys
import numpy as np
import ktorch as kt
site = os.path.dirname(os.path.dirname(kt.__file__))
assert site.startswith(sys.prefix) and site.endswith("site-packages"), kt.__file__
q = kt.module(kt.seq("sequential", ("linear", 2, 4), ("linear", 4, 3)))
try:  # an error thrown in libtorch, caught in the wrapper: C++ exceptions cross the extension
    kt.forward(q, kt.tensor(np.zeros((3, 5), np.float32)))
    raise SystemExit("no error for a shape mismatch")
except kt.KtorchError as e:
    assert "cannot be multiplied" in str(e), e
libs = {line.split()[-1] for line in open("/proc/self/maps") if "libtorch_cpu" in line or "libc10.so" in line}
assert len(libs) == 2 and all(p.startswith(os.path.join(site, "torch", "lib")) for p in libs), libs
print("probe ok", kt.__file__)
"""


def _check_module():
    spec = importlib.util.spec_from_file_location("wheel_check", os.path.join(ROOT, "tools", "wheel", "check.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(cmd, timeout, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def wheel():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "MFLAGS"}
    _run(["make", "-C", ROOT, "wheel"], timeout=1800, env=env)
    wheels = glob.glob(os.path.join(ROOT, "dist", "ktorch-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_is_small_abi3_manylinux_2_28_and_carries_no_torch(wheel):
    check = _check_module()
    info = check.inspect(wheel)
    assert check.problems(info) == []
    assert info["mb"] < 10, f"{info['mb']:.1f} MB"
    assert re.search(r"-cp311-abi3-manylinux_2_(\d+)_x86_64\.whl$", wheel)
    assert info["manylinux_minor"] <= 28
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if ".so" in n] == ["ktorch/_ktorch.abi3.so"]
    assert not [n for n in names if re.search(r"torch_|c10|cuda|cudnn|cublas|nvidia|gomp", n)]
    meta = zipfile.ZipFile(wheel).read("ktorch-0.1.0.dist-info/METADATA").decode().splitlines()
    assert "Requires-Dist: torch==2.11.0" in meta
    floor = {"GLIBC": "2.28", "GLIBCXX": "3.4.24", "CXXABI": "1.3.11", "GCC": "7.0.0"}
    for fam, ver in info["newest"].items():
        assert tuple(map(int, ver.split("."))) <= tuple(map(int, floor[fam].split("."))), (fam, ver)
    assert info["unversioned_system"] == []
    assert {"libtorch_cpu.so", "libc10.so"} <= set(info["needed"])
    assert info["runpath"] == ["$ORIGIN/../torch/lib"]


def test_wheel_trains_the_spirals_in_a_new_venv(wheel):
    tmp = tempfile.mkdtemp(prefix="ktorch-wheel-")
    try:
        venv = os.path.join(tmp, "venv")
        _run([sys.executable, "-m", "venv", venv], timeout=300)
        py = os.path.join(venv, "bin", "python")
        _run([py, "-m", "pip", "install", "-q", "--no-compile", "torch==2.11.0", "numpy", wheel], timeout=1800)
        run = os.path.join(tmp, "run")
        os.mkdir(run)
        shutil.copy(os.path.join(ROOT, "examples", "spirals.py"), run)
        with open(os.path.join(run, "probe.py"), "w") as f:
            f.write(PROBE)
        # env -i: no LD_LIBRARY_PATH, no PYTHONPATH, no virtualenv variables; cwd holds only the scripts
        assert "probe ok" in _run(["env", "-i", py, "probe.py"], timeout=300, cwd=run)
        out = _run(["env", "-i", py, "spirals.py"], timeout=600, cwd=run)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    losses = [float(v) for v in re.findall(r"step +\d+ +loss ([0-9.]+)", out)]
    assert len(losses) == 10 and losses[-1] < losses[0] / 4, out
    assert float(re.search(r"training accuracy ([0-9.]+)%", out).group(1)) >= 90, out
    epochs = re.findall(r"train loss ([0-9.]+) acc +([0-9.]+)%", out)
    assert len(epochs) == 10 and float(epochs[-1][0]) < float(epochs[0][0]) and float(epochs[-1][1]) >= 90, out
