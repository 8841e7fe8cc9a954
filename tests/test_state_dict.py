"""PyTorch interop: state_dict / load_state_dict for modules and optimizers, both ways.

Module state goes from torch.nn into ktorch (ktorch then gives torch's outputs) and from
ktorch into torch.nn (torch then gives ktorch's outputs), under torch's names and in its
order. Optimizer state moves mid-training: 3 steps on one side, state moved, 3 steps on
the other side equal 6 steps in torch.
"""

import copy
import threading
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn

import ktorch as kt

torch.set_num_threads(1)

RTOL, ATOL = 1e-5, 1e-6


def r(*shape, seed=0):
    g = np.random.default_rng(seed + sum(shape))
    return g.standard_normal(shape).astype(np.float32)


def randomize(tm, seed=1):
    """New values in every floating parameter and buffer of a torch module (running
    variances stay positive)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, t in list(tm.named_parameters()) + list(tm.named_buffers()):
            if t.is_floating_point():
                v = torch.randn(t.shape, generator=g) * 0.5
                t.copy_(v.abs() + 0.5 if n.endswith("running_var") else v)


def first(x):
    while isinstance(x, (list, tuple)):
        x = x[0]
    return x


def kt_out(q, xs):
    return np.asarray(first(kt.evaluate(q, *xs)))


def torch_out(tm, xs):
    tm.eval()
    with torch.no_grad():
        return first(tm(*[torch.from_numpy(x) for x in xs])).numpy()


class Res(nn.Module):
    """ktorch's residual container: the sum of its children's outputs, or x + child(x)."""

    def __init__(self, *kids):
        super().__init__()
        for i, k in enumerate(kids):
            self.add_module(str(i), k)

    def forward(self, x):
        kids = list(self.children())
        return x + kids[0](x) if len(kids) == 1 else kids[0](x) + kids[1](x)


X4 = r(5, 4)
IDX = np.array([[1, 2, 0], [9, 3, 3]], dtype=np.int64)

MODS = [
    ("linear", ("linear", 4, 3), lambda: nn.Linear(4, 3), (X4,)),
    ("linear-nobias", ("linear", 4, 3, {"bias": False}), lambda: nn.Linear(4, 3, bias=False), (X4,)),
    ("bilinear", ("bilinear", 4, 3, 2), lambda: nn.Bilinear(4, 3, 2), (r(5, 4), r(5, 3))),
    ("embed", ("embed", 10, 4), lambda: nn.Embedding(10, 4), (IDX,)),
    ("conv1d", ("conv1d", 2, 3, 3), lambda: nn.Conv1d(2, 3, 3), (r(2, 2, 9),)),
    ("conv2d", ("conv2d", 2, 3, 3), lambda: nn.Conv2d(2, 3, 3), (r(2, 2, 6, 7),)),
    ("conv3d", ("conv3d", 2, 3, 2), lambda: nn.Conv3d(2, 3, 2), (r(1, 2, 4, 5, 3),)),
    ("convtranspose1d", ("convtranspose1d", 2, 3, 3, 2), lambda: nn.ConvTranspose1d(2, 3, 3, 2), (r(2, 2, 5),)),
    ("convtranspose2d", ("convtranspose2d", 2, 3, 3), lambda: nn.ConvTranspose2d(2, 3, 3), (r(2, 2, 4, 5),)),
    ("convtranspose3d", ("convtranspose3d", 2, 3, 2), lambda: nn.ConvTranspose3d(2, 3, 2), (r(1, 2, 3, 4, 3),)),
    ("batchnorm1d", ("batchnorm1d", 5), lambda: nn.BatchNorm1d(5), (r(6, 5),)),
    ("batchnorm2d", ("batchnorm2d", 5), lambda: nn.BatchNorm2d(5), (r(2, 5, 3, 4),)),
    ("batchnorm3d", ("batchnorm3d", 3), lambda: nn.BatchNorm3d(3), (r(2, 3, 2, 3, 2),)),
    ("batchnorm-noaffine", ("batchnorm1d", 5, {"affine": False}), lambda: nn.BatchNorm1d(5, affine=False),
     (r(6, 5),)),
    ("batchnorm-notrack", ("batchnorm1d", 5, {"track": False}),
     lambda: nn.BatchNorm1d(5, track_running_stats=False), (r(6, 5),)),
    ("layernorm", ("layernorm", (4, 6)), lambda: nn.LayerNorm((4, 6)), (r(3, 4, 6),)),
    ("groupnorm", ("groupnorm", 2, 6), lambda: nn.GroupNorm(2, 6), (r(3, 6, 5),)),
    ("prelu", ("prelu", 6, 0.1), lambda: nn.PReLU(6, 0.1), (r(4, 6),)),
    ("rnn", ("rnn", 4, 5, 2, {"bi": True}), lambda: nn.RNN(4, 5, 2, bidirectional=True), (r(3, 2, 4),)),
    ("gru", ("gru", 4, 5, 2), lambda: nn.GRU(4, 5, 2), (r(3, 2, 4),)),
    ("lstm", ("lstm", 4, 5, 2, {"bi": True}), lambda: nn.LSTM(4, 5, 2, bidirectional=True), (r(3, 2, 4),)),
    ("relu", "relu", lambda: nn.ReLU(), (X4,)),
    ("maxpool2d", ("maxpool2d", 2), lambda: nn.MaxPool2d(2), (r(2, 3, 6, 7),)),
    ("sequential", kt.seq("sequential", ("linear", 4, 8), "relu",
                          kt.seq("sequential", ("linear", 8, 6), ("batchnorm1d", 6), ("linear", 6, 3)),
                          ("softmax", 1)),
     lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                           nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.Linear(6, 3)),
                           nn.Softmax(1)), (X4,)),
    ("sequential-named", kt.seq("sequential", ("linear", "a", 4, 8), "relu", ("linear", "b", 8, 3)),
     lambda: nn.Sequential(OrderedDict([("a", nn.Linear(4, 8)), ("1", nn.ReLU()), ("b", nn.Linear(8, 3))])),
     (X4,)),
    ("conv-net", kt.seq("sequential", ("conv2d", 1, 4, 3), ("batchnorm2d", 4), "relu", ("maxpool2d", 2),
                        "flatten", ("linear", 36, 5)),
     lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Linear(36, 5)), (r(2, 1, 8, 8),)),
    ("residual", kt.seq("residual", kt.seq("sequential", ("linear", 4, 6), "tanh"), ("linear", 4, 6)),
     lambda: Res(nn.Sequential(nn.Linear(4, 6), nn.Tanh()), nn.Linear(4, 6)), (X4,)),
]


@pytest.mark.parametrize("spec,make,xs", [m[1:] for m in MODS], ids=[m[0] for m in MODS])
def test_torch_into_ktorch_gives_torch_outputs(spec, make, xs):
    tm = make()
    randomize(tm)
    q = kt.module(spec)
    sd = tm.state_dict()
    got = kt.state_dict(q)
    assert list(got) == list(sd)
    assert all(tuple(got[k].shape) == tuple(v.shape) and got[k].dtype == v.dtype for k, v in sd.items())
    r = kt.load_state_dict(q, sd)
    assert r == ([], []) and r.missing_keys == [] and r.unexpected_keys == []
    for k, v in kt.state_dict(q).items():
        assert torch.equal(v, sd[k]), k
    np.testing.assert_allclose(kt_out(q, xs), torch_out(tm, xs), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("spec,make,xs", [m[1:] for m in MODS], ids=[m[0] for m in MODS])
def test_ktorch_into_torch_gives_ktorch_outputs(spec, make, xs):
    q = kt.module(spec)
    if any(k in str(spec) for k in ("batchnorm",)):
        # running statistics of their own: a training pass
        kt.training(q, True)
        kt.forward(q, *xs)
    tm = make()
    tm.load_state_dict(kt.state_dict(q))
    np.testing.assert_allclose(torch_out(tm, xs), kt_out(q, xs), rtol=RTOL, atol=ATOL)


def test_order_as_torch_sequential_batchnorm_and_lstm():
    q = kt.module(kt.seq("sequential", ("linear", 2, 3), ("batchnorm1d", 3)))
    tm = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    assert list(kt.state_dict(q)) == list(tm.state_dict()) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "1.num_batches_tracked"]
    q = kt.module(("lstm", 2, 3, 2, {"bi": True}))
    assert list(kt.state_dict(q)) == list(nn.LSTM(2, 3, 2, bidirectional=True).state_dict())


def test_batchnorm_buffers_both_ways():
    q = kt.module(("batchnorm1d", 4))
    kt.training(q, True)
    for i in range(3):
        kt.forward(q, r(8, 4, seed=i))
    sd = kt.state_dict(q)
    assert isinstance(sd, OrderedDict)
    assert sd["num_batches_tracked"].dtype == torch.int64 and int(sd["num_batches_tracked"]) == 3
    assert not torch.equal(sd["running_mean"], torch.zeros(4))
    tm = nn.BatchNorm1d(4)
    tm.load_state_dict(sd)
    assert int(tm.num_batches_tracked) == 3
    assert torch.equal(tm.running_var, sd["running_var"])
    # and back: torch's statistics into a fresh module
    tm.train()
    tm(torch.from_numpy(r(8, 4, seed=9)))
    q2 = kt.module(("batchnorm1d", 4))
    kt.load_state_dict(q2, tm.state_dict())
    sd2 = kt.state_dict(q2)
    assert int(sd2["num_batches_tracked"]) == 4
    assert torch.equal(sd2["running_mean"], tm.running_mean)


def test_copies_not_shared_detached_on_the_module_device():
    q = kt.module(("linear", 3, 2))
    sd = kt.state_dict(q)
    w = sd["weight"]
    assert not w.requires_grad and w.device.type == "cpu"
    w.fill_(7.0)
    assert not np.any(kt.tensor(kt.parm(q, "weight")) == 7.0)
    # loaded values are copied too: changing the source later changes nothing
    src = {"weight": torch.ones(2, 3), "bias": torch.zeros(2)}
    kt.load_state_dict(q, src)
    src["weight"].fill_(3.0)
    assert np.all(kt.tensor(kt.parm(q, "weight")) == 1.0)


def test_dtype_conversion_and_numpy_values():
    q = kt.module(("linear", 3, 2))
    sd = {"weight": torch.arange(6, dtype=torch.float64).reshape(2, 3), "bias": np.array([1, 2])}
    kt.load_state_dict(q, sd)
    out = kt.state_dict(q)
    assert out["weight"].dtype == torch.float32 and out["bias"].dtype == torch.float32
    assert torch.equal(out["weight"], torch.arange(6.0).reshape(2, 3))
    assert torch.equal(out["bias"], torch.tensor([1.0, 2.0]))
    kt.to(q, "double")
    kt.load_state_dict(q, {"weight": np.ones((2, 3), np.float32), "bias": torch.zeros(2)})
    assert kt.state_dict(q)["weight"].dtype == torch.float64


def snapshot(q):
    return {k: v.clone() for k, v in kt.state_dict(q).items()}


def same(a, b):
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_strict_errors_list_keys_and_change_nothing():
    q = kt.module(kt.seq("sequential", ("linear", 2, 3), ("batchnorm1d", 3)))
    before = snapshot(q)
    tm = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    randomize(tm)
    sd = tm.state_dict()
    del sd["1.running_var"]
    sd["extra.weight"] = torch.ones(1)
    with pytest.raises(kt.KtorchError) as e:
        kt.load_state_dict(q, sd)
    msg = str(e.value)
    assert msg.startswith("load_state_dict: ")
    assert 'Missing key(s) in state_dict: "1.running_var"' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in msg
    assert same(snapshot(q), before)
    res = kt.load_state_dict(q, sd, strict=False)
    assert res.missing_keys == ["1.running_var"] and res.unexpected_keys == ["extra.weight"]
    assert res == (["1.running_var"], ["extra.weight"])
    got = kt.state_dict(q)
    assert torch.equal(got["0.weight"], sd["0.weight"])
    assert torch.equal(got["1.running_var"], before["1.running_var"])


def test_shape_mismatch_names_the_key_and_both_shapes():
    q = kt.module(kt.seq("sequential", ("linear", 2, 3), ("linear", 3, 4)))
    before = snapshot(q)
    sd = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 5)).state_dict()
    for strict in (True, False):
        with pytest.raises(kt.KtorchError, match=r"load_state_dict: size mismatch for `1.weight`: "
                                                 r"given shape \[5, 3\], the module's is \[4, 3\]"):
            kt.load_state_dict(q, sd, strict=strict)
        # 0.weight came first and matched: still nothing copied
        assert same(snapshot(q), before)


def test_model_module_and_optimizer():
    q = kt.module(kt.seq("sequential", ("linear", 2, 3), "relu", ("linear", 3, 1)))
    o = kt.opt("sgd", q, 0.1, 0.9)
    m = kt.model(q, kt.loss("mse"), o)
    kt.backstep(m, r(6, 2), r(6, 1))
    assert same(kt.state_dict(m), kt.state_dict(q))
    assert same(kt.state_dict(m, "module"), kt.state_dict(q))
    so = kt.state_dict(m, "opt")
    assert so["param_groups"] == kt.state_dict(o)["param_groups"]
    tm = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    topt = torch.optim.SGD(tm.parameters(), lr=0.5, momentum=0.5)
    tm.load_state_dict(kt.state_dict(m))
    topt.load_state_dict(so)
    assert topt.param_groups[0]["lr"] == 0.1
    # a model takes torch.optim's layout into its optimizer, anything else into its module
    topt.param_groups[0]["lr"] = 0.25
    assert kt.load_state_dict(m, topt.state_dict()) is None
    assert kt.lr(o) == [0.25]
    kt.load_state_dict(m, tm.state_dict())
    with pytest.raises(kt.KtorchError, match="state_dict: part expects"):
        kt.state_dict(m, "loss")
    with pytest.raises(TypeError, match="state_dict: part is only for a Model"):
        kt.state_dict(q, "opt")


# -- optimizers ------------------------------------------------------------------------

SPEC = kt.seq("sequential", ("linear", 3, 8), "tanh", ("linear", 8, 2))
XS = [r(16, 3, seed=s) for s in range(6)]
YS = [r(16, 2, seed=10 + s) for s in range(6)]

# name, torch class, torch settings
OPTS = [
    ("sgd", torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("sgd-nesterov", torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("adam", torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05)),
    ("adam-amsgrad", torch.optim.Adam, dict(lr=0.01, amsgrad=True)),
    ("adamw", torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
    ("adagrad", torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.01,
                                          initial_accumulator_value=0.2)),
    ("rmsprop", torch.optim.RMSprop, dict(lr=0.005, alpha=0.9, weight_decay=0.01)),
    ("rmsprop-centered", torch.optim.RMSprop, dict(lr=0.005, momentum=0.5, centered=True)),
]


def tnet():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))


def torch_steps(tm, topt, steps):
    for i in steps:
        topt.zero_grad()
        loss = nn.functional.mse_loss(tm(torch.from_numpy(XS[i])), torch.from_numpy(YS[i]))
        loss.backward()
        topt.step()


def kt_steps(m, steps):
    for i in steps:
        kt.backstep(m, XS[i], YS[i])


def reference(cls, settings):
    tm = tnet()
    topt = cls(tm.parameters(), **settings)
    torch_steps(tm, topt, range(6))
    return tm.state_dict()


def close(sd, want):
    assert list(sd) == list(want)
    for k in want:
        np.testing.assert_allclose(sd[k].numpy(), want[k].numpy(), rtol=1e-6, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("name,cls,settings", [(o[0].split("-")[0], o[1], o[2]) for o in OPTS],
                         ids=[o[0] for o in OPTS])
def test_torch_then_ktorch_equals_torch(name, cls, settings):
    want = reference(cls, settings)
    tm = tnet()
    topt = cls(tm.parameters(), **settings)
    torch_steps(tm, topt, range(3))
    q = kt.module(SPEC)
    o = kt.opt(name, q)  # ktorch's defaults: the settings come with the state
    m = kt.model(q, kt.loss("mse"), o)
    kt.load_state_dict(q, tm.state_dict())
    kt.load_state_dict(o, topt.state_dict())
    assert kt.lr(o) == [settings["lr"]]
    kt_steps(m, range(3, 6))
    close(kt.state_dict(q), want)


@pytest.mark.parametrize("name,cls,settings", [(o[0].split("-")[0], o[1], o[2]) for o in OPTS],
                         ids=[o[0] for o in OPTS])
def test_ktorch_then_torch_equals_torch(name, cls, settings):
    want = reference(cls, settings)
    q = kt.module(SPEC)
    kt.load_state_dict(q, tnet().state_dict())
    o = kt.opt(name, q)
    # the settings go in through torch's names too
    t0 = cls(tnet().parameters(), **settings)
    kt.load_state_dict(o, t0.state_dict())
    m = kt.model(q, kt.loss("mse"), o)
    kt_steps(m, range(3))
    tm = tnet()
    topt = cls(tm.parameters(), lr=123.0)
    tm.load_state_dict(kt.state_dict(q))
    sd = kt.state_dict(o)
    topt.load_state_dict(sd)
    assert topt.param_groups[0]["lr"] == settings["lr"]
    for k, v in t0.state_dict()["param_groups"][0].items():
        assert k == "params" or topt.param_groups[0][k] == v, k
    torch_steps(tm, topt, range(3, 6))
    close(tm.state_dict(), want)


def test_optimizer_layout_matches_torch():
    for name, cls, settings in [(o[0].split("-")[0], o[1], o[2]) for o in OPTS]:
        tm = tnet()
        topt = cls(tm.parameters(), **settings)
        torch_steps(tm, topt, range(1))
        q = kt.module(SPEC)
        o = kt.opt(name, q)
        m = kt.model(q, kt.loss("mse"), o)
        kt.load_state_dict(o, topt.state_dict())
        kt_steps(m, range(1))
        want, got = topt.state_dict(), kt.state_dict(o)
        assert list(got) == ["state", "param_groups"]
        wg, gg = want["param_groups"][0], got["param_groups"][0]
        assert list(gg) == list(wg), name
        for k in wg:
            assert type(gg[k]) is type(wg[k]) or isinstance(wg[k], (int, float)), (name, k)
            assert gg[k] == wg[k] or k == "params", (name, k)
        assert sorted(got["state"]) == sorted(want["state"])
        for i, st in want["state"].items():
            assert sorted(got["state"][i]) == sorted(st), name
            for k, v in st.items():
                assert got["state"][i][k].dtype == v.dtype and got["state"][i][k].shape == v.shape
                assert got["state"][i][k].device == v.device


def test_adagrad_state_before_any_step():
    q = kt.module(SPEC)
    o = kt.opt("adagrad", q, 0.1, 0, 0, 0.3)
    sd = kt.state_dict(o)
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert float(sd["state"][0]["step"]) == 0.0 and torch.all(sd["state"][0]["sum"] == 0.3)
    topt = torch.optim.Adagrad(tnet().parameters())
    topt.load_state_dict(sd)
    assert topt.param_groups[0]["initial_accumulator_value"] == 0.3


def test_optimizer_load_errors_change_nothing():
    q = kt.module(SPEC)
    o = kt.opt("adam", q, 0.01)
    m = kt.model(q, kt.loss("mse"), o)
    kt_steps(m, range(2))
    before = kt.state_dict(o)

    def unchanged():
        now = kt.state_dict(o)
        assert now["param_groups"] == before["param_groups"]
        for i, st in before["state"].items():
            for k, v in st.items():
                assert torch.equal(now["state"][i][k], v)

    tm = tnet()
    good = torch.optim.Adam(tm.parameters(), lr=0.5)
    torch_steps(tm, good, range(1))
    bad = copy.deepcopy(good.state_dict())  # torch's state_dict shares its state dicts
    bad["state"][3]["exp_avg"] = torch.zeros(7)
    with pytest.raises(kt.KtorchError, match=r"load_state_dict: state `exp_avg` of parameter 3 has shape \[7\]"):
        kt.load_state_dict(o, bad)
    unchanged()
    two = torch.optim.Adam([{"params": list(tm[0].parameters())}, {"params": list(tm[2].parameters())}])
    with pytest.raises(kt.KtorchError, match="load_state_dict: the state_dict has 2 parameter group"):
        kt.load_state_dict(o, two.state_dict())
    fewer = torch.optim.Adam(tm[0].parameters())
    with pytest.raises(kt.KtorchError, match="load_state_dict: parameter group 0 has 2 parameter"):
        kt.load_state_dict(o, fewer.state_dict())
    sgd = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(kt.KtorchError, match="load_state_dict: parameter group 0 has no `betas`"):
        kt.load_state_dict(o, sgd.state_dict())
    adamw = torch.optim.AdamW(tm.parameters())
    with pytest.raises(kt.KtorchError, match="decoupled_weight_decay=True"):
        kt.load_state_dict(o, adamw.state_dict())
    maxi = torch.optim.Adam(tm.parameters(), maximize=True)
    with pytest.raises(kt.KtorchError, match="maximize=True is not supported"):
        kt.load_state_dict(o, maxi.state_dict())
    neg = copy.deepcopy(good.state_dict())
    neg["param_groups"][0]["lr"] = -1.0
    with pytest.raises(kt.KtorchError, match="load_state_dict: parameter group 0: .*lr"):
        kt.load_state_dict(o, neg)
    unchanged()
    # a good one goes in
    kt.load_state_dict(o, good.state_dict())
    assert kt.lr(o) == [0.5]


def test_lbfgs_and_lamb_are_refused():
    q = kt.module(SPEC)
    for name in ("lbfgs", "lamb"):
        o = kt.opt(name, q)
        with pytest.raises(kt.KtorchError, match=f"state_dict: not supported for {name}"):
            kt.state_dict(o)
        with pytest.raises(kt.KtorchError, match=f"load_state_dict: not supported for {name}"):
            kt.load_state_dict(o, {"state": {}, "param_groups": [{"lr": 1, "params": [0, 1, 2, 3]}]})


def test_bad_input():
    q = kt.module(("linear", 2, 1))
    o = kt.opt("sgd", q)
    for bad in (5, "x", None, kt.loss("mse"), torch.ones(2)):
        with pytest.raises(TypeError, match="state_dict: "):
            kt.state_dict(bad)
        with pytest.raises(TypeError, match="load_state_dict: "):
            kt.load_state_dict(bad, {})
    for sd in ([1, 2], None, "weight", OrderedDict.fromkeys):
        with pytest.raises(TypeError, match="load_state_dict: "):
            kt.load_state_dict(q, sd)
    with pytest.raises(TypeError, match="load_state_dict: state_dict keys must be strings"):
        kt.load_state_dict(q, {1: torch.ones(1)})
    with pytest.raises(TypeError, match="load_state_dict: `weight`"):
        kt.load_state_dict(q, {"weight": "abc", "bias": torch.ones(1)})
    with pytest.raises(TypeError, match="load_state_dict: `weight`"):
        kt.load_state_dict(q, {"weight": None, "bias": torch.ones(1)})
    with pytest.raises(kt.KtorchError, match='load_state_dict: .*Unexpected key.*"bogus"'):
        kt.load_state_dict(q, {"weight": torch.ones(1, 2), "bias": torch.ones(1), "bogus": torch.ones(1)})
    with pytest.raises(TypeError, match="load_state_dict: expecting torch.optim's state_dict"):
        kt.load_state_dict(o, {"weight": torch.ones(1, 2)})
    with pytest.raises(TypeError, match="load_state_dict: `param_groups` expects a list"):
        kt.load_state_dict(o, {"state": {}, "param_groups": 3})
    with pytest.raises(TypeError, match="load_state_dict: `state` keys must be parameter ids"):
        kt.load_state_dict(o, {"state": {"a": {}}, "param_groups": []})
    with pytest.raises(TypeError, match="load_state_dict: parameter group 0 has no `params`"):
        kt.load_state_dict(o, {"state": {}, "param_groups": [{"lr": 0.1}]})
    with pytest.raises(kt.KtorchError, match="load_state_dict: state for parameter id 9"):
        sd = kt.state_dict(o)
        sd["state"][9] = {"momentum_buffer": torch.ones(1)}
        kt.load_state_dict(o, sd)
    with pytest.raises(kt.KtorchError, match="load_state_dict: unknown state `exp_avg`"):
        sd = kt.state_dict(o)
        sd["state"][0] = {"exp_avg": torch.ones(1, 2)}
        kt.load_state_dict(o, sd)
    with pytest.raises(TypeError):
        kt.load_state_dict(q, {}, strict="yes")


def test_reading_while_another_thread_runs():
    q = kt.module(kt.seq("sequential", ("linear", 3, 32), ("batchnorm1d", 32), "relu", ("linear", 32, 2)))
    o = kt.opt("adam", q, 0.001)
    m = kt.model(q, kt.loss("mse"), o)
    x, y = r(512, 3), r(512, 2)
    kt.train(m, x, y)
    kt.train(m, batchsize=16)
    stop = threading.Event()
    errors = []

    def runner():
        try:
            while not stop.is_set():
                kt.run(m)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=runner)
    t.start()
    try:
        for _ in range(60):
            sd = kt.state_dict(m)
            assert list(sd) == list(kt.state_dict(q))
            so = kt.state_dict(o)
            assert len(so["param_groups"][0]["params"]) == 6
            kt.load_state_dict(q, sd)
            kt.load_state_dict(o, so)
    finally:
        stop.set()
        t.join(60)
    assert not t.is_alive() and not errors


def test_on_the_module_device(device):
    # state on the module's device both ways; values given on the host go there
    q = kt.module(kt.seq("sequential", ("linear", 3, 4), ("batchnorm1d", 4)))
    kt.to(q, device)
    sd = kt.state_dict(q)
    assert all(v.device.type == device for v in sd.values())
    tm = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    randomize(tm)
    kt.load_state_dict(q, tm.state_dict())
    got = kt.state_dict(q)
    assert all(v.device.type == device for v in got.values())
    assert all(torch.equal(got[k].cpu(), v) for k, v in tm.state_dict().items())
    o = kt.opt("adam", q, 0.01)
    m = kt.model(q, kt.loss("mse"), o)
    kt.backstep(m, r(8, 3), r(8, 4))
    so = kt.state_dict(o)
    assert so["state"][0]["exp_avg"].device.type == device
    assert so["state"][0]["step"].device.type == "cpu"  # as torch.optim keeps it
    tm.to(device)
    topt = torch.optim.Adam(tm.parameters())
    topt.load_state_dict(so)
    kt.load_state_dict(o, topt.state_dict())


def test_freed_handles():
    q = kt.module(("linear", 2, 1))
    o = kt.opt("sgd", q)
    sd, so = kt.state_dict(q), kt.state_dict(o)
    kt.free(o)
    kt.free(q)
    with pytest.raises(kt.KtorchError, match="state_dict: Module has been freed"):
        kt.state_dict(q)
    with pytest.raises(kt.KtorchError, match="load_state_dict: Optimizer has been freed"):
        kt.load_state_dict(o, so)
    with pytest.raises(kt.KtorchError, match="load_state_dict: Module has been freed"):
        kt.load_state_dict(q, sd)
