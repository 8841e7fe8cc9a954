"""Oracle tests for the fused optimizer updates (libtorch's _fused_sgd_, _fused_adam_,
_fused_adamw_, _fused_adagrad_ through ktorch-shim): trajectories equal to torch.optim's
``fused=True`` ones (rmsprop: ``foreach=True``) and close to the single-tensor ones, on the
same initial weights and the same gradients at every step.

Each test runs on every device (the `device` fixture: the CPU, and CUDA where there is one),
torch's parameters and ktorch's (moved with `kt.to`, or made there) on that device. torch.optim
has fused sgd, adam and adamw on both, but fused adagrad on the CPU only (``fused=True`` raises
for CUDA tensors), and ktorch's adagrad takes its per-parameter update (torch.optim's
single-tensor one) on CUDA: there the reference is ``foreach=False``, equal within RTOL/ATOL,
not exactly, as ktorch scales the gradient by -lr before the division rather than after."""

import numpy as np
import pytest
import torch
import torch.nn as nn

import ktorch as kt

torch.set_num_threads(1)

RTOL, ATOL = 1e-5, 1e-6
STEPS = 30

rng = np.random.default_rng(7)


def on(a, device):
    """A numpy array for ktorch on `device`: the array itself on the CPU, else a ktorch tensor."""
    return a if device == "cpu" else kt.tensor(a, device)


def how(cls, device):
    """torch.optim's options for the update ktorch's equals on `device`: foreach for rmsprop,
    single-tensor for adagrad on CUDA (no fused adagrad there), else fused; and the tolerances."""
    if cls is torch.optim.RMSprop:
        return dict(foreach=True), {}
    if cls is torch.optim.Adagrad and device != "cpu":
        return dict(foreach=False), dict(rtol=RTOL, atol=ATOL)
    return dict(fused=True), {}


def mlp(device="cpu"):
    """A ktorch module on `device` and a torch copy of it there."""
    spec = kt.seq("sequential", ("linear", 4, 16), "relu", ("linear", 16, 3))
    q = kt.module(spec)
    tm = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        for n, p in tm.named_parameters():
            p.copy_(torch.from_numpy(kt.tensor(kt.parm(q, n))))
    kt.to(q, device)
    return q, tm.to(device)


def gradients(tm, steps=STEPS):
    """Per step, per parameter: a random array G; the loss mean(p * G) gives p the gradient G/numel."""
    return [{n: rng.standard_normal(tuple(p.shape)).astype(np.float32) for n, p in tm.named_parameters()}
            for _ in range(steps)]


def kt_run(q, o, gs, names=None, device="cpu"):
    out = []
    for gd in gs:
        kt.zerograd(q)
        for n in names or kt.parmnames(q):
            kt.backward(kt.mean(kt.mul(kt.parm(q, n), on(gd[n], device))))
        kt.step(o)
        out.append({n: kt.tensor(kt.parm(q, n)) for n in kt.parmnames(q)})
    return out


def torch_run(tm, o, gs, names=None, device="cpu"):
    out = []
    ps = dict(tm.named_parameters())
    for gd in gs:
        o.zero_grad()
        for n in names or list(ps):
            (ps[n] * torch.from_numpy(gd[n]).to(device)).mean().backward()
        o.step()
        out.append({n: p.detach().cpu().numpy().copy() for n, p in ps.items()})
    return out


def assert_same(a, b, rtol=0.0, atol=0.0):
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        for n in x:
            if rtol == 0.0 and atol == 0.0:
                np.testing.assert_array_equal(x[n], y[n], err_msg=f"step {t + 1} {n}")
            else:
                np.testing.assert_allclose(x[n], y[n], rtol=rtol, atol=atol, err_msg=f"step {t + 1} {n}")


OPTS = [
    ("sgd", (0.1,), {}, torch.optim.SGD, dict(lr=0.1)),
    ("sgd-momentum-decay", (0.1, 0.9, 0, 0.01), {}, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd-nesterov", (0.05, 0.9, 0, 0.01, True), {}, torch.optim.SGD,
     dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("sgd-dampening", (0.1, 0.8, 0.3, 0.02), {}, torch.optim.SGD,
     dict(lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.02)),
    ("adam", (0.01,), {}, torch.optim.Adam, dict(lr=0.01)),
    ("adam-decay", (0.02, 0.8, 0.99, 1e-6, 0.01), {}, torch.optim.Adam,
     dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
    ("adam-amsgrad", (0.01, 0.9, 0.999, 1e-8, 0.05, True), {}, torch.optim.Adam,
     dict(lr=0.01, weight_decay=0.05, amsgrad=True)),
    ("adamw", (0.01,), {}, torch.optim.AdamW, dict(lr=0.01)),
    ("adamw-amsgrad", (0.01, 0.9, 0.99, 1e-8, 0.1, True), {}, torch.optim.AdamW,
     dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.1, amsgrad=True)),
    ("adagrad", (0.1,), {}, torch.optim.Adagrad, dict(lr=0.1)),
    ("adagrad-full", (0.1, 0.01, 0.02, 0.1, 1e-8), {}, torch.optim.Adagrad,
     dict(lr=0.1, lr_decay=0.01, weight_decay=0.02, initial_accumulator_value=0.1, eps=1e-8)),
    ("rmsprop", (0.01,), {}, torch.optim.RMSprop, dict(lr=0.01)),
    ("rmsprop-decay", (0.01, 0.9, 1e-8, 0.01), {}, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, weight_decay=0.01)),
    ("rmsprop-centered-momentum", (0.005, 0.99, 1e-7, 0.01, 0.9, True), {}, torch.optim.RMSprop,
     dict(lr=0.005, eps=1e-7, weight_decay=0.01, momentum=0.9, centered=True)),
]
IDS = [o[0] for o in OPTS]


@pytest.mark.parametrize("name,pos,kw,cls,settings", OPTS, ids=IDS)
def test_equal_to_torch_fused(name, pos, kw, cls, settings, device):
    q, tm = mlp(device)
    gs = gradients(tm)
    o = kt.opt(name.split("-")[0], q, *pos, **kw)
    opts, tol = how(cls, device)
    assert_same(kt_run(q, o, gs, device=device), torch_run(tm, cls(tm.parameters(), **opts, **settings), gs, device=device),
                **tol)


@pytest.mark.parametrize("name,pos,kw,cls,settings", OPTS, ids=IDS)
def test_close_to_torch_single_tensor(name, pos, kw, cls, settings, device):
    q, tm = mlp(device)
    gs = gradients(tm)
    o = kt.opt(name.split("-")[0], q, *pos, **kw)
    to = cls(tm.parameters(), foreach=False, **settings)
    assert_same(kt_run(q, o, gs, device=device), torch_run(tm, to, gs, device=device), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name,pos,cls,settings", [
    ("sgd", (0.1, 0.9, 0, 0.01), torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("adam", (0.01, 0.9, 0.999, 1e-8, 0.01, True), torch.optim.Adam, dict(lr=0.01, weight_decay=0.01, amsgrad=True)),
    ("adagrad", (0.1, 0.01, 0.02), torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.02)),
], ids=["sgd", "adam", "adagrad"])
def test_parameters_without_gradients_skipped(name, pos, cls, settings, device):
    q, tm = mlp(device)
    gs = gradients(tm)
    some = ["0.weight", "2.bias"]
    o = kt.opt(name, q, *pos)
    opts, tol = how(cls, device)
    a = kt_run(q, o, gs, some, device)
    b = torch_run(tm, cls(tm.parameters(), **opts, **settings), gs, some, device)
    assert_same(a, b, **tol)
    first = {n: kt.tensor(kt.parm(q, n)) for n in kt.parmnames(q)}
    np.testing.assert_array_equal(a[-1]["0.bias"], first["0.bias"])


def test_sgd_momentum_parameters_added_later(device):
    """Parameters added to a group after some steps start their momentum buffers on their
    own first step (torch: a new group, whose fused call has is_first_step)."""
    q, tm = mlp(device)
    gs = gradients(tm, 20)
    w0, b0 = kt.parm(q, "0.weight"), kt.parm(q, "0.bias")
    w2, b2 = kt.parm(q, "2.weight"), kt.parm(q, "2.bias")
    o = kt.opt("sgd", kt.vector([w0, b0]), 0.1, 0.9)
    to = torch.optim.SGD(list(tm[0].parameters()), lr=0.1, momentum=0.9, fused=True)
    first, later = ["0.weight", "0.bias"], kt.parmnames(q)
    a = kt_run(q, o, gs[:5], first, device)
    b = torch_run(tm, to, gs[:5], first, device)
    kt.opt(o, 0, kt.vector([w2, b2]))
    to.add_param_group({"params": list(tm[2].parameters())})
    a += kt_run(q, o, gs[5:], later, device)
    b += torch_run(tm, to, gs[5:], later, device)
    assert_same(a, b)


@pytest.mark.parametrize("name,pos,cls,settings", [
    ("sgd", (0.1, 0.9, 0, 0.01, True), torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("adamw", (0.01, 0.9, 0.99, 1e-8, 0.1, True), torch.optim.AdamW,
     dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.1, amsgrad=True)),
    ("adagrad", (0.1, 0.01, 0.02, 0.1), torch.optim.Adagrad,
     dict(lr=0.1, lr_decay=0.01, weight_decay=0.02, initial_accumulator_value=0.1)),
], ids=["sgd", "adamw", "adagrad"])
def test_float32_and_float64_in_one_group(name, pos, cls, settings, device):
    """One group, two dtypes: one fused call per dtype, as torch.optim groups them."""
    init = [rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal(7)]
    ks = [kt.tensor(x, "float" if x.dtype == np.float32 else "double", "grad") for x in init]
    ts = [torch.tensor(x, device=device, requires_grad=True) for x in init]
    o = kt.opt(name, kt.vector(ks), *pos)
    kt.to(o, device)  # its parameters, the tensors ks, move
    assert [kt.device(k) for k in ks] == [device, device]
    opts, tol = how(cls, device)
    to = cls(ts, **opts, **settings)
    for _ in range(STEPS):
        gs = [rng.standard_normal(x.shape).astype(x.dtype) for x in init]
        kt.zerograd(o)
        to.zero_grad()
        for k, t, g in zip(ks, ts, gs, strict=True):
            kt.backward(kt.mean(kt.mul(k, on(g, device))))
            (t * torch.from_numpy(g).to(device)).mean().backward()
        kt.step(o)
        to.step()
        for k, t in zip(ks, ts, strict=True):
            x, y = kt.tensor(k), t.detach().cpu().numpy()
            assert x.dtype == y.dtype
            if tol:
                np.testing.assert_allclose(x, y, **tol)
            else:
                np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kd,dt", [("half", torch.float16), ("bfloat", torch.bfloat16)], ids=["half", "bfloat"])
@pytest.mark.parametrize("name,pos,cls,settings", [
    ("sgd", (0.1, 0.9), torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    ("adam", (0.1,), torch.optim.Adam, dict(lr=0.1)),
    ("adamw", (0.1,), torch.optim.AdamW, dict(lr=0.1)),
    ("adagrad", (0.1,), torch.optim.Adagrad, dict(lr=0.1)),
], ids=["sgd", "adam", "adamw", "adagrad"])
def test_half_precision(name, pos, cls, settings, kd, dt, device):
    """The fused kernels compute in float32 for half and bfloat16 parameters, as torch.optim's."""
    if name == "adagrad" and device != "cpu":
        pytest.skip("torch.optim has no fused adagrad on CUDA (nor ktorch): no fused kernel to test")
    x = rng.standard_normal(6).astype(np.float32)
    k = kt.tensor(x, kd, device, "grad")
    t = torch.tensor(x).to(dt).to(device).requires_grad_(True)
    o = kt.opt(name, kt.vector([k]), *pos)
    to = cls([t], fused=True, **settings)
    for _ in range(5):
        g = rng.standard_normal(6).astype(np.float32)
        kt.zerograd(o)
        to.zero_grad()
        kt.backward(kt.mean(kt.mul(k, kt.tensor(g, kd, device))))
        (t * torch.tensor(g).to(dt).to(device)).mean().backward()
        kt.step(o)
        to.step()
        assert kt.device(k) == device
        assert torch.equal(kt.tensor(k, "torch").cpu(), t.detach().cpu())
