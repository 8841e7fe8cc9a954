"""Mixed precision (train/test option autocast): losses, parameters and the float16
loss scale against torch.autocast and torch.amp.GradScaler on the same weights."""

import numpy as np
import pytest
import torch

import ktorch as kt

SPEC = kt.seq("sequential", ("linear", 4, 16), "relu", ("linear", 16, 3))


def pair(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    q = kt.module(SPEC)
    for n, p in net.named_parameters():
        kt.parm(q, n, p.detach().numpy())
    return net, q


def torch_epoch(net, x, y, dtype, batch, lr, scaler=None):
    o = torch.optim.SGD(net.parameters(), lr)
    losses = []
    for i in range(0, len(x), batch):
        o.zero_grad()
        with torch.autocast("cpu", dtype=dtype):
            loss = torch.nn.functional.cross_entropy(net(x[i : i + batch]), y[i : i + batch])
        losses.append(loss.item())
        if scaler is None:
            loss.backward()
            o.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(o)
            scaler.update()
    return losses


@pytest.mark.parametrize("name,dtype", [("bfloat", torch.bfloat16), ("half", torch.float16)])
def test_run_matches_torch_autocast(name, dtype):
    net, q = pair()
    torch.manual_seed(1)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    kt.train(m, x.numpy(), y.numpy())
    kt.train(m, batchsize=16, autocast=name, metrics=["batchloss"])
    got = np.asarray(kt.run(m))
    scaler = torch.amp.GradScaler("cpu") if dtype == torch.float16 else None
    want = torch_epoch(net, x, y, dtype, 16, 0.1, scaler)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    for n, p in net.named_parameters():
        np.testing.assert_allclose(kt.tensor(kt.parm(q, n)), p.detach().numpy(), rtol=1e-6, atol=1e-7)
    # autocast changed the numbers: full precision gives other losses
    net2, q2 = pair()
    with torch.no_grad():
        full = torch.nn.functional.cross_entropy(net2(x[:16]), y[:16]).item()
    assert abs(full - got[0]) > 1e-6
    assert kt.info(m)["lossscale"] == (65536.0 if scaler else None)


def test_half_skips_overflowing_steps_and_backs_off_like_grad_scaler():
    net, q = pair(3)
    torch.manual_seed(4)
    # inputs this large overflow float16 gradients at the initial scale of 2^16
    x, y = torch.randn(48, 4) * 3000, torch.randint(0, 3, (48,))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 1e-4))
    kt.train(m, x.numpy(), y.numpy())
    kt.train(m, batchsize=8, autocast="half", metrics=["batchloss"])
    got = np.asarray(kt.run(m))
    scaler = torch.amp.GradScaler("cpu")
    want = torch_epoch(net, x, y, torch.float16, 8, 1e-4, scaler)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert kt.info(m)["lossscale"] == scaler.get_scale() < 65536.0
    for n, p in net.named_parameters():
        np.testing.assert_allclose(kt.tensor(kt.parm(q, n)), p.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_testrun_evaluates_under_autocast():
    net, q = pair(5)
    torch.manual_seed(6)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    kt.test(m, x.numpy(), y.numpy())
    kt.test(m, batchsize=32, autocast="bfloat")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = torch.nn.functional.cross_entropy(net(x), y).item()
    assert float(kt.testrun(m)) == pytest.approx(want, rel=1e-6)
    assert kt.test(m, "autocast") == "bfloat"
    kt.test(m, autocast=None)
    assert kt.test(m, "autocast") is None


def test_autocast_off_by_default_and_bad_settings_change_nothing():
    q = kt.module(SPEC)
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    assert kt.train(m, "autocast") is None
    for bad in ("fp8", "float", "double"):
        with pytest.raises(kt.KtorchError, match="autocast: unrecognized setting"):
            kt.train(m, autocast=bad)
    with pytest.raises(kt.KtorchError, match="autocast"):
        kt.train(m, {"batchsize": 7, "autocast": 3})
    assert kt.train(m, "autocast") is None and kt.train(m, "batchsize") == 32
    kt.train(m, autocast="half")
    assert kt.train(m, "autocast") == "half"
    kt.train(m, autocast=False)
    assert kt.train(m, "autocast") is None
