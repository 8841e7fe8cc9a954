"""Parameters, buffers and children as objects (parms, buffers, buffernames, childnames,
children, child), deep copies (clone) and weight averaging (copyparms, avgparms), as the
original's module and swa pages show them."""

import threading

import numpy as np
import pytest
import torch

import ktorch as kt


def net():
    return kt.module(kt.seq("sequential", ("linear", "a", 4, 3), ("batchnorm1d", "b", 3), "relu"))


def values(q):
    return {k: v.copy() for k, v in kt.dict(kt.parms(q)).items()}


def test_parms_and_buffers_share_the_module_tensors():
    q = net()
    p = kt.parms(q)
    assert kt.objclass(p) == "dictionary"
    assert list(kt.dict(p)) == kt.parmnames(q) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert list(kt.dict(kt.parms(q, "b"))) == ["weight", "bias"]
    assert list(kt.dict(kt.parms(q, 1))) == ["weight", "bias"]
    b = kt.buffers(q, "b")
    d = kt.dict(b)
    assert list(d) == ["running_mean", "running_var", "num_batches_tracked"]
    np.testing.assert_array_equal(d["running_var"], np.ones(3, np.float32))
    assert d["num_batches_tracked"] == 0
    # shared: a forward in training mode moves the running statistics the Dict shows
    kt.forward(q, np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))
    assert kt.dict(b)["num_batches_tracked"] == 1
    assert not np.allclose(kt.dict(b)["running_mean"], 0)
    # freezing the module shows in the shared Dict's flags
    kt.freeze(q)
    assert kt.gradflag(p) == {k: False for k in kt.parmnames(q)}


def test_names_of_buffers_and_children():
    q = net()
    assert kt.buffernames(q) == ["b.running_mean", "b.running_var", "b.num_batches_tracked"]
    assert kt.buffernames(q, "b") == kt.buffernames(q, 1) == ["running_mean", "running_var", "num_batches_tracked"]
    assert kt.buffernames(q, "a") == []
    assert kt.childnames(q) == ["a", "b", "2"]
    assert kt.childnames(q, "a") == []
    nested = kt.module(kt.seq("sequential", kt.seq("sequential", ("linear", "l", 2, 2)), "relu"))
    assert kt.childnames(nested) == ["0", "1"]
    assert kt.childnames(nested, "0") == kt.childnames(nested, 0) == ["l"]
    assert kt.parmnames(kt.child(nested, "0.l")) == ["weight", "bias"]
    assert list(kt.dict(kt.parms(nested, "0.l"))) == ["weight", "bias"]


def test_children_and_child_share_parameters_with_the_parent():
    q = net()
    c = kt.children(q)
    assert list(c) == ["a", "b", "2"] and all(kt.objclass(m) == "module" for m in c.values())
    a = kt.child(q, "a")
    kt.parm(a, "bias", [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(kt.tensor(kt.parm(q, "a.bias")), [1, 2, 3])
    kt.parm(q, "a.weight", np.zeros((3, 4)))
    np.testing.assert_array_equal(kt.tensor(kt.parm(c["a"], "weight")), np.zeros((3, 4)))
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(kt.tensor(kt.forward(a, x)), np.tile([1, 2, 3], (2, 1)))


def test_clone_is_a_deep_copy():
    q = net()
    kt.freeze(q, "b.bias")
    kt.training(q, False)
    c = kt.clone(q)
    assert values(c).keys() == values(q).keys()
    for k, v in values(q).items():
        np.testing.assert_array_equal(values(c)[k], v)
    assert kt.gradflag(c) == kt.gradflag(q) and kt.training(c) is False
    kt.parm(c, "a.bias", [9.0, 9.0, 9.0])
    assert not np.allclose(kt.tensor(kt.parm(q, "a.bias")), 9)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    kt.parm(c, "a.bias", kt.tensor(kt.parm(q, "a.bias")))
    np.testing.assert_array_equal(kt.tensor(kt.evaluate(c, x)), kt.tensor(kt.evaluate(q, x)))
    # tensors, vectors, dicts and losses
    t = kt.tensor([1.0, 2.0], "float", "grad")
    t2 = kt.clone(t)
    assert kt.gradflag(t2) is True
    kt.to(t2, "double")
    assert kt.dtype(t) == "float"
    v = kt.clone(kt.vector([1, 2], [3.0]))
    assert kt.objclass(v) == "vector" and [list(a) for a in kt.tensor(v)] == [[1, 2], [3.0]]
    d = kt.clone(kt.dict({"x": [1.0]}))
    assert kt.objclass(d) == "dictionary" and list(kt.dict(d)) == ["x"]
    lw = kt.loss("ce", {"weight": [1.0, 2.0, 3.0]})
    l2 = kt.clone(lw)
    kt.to(l2, "double")
    assert kt.dtype(lw) == "float" and kt.dtype(l2) == "double"


def test_copyparms_copies_out_and_back_as_the_swa_page_shows():
    m = kt.module(("linear", 64, 10))
    p = kt.copyparms(m)
    assert kt.size(p) == {"weight": [10, 64], "bias": [10]}
    assert kt.gradflag(p) == {"weight": False, "bias": False}
    before = values(m)
    kt.parm(m, "bias", np.zeros(10))
    assert kt.copyparms(m, p) == {"weight": True, "bias": True}
    np.testing.assert_array_equal(kt.tensor(kt.parm(m, "bias")), before["bias"])
    # a scalar resets a whole array; names that are not parameters are ignored
    m = kt.module(("linear", 4, 2))
    assert kt.copyparms(m, {"weight": 1, "other": 2}) == {"weight": True, "bias": False}
    np.testing.assert_array_equal(kt.tensor(kt.parm(m, "weight")), np.ones((2, 4)))
    # one row broadcasts to every row; a shape that does not broadcast is refused, nothing changed
    assert kt.copyparms(m, {"weight": np.full((1, 4), 3.0)}) == {"weight": True, "bias": False}
    np.testing.assert_array_equal(kt.tensor(kt.parm(m, "weight")), np.full((2, 4), 3.0))
    before = values(m)
    with pytest.raises(kt.KtorchError, match=r"copyparms: parameter `weight` has size \[2, 4\], given \[2, 3\]"):
        kt.copyparms(m, {"bias": 5.0, "weight": np.ones((2, 3))})
    for k, v in values(m).items():
        np.testing.assert_array_equal(v, before[k])


def test_avgparms_keeps_a_running_average_as_the_swa_page_shows():
    m = kt.module(("linear", 2, 1))
    p = kt.copyparms(m)
    w0 = kt.dict(p)["weight"].copy()
    b0 = kt.dict(p)["bias"].copy()
    kt.parm(m, "weight", np.full((1, 2), 10.0))
    assert kt.avgparms(m, p) == 2
    d = kt.dict(p)
    np.testing.assert_allclose(d["weight"], (w0 + 10) / 2, rtol=1e-6)
    np.testing.assert_array_equal(d["bias"], b0)
    assert d[".n"] == 2.0
    for _ in range(10):
        n = kt.avgparms(m, p)
    assert n == 12 and kt.dict(p)[".n"] == 12.0
    np.testing.assert_allclose(kt.dict(p)["weight"], (w0 + 11 * 10) / 12, rtol=1e-5)


def test_averaged_parameters_equal_torch_swa_utils_average():
    torch.manual_seed(0)
    m = kt.module(("linear", 3, 2))
    net = torch.nn.Linear(3, 2)
    for k, v in kt.dict(kt.parms(m)).items():
        getattr(net, k).data.copy_(torch.from_numpy(v))
    swa = torch.optim.swa_utils.AveragedModel(net)
    swa.update_parameters(net)  # torch's first update copies, as copyparms does
    p = kt.copyparms(m)
    rng = np.random.default_rng(2)
    for _ in range(5):
        w = rng.standard_normal((2, 3)).astype(np.float32)
        kt.parm(m, "weight", w)
        net.weight.data.copy_(torch.from_numpy(w))
        kt.avgparms(m, p)
        swa.update_parameters(net)
    np.testing.assert_allclose(kt.dict(p)["weight"], swa.module.weight.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_bad_input():
    q = net()
    with pytest.raises(kt.KtorchError, match=r"child: unrecognized child name: aa \(did you mean a\?\)"):
        kt.child(q, "aa")
    with pytest.raises(kt.KtorchError, match="parms: unrecognized child name"):
        kt.parms(q, "nope")
    with pytest.raises(kt.KtorchError, match="child index -1 invalid"):
        kt.buffers(q, -1)
    with pytest.raises(TypeError, match="parms: expecting a Module or Model"):
        kt.parms(kt.tensor([1.0]))
    with pytest.raises(TypeError, match="expecting a child name or index"):
        kt.childnames(q, 1.5)
    with pytest.raises(TypeError, match="avgparms: expecting a Dict"):
        kt.avgparms(q, {"a.weight": 1})
    with pytest.raises(kt.KtorchError, match="clone: optimizers and models are not cloned"):
        kt.clone(kt.opt("sgd", q))
    p = kt.copyparms(q)
    kt.dict(p)  # fine
    bad = kt.dict({"a.weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(kt.KtorchError, match="avgparms: `a.weight`: the average has size"):
        kt.avgparms(q, bad)
    assert list(kt.dict(bad)) == ["a.weight"]  # no `.n` added
    kt.free(q)
    with pytest.raises(kt.KtorchError, match="parms:"):
        kt.parms(q)


def test_avgparms_while_another_thread_trains():
    q = kt.module(kt.seq("sequential", ("linear", 4, 8), "relu", ("linear", 8, 2)))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    rng = np.random.default_rng(3)
    kt.train(m, rng.standard_normal((64, 4)).astype(np.float32), rng.integers(0, 2, 64))
    kt.train(m, batchsize=8)
    p = kt.copyparms(m)
    errors = []

    def trainer():
        try:
            for _ in range(30):
                kt.run(m)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=trainer)
    t.start()
    counts = [kt.avgparms(m, p) for _ in range(30)]
    t.join()
    assert not errors
    assert counts == list(range(2, 32))
    assert all(np.isfinite(v).all() for v in kt.dict(p).values())


def test_info_shows_settings_and_options():
    q = kt.module(kt.seq("sequential", ("linear", "a", 4, 3, {"bias": False}), ("batchnorm1d", 3, {"eps": 1e-3})))
    assert kt.info(q)["settings"] == [] and kt.info(q)["options"] == {}
    a = kt.info(kt.child(q, "a"))
    assert a["settings"] == [4, 3] and a["options"] == {"bias": False}
    assert kt.info(kt.child(q, 1))["options"] == {"eps": 1e-3}
    assert kt.info(kt.module(("linear", 2, 2, {"dtype": "double"})))["options"] == {"dtype": "double"}
    lo = kt.info(kt.loss("ce", {"weight": [1.0, 2.0], "smoothing": 0.1}))
    assert lo["type"] == "ce" and lo["options"]["smoothing"] == 0.1 and lo["options"]["reduce"] == "mean"
    np.testing.assert_array_equal(lo["options"]["weight"], [1.0, 2.0])
    o = kt.opt("sgd", kt.child(q, "a"), 0.1, 0.9)
    kt.opt(o, 1, kt.child(q, 1), lr=0.5)
    i = kt.info(o)
    assert i["groups"] == 2 and [g["lr"] for g in i["settings"]] == [0.1, 0.5]
    assert i["settings"][0]["momentum"] == 0.9 and i["defaults"]["lr"] == 0.1
