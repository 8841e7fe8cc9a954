"""run/testrun over batches, metric values against torch, dictionary/tensor result options."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import torch_linear

import ktorch as kt

N, D, C, BS = 600, 20, 10, 100


def _setup():
    q = kt.module([("linear", D, C)])
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    x = kt.tensor("randn", [N, D])
    y = kt.tensor("randint", C, N)
    return q, m, x, y


def _torch_epoch(lin, xa, ya, lr=0.01):
    """One unshuffled training pass with plain sgd: the losses before each step."""
    o = torch.optim.SGD(lin.parameters(), lr=lr)
    out = []
    for i in range(0, len(xa), BS):
        o.zero_grad(set_to_none=True)
        z = F.cross_entropy(lin(xa[i:i + BS]), ya[i:i + BS])
        out.append(z.item())
        z.backward()
        o.step()
    return np.array(out)


def test_run_dictionary_loss_batchloss_against_torch():
    q, m, x, y = _setup()
    kt.train(m, ["batchsize", "dictionary", "metrics"], [BS, True, ["loss", "batchloss"]])
    assert kt.train(m, x, y) == N // BS
    lin = torch_linear(q)
    xa, ya = torch.from_numpy(kt.tensor(x)), torch.from_numpy(kt.tensor(y))
    r = kt.run(m)
    assert isinstance(r, dict) and list(r) == ["loss", "batchloss"]
    expect = _torch_epoch(lin, xa, ya)
    np.testing.assert_allclose(r["batchloss"], expect, rtol=1e-4)
    np.testing.assert_allclose(float(r["loss"]), expect.mean(), rtol=1e-4)
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "weight")), lin.weight.detach().numpy(),
                               rtol=1e-4, atol=1e-6)
    # run(m, x, y) form: a second epoch on the same data, losses decrease
    r2 = kt.run(m, x, y)
    expect2 = _torch_epoch(lin, xa, ya)
    np.testing.assert_allclose(r2["batchloss"], expect2, rtol=1e-4)
    assert float(r2["loss"]) < float(r["loss"])


def test_run_single_metric_and_list():
    q, m, x, y = _setup()
    kt.train(m, batchsize=BS, metrics="batchloss")
    kt.train(m, x, y)
    r = kt.run(m)
    assert isinstance(r, np.ndarray) and r.shape == (N // BS,)
    kt.train(m, "metrics", ["loss", "batchloss"])
    r = kt.run(m)
    assert isinstance(r, list) and len(r) == 2
    np.testing.assert_allclose(float(r[0]), np.mean(r[1]), rtol=1e-6)


def test_run_tensor_option():
    q, m, x, y = _setup()
    kt.train(m, {"batchsize": BS, "tensor": True, "dictionary": True, "metrics": ["loss", "batchloss"]})
    r = kt.run(m, x, y)
    assert kt.objclass(r["loss"]) == "tensor" and kt.objclass(r["batchloss"]) == "tensor"
    np.testing.assert_allclose(float(kt.tensor(r["loss"])), kt.tensor(r["batchloss"]).mean(), rtol=1e-6)


def test_testrun_metrics_against_torch():
    q, m, x, y = _setup()
    X = kt.tensor("randn", [250, D])
    Y = kt.tensor("randint", C, 250)
    kt.test(m, "batchsize", 100)
    assert kt.test(m, X, Y) == 3
    kt.test(m, metrics=["loss", "batchloss", "accuracy", "predict", "output"])
    loss, bl, acc, pred, out = kt.testrun(m)
    lin = torch_linear(q)
    Xa, Ya = torch.from_numpy(kt.tensor(X)), torch.from_numpy(kt.tensor(Y))
    with torch.no_grad():
        o = lin(Xa)
        tb = [F.cross_entropy(o[i:i + 100], Ya[i:i + 100]).item() for i in range(0, 250, 100)]
    np.testing.assert_allclose(bl, tb, rtol=1e-5)
    np.testing.assert_allclose(float(loss), np.mean(tb), rtol=1e-5)  # plain mean of batch losses
    np.testing.assert_array_equal(pred, o.argmax(1).numpy())
    np.testing.assert_allclose(float(acc), 100 * (o.argmax(1) == Ya).float().mean().item(), rtol=1e-6)
    np.testing.assert_allclose(out, o.numpy(), rtol=1e-4, atol=1e-5)
    # testrun changes no parameters and leaves no gradients
    assert kt.grad(kt.parm(q, "weight")) is None
    # testrun(m, X, Y) form
    r = kt.testrun(m, X, Y)
    np.testing.assert_allclose(float(r[0]), float(loss), rtol=1e-6)


def test_mnist_sized_example_smaller():
    q = kt.module([("linear", 784, 10)])
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    x = kt.tensor("randn", [2000, 784])
    y = kt.tensor("randint", 10, 2000)
    kt.train(m, ["batchsize", "metrics"], [100, "batchloss"])
    assert kt.train(m, x, y) == 20
    X = kt.tensor("randn", [1000, 784])
    Y = kt.tensor("randint", 10, 1000)
    kt.test(m, "batchsize", 500)
    assert kt.test(m, X, Y) == 2
    bl = kt.run(m)
    assert bl.shape == (20,)
    assert np.all(bl > 1.5) and np.all(bl < 5)  # near log(10) + noise from random weights
    t = kt.testrun(m)
    assert np.ndim(t) == 0 and 1.5 < float(t) < 5


def test_run_without_data_raises():
    # the original returned null metrics; here a run with nothing to run on is an error
    q, m, x, y = _setup()
    kt.test(m, dictionary=True)
    with pytest.raises(kt.KtorchError, match="testrun: no test data defined"):
        kt.testrun(m)
    m2 = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    with pytest.raises(kt.KtorchError, match="run: no training data defined"):
        kt.run(m2)
    assert kt.batchinit(m2) == -1


def test_spec_mnist_sized_example_batch_counts_and_metrics():
    # the spec's sizes: 60000 x 784 inputs, batches of 1000; 10000 test rows, batches of 5000
    q = kt.module(("linear", 784, 10))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    x = kt.tensor("randn", [60000, 784])
    y = kt.tensor("randint", 10, 60000)
    kt.train(m, ["batchsize", "dictionary", "metrics"], [1000, True, ["loss", "batchloss"]])
    assert kt.train(m, x, y) == 60
    X = kt.tensor("randn", [10000, 784])
    Y = kt.tensor("randint", 10, 10000)
    kt.test(m, "batchsize", 5000)
    assert kt.test(m, X, Y) == 2
    r = kt.run(m)
    assert list(r) == ["loss", "batchloss"] and r["batchloss"].shape == (60,)
    assert r["loss"] == pytest.approx(np.mean(r["batchloss"]))  # plain mean of batch losses
    assert 1.8 < r["loss"] < 3.5  # random weights and labels: near log(10) plus noise
    r2 = kt.run(m, x, y)
    assert r2["batchloss"].shape == (60,) and r2["loss"] < r["loss"]
    kt.free(x, y, X, Y, m, q)


def test_targets_checked_once_before_any_step():
    """A pass checks all its targets against the first batch's output, before the first step:
    a bad class index in the last batch fails the run with the same error, weights untouched."""
    for loss, bad, want in [("ce", 3, "ce: target 3 out of range, expecting 0 to 2 or -100"),
                            ("nll", -2, "nll: target -2 out of range, expecting 0 to 2 or -100"),
                            ("bce", 2.0, "bce: all elements of the target should be between 0 and 1")]:
        q = kt.module(("linear", 4, 3))
        m = kt.model(q, kt.loss(loss), kt.opt("sgd", q, 0.1))
        x = np.random.default_rng(0).random((40, 4), dtype=np.float32)
        y = np.zeros((40, 3), np.float32) if loss == "bce" else np.zeros(40, np.int64)
        if loss == "bce":
            y[-1, 0] = bad
        else:
            y[-1] = bad
        kt.train(m, x, y)
        kt.train(m, batchsize=10)
        w = kt.tensor(kt.parm(q, "weight"))
        with pytest.raises(kt.KtorchError, match=f"^{want}"):
            kt.run(m)
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "weight")), w)
        assert kt.datasize(m) == 40
        # the test pass checks its targets the same way
        kt.test(m, x, y)
        with pytest.raises(kt.KtorchError, match=f"^{want}"):
            kt.testrun(m)


def test_targets_checked_once_per_definition_on_the_cpu():
    """CPU targets are checked by the first run after they are defined; a target written out of
    range later into shared torch memory still fails cleanly (libtorch's own check)."""
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    x, y = torch.rand(20, 4), torch.zeros(20, dtype=torch.long)
    kt.train(m, x, y)
    kt.train(m, batchsize=5)
    assert np.isfinite(float(kt.run(m)))
    y[7] = 9  # shared with the model
    with pytest.raises(kt.KtorchError, match="out of bounds|out of range"):
        kt.run(m)
    kt.train(m, x, y)  # defined again: checked again, with ktorch's message
    with pytest.raises(kt.KtorchError, match="^ce: target 9 out of range"):
        kt.run(m)
