"""Oracle tests: kt.run / kt.testrun against the hand-written torch loop over the same batches.

Each test runs on every device (the `device` fixture: the CPU, and CUDA where there is one):
the torch module and its batches on that device, the ktorch model moved there with `kt.to`
after it is built with the same weights. The data given to ktorch is numpy (copied batch by
batch to the model's device) or, in the `kind="torch"` variants, torch.Tensors on the device
(shared, not copied)."""

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


def mlp(device="cpu"):
    """A ktorch module on the CPU and a torch copy of it on `device`: the caller moves the
    ktorch side (alone, or in its model) once it has built what shares its parameters."""
    spec = kt.seq("sequential", ("linear", 4, 8), "tanh", ("linear", 8, 3))
    q = kt.module(spec)
    tm = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    assert kt.parmnames(q) == [n for n, _ in tm.named_parameters()]
    with torch.no_grad():
        for n, p in tm.named_parameters():
            p.copy_(torch.from_numpy(kt.tensor(kt.parm(q, n))))
    return q, tm.to(device)


def parms_equal(q, tm):
    for n, p in tm.named_parameters():
        np.testing.assert_allclose(kt.tensor(kt.parm(q, n)), p.detach().cpu().numpy(), rtol=RTOL, atol=ATOL, err_msg=n)


def batches(droplast):
    starts = list(range(0, N, BS))
    if droplast:
        starts = [s for s in starts if s + BS <= N]
    return [(s, min(s + BS, N)) for s in starts]


def torch_epoch(tm, to, droplast, clipnorm=None, clipvalue=None, groups=None, device="cpu"):
    losses = []
    for a, b in batches(droplast):
        to.zero_grad()
        lo = F.cross_entropy(tm(torch.from_numpy(X[a:b]).to(device)), torch.from_numpy(Y[a:b]).to(device))
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


def data(device, kind="numpy"):
    """X, Y as given to ktorch: numpy arrays, or torch.Tensors on `device` (kind "torch")."""
    if kind == "torch":
        return torch.from_numpy(X).to(device), torch.from_numpy(Y).to(device)
    return X, Y


def make_model(q, o, device="cpu", kind="numpy"):
    m = kt.model(q, kt.loss("ce"), o)
    kt.to(m, device)
    assert kt.device(m) == kt.device(q) == device
    kt.train(m, {"batchsize": BS, "shuffle": False, "metrics": "batchloss"})
    assert kt.train(m, *data(device, kind)) == 8
    return m


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("droplast", [False, True])
def test_run_epoch_sgd(droplast, kind, device):
    q, tm = mlp(device)
    m = make_model(q, kt.opt("sgd", q, 0.1, 0.9), device, kind)
    kt.train(m, "droplast", droplast)
    bl = kt.run(m)
    tl = torch_epoch(tm, torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9), droplast, device=device)
    assert len(bl) == (7 if droplast else 8)
    np.testing.assert_allclose(bl, tl, rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_run_two_epochs_adam(kind, device):
    q, tm = mlp(device)
    m = make_model(q, kt.opt("adam", q, 0.01), device, kind)
    to = torch.optim.Adam(tm.parameters(), lr=0.01)
    for _ in range(2):
        np.testing.assert_allclose(kt.run(m), torch_epoch(tm, to, False, device=device), rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)


@pytest.mark.parametrize("clipnorm", [0.1, (0.2, 1.0), (0.05, float("inf"))], ids=["2", "1", "inf"])
def test_run_clipnorm(clipnorm, device):
    q, tm = mlp(device)
    m = make_model(q, kt.opt("sgd", q, 0.5), device)
    kt.train(m, "clipnorm", clipnorm)
    cn = (clipnorm, 2.0) if isinstance(clipnorm, float) else clipnorm
    np.testing.assert_allclose(kt.train(m, "clipnorm"), list(cn))
    bl = kt.run(m)
    tl = torch_epoch(tm, torch.optim.SGD(tm.parameters(), lr=0.5), False, clipnorm=cn, device=device)
    np.testing.assert_allclose(bl, tl, rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)


def test_run_clipvalue(device):
    q, tm = mlp(device)
    m = make_model(q, kt.opt("sgd", q, 0.5), device)
    kt.train(m, "clipvalue", 0.02)
    bl = kt.run(m)
    tl = torch_epoch(tm, torch.optim.SGD(tm.parameters(), lr=0.5), False, clipvalue=0.02, device=device)
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


def test_run_clipgroup_two_groups(device):
    q, tm = mlp(device)
    w0, b0 = kt.parm(q, "0.weight"), kt.parm(q, "0.bias")
    w2, b2 = kt.parm(q, "2.weight"), kt.parm(q, "2.bias")
    o = kt.opt("sgd", kt.vector([w0, b0]), 0.5)
    kt.opt(o, 1, kt.vector([w2, b2]), 0.2)
    m = make_model(q, o, device)
    kt.train(m, {"clipnorm": 0.05, "clipgroup": True})
    tm_global = copy.deepcopy(tm)
    bl = kt.run(m)
    to = torch.optim.SGD([{"params": list(tm[0].parameters()), "lr": 0.5},
                          {"params": list(tm[2].parameters()), "lr": 0.2}])
    tl = torch_epoch(tm, to, False, clipnorm=(0.05, 2.0),
                     groups=[list(tm[0].parameters()), list(tm[2].parameters())], device=device)
    np.testing.assert_allclose(bl, tl, rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)
    # the reference with one global clip differs, so the group clipping is what is tested
    tog = torch.optim.SGD([{"params": list(tm_global[0].parameters()), "lr": 0.5},
                           {"params": list(tm_global[2].parameters()), "lr": 0.2}])
    tg = torch_epoch(tm_global, tog, False, clipnorm=(0.05, 2.0), device=device)
    assert not np.allclose(tg, tl, rtol=1e-4)


def test_run_clipnorm_two_groups_global(device):
    """Without clipgroup, 2 groups are clipped by their joint norm."""
    q, tm = mlp(device)
    w0, b0 = kt.parm(q, "0.weight"), kt.parm(q, "0.bias")
    w2, b2 = kt.parm(q, "2.weight"), kt.parm(q, "2.bias")
    o = kt.opt("sgd", kt.vector([w0, b0]), 0.5)
    kt.opt(o, 1, kt.vector([w2, b2]), 0.2)
    m = make_model(q, o, device)
    kt.train(m, {"clipnorm": 0.05, "clipgroup": False})
    bl = kt.run(m)
    to = torch.optim.SGD([{"params": list(tm[0].parameters()), "lr": 0.5},
                          {"params": list(tm[2].parameters()), "lr": 0.2}])
    tl = torch_epoch(tm, to, False, clipnorm=(0.05, 2.0), device=device)
    np.testing.assert_allclose(bl, tl, rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)


def test_run_loss_metric_is_plain_mean(device):
    q, tm = mlp(device)
    m = make_model(q, kt.opt("sgd", q, 0.1), device)
    kt.train(m, "metrics", ["loss", "batchloss"])
    lo, bl = kt.run(m)
    tl = torch_epoch(tm, torch.optim.SGD(tm.parameters(), lr=0.1), False, device=device)
    np.testing.assert_allclose(bl, tl, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(lo, np.mean(tl), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("bs", [7, 100])
def test_testrun_accuracy_and_loss(bs, kind, device):
    q, tm = mlp(device)
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    kt.to(m, device)
    kt.test(m, {"batchsize": bs, "metrics": ["loss", "accuracy", "batchloss", "output", "predict"]})
    kt.test(m, *data(device, kind))
    lo, acc, bl, out, pred = kt.testrun(m)
    xt, yt = data(device, "torch")
    with torch.no_grad():
        o = tm(xt)
    tb = [F.cross_entropy(o[a:min(a + bs, N)], yt[a:min(a + bs, N)]).item() for a in range(0, N, bs)]
    np.testing.assert_allclose(bl, tb, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(lo, np.mean(tb), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out, o.cpu().numpy(), rtol=RTOL, atol=ATOL)
    tp = o.argmax(1).cpu().numpy()
    np.testing.assert_array_equal(pred, tp)
    np.testing.assert_allclose(acc, 100.0 * (tp == Y).sum() / N, rtol=1e-6)


def test_testrun_dictionary(device):
    q, tm = mlp(device)
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    kt.to(m, device)
    kt.test(m, {"batchsize": 10, "metrics": ["accuracy", "loss"], "dictionary": True})
    kt.test(m, X, Y)
    d = kt.testrun(m)
    assert set(d) == {"accuracy", "loss"}
    xt, yt = data(device, "torch")
    with torch.no_grad():
        o = tm(xt)
    np.testing.assert_allclose(d["accuracy"], 100.0 * (o.argmax(1).cpu().numpy() == Y).sum() / N, rtol=1e-6)
    tb = [F.cross_entropy(o[a:a + 10], yt[a:a + 10]).item() for a in range(0, N, 10)]
    np.testing.assert_allclose(d["loss"], np.mean(tb), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_backstep_equals_torch_step(kind, device):
    q, tm = mlp(device)
    m = kt.model(q, kt.loss("ce"), kt.opt("adam", q, 0.01))
    kt.to(m, device)
    to = torch.optim.Adam(tm.parameters(), lr=0.01)
    xk, yk = data(device, kind)
    xt, yt = data(device, "torch")
    for _ in range(5):
        kl = kt.backstep(m, xk, yk)
        to.zero_grad()
        lo = F.cross_entropy(tm(xt), yt)
        lo.backward()
        to.step()
        np.testing.assert_allclose(kl, lo.item(), rtol=RTOL, atol=ATOL)
    parms_equal(q, tm)
