"""Progress: the progress option's bar (drawn only on a terminal) and batch callbacks from the Rust loop."""

import os
import pty
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import ktorch as kt


def model(rows=100, batchsize=10):
    q = kt.module(("linear", 2, 1))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.05))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 2)).astype(np.float32)
    kt.train(m, x, x.sum(1, keepdims=True))
    kt.test(m, x, x.sum(1, keepdims=True))
    kt.train(m, batchsize=batchsize)
    kt.test(m, batchsize=batchsize)
    return m


def test_progress_is_an_option_off_by_default():
    m = model()
    assert kt.train(m, "progress") is False and kt.test(m, "progress") is False
    kt.train(m, progress=True)
    assert kt.train(m, "progress") is True
    with pytest.raises(kt.KtorchError, match="^train: progress: value expects a boolean"):
        kt.train(m, progress=3)
    assert kt.train(m, "progress") is True


def test_progress_is_quiet_when_not_a_terminal(capfd):
    m = model()
    kt.train(m, progress=True)
    kt.test(m, progress=True)
    kt.run(m)
    kt.testrun(m)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_bar_on_a_terminal():
    """Under a pseudo-terminal the bar shows the batch count, rate, ETA and running loss."""
    code = textwrap.dedent("""
        import numpy as np, ktorch as kt
        q = kt.module(("linear", 2, 1))
        m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.05))
        x = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
        kt.train(m, x, x.sum(1, keepdims=True))
        kt.train(m, batchsize=10, progress=True)
        kt.run(m)
    """)
    main, sub = pty.openpty()
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=sub, close_fds=True)
    os.close(sub)
    chunks = []

    def read():
        while True:
            try:
                b = os.read(main, 4096)
            except OSError:
                return
            if not b:
                return
            chunks.append(b)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    assert p.wait(timeout=120) == 0
    t.join(timeout=10)
    os.close(main)
    text = b"".join(chunks).decode(errors="replace")
    assert "train" in text and "20/20" in text, text
    assert "loss " in text, text


def test_callback_every_n_batches():
    m = model(rows=100, batchsize=10)
    seen = []
    r = kt.run(m, callback=seen.append, every=3)
    assert [d["batch"] for d in seen] == [3, 6, 9, 10]
    assert all(d["phase"] == "train" and d["batches"] == 10 for d in seen)
    assert all(d["elapsed"] >= 0 for d in seen)
    # the running loss at the last batch is the mean of the batch losses: the pass's loss
    assert seen[-1]["loss"] == pytest.approx(float(r), rel=1e-6)
    seen.clear()
    kt.testrun(m, callback=seen.append)
    assert [d["batch"] for d in seen] == list(range(1, 11))
    assert seen[0]["phase"] == "test"


def test_callback_errors():
    m = model()
    with pytest.raises(TypeError, match="^run: callback expects a callable"):
        kt.run(m, callback=3)
    with pytest.raises(kt.KtorchError, match="^run: every must be at least 1, given 0"):
        kt.run(m, callback=print, every=0)

    def boom(d):
        if d["batch"] == 2:
            raise ValueError("stop here")

    with pytest.raises(kt.KtorchError, match="callback: ValueError: stop here") as e:
        kt.run(m, callback=boom)
    assert isinstance(e.value.__cause__, ValueError)
    assert kt.datasize(m) == 100  # the data is restored to full size
    assert np.isfinite(kt.run(m))

    def interrupt(d):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        kt.run(m, callback=interrupt)
    assert kt.datasize(m) == 100


def test_callback_calling_back_into_its_model_is_refused():
    m = model()
    err = []

    def back(d):
        try:
            kt.datasize(m)
        except kt.KtorchError as e:
            err.append(str(e))

    kt.run(m, callback=back, every=5)
    assert err and err[0].startswith("datasize: object is in use by this thread")
