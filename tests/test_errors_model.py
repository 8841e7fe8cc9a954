"""Bad input for models, their options and data (model, train, test, data, input, target, sizes, batching, shuffling): see tests/errorcases.py."""


import numpy as np
import pytest
import torch
from errorcases import F32, NAN, ODD, STRIDED, Env, K, T, X, Y, check_case, same

import ktorch as kt

# id, call(env), exception, message prefix (ends with ":") or substring
CASES = [
    # wrong types
    ("model-wrong-order", lambda e: kt.model(e.l, e.l, e.o), T, "model"),
    ("shuffle-str", lambda e: kt.train(e.m, "shuffle", "x"), K, "train: shuffle: value expects a boolean"),
    ("batchsize-str", lambda e: kt.train(e.m, "batchsize", "x"), K, "train: batchsize:"),
    # freed handles
    ("freed-model-train", lambda e: kt.train(e.fm, "batchsize"), K, "train:"),
    ("freed-in-model", lambda e: kt.model(e.fq, e.l, e.o), K, "model: Module has been freed"),
    # shapes
    ("train-data-mismatch", lambda e: kt.train(e.m, X, Y[:5]), K, "train: tensor size mismatch, 10 vs 5"),
    # options
    ("batchsize-negative", lambda e: kt.train(e.m, "batchsize", -1), K, "train: batchsize must be non-negative"),
    ("batchsize-negative-kw", lambda e: kt.train(e.m, batchsize=-3), K, "train:"),
    ("option-unknown", lambda e: kt.train(e.m, "nosuch", 1), K, "train: unrecognized option: nosuch"),
    ("option-unknown-dict", lambda e: kt.train(e.m, {"batchsize": 2, "nosuch": 1}), K, "train: unrecognized option"),
    ("option-bad-in-dict", lambda e: kt.train(e.m, {"batchsize": 2, "shuffle": True, "metrics": "nosuch"}), K, "train: metrics: unrecognized metric: nosuch"),
    ("metric-unknown", lambda e: kt.test(e.m, "metrics", ["loss", "nosuch"]), K, "test: metrics: unrecognized metric"),
    ("test-clipnorm", lambda e: kt.test(e.m, "clipnorm", 1.0), K, "test: clipnorm: not set for evaluation"),
    ("test-shuffle", lambda e: kt.test(e.m, "shuffle", True), K, "test: shuffle: not set for evaluation"),
    ("clipnorm-negative", lambda e: kt.train(e.m, "clipnorm", -1.0), K, "clipnorm"),
    ("task-range", lambda e: kt.train(e.m, {"tasks": 2, "task": 2}), K, "train: task 2 implies at least 3 tasks, but only 2 defined"),
    ("option-list-length", lambda e: kt.train(e.m, ["batchsize", "shuffle"], [3]), K, "train: 2 name(s) given with 1 value(s)"),
    # tensors
    ("batch-size-range", lambda e: kt.batch(e.t, 20), K, "batch: size 20 not in the range 1-9"),
    ("batch-size-zero", lambda e: kt.batch(e.t, 0), K, "batch: size 0 not in the range 1-9"),
    ("batch-index", lambda e: kt.batch(e.t, 4, 5), K, "batch: batch[5] invalid, valid range is from 0-2"),
    # --- wrong types and arities, None where data is needed ---
    ("model-none", lambda e: kt.model(None, None, None), T, "model: module expects a Module, given NoneType"),
    ("model-arity", lambda e: kt.model(e.q, e.l), T, "model: expecting (module, loss, optimizer) or a model's state"),
    ("train-none-data", lambda e: kt.train(e.m, None), T, "train: expecting data"),
    ("train-no-args", lambda e: kt.train(), T, "train: expecting a Model"),
    ("train-3-data-args", lambda e: kt.train(e.m, X, Y, Y), T, "train: expecting (model, inputs[, targets])"),
    ("train-pos-and-kw", lambda e: kt.train(e.m, "batchsize", 3, shuffle=True), T, "train: options given both by position and by keyword"),
    ("train-scalar-data", lambda e: kt.train(e.m, 5), K, "train: data must have at least one dimension"),
    ("train-ragged-data", lambda e: kt.train(e.m, [[1.0], [1.0, 2.0]], Y), T, "train: cannot make a tensor"),
    ("input-scalar", lambda e: kt.input(e.m, 3.0), K, "input: data must have at least one dimension"),
    ("datasize-tensor", lambda e: kt.datasize(e.t), T, "datasize: expecting a Model"),
    ("batchinit-tensor", lambda e: kt.batchinit(e.t), T, "batchinit: expecting a Model"),
    ("unshuffle-tensor", lambda e: kt.unshuffle(e.t), T, "unshuffle: expecting a Model"),
    ("restore-int", lambda e: kt.restore(3), T, "restore: expecting a Model, Tensor, Vector or Dict"),
    ("shuffle-int", lambda e: kt.shuffle(3), T, "shuffle: expecting a Model, Tensor, Vector or Dict"),
    ("batch-model-size", lambda e: kt.batch(e.m, 3), T, "batch: batch(model) takes no size"),
    ("batch-tensor-no-size", lambda e: kt.batch(e.t), T, "batch: expecting a batch size"),
    ("batch-tensor-float-size", lambda e: kt.batch(e.t, 2.5), K, "batch: size expects an integer"),
    ("metrics-int", lambda e: kt.train(e.m, "metrics", 3), K, "train: metrics: value expects a symbol"),
    # --- freed handles ---
    ("freed-dict-select", lambda e: kt.train(e.m, (e.fd, ["a"]), Y), K, "train: Dict has been freed"),
    ("freed-tensor-train", lambda e: kt.train(e.m, e.ft, Y), K, "train: Tensor has been freed"),
    ("freed-opt-in-model", lambda e: kt.model(e.q, e.l, e.fo), K, "model: Optimizer has been freed"),
    ("freed-loss-in-model", lambda e: kt.model(e.q, e.fl, e.o), K, "model: Loss has been freed"),
    ("freed-model-batch", lambda e: kt.batch(e.fm), K, "batch: Model has been freed"),
    ("freed-model-testinit", lambda e: kt.testinit(e.fm), K, "testinit: Model has been freed"),
    ("freed-model-datasize", lambda e: kt.datasize(e.fm), K, "datasize: Model has been freed"),
    ("freed-model-unshuffle", lambda e: kt.unshuffle(e.fm), K, "unshuffle: Model has been freed"),
    ("freed-tensor-restore", lambda e: kt.restore(e.ft), K, "restore: Tensor has been freed"),
    ("freed-vector-shuffle", lambda e: kt.shuffle(e.fv), K, "shuffle: Vector has been freed"),
    # --- calls in the wrong order: no data, no test data ---
    ("batch-before-data", lambda e: kt.batch(e.m0), K, "batch: no training data defined"),
    ("shuffle-before-data", lambda e: kt.shuffle(e.m0), K, "shuffle: no training data defined"),
    ("unshuffle-before-data", lambda e: kt.unshuffle(e.m0), K, "unshuffle: no training data defined"),
    ("testbatch-without-testdata", lambda e: kt.testbatch(e.m), K, "testbatch: no test data defined"),
    ("target-before-inputs", lambda e: kt.target(e.m0, Y), K, "target: no inputs defined"),
    # --- empty and zero-sized data ---
    ("train-empty-vs-targets", lambda e: kt.train(e.m, np.zeros((0, 4), F32), Y), K, "train: tensor size mismatch, 0 vs 10"),
    ("batch-empty-tensor", lambda e: kt.batch(kt.tensor(np.zeros((0, 4), F32)), 1), K, "batch:"),
    ("vector-select-empty-vector", lambda e: kt.train(e.m, (kt.vector(), [0]), Y), K, "train:"),
    # --- mismatched shapes and dtypes ---
    ("test-data-mismatch", lambda e: kt.test(e.m, X, Y[:3]), K, "test: tensor size mismatch, 10 vs 3"),
    ("data-mismatch", lambda e: kt.data(e.m, X, Y[:3]), K, "data: tensor size mismatch, 10 vs 3"),
    ("target-mismatch", lambda e: kt.target(e.m, Y[:2]), K, "target: tensor size mismatch, 10 vs 2"),
    ("input-mismatch", lambda e: kt.input(e.m, X[:3]), K, "input: tensor size mismatch, 3 vs 10"),
    ("select-bad-index", lambda e: kt.train(e.m, (kt.vector(X, X), [0, 5]), Y), K, "train: vector index 5 invalid for vector of 2 tensor(s)"),
    ("select-negative-index", lambda e: kt.train(e.m, (kt.vector(X, X), [-1]), Y), K, "train: vector index -1 invalid"),
    ("select-bad-key", lambda e: kt.train(e.m, (kt.dict({"a": X}), ["b"]), Y), K, "train: dictionary has no key `b`"),
    # --- NaN/inf where a number must be finite or in range ---
    ("clipnorm-option-nan", lambda e: kt.train(e.m, "clipnorm", NAN), K, "train: clipnorm: maximum norm must be non-negative"),
    ("clipnorm-option-normtype", lambda e: kt.train(e.m, "clipnorm", [1.0, 0.0]), K, "train: clipnorm: norm type must be positive"),
    ("clipvalue-option-negative", lambda e: kt.train(e.m, "clipvalue", -1.0), K, "train: clipvalue: must be non-negative"),
    # --- out-of-range and ill-typed options ---
    ("batchsize-huge", lambda e: kt.train(e.m, "batchsize", 2**70), K, "train"),
    ("batchsize-float", lambda e: kt.train(e.m, "batchsize", 2.5), K, "train: batchsize: value expects an integer"),
    ("batchsize-bool", lambda e: kt.train(e.m, "batchsize", True), K, "train: batchsize: value expects an integer"),
    ("test-batchsize-negative", lambda e: kt.test(e.m, "batchsize", -1), K, "test: batchsize must be non-negative"),
    ("droplast-int", lambda e: kt.train(e.m, "droplast", 3), K, "train: droplast: value expects a boolean"),
    ("hidden-str", lambda e: kt.train(e.m, "hidden", "x"), K, "train: hidden: value expects a boolean"),
    ("task-negative", lambda e: kt.train(e.m, "task", -1), K, "train: task: must be non-negative"),
    ("tasks-zero", lambda e: kt.train(e.m, "tasks", 0), K, "train: tasks: must be at least 1"),
    ("shuffleseed-str", lambda e: kt.train(e.m, "shuffleseed", "x"), K, "train: shuffleseed: value expects an integer"),
    ("nonfinite-unknown", lambda e: kt.train(e.m, nonfinite="maybe"), K, "train: nonfinite: unrecognized setting `maybe`"),
    ("nonfinite-int", lambda e: kt.train(e.m, "nonfinite", 3), K, "train: nonfinite:"),
    ("nonfinite-test", lambda e: kt.test(e.m, "nonfinite", "skip"), K, "test: nonfinite: not set for evaluation"),
    ("option-list-too-many-values", lambda e: kt.train(e.m, ["batchsize"], [1, 2]), K, "train: 1 name(s) given with 2 value(s)"),
    ("shuffle-model-dim", lambda e: kt.shuffle(e.m, 1), K, "shuffle: models shuffle along the first dimension only"),
    ("shuffle-tensor-dim", lambda e: kt.shuffle(e.t, 5), K, "shuffle: dimension 5 invalid for tensor with 2 dimension(s)"),
    ("batch-tensor-negative", lambda e: kt.batch(e.t, -1), K, "batch: size -1 not in the range 1-9"),
    ("batch-tensor-bad-dim", lambda e: kt.batch(e.t, (3, 5)), K, "batch: dimension 5 invalid"),
    # --- dtypes, layouts and devices ktorch cannot compute with: refused at the boundary, never a panic ---
    ("data-mkldnn", lambda e: kt.data(e.m, ODD["mkldnn"], Y), T, "data: mkldnn tensors are not supported, given a torch.Tensor with layout torch._mkldnn"),
    ("train-meta", lambda e: kt.train(e.m, ODD["meta"], Y), T, "train: meta tensors hold no data, given a torch.Tensor on device meta"),
    ("target-float8", lambda e: kt.target(e.m, ODD["float8"]), T, "target: float8_e4m3fn tensors are not supported, given a torch.Tensor of dtype torch.float8_e4m3fn"),
    ("input-qint8", lambda e: kt.input(e.m, ODD["qint8"]), T, "input: qint8 tensors are not supported, given a torch.Tensor of dtype torch.qint8"),
    ("train-uint64-big-list", lambda e: kt.train(e.m, X, [2**63] * 10), T, "train: uint64 values of 2**63 or more"),
    ("target-uint64-big", lambda e: kt.target(e.m, ODD["uint64big"]), T, "target: uint64 values of 2**63 or more"),
    # --- floats for integer options: finite, integral and in range, never saturated (item 4) ---
    ("batchsize-1e300", lambda e: kt.train(e.m, batchsize=1e300), K, "train: batchsize: value expects an integer, given float 1e300, outside the 64-bit integer range"),
    ("tasks-1e300", lambda e: kt.train(e.m, "tasks", 1e300), K, "train: tasks: value expects an integer, given float 1e300"),
    ("task-2**63", lambda e: kt.train(e.m, task=2.0**63), K, "train: task: value expects an integer, given float"),
    ("shuffleseed-minus-1e300", lambda e: kt.train(e.m, shuffleseed=-1e300), K, "train: shuffleseed: value expects an integer"),
    ("test-batchsize-1e300", lambda e: kt.test(e.m, batchsize=1e300), K, "test: batchsize: value expects an integer, given float 1e300"),
]


@pytest.mark.parametrize("call,exc,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, exc, want):
    check_case(call, exc, want)


def test_failed_option_set_restores_all():
    e = Env()
    before = kt.train(e.m)
    with pytest.raises(kt.KtorchError):
        kt.train(e.m, {"batchsize": 3, "droplast": True, "shuffle": True, "clipnorm": 1.0, "nosuch": 2})
    assert same(kt.train(e.m), before)
    assert kt.train(e.m, "batchsize") == 4


@pytest.mark.parametrize("make", [STRIDED["every-other-row-col"], STRIDED["transposed"], STRIDED["negative-stride-rows"]],
                         ids=["every-other", "transposed", "negative-stride"])
def test_strided_numpy_as_model_data(make):
    a = np.ascontiguousarray(make())
    x = make()
    q = kt.module(("linear", a.shape[1], 2))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.1))
    y = np.zeros((a.shape[0], 2), np.float32)
    kt.train(m, x, y)
    np.testing.assert_array_equal(kt.data(m)[0], a)
    np.testing.assert_allclose(kt.evaluate(q, x), kt.evaluate(q, a), rtol=1e-6)


def test_empty_training_data_runs_no_batches():
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q, 0.1))
    w = kt.tensor(kt.parm(q, "weight")).copy()
    assert kt.train(m, np.zeros((0, 4), np.float32), np.zeros(0, np.int64)) == 0
    assert kt.batchinit(m) == 0
    assert kt.batch(m) is False
    kt.run(m)
    np.testing.assert_array_equal(kt.tensor(kt.parm(q, "weight")), w)
    assert kt.datasize(m) == 0


def test_init_without_data_is_minus_one():
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("ce"), kt.opt("sgd", q))
    assert kt.batchinit(m) == -1
    assert kt.testinit(m) == -1
    assert kt.datasize(m) == 0
    assert kt.input(m) is None and kt.target(m) is None


@pytest.mark.parametrize("bs,nb", [(0, 1), (1, 10), (9, 2), (10, 1), (11, 1)], ids=["0", "1", "n-1", "n", "n+1"])
def test_batch_sizes(bs, nb):
    """Batch size 0 means the whole data, 1 a row at a time, n and n+1 a single batch; each
    run equals torch's SGD over the same batches."""
    q = kt.module(("linear", 4, 3))
    m = kt.model(q, kt.loss("mse"), kt.opt("sgd", q, 0.1))
    y = np.random.default_rng(1).standard_normal((10, 3)).astype(np.float32)
    kt.train(m, {"batchsize": bs, "shuffle": False, "metrics": "batchloss"})
    assert kt.train(m, X, y) == nb
    assert kt.batchinit(m) == nb
    sizes = []
    while kt.batch(m):
        sizes.append(kt.datasize(m))
    assert len(sizes) == nb and sum(sizes) == 10
    assert kt.datasize(m) == 10  # restored after the last batch
    lin = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(kt.tensor(kt.parm(q, "weight")).copy()))
        lin.bias.copy_(torch.from_numpy(kt.tensor(kt.parm(q, "bias")).copy()))
    o = torch.optim.SGD(lin.parameters(), lr=0.1)
    want = []
    step = 10 if bs == 0 else bs
    for i in range(0, 10, step):
        o.zero_grad()
        loss = torch.nn.functional.mse_loss(lin(torch.from_numpy(X[i:i + step])), torch.from_numpy(y[i:i + step]))
        loss.backward()
        o.step()
        want.append(loss.item())
    got = kt.run(m)
    np.testing.assert_allclose(np.ravel(got), want, rtol=1e-5)
    np.testing.assert_allclose(kt.tensor(kt.parm(q, "weight")), lin.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    for bs2 in (0, 1, 10, 11):
        kt.test(m, "batchsize", bs2)
        assert np.isfinite(kt.testrun(m, X, y))
