"""Model api: forward forms, model backward with batches, train/test options."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import identity_model

import ktorch as kt


def test_model_forward_and_batches():
    m = identity_model()
    assert kt.train(m, "batchsize", 3) is None
    assert kt.train(m, np.arange(7)) == 3
    d = kt.data(m)
    np.testing.assert_array_equal(d[0], np.arange(7))
    assert d[1] is None
    y = kt.forward(m)
    np.testing.assert_array_equal(kt.tensor(y), np.arange(7))
    seen = []
    while kt.batch(m):
        kt.use(y, kt.forward(m))
        seen.append(kt.tensor(y).tolist())
    assert seen == [[0, 1, 2], [3, 4, 5], [6]]
    np.testing.assert_array_equal(kt.tensor(kt.nforward(m)), np.arange(7))


def test_eforward_without_test_data_raises():
    m = identity_model()
    kt.train(m, "batchsize", 3)
    kt.train(m, np.arange(7))
    with pytest.raises(kt.KtorchError, match="identity: forward\\(tensor\\) not implemented given empty"):
        kt.eforward(m)
    with pytest.raises(kt.KtorchError, match="identity: forward\\(tensor\\) not implemented given empty"):
        kt.evaluate(m)


def test_testbatch_evaluate():
    m = identity_model()
    kt.train(m, "batchsize", 3)
    kt.train(m, np.arange(7))
    assert kt.test(m, "batchsize", 5) is None
    assert kt.test(m, np.arange(10)) == 2
    seen = []
    while kt.testbatch(m):
        e = kt.evaluate(m)
        assert isinstance(e, np.ndarray)
        seen.append(e.tolist())
    assert seen == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    np.testing.assert_array_equal(kt.tensor(kt.eforward(m)), np.arange(10))


def _seed7_model():
    q = kt.module(kt.seq("sequential", ("linear", "a", 64, 10), ("relu", "b")))
    kt.seed(7)
    x = kt.tensor("randn", [10, 64])
    y = kt.tensor("randint", 10, 10)
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    return q, m, x, y


def _torch_ref(q, x, y):
    w = torch.from_numpy(kt.tensor(kt.parm(q, "a.weight"))).requires_grad_()
    b = torch.from_numpy(kt.tensor(kt.parm(q, "a.bias"))).requires_grad_()
    z = F.cross_entropy(torch.relu(torch.from_numpy(kt.tensor(x)) @ w.T + b), torch.from_numpy(kt.tensor(y)))
    z.backward()
    return z.item(), b.grad.numpy()


def test_model_backward_explicit_and_batched():
    q, m, x, y = _seed7_model()
    assert kt.parmnames(q) == ["a.weight", "a.bias"]
    b = kt.parm(q, "a.bias")
    tz, tg = _torch_ref(q, x, y)
    yhat = kt.forward(m, x)
    z = kt.loss(m, yhat, y)
    kt.backward(z)
    z0 = float(kt.tensor(z))
    g0 = kt.grad(b)
    np.testing.assert_allclose(z0, tz, rtol=1e-5)
    np.testing.assert_allclose(g0, tg, rtol=1e-4, atol=1e-7)

    kt.train(m, "batchsize", 3)
    assert kt.input(m, x) == 4
    assert kt.target(m, y) == 4
    kt.nograd(m)
    assert kt.grad(b) is None
    r = kt.backward(m)
    assert isinstance(r, float)
    np.testing.assert_allclose(r, z0, rtol=1e-6)
    np.testing.assert_allclose(kt.grad(b), g0, rtol=1e-5, atol=1e-8)

    kt.nograd(m)
    g, ls, n = [], [], []
    while kt.batch(m):
        kt.nograd(m)
        n.append(kt.datasize(m))
        ls.append(kt.backward(m))
        g.append(kt.grad(b))
    assert n == [3, 3, 3, 1]
    w = np.array(n) / sum(n)
    np.testing.assert_allclose(np.dot(w, ls), z0, rtol=1e-5)
    np.testing.assert_allclose(np.tensordot(w, np.array(g), 1), g0, rtol=1e-4, atol=1e-7)


def test_train_options_defaults_and_get_forms():
    m = kt.model(kt.module("sequential"), kt.loss("ce"), kt.opt("sgd"))
    d = kt.train(m)
    assert isinstance(d, dict)
    assert d["batchsize"] == 32
    assert d["droplast"] is False and d["hidden"] is False and d["shuffle"] is False
    assert d["tensor"] is False and d["dictionary"] is False
    assert d["metrics"] == ["loss"]
    assert d["clipgroup"] is False and d["clipnorm"] is None and d["clipvalue"] is None
    assert d["sync"] is False
    assert d["tasks"] == 1 and d["task"] == 0
    expect = {"clipnorm": None, "batchsize": 32, "metrics": ["loss"]}
    assert kt.train(m, ["clipnorm", "batchsize", "metrics"]) == expect
    assert kt.train(m, "shuffle") is False
    t = kt.test(m)
    assert t["batchsize"] == 100
    assert t["metrics"] == ["loss"]
    assert "clipnorm" not in t and "shuffle" not in t


def test_train_options_set_forms():
    k = ["batchsize", "shuffle"]
    m = kt.model(kt.module("sequential"), kt.loss("ce"), kt.opt("sgd"))
    assert kt.train(m, k) == {"batchsize": 32, "shuffle": False}
    assert kt.train(m, {"batchsize": 100, "shuffle": True}) is None
    assert kt.train(m, k) == {"batchsize": 100, "shuffle": True}
    assert kt.train(m, ["batchsize", "shuffle"], [256, False]) is None
    assert kt.train(m, k) == {"batchsize": 256, "shuffle": False}
    assert kt.train(m, batchsize=64, shuffle=True) is None
    assert kt.train(m, k) == {"batchsize": 64, "shuffle": True}
    assert kt.train(m, "batchsize", 3) is None
    assert kt.train(m, "batchsize") == 3
    assert kt.train(m, "metrics") == ["loss"]
    kt.train(m, "metrics", ["output", "accuracy", "loss"])
    assert kt.train(m, "metrics") == ["output", "accuracy", "loss"]
    kt.test(m, {"batchsize": 500, "dictionary": True})
    assert kt.test(m, ["batchsize", "dictionary"]) == {"batchsize": 500, "dictionary": True}
    assert kt.train(m, "batchsize") == 3  # test options are separate


def test_clipnorm_forms():
    m = kt.model(kt.module("sequential"), kt.loss("ce"), kt.opt("sgd"))
    names = ["clipgroup", "clipnorm"]
    assert kt.train(m, names) == {"clipgroup": False, "clipnorm": None}
    kt.train(m, names, [False, 2])
    assert kt.train(m, names) == {"clipgroup": False, "clipnorm": [2.0, 2.0]}
    kt.train(m, names, [True, 2])
    assert kt.train(m, names) == {"clipgroup": True, "clipnorm": [2.0, 2.0]}
    kt.train(m, names, [False, None])
    assert kt.train(m, names) == {"clipgroup": False, "clipnorm": None}
    kt.train(m, "clipnorm", [1.5, float("inf")])
    assert kt.train(m, "clipnorm") == [1.5, float("inf")]


def test_clipnorm_clipvalue_exclusive():
    m = kt.model(kt.module("sequential"), kt.loss("ce"), kt.opt("sgd"))
    kt.train(m, "clipnorm", 2)
    kt.train(m, "clipvalue", 0.5)
    assert kt.train(m, ["clipnorm", "clipvalue"]) == {"clipnorm": None, "clipvalue": 0.5}
    kt.train(m, "clipnorm", 3)
    assert kt.train(m, ["clipnorm", "clipvalue"]) == {"clipnorm": [3.0, 2.0], "clipvalue": None}


def test_train_only_option_on_test_raises():
    m = kt.model(kt.module("sequential"), kt.loss("ce"), kt.opt("sgd"))
    with pytest.raises(kt.KtorchError, match="^test: clipnorm: not set for evaluation"):
        kt.test(m, "clipnorm", 2)
    with pytest.raises(kt.KtorchError):
        kt.test(m, "shuffle", True)


def test_task_tasks_error():
    m = kt.model(kt.module("sequential"), kt.loss("ce"), kt.opt("sgd"))
    kt.train(m, "tasks", 2)
    with pytest.raises(kt.KtorchError, match="train: task 2 implies at least 3 tasks, but only 2 defined"):
        kt.train(m, "task", 2)
    assert kt.train(m, ["task", "tasks"]) == {"task": 0, "tasks": 2}
    kt.train(m, "task", 1)
    assert kt.train(m, "task") == 1
    with pytest.raises(kt.KtorchError):
        kt.train(m, "tasks", 0)


def test_bad_options_leave_everything_unchanged():
    m = kt.model(kt.module("sequential"), kt.loss("ce"), kt.opt("sgd"))
    before = kt.train(m)
    with pytest.raises(kt.KtorchError):
        kt.train(m, {"batchsize": 10, "nosuchoption": 1})
    with pytest.raises(kt.KtorchError):
        kt.train(m, {"shuffle": True, "batchsize": -1})
    with pytest.raises(kt.KtorchError):
        kt.train(m, ["batchsize", "shuffle"], [10, "yes"])
    with pytest.raises(kt.KtorchError):
        kt.train(m, "metrics", ["loss", "nosuchmetric"])
    assert kt.train(m) == before
