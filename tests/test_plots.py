"""examples/plots.py: curves of a fit History and the spiral's decision regions as PNG files; spirals.py --plot."""

import os
import subprocess
import sys

import pytest
from conftest import spirals

import ktorch as kt

pytest.importorskip("matplotlib")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import plots  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one libtorch thread


def _png(path, shape):
    import matplotlib.image

    assert os.path.getsize(path) > 0
    with open(path, "rb") as f:
        assert f.read(8) == PNG
    img = matplotlib.image.imread(path)
    assert img.shape[:2] == shape and img.std() > 0  # decoded, and not a blank page


def test_plots_of_a_tiny_fit(tmp_path):
    x, y = spirals(50, 3, 0)
    q = kt.module(kt.seq("sequential", ("linear", 2, 16), "relu", ("linear", 16, 3)))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.2, 0.9))
    kt.train(m, batchsize=50, metrics=["loss", "accuracy"])
    kt.test(m, metrics=["loss", "accuracy"])
    kt.train(m, x, y)
    kt.test(m, x, y)
    h = kt.fit(m, 3, verbose=0)
    _png(plots.save_curves(h, tmp_path / "curves.png"), (320, 800))
    _png(plots.save_regions(m, x, y, tmp_path / "regions.png"), (400, 400))
    _png(plots.save_summary(h.history, m, x, y, tmp_path / "all.png"), (360, 1200))
    h2 = kt.fit(m, 1, test=False, verbose=0)  # no test curve, one point
    _png(plots.save_curves(h2, tmp_path / "train.png"), (320, 800))


def test_spirals_plot_option(tmp_path):
    out = tmp_path / "spirals.png"
    path = [os.path.join(ROOT, "python")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    # one libtorch thread: the demo's full-batch steps are small, and the suite shares 2 cores
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "spirals.py"), "--plot", str(out),
                        "--epochs", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"plot: {out}" in r.stdout
    _png(out, (360, 1200))
