"""The type stubs match the runtime module (stubtest) and give the call shapes' result types."""

import os
import subprocess
import sys
import textwrap

import pytest

import ktorch as kt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
mypy = pytest.importorskip("mypy", reason="mypy checks the stubs")


def test_stubtest_finds_no_difference():
    r = subprocess.run([sys.executable, "-m", "mypy.stubtest", "ktorch"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_overloads_give_each_call_shape_its_type(tmp_path):
    f = tmp_path / "shapes.py"
    f.write_text(textwrap.dedent("""
        from typing import Any
        from typing_extensions import assert_type
        import numpy as np
        import ktorch as kt

        m: kt.Model
        t = kt.tensor([1.0, 2.0])
        assert_type(t, kt.Tensor)
        assert_type(kt.tensor("randn", 2, 3), kt.Tensor)
        assert_type(kt.tensor(t), np.ndarray)
        assert_type(kt.tensor(kt.vector([1.0], [2.0])), list[np.ndarray])
        assert_type(kt.train(m), dict[str, Any])
        assert_type(kt.train(m, "batchsize"), Any)
        assert_type(kt.train(m, ["batchsize", "shuffle"]), dict[str, Any])
        assert_type(kt.train(m, batchsize=10), None)
        assert_type(kt.train(m, "batchsize", 10), None)
        assert_type(kt.train(m, np.zeros((4, 2)), np.zeros(4)), int)
        assert_type(kt.test(m, {"batchsize": 5}), None)
    """))
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", str(f)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:]


def test_star_import_leaves_builtins_alone():
    ns = {}
    exec("from ktorch import *", ns)
    assert "train" in ns and "run" in ns and "ce" in ns and "seq" in ns
    for name in ("dict", "help", "input"):
        assert name not in ns and name in kt.__dict__
    assert kt.dict is kt._ktorch.dict
