"""Devices and dtypes: to, copyto, device, dtype, sync, cudadevices and the module options
device/dtype; torch oracles for converted modules and optimizers (state moved with `to`),
bad input that changes nothing, `to` racing `run` on another thread, and CUDA (skipped
without a GPU)."""

import threading
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ktorch as kt

torch.set_num_threads(1)

RTOL, ATOL = 1e-5, 1e-6
N, BS = 50, 10

g = np.random.default_rng(7)
X = (g.standard_normal((N, 4)) * 2).astype(np.float32)
Y = g.integers(0, 3, N).astype(np.int64)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


# ---------------------------------------------------------------- helpers

def mlp(act="tanh"):
    """A ktorch mlp and a torch copy with the same weights."""
    q = kt.module(kt.seq("sequential", ("linear", 4, 8), act, ("linear", 8, 3)))
    tm = nn.Sequential(nn.Linear(4, 8), nn.Tanh() if act == "tanh" else nn.ReLU(), nn.Linear(8, 3))
    assert kt.parmnames(q) == [n for n, _ in tm.named_parameters()]
    with torch.no_grad():
        for n, p in tm.named_parameters():
            p.copy_(torch.from_numpy(kt.tensor(kt.parm(q, n))))
    return q, tm


def parms(q):
    """Every parameter's values, copied out."""
    return {n: kt.tensor(kt.parm(q, n)).copy() for n in kt.parmnames(q)}


def same_parms(q, before):
    after = parms(q)
    assert after.keys() == before.keys()
    for n, v in before.items():
        assert after[n].dtype == v.dtype, n
        np.testing.assert_array_equal(after[n], v, err_msg=n)


def parms_close(q, tm, rtol=RTOL, atol=ATOL):
    for n, p in tm.named_parameters():
        np.testing.assert_allclose(kt.tensor(kt.parm(q, n)), p.detach().cpu().numpy(), rtol=rtol, atol=atol,
                                   err_msg=n)


def torch_epoch(tm, to, dtype=torch.float32):
    losses = []
    for a in range(0, N, BS):
        to.zero_grad()
        lo = F.cross_entropy(tm(torch.from_numpy(X[a:a + BS]).to(dtype)), torch.from_numpy(Y[a:a + BS]))
        lo.backward()
        to.step()
        losses.append(lo.item())
    return losses


def ktmodel(q, o, loss=None):
    m = kt.model(q, loss if loss is not None else kt.loss("ce"), o)
    kt.train(m, {"batchsize": BS, "shuffle": False, "metrics": "batchloss"})
    assert kt.train(m, X, Y) == N // BS
    return m


def arr(x):
    """Metrics as numpy, whether they came as numpy or torch.Tensor."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ---------------------------------------------------------------- tensors

class TestTensors:
    def test_to_double(self):
        t = kt.tensor([1, 2, 3])
        assert kt.dtype(t) == "long"
        assert kt.to(t, "double") is None
        assert kt.dtype(t) == "double" and kt.device(t) == "cpu"
        v = kt.tensor(t)
        assert v.dtype == np.float64
        np.testing.assert_array_equal(v, [1.0, 2.0, 3.0])
        assert kt.info(t)["gradient"] == "nograd"

    def test_to_double_grad_is_leaf(self):
        t = kt.tensor([1, 2, 3])
        kt.to(t, "double", "grad")
        i = kt.info(t)
        assert (i["dtype"], i["gradient"], i["leaf"]) == ("double", "grad", True)
        assert kt.gradflag(t) is True
        # a leaf that takes gradients: backward fills its gradient
        kt.backward(kt.mul(t, t), [1.0, 1.0, 1.0])
        np.testing.assert_array_equal(kt.grad(t), [2.0, 4.0, 6.0])

    def test_nograd(self):
        t = kt.tensor([1.0, 2.0], "float", "grad")
        kt.to(t, "nograd")
        assert kt.gradflag(t) is False and kt.info(t)["gradient"] == "nograd"
        np.testing.assert_array_equal(kt.tensor(t), [1.0, 2.0])
        assert kt.dtype(t) == "float"

    def test_options_in_any_order(self):
        t = kt.tensor([1.5, 2.5])
        kt.to(t, "grad", "cpu", "double")
        assert kt.info(t)["dtype"] == "double" and kt.gradflag(t) is True and kt.device(t) == "cpu"

    def test_example_tensor(self):
        e = kt.tensor([1, 2])
        ex = kt.tensor([0.5], "double", "grad")
        kt.to(e, ex)
        assert kt.dtype(e) == "double" and kt.device(e) == "cpu"
        # only device and dtype come from the example, not its gradient flag
        assert kt.gradflag(e) is False
        np.testing.assert_array_equal(kt.tensor(e), [1.0, 2.0])
        # the example is left as it was
        assert kt.dtype(ex) == "double" and kt.gradflag(ex) is True
        np.testing.assert_array_equal(kt.tensor(ex), [0.5])

    def test_noop_keeps_the_same_tensor(self):
        """A `to` with nothing to change keeps the tensor itself: its gradient survives
        (a converted tensor would be a new leaf without one)."""
        t = kt.tensor([1.0, 2.0, 3.0], "double", "grad")
        kt.backward(kt.mul(t, t), [1.0, 1.0, 1.0])
        before = kt.info(t)
        kt.to(t, "double")
        kt.to(t, "cpu", "double", "grad")
        kt.to(t, kt.tensor([0.0], "double"))
        assert kt.info(t) == before
        np.testing.assert_array_equal(kt.grad(t), [2.0, 4.0, 6.0])
        # a real conversion makes a new leaf: no gradient yet
        kt.to(t, "float")
        assert kt.grad(t) is None and kt.gradflag(t) is True and kt.dtype(t) == "float"

    def test_vector_members(self):
        v = kt.vector([1, 2], np.array([1.5, 2.5, 3.5], np.float32))
        assert kt.dtype(v) == ["long", "float"]
        assert kt.device(v) == ["cpu", "cpu"]
        kt.to(v, "double")
        assert kt.dtype(v) == ["double", "double"]
        a, b = kt.vector(v)
        np.testing.assert_array_equal(a, [1.0, 2.0])
        np.testing.assert_array_equal(b, [1.5, 2.5, 3.5])
        kt.to(v, "grad")
        assert kt.gradflag(v) == [True, True]

    def test_dict_members(self):
        d = kt.dict({"a": [1, 2], "b": [1.5]})
        assert kt.dtype(d) == {"a": "long", "b": "double"}
        assert kt.device(d) == {"a": "cpu", "b": "cpu"}
        kt.to(d, "float", "grad")
        assert kt.dtype(d) == {"a": "float", "b": "float"}
        assert kt.gradflag(d) == {"a": True, "b": True}
        r = kt.dict(d)
        np.testing.assert_array_equal(r["a"], [1.0, 2.0])
        np.testing.assert_array_equal(r["b"], [1.5])

    def test_device_dtype_return_types(self):
        t, v, d = kt.tensor([1.0]), kt.vector([1.0], [2]), kt.dict({"x": [1], "y": [2.0]})
        assert isinstance(kt.device(t), str) and isinstance(kt.dtype(t), str)
        assert isinstance(kt.device(v), list) and isinstance(kt.dtype(v), list)
        assert isinstance(kt.device(d), dict) and isinstance(kt.dtype(d), dict)
        assert isinstance(kt.gradflag(t), bool)
        assert isinstance(kt.gradflag(v), list) and isinstance(kt.gradflag(d), dict)

    @pytest.mark.parametrize("make,read", [
        (lambda: kt.tensor([1, 2, 3]), kt.tensor),
        (lambda: kt.vector([1, 2], [3.0]), kt.vector),
        (lambda: kt.dict({"a": [1, 2], "b": [3.0]}), kt.dict),
    ], ids=["tensor", "vector", "dict"])
    def test_copyto(self, make, read):
        x = make()
        dtypes, values = kt.dtype(x), read(x)
        c = kt.copyto(x, "double", "grad")
        assert kt.objclass(c) == kt.objclass(x) and type(c) is type(x)
        # the source is unchanged
        assert kt.dtype(x) == dtypes
        cv, xv = read(c), read(x)
        if isinstance(values, dict):
            assert kt.dtype(c) == {k: "double" for k in values}
            assert kt.gradflag(c) == {k: True for k in values}
            for k in values:
                np.testing.assert_array_equal(xv[k], values[k])
                np.testing.assert_array_equal(cv[k], values[k].astype(np.float64))
        elif isinstance(values, list):
            assert kt.dtype(c) == ["double"] * len(values)
            for a, b, cc in zip(values, xv, cv, strict=True):
                np.testing.assert_array_equal(b, a)
                np.testing.assert_array_equal(cc, a.astype(np.float64))
        else:
            assert kt.dtype(c) == "double" and kt.gradflag(c) is True
            np.testing.assert_array_equal(xv, values)
            np.testing.assert_array_equal(cv, values.astype(np.float64))

    def test_copyto_is_new_memory(self):
        """Even with the source's own device and dtype, copyto makes new memory: a change to
        the source (here through the torch.Tensor it shares) does not reach the copy."""
        tt = torch.tensor([1.0, 2.0])
        t = kt.tensor(tt)  # shares tt's memory
        c = kt.copyto(t, "float")
        tt.add_(10)
        np.testing.assert_array_equal(kt.tensor(t), [11.0, 12.0])
        np.testing.assert_array_equal(kt.tensor(c), [1.0, 2.0])
        c2 = kt.copyto(t, t)  # example form, the source's own options
        kt.free(t)
        tt.add_(10)
        np.testing.assert_array_equal(kt.tensor(c2), [11.0, 12.0])
        assert kt.dtype(c2) == "float"

    def test_copyto_example_and_nograd_default(self):
        t = kt.tensor([1.0, 2.0], "float", "grad")
        c = kt.copyto(t, kt.tensor([1], "double"))
        assert kt.dtype(c) == "double" and kt.gradflag(c) is False
        assert kt.gradflag(t) is True and kt.dtype(t) == "float"

    def test_to_refused_while_batching(self):
        x = kt.tensor(np.arange(6.0).reshape(6, 1))
        assert kt.batch(x, 2) is True
        before = kt.info(x)
        with pytest.raises(kt.KtorchError, match=r"^to: .*batching"):
            kt.to(x, "float")
        assert kt.info(x) == before
        assert kt.dtype(x) == "double" and kt.size(x) == [2, 1]
        # restore then convert works
        assert kt.restore(x) == 6
        kt.to(x, "float")
        assert kt.dtype(x) == "float"
        np.testing.assert_array_equal(kt.tensor(x), np.arange(6.0).reshape(6, 1))

    def test_vector_batching_refused(self):
        v = kt.vector(np.arange(4.0), np.arange(4))
        assert kt.batch(v, 2) is True
        with pytest.raises(kt.KtorchError, match=r"^to: "):
            kt.to(v, "float")
        assert kt.dtype(v) == ["double", "long"]
        kt.restore(v)

    def test_grad_on_integer_refused(self):
        t = kt.tensor([1, 2])
        with pytest.raises(kt.KtorchError, match=r"^to: .*floating"):
            kt.to(t, "grad")
        assert kt.dtype(t) == "long" and kt.gradflag(t) is False

    def test_failed_member_changes_no_dtype(self):
        """A Vector where one member cannot take the options: no member is converted."""
        v = kt.vector([1.0, 2.0], [1, 2])
        with pytest.raises(kt.KtorchError, match=r"^to: .*floating"):
            kt.to(v, "long", "grad")  # long cannot take gradients
        assert kt.dtype(v) == ["double", "long"] and kt.gradflag(v) == [False, False]
        np.testing.assert_array_equal(kt.vector(v)[0], [1.0, 2.0])

    @pytest.mark.parametrize("call", [lambda v: kt.to(v, "grad"), lambda v: kt.gradflag(v, True)],
                             ids=["to", "gradflag"])
    def test_failed_member_changes_no_flag(self, call):
        """A call that fails changes nothing: not even the flag of the members before the bad one."""
        v = kt.vector([1.0, 2.0], [1, 2])
        with pytest.raises(kt.KtorchError):
            call(v)  # long cannot take gradients
        assert kt.gradflag(v) == [False, False]

    def test_default_device_and_cudadevices(self):
        assert kt.device() == ("cuda" if torch.cuda.is_available() else "cpu")
        cd = kt.cudadevices()
        assert isinstance(cd, list)
        if torch.cuda.is_available():
            assert cd == ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        else:
            assert cd == []

    def test_sync_on_cpu_does_nothing(self):
        t = kt.tensor([1.0])
        q = kt.module(("linear", 2, 2))
        assert kt.sync() is None
        assert kt.sync("cpu") is None
        assert kt.sync(t) is None and kt.sync(q) is None
        with pytest.raises(kt.KtorchError, match=r"^sync: "):
            kt.sync("tpu")
        with pytest.raises(kt.KtorchError, match=r"^sync: "):
            kt.sync(-1)


# ---------------------------------------------------------------- modules, losses, optimizers

class TestModules:
    def test_to_double_parameters_and_buffers(self):
        q = kt.module(kt.seq("sequential", ("linear", "a", 2, 3), ("batchnorm1d", "b", 3)))
        before = parms(q)
        w = kt.parm(q, "a.weight")  # a handle sharing the parameter
        assert kt.dtype(q) == "float" and kt.device(q) == "cpu"
        kt.to(q, "double")
        assert kt.dtype(q) == "double" and kt.device(q) == "cpu"
        for n in kt.parmnames(q):
            assert kt.dtype(kt.parm(q, n)) == "double", n
            np.testing.assert_array_equal(kt.tensor(kt.parm(q, n)), before[n].astype(np.float64))
        assert kt.dtype(kt.parm(q, "b.running_mean")) == "double"
        assert kt.dtype(kt.parm(q, "b.running_var")) == "double"
        assert kt.dtype(kt.parm(q, "b.num_batches_tracked")) == "long"
        # the parameter kept its identity: the handle taken before sees it converted
        assert kt.dtype(w) == "double"
        assert kt.gradflag(q) == {n: True for n in kt.parmnames(q)}
        kt.to(q, "float")
        assert kt.dtype(q) == "float" and kt.dtype(w) == "float"
        assert kt.dtype(kt.parm(q, "b.num_batches_tracked")) == "long"

    def test_double_forward_matches_torch(self):
        q = kt.module(kt.seq("sequential", ("linear", 4, 6), ("batchnorm1d", 6), "tanh", ("linear", 6, 2)))
        tm = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2))
        with torch.no_grad():
            for n, p in tm.named_parameters():
                p.copy_(torch.from_numpy(kt.tensor(kt.parm(q, n))))
        kt.to(q, "double")
        tm.double()
        x = np.random.default_rng(1).standard_normal((9, 4))  # float64
        y = kt.forward(q, x)
        assert kt.dtype(y) == "double"
        ty = tm(torch.from_numpy(x))
        np.testing.assert_allclose(kt.tensor(y), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(kt.tensor(kt.parm(q, "1.running_mean")), tm[1].running_mean.numpy(),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(kt.tensor(kt.parm(q, "1.running_var")), tm[1].running_var.numpy(),
                                   rtol=1e-12, atol=1e-12)
        tm.eval()
        np.testing.assert_allclose(kt.evaluate(q, x), tm(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-12, atol=1e-12)

    def test_gradients_converted_with_parameters(self):
        q = kt.module(("linear", 3, 2))
        kt.backward(kt.mean(kt.forward(q, np.ones((4, 3), np.float32))))
        gw = kt.grad(kt.parm(q, "weight")).copy()
        kt.to(q, "double")
        gd = kt.grad(kt.parm(q, "weight"))
        assert gd.dtype == np.float64
        np.testing.assert_array_equal(gd, gw.astype(np.float64))

    def test_module_option_dtype(self):
        q = kt.module(("linear", 2, 3, {"dtype": "double"}))
        assert kt.dtype(q) == "double" and kt.device(q) == "cpu"
        assert kt.dtype(kt.parm(q, "weight")) == "double" and kt.dtype(kt.parm(q, "bias")) == "double"
        y = kt.forward(q, np.ones((1, 2)))
        assert kt.dtype(y) == "double"
        w, b = kt.tensor(kt.parm(q, "weight")), kt.tensor(kt.parm(q, "bias"))
        np.testing.assert_allclose(kt.tensor(y), np.ones((1, 2)) @ w.T + b, rtol=1e-12)

    def test_module_option_on_a_child(self):
        q = kt.module(kt.seq("sequential", ("linear", 2, 3, {"dtype": "double"}), ("linear", 3, 3)))
        assert kt.dtype(kt.parm(q, "0.weight")) == "double"
        assert kt.dtype(kt.parm(q, "1.weight")) == "float"

    def test_module_option_device_cpu(self):
        q = kt.module(("linear", 2, 3, {"device": "cpu", "dtype": "float"}))
        assert kt.device(q) == "cpu" and kt.dtype(q) == "float"

    @pytest.mark.parametrize("opts,match", [
        ({"dtype": "long"}, "floating"),
        ({"dtype": "dubble"}, "dubble"),
        ({"device": "tpu"}, "tpu"),
        ({"device": "cuda:99"}, "cuda"),
    ])
    def test_module_option_bad(self, opts, match):
        n = kt.objects()
        with pytest.raises(kt.KtorchError, match=match):
            kt.module(("linear", 2, 3, opts))
        assert kt.objects() == n

    def test_module_without_parameters(self):
        q = kt.module("relu")
        assert kt.device(q) == "cpu" and kt.dtype(q) is None
        kt.to(q, "double")
        assert kt.dtype(q) is None

    def test_loss_weights(self):
        lo = kt.loss("ce", weight=[1.0, 2.0, 3.0])
        assert kt.dtype(lo) == "float" and kt.device(lo) == "cpu"
        kt.to(lo, "double")
        assert kt.dtype(lo) == "double"
        # the converted loss computes with double outputs
        x = np.random.default_rng(0).standard_normal((5, 3))
        y = np.array([0, 1, 2, 1, 0])
        r = kt.tensor(kt.loss(lo, x, y))
        ref = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(y), weight=torch.tensor([1.0, 2, 3],
                                                                                           dtype=torch.float64))
        np.testing.assert_allclose(r, ref.item(), rtol=1e-12)

    def test_model_to_converts_module_loss_optimizer(self):
        q, _ = mlp()
        o = kt.opt("sgd", q, 0.1)
        lo = kt.loss("ce", weight=[1.0, 1.0, 2.0])
        m = kt.model(q, lo, o)
        kt.to(m, "double")
        assert kt.dtype(m) == kt.dtype(q) == kt.dtype(o) == kt.dtype(lo) == "double"
        assert kt.device(m) == kt.device(o) == kt.device(lo) == "cpu"


class TestOptimizerState:
    """An optimizer's state (momenta, moments, lbfgs history) is converted with the parameters,
    and training goes on as torch's does after `model.double()` with its optimizer state cast."""

    @pytest.mark.parametrize("name", ["sgd", "adam"])
    def test_state_moves_with_model(self, name):
        q, tm = mlp()
        if name == "sgd":
            o = kt.opt("sgd", q, 0.1, 0.9)
            to = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
        else:
            o = kt.opt("adam", q, 0.02)
            to = torch.optim.Adam(tm.parameters(), lr=0.02)
        m = ktmodel(q, o)
        np.testing.assert_allclose(kt.run(m), torch_epoch(tm, to), rtol=RTOL, atol=ATOL)
        kt.to(m, "double")
        assert kt.dtype(m) == kt.dtype(o) == "double"
        tm.double()
        to.load_state_dict(to.state_dict())  # casts the state to the parameters' dtype
        for st in to.state.values():
            for k, v in st.items():
                if torch.is_tensor(v) and k != "step":
                    assert v.dtype == torch.float64
        assert kt.train(m, X, Y) == N // BS  # data defined again: converted to double
        assert kt.dtype(kt.input(m)) == "double"
        for _ in range(3):
            kl, tl = kt.run(m), torch_epoch(tm, to, torch.float64)
            np.testing.assert_allclose(kl, tl, rtol=RTOL, atol=ATOL)
        parms_close(q, tm)
        assert kt.dtype(q) == "double"

    def test_state_reset_would_differ(self):
        """The oracle above can tell: a fresh optimizer after the conversion trains otherwise."""
        q, tm = mlp()
        o = kt.opt("sgd", q, 0.1, 0.9)
        to = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
        m = ktmodel(q, o)
        kt.run(m)
        torch_epoch(tm, to)
        kt.to(m, "double")
        kt.train(m, X, Y)
        tm.double()
        fresh = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
        kl, tl = kt.run(m), torch_epoch(tm, fresh, torch.float64)
        assert not np.allclose(kl[1:], tl[1:], rtol=RTOL, atol=ATOL)

    def test_optimizer_to_alone(self):
        q, tm = mlp()
        o = kt.opt("adam", q, 0.02)
        to = torch.optim.Adam(tm.parameters(), lr=0.02)
        m = ktmodel(q, o)
        np.testing.assert_allclose(kt.run(m), torch_epoch(tm, to), rtol=RTOL, atol=ATOL)
        kt.to(o, "double")  # the optimizer's parameters are the module's: both converted
        assert kt.dtype(q) == "double" and kt.dtype(o) == "double"
        tm.double()
        to.load_state_dict(to.state_dict())
        kt.train(m, X, Y)
        np.testing.assert_allclose(kt.run(m), torch_epoch(tm, to, torch.float64), rtol=RTOL, atol=ATOL)

    def test_lbfgs_to_double_between_steps(self):
        q, tm = mlp()
        o = kt.opt("lbfgs", q, 0.5, 4)
        m = kt.model(q, kt.loss("ce"), o)
        to = torch.optim.LBFGS(tm.parameters(), lr=0.5, max_iter=4)
        dt = [torch.float32]

        def closure():
            to.zero_grad()
            lo = F.cross_entropy(tm(torch.from_numpy(X).to(dt[0])), torch.from_numpy(Y))
            lo.backward()
            return lo

        kl = [kt.backstep(m, X, Y)]
        tl = [to.step(closure).item()]
        kt.to(m, "double")
        assert kt.dtype(o) == "double"
        tm.double()
        to.load_state_dict(to.state_dict())
        dt[0] = torch.float64
        x64 = X.astype(np.float64)
        for _ in range(3):
            kl.append(kt.backstep(m, x64, Y))
            tl.append(to.step(closure).item())
        np.testing.assert_allclose(kl, tl, rtol=1e-4, atol=1e-5)
        assert kl[-1] < kl[0]
        parms_close(q, tm, rtol=1e-3, atol=1e-4)
        assert all(kt.dtype(kt.parm(q, n)) == "double" for n in kt.parmnames(q))

    def test_lbfgs_run_after_to(self):
        q = kt.module(("linear", 4, 3))
        m = kt.model(q, kt.loss("ce"), kt.opt("lbfgs", q, 1.0, 3))
        kt.train(m, X, Y)
        kt.train(m, batchsize=N)
        a = kt.run(m)
        kt.to(m, "double")
        kt.train(m, X, Y)
        b = kt.run(m)
        c = kt.run(m)
        assert np.isfinite([a, b, c]).all() and c <= a

    def test_backstep_numpy_inputs_conformed(self):
        q = kt.module(("linear", 4, 3, {"dtype": "double"}))
        m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
        kt.backstep(m, X, Y)  # X float32 numpy: owned data, converted as train(m, X, Y) does


# ---------------------------------------------------------------- bad input

class TestBadInput:
    def module_state(self, q):
        return parms(q), kt.dtype(q), kt.device(q), kt.gradflag(q)

    def check_same(self, q, st):
        p, dt, dv, gf = st
        same_parms(q, p)
        assert (kt.dtype(q), kt.device(q), kt.gradflag(q)) == (dt, dv, gf)

    @pytest.mark.parametrize("args,exc,match", [
        (("cuda:99",), kt.KtorchError, r"^to: .*cuda:99"),
        (("tpu",), kt.KtorchError, r"^to: .*tpu"),
        (("dubble",), kt.KtorchError, r"^to: .*dubble"),
        (("long",), kt.KtorchError, r"^to: .*floating"),
        (("int",), kt.KtorchError, r"^to: .*floating"),
        (("grad",), kt.KtorchError, r"^to: .*freeze"),
        (("nograd",), kt.KtorchError, r"^to: "),
        (("double", "grad"), kt.KtorchError, r"^to: "),
        (("double", "tpu"), kt.KtorchError, r"^to: .*tpu"),
        ((), TypeError, r"^to: "),
        ((3,), TypeError, r"^to: "),
        ((True,), TypeError, r"^to: "),
        (("double", 1.5), TypeError, r"^to: "),
    ])
    def test_module(self, args, exc, match):
        q = kt.module(kt.seq("sequential", ("linear", 2, 3), ("batchnorm1d", 3)))
        st = self.module_state(q)
        with pytest.raises(exc, match=match):
            kt.to(q, *args)
        self.check_same(q, st)
        assert kt.dtype(kt.parm(q, "1.running_mean")) == "float"

    @pytest.mark.parametrize("args,exc,match", [
        (("cuda:99",), kt.KtorchError, r"^to: .*cuda:99"),
        (("tpu",), kt.KtorchError, r"^to: .*tpu"),
        (("dubble",), kt.KtorchError, r"^to: .*dubble"),
        (("long",), kt.KtorchError, r"^to: .*floating"),
        (("grad",), kt.KtorchError, r"^to: "),
        ((), TypeError, r"^to: "),
    ])
    def test_model(self, args, exc, match):
        q, _ = mlp()
        o = kt.opt("adam", q, 0.01)
        m = ktmodel(q, o)
        kt.run(m)
        st = self.module_state(q)
        with pytest.raises(exc, match=match):
            kt.to(m, *args)
        self.check_same(q, st)
        assert kt.dtype(o) == "float"
        kt.run(m)  # still trains as before

    @pytest.mark.parametrize("args,exc,match", [
        (("cuda:99",), kt.KtorchError, r"^to: .*cuda:99"),
        (("tpu",), kt.KtorchError, r"^to: .*tpu"),
        (("dubble",), kt.KtorchError, r"^to: .*dubble"),
        ((), TypeError, r"^to: "),
        (([1],), TypeError, r"^to: "),
    ])
    def test_tensor(self, args, exc, match):
        t = kt.tensor([1.0, 2.0])
        before = kt.info(t)
        with pytest.raises(exc, match=match):
            kt.to(t, *args)
        assert kt.info(t) == before
        np.testing.assert_array_equal(kt.tensor(t), [1.0, 2.0])

    def test_copyto_bad(self):
        t = kt.tensor([1.0, 2.0], "float")
        n = kt.objects()
        with pytest.raises(kt.KtorchError, match=r"^copyto: .*dubble"):
            kt.copyto(t, "dubble")
        with pytest.raises(kt.KtorchError, match=r"^copyto: .*cuda:99"):
            kt.copyto(t, "cuda:99")
        with pytest.raises(TypeError, match=r"^copyto: "):
            kt.copyto(t)
        with pytest.raises(TypeError, match=r"^copyto: "):
            kt.copyto(kt.module(("linear", 1, 1)), "double")
        with pytest.raises(TypeError, match=r"^copyto: "):
            kt.copyto([1.0], "double")
        with pytest.raises(TypeError, match=r"^copyto: .*twice"):
            kt.copyto(t, "double", True, non_blocking=True)
        assert kt.objects() in (n, n + 1)  # the module made above may still be alive
        assert kt.dtype(t) == "float"

    @pytest.mark.parametrize("f", [kt.to, kt.device, kt.dtype, kt.gradflag, kt.freeze, kt.training])
    def test_non_handle(self, f):
        args = ("double",) if f is kt.to else ()
        with pytest.raises(TypeError, match=rf"^{f.__name__}: "):
            f(np.ones(2), *args)
        if f is not kt.device:  # device() / device(None): the default device
            with pytest.raises(TypeError):
                f(None, *args)

    def test_freed_handles(self):
        t = kt.tensor([1.0])
        q = kt.module(("linear", 2, 2))
        m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
        kt.free(t)
        for f, args in [(kt.to, ("double",)), (kt.copyto, ("double",)), (kt.device, ()), (kt.dtype, ()),
                        (kt.gradflag, ()), (kt.sync, ())]:
            with pytest.raises(kt.KtorchError, match=rf"^{f.__name__}: .*freed"):
                f(t, *args)
        kt.free(m)
        for f, args in [(kt.to, ("double",)), (kt.device, ()), (kt.dtype, ()), (kt.training, ()),
                        (kt.freeze, ()), (kt.unfreeze, ()), (kt.gradflag, ())]:
            with pytest.raises(kt.KtorchError, match=rf"^{f.__name__}: .*freed"):
                f(m, *args)
        # the module lives on with its own handle, unchanged
        assert kt.dtype(q) == "float" and kt.gradflag(q) == {"weight": True, "bias": True}

    def test_async_flag_twice(self):
        t = kt.tensor([1.0], "float")
        with pytest.raises(TypeError, match=r"^to: .*twice"):
            kt.to(t, "double", True, non_blocking=True)
        assert kt.dtype(t) == "float"

    def test_non_blocking_on_cpu_is_harmless(self):
        t = kt.tensor([1.0, 2.0])
        kt.to(t, "double", True)
        assert kt.dtype(t) == "double"
        kt.to(t, "float", non_blocking=True)
        assert kt.dtype(t) == "float"
        kt.to(t, "double", False)
        assert kt.dtype(t) == "double"
        np.testing.assert_array_equal(kt.tensor(t), [1.0, 2.0])


# ---------------------------------------------------------------- threads

def test_to_while_running_on_another_thread():
    q, _ = mlp()
    o = kt.opt("sgd", q, 0.05, 0.9)
    m = ktmodel(q, o)
    errors, outcomes = [], []
    stop = threading.Event()

    def runner():
        try:
            while not stop.is_set():
                try:
                    r = kt.run(m)
                    outcomes.append(("ok", np.asarray(r)))
                except kt.KtorchError as e:  # a dtype change between definition and run
                    outcomes.append(("dtype", str(e)))
        except BaseException as e:  # anything else is a failure
            errors.append(e)

    th = threading.Thread(target=runner)
    th.start()
    try:
        for i in range(20):
            kt.to(m, "double" if i % 2 == 0 else "float")
            time.sleep(0.005)
        deadline = time.monotonic() + 60
        while len(outcomes) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        th.join(120)
    assert not th.is_alive()
    assert not errors, errors
    assert len(outcomes) >= 3
    for kind, v in outcomes:
        if kind == "ok":
            assert np.isfinite(v).all()
        else:
            assert v.startswith("run: ")
    # the last conversion was to float: everything says so, and the float data trains again
    assert kt.dtype(m) == kt.dtype(q) == kt.dtype(o) == "float"
    assert all(kt.dtype(kt.parm(q, n)) == "float" for n in kt.parmnames(q))
    assert kt.device(m) == "cpu"
    r = kt.run(m)
    assert np.isfinite(r).all()
    for v in parms(q).values():
        assert v.dtype == np.float32 and np.isfinite(v).all()


def test_run_after_to_double_fails_cleanly_and_recovers():
    """Data defined for a float module stays float after `to(m, "double")`: run refuses
    with a KtorchError (changing nothing), and data defined again trains."""
    q, _ = mlp()
    m = ktmodel(q, kt.opt("sgd", q, 0.1))
    kt.to(m, "double")
    before = parms(q)
    with pytest.raises(kt.KtorchError, match=r"^run: the training data is torch.float32, the module's "
                       r"parameters torch.float64: define the data again"):
        kt.run(m)
    same_parms(q, before)
    kt.train(m, X, Y)
    assert np.isfinite(kt.run(m)).all()


# ---------------------------------------------------------------- CUDA

@cuda
class TestCuda:
    def twin(self, opt="sgd"):
        """Two models with the same weights: one to be moved to the GPU, one left on the host."""
        qa, _ = mlp()
        qb, _ = mlp()
        for n in kt.parmnames(qa):
            kt.parm(qb, n, kt.tensor(kt.parm(qa, n)))
        mk = (lambda q: kt.opt("sgd", q, 0.1, 0.9)) if opt == "sgd" else (lambda q: kt.opt("adam", q, 0.01))
        return (qa, ktmodel(qa, mk(qa))), (qb, ktmodel(qb, mk(qb)))

    def test_device_and_default(self):
        assert kt.device() == "cuda"
        assert kt.cudadevices()[:2] == ["cuda", "cuda:0"]

    def test_model_to_cuda_same_metrics(self):
        (qg, mg), (qc, mc) = self.twin()
        kt.to(mg, "cuda")
        assert kt.device(mg) == kt.device(qg) == "cuda"
        assert all(kt.device(kt.parm(qg, n)) == "cuda" for n in kt.parmnames(qg))
        assert kt.device(kt.input(mg)) == "cpu"  # the data stays on the host
        for _ in range(2):
            np.testing.assert_allclose(arr(kt.run(mg)), arr(kt.run(mc)), rtol=1e-5, atol=1e-5)
        assert kt.device(kt.input(mg)) == "cpu"
        for n in kt.parmnames(qc):
            np.testing.assert_allclose(kt.tensor(kt.parm(qg, n)), kt.tensor(kt.parm(qc, n)), rtol=1e-5, atol=1e-5)
        kt.test(mg, X, Y)
        kt.test(mc, X, Y)
        np.testing.assert_allclose(arr(kt.testrun(mg)), arr(kt.testrun(mc)), rtol=1e-5, atol=1e-5)

    def test_optimizer_state_to_cuda_midway(self):
        (qg, mg), (qc, mc) = self.twin("adam")
        np.testing.assert_allclose(arr(kt.run(mg)), arr(kt.run(mc)), rtol=1e-6, atol=1e-6)
        kt.to(mg, "cuda")
        np.testing.assert_allclose(arr(kt.run(mg)), arr(kt.run(mc)), rtol=1e-5, atol=1e-5)
        kt.to(mg, "cpu")
        assert kt.device(mg) == "cpu"
        np.testing.assert_allclose(arr(kt.run(mg)), arr(kt.run(mc)), rtol=1e-5, atol=1e-5)

    def test_cuda_torch_data_not_copied(self):
        (qg, mg), (qc, mc) = self.twin()
        kt.to(mg, "cuda")
        xt, yt = torch.from_numpy(X).cuda(), torch.from_numpy(Y).cuda()
        kt.train(mg, xt, yt)
        assert kt.device(kt.input(mg)) == "cuda"
        r = kt.run(mg)
        np.testing.assert_allclose(arr(r), arr(kt.run(mc)), rtol=1e-5, atol=1e-5)
        # the shared torch data is unchanged
        np.testing.assert_array_equal(xt.cpu().numpy(), X)

    def test_cuda_data_host_module_refused_before_training(self):
        q, _ = mlp()
        m = ktmodel(q, kt.opt("sgd", q, 0.1, 0.9))
        kt.train(m, torch.from_numpy(X).cuda(), torch.from_numpy(Y).cuda())
        before = parms(q)
        with pytest.raises(kt.KtorchError, match=r"^run: .*cuda.*cpu"):
            kt.run(m)
        same_parms(q, before)

    def test_module_option_device(self):
        q = kt.module(("linear", 2, 3, {"device": "cuda", "dtype": "double"}))
        assert kt.device(q) == "cuda" and kt.dtype(q) == "double"
        y = kt.forward(q, np.ones((1, 2)))
        assert kt.device(y) == "cuda"

    def test_module_to_cuda_and_back(self):
        q = kt.module(kt.seq("sequential", ("linear", 2, 3), ("batchnorm1d", 3)))
        before = parms(q)
        kt.to(q, "cuda", "double")
        assert kt.device(q) == "cuda" and kt.dtype(q) == "double"
        assert kt.device(kt.parm(q, "1.num_batches_tracked")) == "cuda"
        assert kt.dtype(kt.parm(q, "1.num_batches_tracked")) == "long"
        kt.sync(q)
        kt.to(q, "cpu", "float")
        same_parms(q, before)

    def test_copyto_cuda_and_back(self):
        t = kt.tensor([1.0, 2.0, 3.0])
        c = kt.copyto(t, "cuda")
        assert kt.device(c) == "cuda" and kt.device(t) == "cpu"
        back = kt.copyto(c, "cpu", "double")
        assert kt.device(back) == "cpu" and kt.dtype(back) == "double"
        np.testing.assert_array_equal(kt.tensor(back), [1.0, 2.0, 3.0])
        ex = kt.tensor([0], "cuda")
        c2 = kt.copyto(t, ex)
        assert kt.device(c2) == "cuda" and kt.dtype(c2) == "long"
        v = kt.copyto(kt.vector([1.0], [2]), "cuda")
        assert kt.device(v) == ["cuda", "cuda"]
        d = kt.copyto(kt.dict({"a": [1.0]}), "cuda:0")
        assert kt.device(d) == {"a": "cuda"}

    def test_sync_forms(self):
        t = kt.tensor([1.0], "cuda")
        q = kt.module(("linear", 2, 2))
        kt.to(q, "cuda")
        m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q))
        for x in [None, "cuda", "cuda:0", 0, t, kt.vector([1.0], [2.0]), q, m]:
            assert (kt.sync() if x is None else kt.sync(x)) is None
        with pytest.raises(kt.KtorchError, match=r"^sync: "):
            kt.sync("cuda:99")

    def test_non_blocking_forms(self):
        x = np.arange(12.0, dtype=np.float32).reshape(3, 4)
        for kw in [{}, {"non_blocking": True}, {"non_blocking": False}]:
            t = kt.tensor(x)
            kt.to(t, "cuda", **kw)
            kt.sync(t)
            assert kt.device(t) == "cuda"
            np.testing.assert_array_equal(kt.tensor(t), x)
        t = kt.tensor(x)
        kt.to(t, "cuda", True)
        kt.sync()
        np.testing.assert_array_equal(kt.tensor(t), x)
        c = kt.copyto(t, "cpu", non_blocking=True)
        kt.sync(t)
        np.testing.assert_array_equal(kt.tensor(c), x)
        q = kt.module(("linear", 4, 2))
        kt.to(q, "cuda", non_blocking=True)
        kt.sync(q)
        assert kt.device(q) == "cuda"

    def test_to_cuda_tensor_grad(self):
        t = kt.tensor([1, 2, 3])
        kt.to(t, "cuda", "double", "grad")
        i = kt.info(t)
        assert (i["device"], i["dtype"], i["gradient"], i["leaf"]) == ("cuda", "double", "grad", True)
        e = kt.tensor([])
        kt.to(e, t)
        assert kt.device(e) == "cuda" and kt.dtype(e) == "double" and kt.gradflag(e) is False

    def test_bad_index_refused(self):
        q = kt.module(("linear", 2, 2))
        before = parms(q)
        n = torch.cuda.device_count()
        with pytest.raises(kt.KtorchError, match=rf"^to: .*cuda:{n}"):
            kt.to(q, f"cuda:{n}")
        same_parms(q, before)
        assert kt.device(q) == "cpu"
