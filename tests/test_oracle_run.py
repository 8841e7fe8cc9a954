"""Oracle tests: kt.run / kt.testrun against the hand-written torch loop over the same batches."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ktorch as kt

torch.set_num_threads(1)

RTOL, ATOL = 1e-5, 1e-6
N, BS = 50, 7

g = np.random.default_rng(3)
X = (g.standard_normal((N, 4)) * 3).astype(np.float32)
Y = g.integers(0, 3, N).astype(np.int64)


def mlp():
    spec = kt.seq("sequential", ("linear", 4, 8), "tanh", ("linear", 8, 3))
    q = kt.module(spec)
    tm = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    assert kt.parmnames(q) == [n for n, _ in tm.named_parameters()]
    with torch.no_grad():
        for n, p in tm.named_parameters():
            p.copy_(torch.from_numpy(kt.tensor(kt.parm(q, n))))
    return q, tm


def parms_equal(q, tm):
    for n, p in tm.named_parameters():
        np.testing.assert_allclose(kt.tensor(kt.parm(q, n)), p.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=n)


def batches(droplast):
    starts = list(range(0, N, BS))
    if droplast:
        starts = [s for s in starts if s + BS <= N]
    return [(s, min(s + BS, N)) for s in starts]


def torch_epoch(tm, to, droplast, clipnorm=None, clipvalue=None, groups=None):
    losses = []
    for a, b in batches(droplast):
        to.zero_grad()
        lo = F.cross_entropy(tm(torch.from_numpy(X[a:b])), torch.from_numpy(Y[a:b]))
        lo.backward()
        if clipvalue is not None:
            torch.nn.utils.clip_grad_value_(tm.parameters(), clipvalue)
        if clipnorm is not None:
            maxnorm, p = clipnorm
            if groups:
                for grp in groups:
                    torch.nn.utils.clip_grad_norm_(grp, maxnorm, norm_type=p)
            else:
                torch.nn.utils.clip_grad_norm_(tm.parameters(), maxnorm, norm_type=p)
        to.step()
        losses.append(lo.item())
    return losses


def make_model(q, o):
    m = kt.model(q, kt.loss("ce"), o)
    kt.train(m, {"batchsize": BS, "shuffle": False, "metrics": "batchloss"})
    assert kt.train(m, X, Y) == 8
    return m


@pytest.mark.parametrize("droplast", [False, True])
def test_run_epoch_sgd(droplast):
    q, tm = mlp()
    m = make_model(q, kt.opt("sgd", q, 0.1, 0.9))
    kt.train(m, "droplast", droplast)
    bl = kt.run(m)
    tl = torch_epoch(tm, torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9), droplast)
    assert len(bl) == (7 if droplast else 8)
    np.testing.assert_allclose(bl, tl, rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)


def test_run_two_epochs_adam():
    q, tm = mlp()
    m = make_model(q, kt.opt("adam", q, 0.01))
    to = torch.optim.Adam(tm.parameters(), lr=0.01)
    for _ in range(2):
        np.testing.assert_allclose(kt.run(m), torch_epoch(tm, to, False), rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)


@pytest.mark.parametrize("clipnorm", [0.1, (0.2, 1.0), (0.05, float("inf"))], ids=["2", "1", "inf"])
def test_run_clipnorm(clipnorm):
    q, tm = mlp()
    m = make_model(q, kt.opt("sgd", q, 0.5))
    kt.train(m, "clipnorm", clipnorm)
    cn = (clipnorm, 2.0) if isinstance(clipnorm, float) else clipnorm
    np.testing.assert_allclose(kt.train(m, "clipnorm"), list(cn))
    bl = kt.run(m)
    tl = torch_epoch(tm, torch.optim.SGD(tm.parameters(), lr=0.5), False, clipnorm=cn)
    np.testing.assert_allclose(bl, tl, rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)


def test_run_clipvalue():
    q, tm = mlp()
    m = make_model(q, kt.opt("sgd", q, 0.5))
    kt.train(m, "clipvalue", 0.02)
    bl = kt.run(m)
    tl = torch_epoch(tm, torch.optim.SGD(tm.parameters(), lr=0.5), False, clipvalue=0.02)
    np.testing.assert_allclose(bl, tl, rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)


def test_clipnorm_clipvalue_exclusive():
    q, _ = mlp()
    m = make_model(q, kt.opt("sgd", q))
    kt.train(m, "clipvalue", 0.5)
    kt.train(m, "clipnorm", 1.0)
    assert kt.train(m, "clipvalue") is None
    kt.train(m, "clipvalue", 0.5)
    assert kt.train(m, "clipnorm") is None


def test_run_clipgroup_two_groups():
    q, tm = mlp()
    w0, b0 = kt.parm(q, "0.weight"), kt.parm(q, "0.bias")
    w2, b2 = kt.parm(q, "2.weight"), kt.parm(q, "2.bias")
    o = kt.opt("sgd", kt.vector([w0, b0]), 0.5)
    kt.opt(o, 1, kt.vector([w2, b2]), 0.2)
    m = make_model(q, o)
    kt.train(m, {"clipnorm": 0.05, "clipgroup": True})
    tm_global = copy.deepcopy(tm)
    bl = kt.run(m)
    to = torch.optim.SGD([{"params": list(tm[0].parameters()), "lr": 0.5},
                          {"params": list(tm[2].parameters()), "lr": 0.2}])
    tl = torch_epoch(tm, to, False, clipnorm=(0.05, 2.0),
                     groups=[list(tm[0].parameters()), list(tm[2].parameters())])
    np.testing.assert_allclose(bl, tl, rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)
    # the reference with one global clip differs, so the group clipping is what is tested
    tog = torch.optim.SGD([{"params": list(tm_global[0].parameters()), "lr": 0.5},
                           {"params": list(tm_global[2].parameters()), "lr": 0.2}])
    tg = torch_epoch(tm_global, tog, False, clipnorm=(0.05, 2.0))
    assert not np.allclose(tg, tl, rtol=1e-4)


def test_run_clipnorm_two_groups_global():
    """Without clipgroup, 2 groups are clipped by their joint norm."""
    q, tm = mlp()
    w0, b0 = kt.parm(q, "0.weight"), kt.parm(q, "0.bias")
    w2, b2 = kt.parm(q, "2.weight"), kt.parm(q, "2.bias")
    o = kt.opt("sgd", kt.vector([w0, b0]), 0.5)
    kt.opt(o, 1, kt.vector([w2, b2]), 0.2)
    m = make_model(q, o)
    kt.train(m, {"clipnorm": 0.05, "clipgroup": False})
    bl = kt.run(m)
    to = torch.optim.SGD([{"params": list(tm[0].parameters()), "lr": 0.5},
                          {"params": list(tm[2].parameters()), "lr": 0.2}])
    tl = torch_epoch(tm, to, False, clipnorm=(0.05, 2.0))
    np.testing.assert_allclose(bl, tl, rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)


def test_run_loss_metric_is_plain_mean():
    q, tm = mlp()
    m = make_model(q, kt.opt("sgd", q, 0.1))
    kt.train(m, "metrics", ["loss", "batchloss"])
    lo, bl = kt.run(m)
    tl = torch_epoch(tm, torch.optim.SGD(tm.parameters(), lr=0.1), False)
    np.testing.assert_allclose(bl, tl, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(lo, np.mean(tl), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("bs", [7, 100])
def test_testrun_accuracy_and_loss(bs):
    q, tm = mlp()
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    kt.test(m, {"batchsize": bs, "metrics": ["loss", "accuracy", "batchloss", "output", "predict"]})
    kt.test(m, X, Y)
    lo, acc, bl, out, pred = kt.testrun(m)
    with torch.no_grad():
        o = tm(torch.from_numpy(X))
    tb = [F.cross_entropy(o[a:min(a + bs, N)], torch.from_numpy(Y[a:min(a + bs, N)])).item() for a in range(0, N, bs)]
    np.testing.assert_allclose(bl, tb, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(lo, np.mean(tb), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out, o.numpy(), rtol=RTOL, atol=ATOL)
    tp = o.argmax(1).numpy()
    np.testing.assert_array_equal(pred, tp)
    np.testing.assert_allclose(acc, 100.0 * (tp == Y).sum() / N, rtol=1e-6)


def test_testrun_dictionary():
    q, tm = mlp()
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    kt.test(m, {"batchsize": 10, "metrics": ["accuracy", "loss"], "dictionary": True})
    kt.test(m, X, Y)
    d = kt.testrun(m)
    assert set(d) == {"accuracy", "loss"}
    with torch.no_grad():
        o = tm(torch.from_numpy(X))
    np.testing.assert_allclose(d["accuracy"], 100.0 * (o.argmax(1).numpy() == Y).sum() / N, rtol=1e-6)
    tb = [F.cross_entropy(o[a:a + 10], torch.from_numpy(Y[a:a + 10])).item() for a in range(0, N, 10)]
    np.testing.assert_allclose(d["loss"], np.mean(tb), rtol=RTOL, atol=ATOL)


def test_backstep_equals_torch_step():
    q, tm = mlp()
    m = kt.model(q, kt.loss("ce"), kt.opt("adam", q, 0.01))
    to = torch.optim.Adam(tm.parameters(), lr=0.01)
    for _ in range(5):
        kl = kt.backstep(m, X, Y)
        to.zero_grad()
        lo = F.cross_entropy(tm(torch.from_numpy(X)), torch.from_numpy(Y))
        lo.backward()
        to.step()
        np.testing.assert_allclose(kl, lo.item(), rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)
