"""Checkpoint files for modules (save, load): a round trip keeps every value, dtype,
flag and output; damaged, foreign and mismatched files raise KtorchError naming the
problem; a failed save leaves the old file whole."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import ktorch as kt


def net():
    return kt.module(
        kt.seq(
            "sequential",
            ("linear", "a", 4, 3, {"bias": False}),
            ("batchnorm1d", "b", 3),
            "relu",
            ("drop", 0.25),
            ("linear", 3, 2),
        )
    )


def same(q1, q2):
    for get in (kt.parms, kt.buffers):
        d1, d2 = kt.dict(get(q1)), kt.dict(get(q2))
        assert list(d1) == list(d2)
        for k in d1:
            assert d1[k].dtype == d2[k].dtype and np.array_equal(d1[k], d2[k]), k


def header(path):
    raw = open_bytes(path)
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write(path, head, data):
    h = json.dumps(head).encode()
    h += b" " * (-len(h) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + data)


def open_bytes(path):
    return Path(path).read_bytes()


def test_round_trip_keeps_values_dtypes_flags_and_outputs(tmp_path):
    q = net()
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    kt.forward(q, x)  # running statistics move
    kt.freeze(q, "b.bias")
    kt.training(q, False)
    p = tmp_path / "q.kt"
    kt.save(q, p)
    q2 = kt.load(str(p))
    same(q, q2)
    assert kt.gradflag(q2) == kt.gradflag(q) and kt.training(q2) is False
    np.testing.assert_array_equal(kt.tensor(kt.evaluate(q2, x)), kt.tensor(kt.evaluate(q, x)))
    # the loaded module trains on its own memory
    kt.parm(q2, "4.bias", [7.0, 7.0])
    assert not np.allclose(kt.tensor(kt.parm(q, "4.bias")), 7)


def test_double_modules_and_models(tmp_path):
    q = net()
    kt.to(q, "double")
    kt.save(q, tmp_path / "d.kt")
    q2 = kt.load(tmp_path / "d.kt")
    assert kt.dtype(q2) == "double"
    same(q, q2)
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    kt.save(m, tmp_path / "m.kt")  # a model saves its module
    same(q, kt.load(tmp_path / "m.kt"))
    q3 = kt.module(("linear", 2, 3, {"dtype": "double"}))
    kt.save(q3, tmp_path / "o.kt")
    assert kt.dtype(kt.load(tmp_path / "o.kt")) == "double"


def test_torch_reads_the_tensors(tmp_path):
    """The file is plain safetensors: its tensors are torch's under parm/ and buffer/."""
    q = net()
    kt.save(q, tmp_path / "q.kt")
    head, data = header(tmp_path / "q.kt")
    meta = json.loads(head["__metadata__"]["ktorch"])
    assert meta["format"] == 2 and meta["class"] == "module"
    assert sorted(k for k in head if k != "__metadata__") == sorted(
        [f"parm/{k}" for k in kt.parmnames(q)] + [f"buffer/{k}" for k in kt.buffernames(q)]
    )
    info = head["parm/a.weight"]
    assert info["dtype"] == "F32" and info["shape"] == [3, 4]
    lo, hi = info["data_offsets"]
    w = np.frombuffer(data[lo:hi], np.float32).reshape(3, 4)
    np.testing.assert_array_equal(w, kt.tensor(kt.parm(q, "a.weight")))


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda raw: raw[:100], "not a ktorch checkpoint, or a damaged one"),
        (lambda raw: raw[:-5], "not a ktorch checkpoint, or a damaged one"),
        (lambda raw: b"", "not a ktorch checkpoint, or a damaged one"),
        (lambda raw: b"\x00" * 64, "not a ktorch checkpoint, or a damaged one"),
        (lambda raw: b"PK\x03\x04" + raw, "not a ktorch checkpoint, or a damaged one"),
    ],
)
def test_damaged_files(tmp_path, damage, message):
    kt.save(net(), tmp_path / "q.kt")
    raw = open_bytes(tmp_path / "q.kt")
    (tmp_path / "bad.kt").write_bytes(damage(raw))
    with pytest.raises(kt.KtorchError, match=f"^load: {message}"):
        kt.load(tmp_path / "bad.kt")


def edit(tmp_path, change):
    kt.save(net(), tmp_path / "q.kt")
    head, data = header(tmp_path / "q.kt")
    meta = json.loads(head["__metadata__"]["ktorch"])
    change(head, meta)
    head["__metadata__"]["ktorch"] = json.dumps(meta)
    write(tmp_path / "e.kt", head, data)
    return tmp_path / "e.kt"


def test_foreign_newer_and_mismatched_files(tmp_path):
    def newer(h, m):
        m["format"] = 99

    with pytest.raises(kt.KtorchError, match="load: checkpoint format 99, this ktorch reads format 2"):
        kt.load(edit(tmp_path, newer))

    def model(h, m):
        m["class"] = "loss"

    with pytest.raises(kt.KtorchError, match="load: not a ktorch checkpoint, or a damaged one: unknown field"):
        kt.load(edit(tmp_path, model))

    def foreign(h, m):
        del h["__metadata__"]["ktorch"]
        h["__metadata__"]["format"] = "pt"

    kt.save(net(), tmp_path / "q.kt")
    head, data = header(tmp_path / "q.kt")
    foreign(head, None)
    write(tmp_path / "f.kt", head, data)
    with pytest.raises(kt.KtorchError, match="load: .*no ktorch metadata"):
        kt.load(tmp_path / "f.kt")

    def wider(h, m):
        m["state"]["children"][0][1]["options"] = [["in", {"int": 5}], ["out", {"int": 3}]]  # linear 5 -> 3, the file holds 4 -> 3

    with pytest.raises(kt.KtorchError, match=r"load: parameter a.weight has shape \[3, 4\] in the state, \[3, 5\] in the module"):
        kt.load(edit(tmp_path, wider))

    def unknown(h, m):
        m["state"]["children"][2][1]["kind"] = "os.system"

    with pytest.raises(kt.KtorchError, match="unrecognized module type: os.system"):
        kt.load(edit(tmp_path, unknown))

    def missing(h, m):
        h["buffer/b.running_vax"] = h.pop("buffer/b.running_var")

    with pytest.raises(kt.KtorchError, match="load: not a ktorch checkpoint, or a damaged one: the tensor data does not match its checksum"):
        kt.load(edit(tmp_path, missing))

    def elsewhere(h, m):
        m["state"]["children"][1][1]["buffers"][1][1] = "buffer/b.nowhere"

    with pytest.raises(kt.KtorchError, match="load: the file has no tensor buffer/b.nowhere"):
        kt.load(edit(tmp_path, elsewhere))


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path):
    q = net()
    p = tmp_path / "q.kt"
    kt.save(q, p)
    good = open_bytes(p)
    cb = kt.module(("callback", "cb", lambda m, x: x))
    with pytest.raises(kt.KtorchError, match="save: a callback module has no state: its forward is a Python function"):
        kt.save(cb, p)
    assert open_bytes(p) == good
    with pytest.raises(kt.KtorchError, match="save: cannot write"):
        kt.save(q, tmp_path / "no" / "such" / "dir.kt")
    assert os.listdir(tmp_path) == ["q.kt"]
    same(q, kt.load(p))


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="save: expecting a Module, Loss, Optimizer or Model"):
        kt.save(kt.tensor([1.0]), tmp_path / "t.kt")
    with pytest.raises(TypeError, match="save: expecting a file path"):
        kt.save(net(), 3)
    with pytest.raises(TypeError, match="load: expecting a file path"):
        kt.load(None)
    with pytest.raises(kt.KtorchError, match="load: cannot read"):
        kt.load(tmp_path / "none.kt")
    q = net()
    kt.free(q)
    with pytest.raises(kt.KtorchError, match="save:"):
        kt.save(q, tmp_path / "q.kt")
    assert not os.path.exists(tmp_path / "q.kt")


def test_oracle_torch_module_with_the_saved_weights(tmp_path):
    torch.manual_seed(0)
    tn = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    q = kt.module(kt.seq("sequential", ("linear", 4, 8), "relu", ("linear", 8, 2)))
    for k, v in tn.state_dict().items():
        kt.parm(q, k, v.numpy())
    kt.save(q, tmp_path / "q.kt")
    q2 = kt.load(tmp_path / "q.kt")
    x = torch.randn(5, 4)
    np.testing.assert_array_equal(kt.tensor(kt.evaluate(q2, x.numpy())), tn(x).detach().numpy())


# ---------------------------------------------------------------- models

RESUME = r"""
import sys, numpy as np, torch
import ktorch as kt
torch.set_num_threads(int(sys.argv[3]))  # the parent's: a sum over threads rounds by their count
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 4)).astype(np.float32); y = rng.integers(0, 3, 64)
m = kt.load(sys.argv[1])
kt.train(m, x, y)
r = [kt.run(m) for _ in range(2)]
q = kt.module(m)
np.savez(sys.argv[2], r=np.asarray(r), **{k: kt.tensor(kt.parm(q, k)) for k in kt.parmnames(q)})
"""


def resumes_in_a_new_process(tmp_path, source, q, m):
    """Saves `m`, trains it 2 more epochs here and, from the file, in a new process running
    `source`: the same metrics and parameters, bit for bit."""
    import subprocess
    import sys

    kt.save(m, tmp_path / "m.kt")
    want = [kt.run(m) for _ in range(2)]
    script = tmp_path / "resume.py"
    script.write_text(source)
    args = [str(script), str(tmp_path / "m.kt"), str(tmp_path / "r.npz"), str(torch.get_num_threads())]
    subprocess.run([sys.executable, *args], check=True)
    got = np.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(got["r"], np.asarray(want))
    for k in kt.parmnames(q):
        np.testing.assert_array_equal(got[k], kt.tensor(kt.parm(q, k)))


def trained(opt, shuffle=None):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    kt.seed(0)
    q = kt.module(kt.seq("sequential", ("linear", 4, 8), ("batchnorm1d", 8), "relu", ("linear", 8, 3)))
    o = kt.opt("sgd", q, 0.05, 0.9, 0.0, 0.01) if opt == "sgd" else kt.opt(opt, q, 0.01)
    m = kt.model(q, kt.loss("ce", {"weight": [1.0, 2.0, 0.5]}), o)
    kt.train(m, x, y)
    kt.train(m, batchsize=16, metrics=["loss", "accuracy"], clipnorm=5.0)
    if shuffle is not None:
        kt.train(m, shuffle=True, shuffleseed=shuffle if shuffle >= 0 else None)
    kt.test(m, batchsize=32)
    return q, m


@pytest.mark.parametrize("opt,shuffle", [("adam", None), ("sgd", None), ("adam", 7), ("sgd", -1),
                                         ("adamw", 3), ("rmsprop", -1), ("adagrad", None), ("lamb", 5),
                                         ("lbfgs", None)],
                         ids=["adam", "sgd", "adam-seeded-shuffle", "sgd-unseeded-shuffle", "adamw-seeded",
                              "rmsprop-unseeded", "adagrad", "lamb-seeded", "lbfgs"])
def test_model_resumes_bitwise_in_a_new_process(tmp_path, opt, shuffle):
    """3 epochs, save, then 2 more here and 2 in a new process from the file given the same
    data: the same metrics and parameters, bit for bit (shuffling included: the seeded
    generator, the row order in force and libtorch's CPU generator are in the file)."""

    q, m = trained(opt, shuffle)
    for _ in range(3):
        kt.run(m)
    resumes_in_a_new_process(tmp_path, RESUME, q, m)


def test_model_file_keeps_loss_optimizer_and_options(tmp_path):
    q, m = trained("sgd")
    kt.run(m)
    kt.save(m, tmp_path / "m.kt")
    m2 = kt.load(tmp_path / "m.kt")
    assert kt.objclass(m2) == "model"
    assert kt.train(m2) == kt.train(m) and kt.test(m2) == kt.test(m)
    assert kt.info(m2)["loss"] == "ce" and kt.info(m2)["optimizer"] == "sgd"
    assert kt.info(m2)["train"] == 0  # the data is not saved
    o2 = kt.state_dict(m2, "opt")
    o1 = kt.state_dict(m, "opt")
    assert o2["param_groups"] == o1["param_groups"]
    for i, st in o1["state"].items():
        for k, v in st.items():
            assert torch.equal(o2["state"][i][k], v), (i, k)
    same(kt.module(m), kt.module(m2))


def test_models_that_cannot_be_saved(tmp_path):
    q = kt.module(("linear", 2, 2))
    other = kt.module(("linear", 2, 2))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", other))
    with pytest.raises(kt.KtorchError, match="save: the optimizer holds parameters outside the model's module"):
        kt.save(m, tmp_path / "m.kt")
    assert not os.path.exists(tmp_path / "m.kt")


INTERRUPTED = r"""
import sys, numpy as np, torch
import ktorch as kt
torch.set_num_threads(int(sys.argv[3]))
rng = np.random.default_rng(1)
x = rng.standard_normal((2000, 4)).astype(np.float32); y = rng.integers(0, 3, 2000)
m = kt.load(sys.argv[1])
kt.train(m, x, y)
r = [kt.run(m) for _ in range(2)]
q = kt.module(m)
np.savez(sys.argv[2], r=np.asarray(r), **{k: kt.tensor(kt.parm(q, k)) for k in kt.parmnames(q)})
"""


@pytest.mark.parametrize("shuffle", [11, -1], ids=["seeded", "unseeded"])
def test_run_stopped_by_ctrl_c_saved_and_resumed_in_a_new_process(tmp_path, shuffle):
    """Ctrl-C in the middle of an epoch, save, load in a new process: the loaded model
    finishes that epoch and trains one more, bitwise as the saved one does here."""
    import signal
    import threading

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, 4)).astype(np.float32)
    y = rng.integers(0, 3, 2000)
    kt.seed(0)
    q = kt.module(kt.seq("sequential", ("linear", 4, 16), ("drop", 0.1), "relu", ("linear", 16, 3)))
    m = kt.model(q, kt.loss("ce"), kt.opt("adam", q, 0.01))
    kt.train(m, x, y)
    kt.train(m, batchsize=8, metrics=["loss", "accuracy"], shuffle=True,
             shuffleseed=shuffle if shuffle >= 0 else None)
    kt.run(m)
    started = threading.Event()

    def tick(info):
        if info["batch"] == 5:
            started.set()

    timer = threading.Thread(target=lambda: started.wait(10) and signal.raise_signal(signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        kt.run(m, callback=tick, every=1)
    timer.join()
    paused = kt.state(m)["position"]["train"]["paused"]
    assert paused is not None and 0 < paused["next"] < 250  # stopped mid-epoch
    resumes_in_a_new_process(tmp_path, INTERRUPTED, q, m)  # the rest of the stopped epoch, then one more
