"""Training flags and frozen parameters: training, freeze, unfreeze, gradflag; frozen
parameters untouched by run (weight decay and momentum included) and left out of clipping,
against torch with requires_grad=False."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ktorch as kt

torch.set_num_threads(1)

RTOL, ATOL = 1e-5, 1e-6
N, BS = 40, 8

g = np.random.default_rng(11)
X = (g.standard_normal((N, 4)) * 2).astype(np.float32)
Y = g.integers(0, 3, N).astype(np.int64)
NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]


def mlp():
    q = kt.module(kt.seq("sequential", ("linear", 4, 8), "tanh", ("linear", 8, 3)))
    tm = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    assert kt.parmnames(q) == NAMES == [n for n, _ in tm.named_parameters()]
    with torch.no_grad():
        for n, p in tm.named_parameters():
            p.copy_(torch.from_numpy(kt.tensor(kt.parm(q, n))))
    return q, tm


def parms(q):
    return {n: kt.tensor(kt.parm(q, n)).copy() for n in kt.parmnames(q)}


def same(a, b, names=None):
    for n in names or a:
        np.testing.assert_array_equal(a[n], b[n], err_msg=n)


def ktmodel(q, o, **train):
    m = kt.model(q, kt.loss("ce"), o)
    kt.train(m, {"batchsize": BS, "shuffle": False, "metrics": "batchloss", **train})
    kt.train(m, X, Y)
    return m


def torch_epoch(tm, to, clipnorm=None):
    losses = []
    for a in range(0, N, BS):
        to.zero_grad()  # set_to_none: a frozen parameter has no gradient
        lo = F.cross_entropy(tm(torch.from_numpy(X[a:a + BS])), torch.from_numpy(Y[a:a + BS]))
        lo.backward()
        if clipnorm is not None:
            torch.nn.utils.clip_grad_norm_([p for p in tm.parameters() if p.grad is not None], clipnorm)
        to.step()
        losses.append(lo.item())
    return losses


def flags(**off):
    return {n: n not in off.get("names", ()) for n in NAMES}


# ---------------------------------------------------------------- training flag

class TestTraining:
    def test_get_set_module_and_model(self):
        q = kt.module(kt.seq("sequential", ("linear", 2, 2), ("drop", 0.5)))
        m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
        assert kt.training(q) is True and kt.training(m) is True
        assert kt.training(q, False) is None
        assert kt.training(q) is False and kt.training(m) is False
        assert kt.info(q)["training"] is False
        kt.training(m, True)
        assert kt.training(q) is True and kt.info(q)["training"] is True

    def test_bad_flag(self):
        q = kt.module(("drop", 0.5))
        for bad in [1, "false", 0.0]:
            with pytest.raises(TypeError, match=r"^training: "):
                kt.training(q, bad)
        assert kt.training(q) is True
        with pytest.raises(TypeError, match=r"^training: "):
            kt.training(kt.tensor([1.0]))

    def test_forward_follows_flag(self):
        q = kt.module(kt.seq("sequential", ("linear", 4, 4), ("drop", 0.5)))
        kt.parm(q, "0.weight", np.eye(4, dtype=np.float32))
        kt.parm(q, "0.bias", np.zeros(4, np.float32))
        x = np.ones((16, 4), np.float32)
        kt.training(q, False)
        for f in (kt.forward, kt.nforward):
            np.testing.assert_array_equal(kt.tensor(f(q, x)), x)  # dropout off: the input path
        kt.training(q, True)
        y = kt.tensor(kt.forward(q, x))
        assert set(np.unique(y)) <= {0.0, 2.0} and (y == 0).any() and (y == 2).any()
        # evaluate is evaluation mode whatever the flag, and leaves the flag
        np.testing.assert_array_equal(kt.evaluate(q, x), x)
        assert kt.training(q) is True

    def bn_model(self):
        q = kt.module(kt.seq("sequential", ("linear", 4, 3), ("batchnorm1d", 3)))
        m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
        kt.train(m, {"batchsize": BS, "shuffle": False})
        kt.train(m, X, Y)
        kt.test(m, X, Y)
        return q, m

    def test_run_trains_in_training_mode_and_restores(self):
        q, m = self.bn_model()
        kt.training(m, False)
        rm = kt.tensor(kt.parm(q, "1.running_mean")).copy()
        kt.run(m)
        assert kt.training(m) is False and kt.training(q) is False
        assert not np.array_equal(kt.tensor(kt.parm(q, "1.running_mean")), rm)
        assert int(kt.tensor(kt.parm(q, "1.num_batches_tracked"))) == N // BS

    def test_run_in_eval_would_differ(self):
        """run's loss is the training-mode loss (batch statistics), not the eval-mode one."""
        q, m = self.bn_model()
        kt.train(m, batchsize=N)
        kt.training(m, False)
        x = torch.from_numpy(X)
        w = {n: torch.from_numpy(kt.tensor(kt.parm(q, n))) for n in kt.parmnames(q)}
        h = x @ w["0.weight"].T + w["0.bias"]
        hb = F.batch_norm(h, None, None, w["1.weight"], w["1.bias"], training=True)
        expect = F.cross_entropy(hb, torch.from_numpy(Y)).item()
        np.testing.assert_allclose(kt.run(m), expect, rtol=RTOL, atol=ATOL)
        assert kt.training(m) is False

    def test_testrun_evaluates_and_restores(self):
        q, m = self.bn_model()
        kt.run(m)  # running statistics away from their start
        assert kt.training(m) is True
        before = {n: kt.tensor(kt.parm(q, n)).copy() for n in ["1.running_mean", "1.running_var"]}
        kt.test(m, batchsize=N)
        r = kt.testrun(m)
        assert kt.training(m) is True
        for n, v in before.items():
            np.testing.assert_array_equal(kt.tensor(kt.parm(q, n)), v, err_msg=n)
        expect = F.cross_entropy(torch.from_numpy(kt.evaluate(q, X)), torch.from_numpy(Y)).item()
        np.testing.assert_allclose(r, expect, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- freeze / unfreeze forms

class TestFreezeForms:
    def test_all(self):
        q, _ = mlp()
        before = parms(q)
        assert kt.freeze(q) is None
        assert kt.gradflag(q) == {n: False for n in NAMES}
        kt.unfreeze(q)
        assert kt.gradflag(q) == {n: True for n in NAMES}
        same(before, parms(q))

    def test_model(self):
        q, _ = mlp()
        m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
        kt.freeze(m)
        assert kt.gradflag(m) == kt.gradflag(q) == {n: False for n in NAMES}
        kt.unfreeze(m, "2.bias")
        assert kt.gradflag(q) == {n: n == "2.bias" for n in NAMES}

    def test_one_name_and_list(self):
        q, _ = mlp()
        kt.freeze(q, "0.weight")
        assert kt.gradflag(q) == flags(names=["0.weight"])
        kt.freeze(q, ["0.bias", "2.bias"])
        assert kt.gradflag(q) == flags(names=["0.weight", "0.bias", "2.bias"])
        kt.unfreeze(q, ("0.weight", "2.bias"))
        assert kt.gradflag(q) == flags(names=["0.bias"])
        kt.freeze(q, [])  # nothing named: nothing changes
        assert kt.gradflag(q) == flags(names=["0.bias"])

    def test_names_and_values(self):
        q = kt.module(kt.seq("sequential", ("linear", "a", 4, 4), "relu"))
        before_w = kt.tensor(kt.parm(q, "a.weight")).copy()
        kt.freeze(q, ["a.weight", "a.bias"], [kt.tensor("eye", 4), 0.0])
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "a.weight")), np.eye(4))
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "a.bias")), np.zeros(4))
        assert kt.gradflag(q) == {"a.weight": False, "a.bias": False}
        assert kt.dtype(q) == "float"
        # one name, one value (a scalar fills)
        kt.unfreeze(q, "a.bias", 1.5)
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "a.bias")), np.full(4, 1.5, np.float32))
        assert kt.gradflag(q) == {"a.weight": False, "a.bias": True}
        kt.unfreeze(q, "a.weight", before_w)
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "a.weight")), before_w)
        # values as a list of arrays / nested lists
        kt.freeze(q, ["a.bias"], [[1.0, 2.0, 3.0, 4.0]])
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "a.bias")), [1, 2, 3, 4])

    def test_python_dict(self):
        q = kt.module(kt.seq("sequential", ("linear", "a", 4, 4), "relu"))
        kt.freeze(q, {"a.weight": np.ones((4, 4)), "a.bias": 2})
        assert kt.gradflag(q) == {"a.weight": False, "a.bias": False}
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "a.weight")), np.ones((4, 4)))
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "a.bias")), np.full(4, 2.0))
        kt.unfreeze(q, {"a.bias": -1.0})
        assert kt.gradflag(q) == {"a.weight": False, "a.bias": True}
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "a.bias")), np.full(4, -1.0))

    def test_dict_handle_of_values(self):
        q = kt.module(kt.seq("sequential", ("linear", "a", 4, 4), "relu"))
        d = kt.dict({"a.weight": kt.tensor("eye", 4), "a.bias": 0})
        kt.freeze(q, d)
        assert kt.gradflag(q) == {"a.weight": False, "a.bias": False}
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "a.weight")), np.eye(4))
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "a.bias")), np.zeros(4))
        # values copied in: the module does not share the Dict's tensors
        kt.to(d, "double")
        assert kt.dtype(q) == "float"
        assert kt.dict(d)["a.bias"].shape == ()

    def test_parameter_dict_handle(self):
        pd = kt.dict({"x": np.array([1.0, 2.0], np.float32), "y": [3.0]})
        kt.unfreeze(pd)
        assert kt.gradflag(pd) == {"x": True, "y": True}
        kt.freeze(pd)
        assert kt.gradflag(pd) == {"x": False, "y": False}
        np.testing.assert_array_equal(kt.dict(pd)["x"], [1.0, 2.0])
        with pytest.raises(TypeError, match=r"^freeze: "):
            kt.freeze(pd, "x")
        with pytest.raises(TypeError, match=r"^unfreeze: "):
            kt.unfreeze(pd, "x", 1.0)
        assert kt.gradflag(pd) == {"x": False, "y": False}

    def test_parameter_dict_integer_member_refused(self):
        pd = kt.dict({"x": [1.0, 2.0], "i": [1, 2]})
        with pytest.raises(kt.KtorchError, match=r"^unfreeze: .*floating"):
            kt.unfreeze(pd)
        assert kt.gradflag(pd) == {"x": False, "i": False}

    def test_freeze_drops_gradient(self):
        q, _ = mlp()
        kt.backward(kt.mean(kt.forward(q, X)))
        assert kt.grad(kt.parm(q, "0.weight")) is not None
        kt.freeze(q, "0.weight")
        assert kt.grad(kt.parm(q, "0.weight")) is None
        assert kt.grad(kt.parm(q, "0.bias")) is not None

    def test_gradflag_tensor_forms(self):
        t = kt.tensor([1.0, 2.0])
        assert kt.gradflag(t) is False
        assert kt.gradflag(t, True) is None
        assert kt.gradflag(t) is True and kt.info(t)["gradient"] == "grad"
        kt.gradflag(t, False)
        assert kt.gradflag(t) is False
        v = kt.vector([1.0], [2.0])
        kt.gradflag(v, True)
        assert kt.gradflag(v) == [True, True]
        q, _ = mlp()
        with pytest.raises(TypeError, match=r"^gradflag: .*freeze"):
            kt.gradflag(q, False)
        with pytest.raises(TypeError, match=r"^gradflag: "):
            kt.gradflag(t, 1)
        assert kt.gradflag(q) == {n: True for n in NAMES}


# ---------------------------------------------------------------- bad input changes nothing

class TestFreezeErrors:
    def state(self, q):
        return kt.gradflag(q), parms(q)

    def check(self, q, st):
        fl, ps = st
        assert kt.gradflag(q) == fl
        same(ps, parms(q))

    @pytest.mark.parametrize("f", [kt.freeze, kt.unfreeze], ids=["freeze", "unfreeze"])
    @pytest.mark.parametrize("args", [
        ("0.wieght",),
        (["0.bias", "0.wieght"],),
        (["0.bias", "0.wieght"], [1.0, 2.0]),
        ({"0.bias": 1.0, "0.wieght": 2.0},),
    ], ids=["one", "list", "values", "dict"])
    def test_bad_name(self, f, args):
        q, _ = mlp()
        kt.freeze(q, "2.bias")  # a mix of flags, to see either call change none
        st = self.state(q)
        with pytest.raises(kt.KtorchError, match=rf"^{f.__name__}: .*0\.wieght.*did you mean 0\.weight"):
            f(q, *args)
        self.check(q, st)

    def test_bad_name_in_dict_handle(self):
        q, _ = mlp()
        st = self.state(q)
        d = kt.dict({"0.bias": np.zeros(8, np.float32), "2.wieght": np.zeros((3, 8), np.float32)})
        with pytest.raises(kt.KtorchError, match=r"^freeze: .*did you mean 2\.weight"):
            kt.freeze(q, d)
        self.check(q, st)

    @pytest.mark.parametrize("args,exc,match", [
        (("0.weight", np.ones((3, 3))), kt.KtorchError, r"size"),
        ((["0.bias", "2.bias"], [0.0]), kt.KtorchError, r"2 parameter name\(s\) but 1 value"),
        ((["0.bias", "2.bias"], [0.0, np.ones(5)]), kt.KtorchError, r"size"),
        ((None, [1.0]), TypeError, r"without names"),
        ((3,), TypeError, r"expecting"),
        (([1, 2],), TypeError, r"names as strings"),
        (({1: 2.0},), TypeError, r"names"),
    ])
    def test_bad_values(self, args, exc, match):
        q, _ = mlp()
        st = self.state(q)
        with pytest.raises(exc, match=r"^freeze: .*" + match):
            kt.freeze(q, *args)
        self.check(q, st)

    def test_non_module(self):
        with pytest.raises(TypeError, match=r"^freeze: "):
            kt.freeze(3)
        with pytest.raises(TypeError, match=r"^unfreeze: "):
            kt.unfreeze(kt.loss("mse"))
        with pytest.raises(TypeError, match=r"^gradflag: "):
            kt.gradflag(kt.opt("sgd"))


# ---------------------------------------------------------------- frozen parameters in training

class TestFrozenTraining:
    def test_run_leaves_frozen_bit_identical(self):
        """After momentum has built up, frozen parameters move no more (weight decay included)."""
        q, tm = mlp()
        o = kt.opt("sgd", q, 0.1, 0.9, 0.0, 0.01)  # lr, momentum, dampening, decay
        to = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
        m = ktmodel(q, o)
        np.testing.assert_allclose(kt.run(m), torch_epoch(tm, to), rtol=RTOL, atol=ATOL)
        frozen = ["0.weight", "0.bias"]
        kt.freeze(m, frozen)
        for n, p in tm.named_parameters():
            if n in frozen:
                p.requires_grad_(False)
        before = parms(q)
        for _ in range(2):
            np.testing.assert_allclose(kt.run(m), torch_epoch(tm, to), rtol=RTOL, atol=ATOL)
        after = parms(q)
        same(before, after, frozen)
        for n in ["2.weight", "2.bias"]:
            assert not np.array_equal(before[n], after[n]), n
        for n, p in tm.named_parameters():
            np.testing.assert_allclose(after[n], p.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=n)
        # unfrozen again, they train again
        kt.unfreeze(m)
        kt.run(m)
        assert not np.array_equal(parms(q)["0.weight"], after["0.weight"])

    def test_adam_frozen_with_decay(self):
        q, _ = mlp()
        m = ktmodel(q, kt.opt("adamw", q, 0.01))
        kt.run(m)
        kt.freeze(m, "2.weight")
        before = parms(q)
        kt.run(m)
        same(before, parms(q), ["2.weight"])

    @pytest.mark.parametrize("frozen", [["0.weight"], ["2.weight", "2.bias"]])
    def test_clipnorm_ignores_frozen(self, frozen):
        q, tm = mlp()
        kt.freeze(q, frozen)
        for n, p in tm.named_parameters():
            if n in frozen:
                p.requires_grad_(False)
        m = ktmodel(q, kt.opt("sgd", q, 0.5), clipnorm=0.05)
        to = torch.optim.SGD(tm.parameters(), lr=0.5)
        before = parms(q)
        for _ in range(2):
            np.testing.assert_allclose(kt.run(m), torch_epoch(tm, to, clipnorm=0.05), rtol=RTOL, atol=ATOL)
        after = parms(q)
        same(before, after, frozen)
        for n, p in tm.named_parameters():
            np.testing.assert_allclose(after[n], p.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=n)

    def test_clip_function_ignores_frozen(self):
        """clip(q, maxnorm) returns the norm of the gradients of unfrozen parameters only."""
        q, tm = mlp()
        lo = kt.ce(kt.forward(q, X), Y)
        kt.backward(lo)
        kt.freeze(q, "0.weight")  # its gradient is dropped
        tl = F.cross_entropy(tm(torch.from_numpy(X)), torch.from_numpy(Y))
        tl.backward()
        ps = [p for n, p in tm.named_parameters() if n != "0.weight"]
        expect = torch.nn.utils.clip_grad_norm_(ps, 1e-3).item()
        np.testing.assert_allclose(kt.clip(q, 1e-3), expect, rtol=RTOL)
        for n, p in tm.named_parameters():
            if n != "0.weight":
                np.testing.assert_allclose(kt.grad(kt.parm(q, n)), p.grad.numpy(), rtol=RTOL, atol=1e-9, err_msg=n)
        assert kt.grad(kt.parm(q, "0.weight")) is None

    def test_freeze_with_values_then_train(self):
        q, _ = mlp()
        m = ktmodel(q, kt.opt("sgd", q, 0.1, 0.9, 0.0, 0.1))
        kt.freeze(m, ["0.weight", "0.bias"], [np.eye(8, 4, dtype=np.float32), 0.25])
        kt.run(m)
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "0.weight")), np.eye(8, 4))
        np.testing.assert_array_equal(kt.tensor(kt.parm(q, "0.bias")), np.full(8, 0.25, np.float32))

    def test_frozen_flags_survive_to(self):
        q, _ = mlp()
        kt.freeze(q, "0.bias")
        kt.to(q, "double")
        assert kt.gradflag(q) == flags(names=["0.bias"])
        kt.to(q, "float")
        assert kt.gradflag(q) == flags(names=["0.bias"])
