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
    assert meta["format"] == 1 and meta["class"] == "module"
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

    with pytest.raises(kt.KtorchError, match="load: checkpoint format 99, this ktorch reads format 1"):
        kt.load(edit(tmp_path, newer))

    def model(h, m):
        m["class"] = "optimizer"

    with pytest.raises(kt.KtorchError, match="load: the file holds a optimizer, not a module"):
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
        m["module"]["children"][0][1]["args"] = [5, 3]  # linear 5 -> 3, the file holds 4 -> 3

    with pytest.raises(kt.KtorchError, match=r"load: parm a.weight has shape \[3, 4\] in the file, \[3, 5\] in the module"):
        kt.load(edit(tmp_path, wider))

    def unknown(h, m):
        m["module"]["children"][2][1]["kind"] = "os.system"

    with pytest.raises(kt.KtorchError, match="unrecognized module type: os.system"):
        kt.load(edit(tmp_path, unknown))

    def missing(h, m):
        h["buffer/b.running_vax"] = h.pop("buffer/b.running_var")

    with pytest.raises(kt.KtorchError, match="load: the file has no buffer b.running_var"):
        kt.load(edit(tmp_path, missing))


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path):
    q = net()
    p = tmp_path / "q.kt"
    kt.save(q, p)
    good = open_bytes(p)
    cb = kt.module(("callback", "cb", lambda m, x: x))
    with pytest.raises(kt.KtorchError, match="save: callback modules cannot be saved"):
        kt.save(cb, p)
    assert open_bytes(p) == good
    with pytest.raises(kt.KtorchError, match="save: cannot write"):
        kt.save(q, tmp_path / "no" / "such" / "dir.kt")
    assert os.listdir(tmp_path) == ["q.kt"]
    same(q, kt.load(p))


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="save: expecting a Module or Model"):
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
