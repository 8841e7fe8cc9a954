"""Module-level api: parameter names, gradient reset by module/optimizer, clipv on a module, forward."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import parm, torch_linear

import ktorch as kt


def _two_modules():
    a = kt.module(kt.seq("sequential", ("linear", "a", 64, 20), "relu"))
    b = kt.module(kt.seq("sequential", ("linear", "b", 20, 10), "drop"))
    return a, b


def test_parmnames_named_linear():
    a, b = _two_modules()
    assert kt.parmnames(a) == ["a.weight", "a.bias"]
    assert kt.parmnames(b) == ["b.weight", "b.bias"]
    q = kt.module([("linear", 10, 3)])
    assert kt.parmnames(q) == ["weight", "bias"]
    s = kt.module(kt.seq("sequential", ("linear", 2, 100), "relu", ("linear", 100, 3)))
    assert kt.parmnames(s) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_module_and_optimizer_gradient_reset():
    a, b = _two_modules()
    aw = kt.parm(a, "a.weight")
    bw = kt.parm(b, "b.weight")
    o = kt.opt("sgd")
    kt.opt(o, 0, a)
    kt.opt(o, 1, b)
    x = kt.tensor("randn", [3, 64])
    ya = kt.forward(a, x)
    yb = kt.forward(b, ya)
    z = kt.ce(yb, [0, 2, 9])
    kt.backward(z)
    assert kt.grad(aw).shape == (20, 64)
    assert np.abs(kt.grad(bw)).sum() > 0

    kt.zerograd(a)
    assert not kt.grad(aw).any()
    assert np.abs(kt.grad(bw)).sum() > 0  # b's gradients untouched by a

    kt.zerograd(o)
    assert not kt.grad(aw).any()
    assert kt.grad(bw) is not None and not kt.grad(bw).any()

    kt.nograd(b)
    assert kt.grad(aw) is not None and not kt.grad(aw).any()
    assert kt.grad(bw) is None

    kt.nograd(o)
    assert kt.grad(aw) is None
    assert kt.grad(bw) is None


def test_module_gradient_matches_torch_without_dropout():
    a = kt.module(kt.seq("sequential", ("linear", "a", 64, 20), "relu"))
    b = kt.module(kt.seq("sequential", ("linear", "b", 20, 10)))
    x = kt.tensor("randn", [3, 64])
    z = kt.ce(kt.forward(b, kt.forward(a, x)), [0, 2, 9])
    kt.backward(z)
    ta, tb = torch_linear(a, "a."), torch_linear(b, "b.")
    tz = F.cross_entropy(tb(torch.relu(ta(torch.from_numpy(kt.tensor(x))))), torch.tensor([0, 2, 9]))
    tz.backward()
    np.testing.assert_allclose(float(kt.tensor(z)), tz.item(), rtol=1e-5)
    np.testing.assert_allclose(kt.grad(kt.parm(b, "b.weight")), tb.weight.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(kt.grad(kt.parm(a, "a.weight")), ta.weight.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_clipv_module():
    m = kt.module([("linear", 10, 3)])
    assert kt.parmnames(m) == ["weight", "bias"]
    p = kt.parm(m, "weight")
    x = kt.tensor("randn", [7, 10])
    y = kt.tensor("randint", 3, 7)
    z = kt.ce(kt.forward(m, x), y)
    kt.backward(z)
    lin = torch_linear(m)
    F.cross_entropy(lin(torch.from_numpy(kt.tensor(x))), torch.from_numpy(kt.tensor(y))).backward()
    g0 = kt.grad(p)
    np.testing.assert_allclose(g0, lin.weight.grad.numpy(), rtol=1e-4, atol=1e-6)
    assert np.isnan(kt.clipv(m, 0.4))
    g = kt.grad(p)
    np.testing.assert_allclose(g, np.clip(g0, -0.4, 0.4), rtol=1e-6)
    assert g.min() >= -0.4 - 1e-7 and g.max() <= 0.4 + 1e-7
    gb = kt.grad(kt.parm(m, "bias"))
    np.testing.assert_allclose(gb, np.clip(lin.bias.grad.numpy(), -0.4, 0.4), rtol=1e-4, atol=1e-6)


def test_forward_linear_matches_torch():
    q = kt.module([("linear", 784, 10)])
    x = np.random.default_rng(0).standard_normal((5, 784)).astype(np.float32)
    y = kt.tensor(kt.forward(q, x))
    np.testing.assert_allclose(y, torch_linear(q)(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(kt.evaluate(q, x), y, rtol=1e-6)


def test_parm_values_copy_out():
    q = kt.module([("linear", 4, 2)])
    w = parm(q, "weight")
    assert tuple(w.shape) == (2, 4)
    assert kt.size(kt.parm(q, "bias")) == [2]


def test_freed_handle_raises():
    q = kt.module("relu")
    kt.free(q)
    with pytest.raises(kt.KtorchError, match="parmnames"):
        kt.parmnames(q)
