"""Optimizers: step on a tensor, gradient clipping by norm with groups, backstep with LBFGS, model g."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import spirals, torch_linear, torch_seq

import ktorch as kt


def test_sgd_step_tensor_to_target():
    x = kt.tensor(np.array([0.5, 2.5, 3], np.float32), "grad")
    y = kt.tensor(np.array([1.0, 2.0, 3], np.float32))
    z = kt.tensor(np.float32(0))
    o = kt.opt("sgd", x)
    for _ in range(20):
        kt.use(z, kt.mse(x, y))
        kt.backward(z)
        kt.step(o)
    tx = torch.tensor([0.5, 2.5, 3], requires_grad=True)
    ty = torch.tensor([1.0, 2.0, 3])
    topt = torch.optim.SGD([tx], lr=0.01)
    for _ in range(20):
        F.mse_loss(tx, ty).backward()  # no zero_grad: gradients accumulate, as in the spec
        topt.step()
    r = kt.tensor(x)
    np.testing.assert_allclose(r, tx.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(r, [1.052, 1.948, 3], atol=5e-4)
    np.testing.assert_array_equal(kt.tensor(y), [1, 2, 3])


def _groups():
    a = kt.module([("linear", "a", 64, 32)])
    b = kt.module([("linear", "b", 32, 3)])
    o = kt.opt("sgd")
    kt.opt(o, 0, a)
    kt.opt(o, 1, b)
    x = kt.tensor("randn", [7, 64])
    y = kt.tensor("randint", 3, 7)
    z = kt.ce(kt.forward(b, kt.forward(a, x)), y)
    kt.backward(z)
    return a, b, o


def _norm(*ts):
    return float(np.sqrt(sum((np.asarray(t, np.float64) ** 2).sum() for t in ts)))


def test_clip_group_norms():
    a, b, o = _groups()
    ga = [kt.grad(kt.parm(a, n)) for n in kt.parmnames(a)]
    gb = [kt.grad(kt.parm(b, n)) for n in kt.parmnames(b)]
    r = kt.clip(o, 1.0, True)
    assert isinstance(r, list) and len(r) == 2
    np.testing.assert_allclose(r, [_norm(*ga), _norm(*gb)], rtol=1e-5)
    np.testing.assert_allclose(kt.clip(o, 0.95, True), [1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(kt.clip(o, 0.9, True), [0.95, 0.95], atol=1e-5)
    # without the group flag: the norm across all parameters
    r = kt.clip(o, 0.75)
    assert isinstance(r, float)
    np.testing.assert_allclose(r, np.sqrt(2 * 0.9**2), atol=1e-5)  # 1.272791
    np.testing.assert_allclose(kt.clip(o, 0.5), 0.75, atol=1e-5)


def test_clip_matches_torch_clip_grad_norm():
    q = kt.module([("linear", 10, 3)])
    x = kt.tensor("randn", [7, 10])
    y = kt.tensor("randint", 3, 7)
    kt.backward(kt.ce(kt.forward(q, x), y))
    lin = torch_linear(q)
    F.cross_entropy(lin(torch.from_numpy(kt.tensor(x))), torch.from_numpy(kt.tensor(y))).backward()
    tn = torch.nn.utils.clip_grad_norm_(lin.parameters(), 0.1).item()
    np.testing.assert_allclose(kt.clip(q, 0.1), tn, rtol=1e-5)
    np.testing.assert_allclose(kt.grad(kt.parm(q, "weight")), lin.weight.grad.numpy(), rtol=1e-4, atol=1e-7)
    # infinity norm
    kt.zerograd(q)
    kt.backward(kt.ce(kt.forward(q, x), y))
    gi = np.abs(kt.grad(kt.parm(q, "weight"))).max()
    gi = max(gi, np.abs(kt.grad(kt.parm(q, "bias"))).max())
    np.testing.assert_allclose(kt.clip(q, 1e-3, float("inf")), gi, rtol=1e-5)


def test_backstep_lbfgs_callback():
    calls = []

    def fn(m, x):
        calls.append(1)
        return kt.parm(m, "x")

    q = kt.module([("callback", "cb", fn, {"parms": {"x": [0.5, 2.5, 3]}})])
    m = kt.model(q, kt.loss("mse"), kt.opt("lbfgs", q))
    x = kt.parm(q, "x")
    np.testing.assert_array_equal(kt.tensor(x), [0.5, 2.5, 3])
    r = kt.backstep(m, 0, [1, 2, 3.0])
    assert isinstance(r, float)
    np.testing.assert_allclose(r, 0.1666667, rtol=1e-6)
    assert len(calls) == 3
    np.testing.assert_allclose(kt.tensor(x), [1, 2, 3], atol=1e-6)


def test_step_lbfgs_requires_backstep():
    q = kt.module([("linear", 2, 1)])
    o = kt.opt("lbfgs", q)
    with pytest.raises(kt.KtorchError):
        kt.step(o)


def test_model_g_matches_torch():
    n, k = 1000, 3
    q = kt.module(kt.seq("sequential", ("linear", 2, 100), "relu", ("linear", 100, k)))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.2, 0.99))
    xa, ya = spirals(n, k, 2)
    x, y = kt.tensor(xa), kt.tensor(ya)
    net = torch_seq(q)
    topt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.99)
    ours, theirs = [], []
    for _ in range(3):
        kt.nograd(m)
        r = kt.backward(m, x, y)
        assert isinstance(r, float)
        ours.append(r)
        kt.step(m)
        topt.zero_grad(set_to_none=True)
        z = F.cross_entropy(net(torch.from_numpy(xa)), torch.from_numpy(ya))
        theirs.append(z.item())
        z.backward()
        topt.step()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    assert ours[0] > ours[1] > ours[2]


def test_opt_group_out_of_range():
    mods = [kt.module([("linear", 2, 2)]) for _ in range(4)]
    o = kt.opt("sgd")
    for g in range(3):
        kt.opt(o, g, mods[g])
    msg = r"opt: group 4 invalid, cannot be greater than number of groups\(3\)"
    with pytest.raises(kt.KtorchError, match=msg):
        kt.opt(o, 4, mods[3])
