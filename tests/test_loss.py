"""Loss calculation and the spec's explicit training steps (function f on spirals)."""

import numpy as np
import torch
import torch.nn.functional as F
from conftest import identity_model, spirals, torch_seq

import ktorch as kt


def test_model_loss_full_and_batches():
    m = identity_model()
    kt.train(m, "batchsize", 3)
    x = np.array([0.1, 2.7, 3, 4, 5, 6, 7], np.float32)
    y = np.array([1, 2, 3, 4, 5, 6, 7], np.float32)
    assert kt.train(m, x, y) == 3
    lf = kt.loss(m, kt.input(m), kt.target(m))
    np.testing.assert_allclose(float(kt.tensor(lf)), 0.1857143, rtol=1e-6)
    losses = []
    while kt.batch(m):
        kt.use(lf, kt.loss(m, kt.input(m), kt.target(m)))
        losses.append(float(kt.tensor(lf)))
    np.testing.assert_allclose(losses, [0.4333333, 0, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(0.4333333 * 3 / 7, 0.1857143, rtol=1e-6)


def test_loss_module_ce_matches_torch():
    lf = kt.loss("ce")
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 0, 1])
    r = float(kt.tensor(kt.loss(lf, x, y)))
    np.testing.assert_allclose(r, F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y)).item(), rtol=1e-6)
    s = kt.loss("ce", {"reduction": "sum"})
    r = float(kt.tensor(kt.loss(s, x, y)))
    np.testing.assert_allclose(
        r, F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), reduction="sum").item(), rtol=1e-6)


def _f(q, lf, o, x, y):
    """The spec's f: zerograd, forward, loss, backward, free, step; returns the loss."""
    kt.zerograd(o)
    x = kt.forward(q, x)
    yl = kt.loss(lf, x, y)
    r = float(kt.tensor(yl))
    kt.backward(yl)
    kt.free(x, yl)
    kt.step(o)
    return r


def test_spiral_explicit_steps_match_torch():
    n, k = 1000, 3
    q = kt.module(kt.seq("sequential", ("linear", 2, 100), "relu", ("linear", 100, k)))
    lf = kt.loss("ce")
    o = kt.opt("sgd", q, 0.2, 0.99)
    xa, ya = spirals(n, k, 0)
    x, y = kt.tensor(xa), kt.tensor(ya)
    net = torch_seq(q)
    topt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.99)
    tx, ty = torch.from_numpy(xa), torch.from_numpy(ya)
    ours, theirs = [], []
    for _ in range(3):
        ours.append(_f(q, lf, o, x, y))
        topt.zero_grad()
        z = F.cross_entropy(net(tx), ty)
        theirs.append(z.item())
        z.backward()
        topt.step()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    assert ours[0] > ours[1] > ours[2]
    # parameters after 3 steps agree too
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "2.weight")), net[2].weight.detach().numpy(),
                               rtol=1e-3, atol=1e-5)
